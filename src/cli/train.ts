// `carzero train`: fine-tune a converted model with the original recipe (docs/TRAINING.md "Trainer").
import { defaultConfig, ConfigError } from '../train/config.js';
import { readConfigFile, Trainer } from '../train/trainer.js';
import { parseArgs, UsageError } from './args.js';
import { createProgress } from './progress.js';

export const TRAIN_HELP = `usage: carzero train --config <config.json> --out <run dir>
       carzero train --resume <run dir> [--max-steps <n>]
       carzero train --print-config

Fine-tunes a converted model (carzero convert) on a MIMIC-style data set with the original
CARZero recipe; every field of the recipe can be overridden in the JSON config (YAML is not
supported). --print-config prints the defaults, documented in src/train/config.ts.

The run directory gets config.json, log.jsonl (a line per step and per epoch) and checkpoints;
\`last\` and \`best\` (lowest validation loss) point at complete model directories, usable as
\`carzero classify --model <run dir>/best\`. --resume continues exactly where \`last\` stopped.

options:
  --config <file>        the training config (JSON): at least "model" and "data"
  --out <dir>            the run directory (new)
  --resume <dir>         continue that run from its last checkpoint
  --max-steps <n>        stop after n optimizer steps in all (0: no limit; overrides the config)
  --print-config         print the default config as JSON and exit
  --quiet                no progress bar

example config:
  { "model": "carzero-model", "data": { "csv": "mimic.csv", "root": "mimic-cxr-jpg" } }
`;

export async function trainMain(argv: string[]): Promise<number> {
  const a = parseArgs(argv, { values: ['config', 'out', 'resume', 'max-steps'], flags: ['print-config', 'quiet', 'help'] }, 'train');
  if (a.flags.has('help')) {
    process.stdout.write(TRAIN_HELP);
    return 0;
  }
  if (a.flags.has('print-config')) {
    process.stdout.write(`${JSON.stringify(defaultConfig(), null, 2)}\n`);
    return 0;
  }
  if (a.positionals.length) throw new UsageError(`carzero train: unexpected argument '${a.positionals[0]}'`);
  let maxSteps: number | undefined;
  if (a.values.has('max-steps')) {
    const v = Number(a.values.get('max-steps'));
    if (!Number.isSafeInteger(v) || v < 0) throw new UsageError(`carzero train: --max-steps must be a non-negative integer, got '${a.values.get('max-steps')}'`);
    maxSteps = v;
  }
  const resume = a.values.get('resume');
  const bar = createProgress({ label: 'carzero train', unit: 'steps', enabled: !a.flags.has('quiet') });
  const options = {
    onStep: (s: { step: number; epoch: number; loss: number; lr: number }) =>
      bar.update(s.step, undefined, `epoch ${s.epoch} loss ${s.loss.toFixed(4)} lr ${s.lr.toExponential(2)}`),
    onEpoch: (e: { epoch: number; train_loss: number | null; val_loss: number; best: boolean }) =>
      bar.log(`carzero train: epoch ${e.epoch}: train loss ${e.train_loss?.toFixed(4) ?? '-'}, validation loss ${e.val_loss.toFixed(4)}${e.best ? ' (best)' : ''}`),
    onLoaderError: (m: string) => bar.log(`carzero train: ${m}`),
  };
  let trainer: Trainer;
  if (resume) {
    if (a.values.has('config') || a.values.has('out')) throw new UsageError('carzero train: --resume takes the run directory only (its config is in the checkpoint)');
    trainer = await Trainer.resume(resume, { ...options, maxSteps });
  } else {
    const file = a.values.get('config');
    const out = a.values.get('out');
    if (!file) throw new UsageError('carzero train: --config <file.json> is required (or --resume <run dir>)');
    if (!out) throw new UsageError('carzero train: --out <run dir> is required');
    const cfg = await readConfigFile(file);
    if (maxSteps !== undefined && cfg !== null && typeof cfg === 'object') (cfg as Record<string, unknown>).max_steps = maxSteps;
    try {
      trainer = await Trainer.create(cfg, out, options);
    } catch (e) {
      if (e instanceof ConfigError) throw new UsageError(`carzero train: ${file}: ${e.message}`);
      throw e;
    }
  }
  let stop = false;
  const onSigint = () => {
    if (stop) process.exit(130);
    stop = true;
    bar.log('carzero train: interrupted; the last checkpoint is kept (resume with --resume)');
    process.exit(130);
  };
  process.on('SIGINT', onSigint);
  try {
    const r = await trainer.run();
    bar.end();
    process.stderr.write(`carzero train: ${r.steps} steps, ${r.epochs} epochs, stopped: ${r.stopped}; best validation loss ${r.best_val_loss ?? '-'}; run in ${trainer.runDir}\n`);
    return 0;
  } finally {
    process.off('SIGINT', onSigint);
    await trainer.close();
  }
}
