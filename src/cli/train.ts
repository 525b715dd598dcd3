// `carzero train`: fine-tune a converted model with the original recipe (docs/TRAINING.md "Trainer").
import { defaultConfig, ConfigError } from '../train/config.js';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { info } from '../info.js';
import { native } from '../native.js';
import { readConfigFile, Trainer, type DistributedOptions } from '../train/trainer.js';
import { parseArgs, UsageError } from './args.js';
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

example config:
  { "model": "carzero-model", "data": { "csv": "mimic.csv", "root": "mimic-cxr-jpg" } }
`;

export async function trainMain(argv: string[]): Promise<number> {
  const a = parseArgs(argv, { values: ['config', 'out', 'resume', 'max-steps', 'gpus'], flags: ['print-config', 'quiet', 'help'] }, 'train');
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
  if (a.values.has('gpus')) {
    const n = Number(a.values.get('gpus'));
    if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`carzero train: --gpus must be a positive integer, got '${a.values.get('gpus')}'`);
    if (n > 1) return launchDataParallel(argv, n, a.values.get('config'));
  }
  const distributed = distributedFromEnv();
  const resume = a.values.get('resume');
  const bar = createProgress({ label: 'carzero train', unit: 'steps', enabled: !a.flags.has('quiet') && (distributed?.rank ?? 0) === 0 });
  const options = {
    onStep: (s: { step: number; epoch: number; loss: number; lr: number }) =>
      bar.update(s.step, undefined, `epoch ${s.epoch} loss ${s.loss.toFixed(4)} lr ${s.lr.toExponential(2)}`),
    onEpoch: (e: { epoch: number; train_loss: number | null; val_loss: number; best: boolean }) =>
      bar.log(`carzero train: epoch ${e.epoch}: train loss ${e.train_loss?.toFixed(4) ?? '-'}, validation loss ${e.val_loss.toFixed(4)}${e.best ? ' (best)' : ''}`),
    onLoaderError: (m: string) => bar.log(`carzero train: ${m}`),
    distributed,
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

/** A data-parallel worker's rank, world and group id (set by launchDataParallel). */
function distributedFromEnv(): DistributedOptions | undefined {
  const r = process.env.CARZERO_DP_RANK, w = process.env.CARZERO_DP_WORLD, id = process.env.CARZERO_DP_ID;
  if (r === undefined || w === undefined || id === undefined) return undefined;
  return { rank: Number(r), world: Number(w), id: Buffer.from(id, 'hex') };
}

/** `--gpus n`: one worker process per GPU (this CLI again, with --gpus removed), all joined through
 * one NCCL unique id made here; waits for all, and stops the others when one fails. */
async function launchDataParallel(argv: string[], n: number, configFile: string | undefined): Promise<number> {
  if (configFile) {
    const cfg = (await readConfigFile(configFile)) as { device?: string } | null;
    if (cfg && cfg.device === 'cpu') throw new UsageError('carzero train: --gpus needs the cuda device (the config says "device": "cpu")');
  }
  if (!info().cuda.available) throw new UsageError(`carzero train: --gpus ${n} needs CUDA: ${info().cuda.reason ?? 'unavailable'}`);
  let id: Buffer;
  try {
    id = native().collectiveUniqueId();
  } catch (e) {
    throw new UsageError(`carzero train: --gpus ${n}: ${(e as Error).message}`);
  }
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--gpus') i++;
    else if (argv[i].startsWith('--gpus=')) continue;
    else args.push(argv[i]);
  }
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  const kids = Array.from({ length: n }, (_, rank) =>
    spawn(process.execPath, [main, 'train', ...args, ...(rank ? ['--quiet'] : [])], {
      stdio: 'inherit',
      env: { ...process.env, CARZERO_DP_RANK: String(rank), CARZERO_DP_WORLD: String(n), CARZERO_DP_ID: id.toString('hex'), CUDA_VISIBLE_DEVICES: String(rank) },
    }));
  const codes = await Promise.all(kids.map((k, rank) => new Promise<number>((res) => {
    k.on('exit', (code, sig) => {
      const c = code ?? (sig ? 1 : 0);
      if (c !== 0) {
        process.stderr.write(`carzero train: worker ${rank} exited with ${code ?? sig}; stopping the others\n`);
        for (const o of kids) if (o !== k && o.exitCode === null) o.kill('SIGTERM');
      }
      res(c);
    });
  })));
  return codes.every((c) => c === 0) ? 0 : 1;
}
