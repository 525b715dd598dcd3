// `carzero train`: fine-tune a converted model with the original recipe (docs/TRAINING.md "Trainer").
import { defaultConfig, ConfigError } from '../train/config.js';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { info } from '../info.js';
import { native } from '../native.js';
import { readConfigFile, Trainer, type DistributedOptions } from '../train/trainer.js';
import { HELP_OPTION, nonNegativeInt, parseCommand, positiveInt, UsageError } from './args.js';
import { dataParallelSetting, processEnv } from '../settings.js';
import { createProgress } from './progress.js';

export const TRAIN_HELP = `usage: carzero train --config <config.json> --out <run dir> [--gpus <n>]
       carzero train --resume <run dir> [--max-steps <n>] [--gpus <n>]
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
  --gpus <n>             data parallel over n GPUs: one process per GPU (CUDA_VISIBLE_DEVICES),
                         gradients averaged with NCCL (opened at run time; CARZERO_NCCL_PATH),
                         batch_size pairs per GPU; the config's device must be cuda or auto
  --print-config         print the default config as JSON and exit
  --quiet                no progress bar
  -h, --help             this help

example config:
  { "model": "carzero-model", "data": { "csv": "mimic.csv", "root": "mimic-cxr-jpg" } }
`;

export async function trainMain(argv: string[]): Promise<number> {
  const a = parseCommand(
    argv,
    {
      ...HELP_OPTION,
      config: { type: 'string' },
      out: { type: 'string' },
      resume: { type: 'string' },
      'max-steps': { type: 'string' },
      gpus: { type: 'string' },
      'print-config': { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
    },
    'train',
  );
  const v = a.values;
  if (v.help) {
    process.stdout.write(TRAIN_HELP);
    return 0;
  }
  if (v['print-config']) {
    process.stdout.write(`${JSON.stringify(defaultConfig(), null, 2)}\n`);
    return 0;
  }
  if (a.positionals.length) throw new UsageError(`carzero train: unexpected argument '${a.positionals[0]}'`);
  const maxSteps = nonNegativeInt(v['max-steps'], 'max-steps', 'train', undefined);
  const gpus = positiveInt(v.gpus, 'gpus', 'train', 1);
  if (gpus > 1) {
    // The workers get the same arguments less --gpus (and its value).
    const drop = new Set<number>();
    for (const t of a.tokens)
      if (t.kind === 'option' && t.name === 'gpus') {
        drop.add(t.index);
        if (!t.inlineValue) drop.add(t.index + 1);
      }
    return launchDataParallel(
      argv.filter((_, i) => !drop.has(i)),
      gpus,
      v.config,
    );
  }
  const distributed = distributedFromEnv();
  const resume = v.resume;
  const enabled = !v.quiet && (distributed?.rank ?? 0) === 0;
  const bar = createProgress({ label: 'carzero train', unit: 'steps', enabled });
  const options = {
    onStep: (s: { step: number; epoch: number; loss: number; lr: number }) =>
      bar.update(s.step, undefined, `epoch ${s.epoch} loss ${s.loss.toFixed(4)} lr ${s.lr.toExponential(2)}`),
    onEpoch: (e: { epoch: number; train_loss: number | null; val_loss: number; best: boolean }) =>
      bar.log(
        `carzero train: epoch ${e.epoch}: train loss ${e.train_loss?.toFixed(4) ?? '-'}, ` +
          `validation loss ${e.val_loss.toFixed(4)}${e.best ? ' (best)' : ''}`,
      ),
    onLoaderError: (m: string) => bar.log(`carzero train: ${m}`),
    distributed,
  };
  let trainer: Trainer;
  if (resume) {
    if (v.config !== undefined || v.out !== undefined)
      throw new UsageError('carzero train: --resume takes the run directory only (its config is in the checkpoint)');
    trainer = await Trainer.resume(resume, { ...options, maxSteps });
  } else {
    const file = v.config;
    const out = v.out;
    if (!file) throw new UsageError('carzero train: --config <file.json> is required (or --resume <run dir>)');
    if (!out) throw new UsageError('carzero train: --out <run dir> is required');
    const cfg = await readConfigFile(file);
    if (maxSteps !== undefined && cfg !== null && typeof cfg === 'object')
      (cfg as Record<string, unknown>).max_steps = maxSteps;
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
    process.stderr.write(
      `carzero train: ${r.steps} steps, ${r.epochs} epochs, stopped: ${r.stopped}; ` +
        `best validation loss ${r.best_val_loss ?? '-'}; run in ${trainer.runDir}\n`,
    );
    return 0;
  } finally {
    process.off('SIGINT', onSigint);
    await trainer.close();
  }
}

/** A data-parallel worker's rank, world and group id (set by launchDataParallel). */
function distributedFromEnv(): DistributedOptions | undefined {
  return dataParallelSetting();
}

/** `--gpus n`: one worker process per GPU (this CLI again, `argv` without --gpus), all joined through
 * one NCCL unique id made here; waits for all, and stops the others when one fails. */
async function launchDataParallel(argv: string[], n: number, configFile: string | undefined): Promise<number> {
  if (configFile) {
    const cfg = (await readConfigFile(configFile)) as { device?: string } | null;
    if (cfg && cfg.device === 'cpu')
      throw new UsageError('carzero train: --gpus needs the cuda device (the config says "device": "cpu")');
  }
  if (!info().cuda.available)
    throw new UsageError(`carzero train: --gpus ${n} needs CUDA: ${info().cuda.reason ?? 'unavailable'}`);
  let id: Buffer;
  try {
    id = native().collectiveUniqueId();
  } catch (e) {
    throw new UsageError(`carzero train: --gpus ${n}: ${(e as Error).message}`);
  }
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  const kids = Array.from({ length: n }, (_, rank) =>
    spawn(process.execPath, [main, 'train', ...argv, ...(rank ? ['--quiet'] : [])], {
      stdio: 'inherit',
      env: {
        ...processEnv(),
        CARZERO_DP_RANK: String(rank),
        CARZERO_DP_WORLD: String(n),
        CARZERO_DP_ID: id.toString('hex'),
        CUDA_VISIBLE_DEVICES: String(rank),
      },
    }),
  );
  const codes = await Promise.all(
    kids.map(
      (k, rank) =>
        new Promise<number>((res) => {
          k.on('exit', (code, sig) => {
            const c = code ?? (sig ? 1 : 0);
            if (c !== 0) {
              process.stderr.write(`carzero train: worker ${rank} exited with ${code ?? sig}; stopping the others\n`);
              for (const o of kids) if (o !== k && o.exitCode === null) o.kill('SIGTERM');
            }
            res(c);
          });
        }),
    ),
  );
  return codes.every((c) => c === 0) ? 0 : 1;
}
