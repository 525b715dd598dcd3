// `carzero demo`: phantom data -> a small CARZero trained from scratch -> zero-shot AUROC table,
// ROC/PR plots and grounding overlays (src/demo/demo.ts).
import { runDemo, runPretrainedDemo, saveDemoModel } from '../demo/demo.js';
import { oneOf, parseArgs, positiveInt, UsageError } from './args.js';
import { createProgress } from './progress.js';

export const DEMO_HELP = `usage: carzero demo [--out <dir>] [--device cpu|cuda|auto] [--seed <n>] [--quick]
                   [--train <n>] [--validate <n>] [--test <n>] [--epochs <n>] [--batch <n>] [--lr <x>]
                   [--save-model <dir>]
       carzero demo --pretrained [--model <name|dir>] [--out <dir>] [--device cpu|cuda|auto]

--pretrained: no training. Renders the held-out test split the shipped model phantom-demo was
trained beside and classifies it zero-shot with that model (seconds): the same table, plots and
overlays, and the macro AUROC recorded when the model was trained, for comparison.

Generates phantom chest X-rays with free-text reports (cached in <out>/data), trains a small
CARZero from scratch on them (ViT and BERT with a word vocabulary built from the reports), then
classifies the held-out test split zero-shot with prompts worded unlike any training sentence
(a finding that has a side: one prompt per side, the class score is the larger).
Prints the per-class AUROC table; writes auroc.{txt,json,csv}, roc.png, pr.png, scores.csv,
overlays/*.png (attention heat map and the true box) and summary.json to <out>.
Seeded: the same options give the same data, model and numbers.

options:
  --out <dir>        output folder (default ./carzero-demo)
  --device <d>       cpu (default), cuda, or auto (cuda when available)
  --seed <n>         seed of the data, the initial model and training (default 0)
  --quick            a small, fast run (tests): 48 px crops, fewer images and epochs
  --train <n>        training images (default 16384; --quick 2048)
  --validate <n>     validation images (default 128; --quick 64)
  --test <n>         held-out test images (default 512; --quick 160)
  --epochs <n>       training epochs (default 6; --quick 12)
  --batch <n>        (image, sentence) pairs per step (default 16)
  --lr <x>           peak learning rate of the cosine schedule (default 0.001)
  --workers <n>      image loader threads (default: the loader's choice)
  --quiet            no progress bars or status lines (the table is still printed)
  --save-model <dir> after the run, copy the trained model with prompts.json, demo.json (settings
                     and results) and manifest.json to <dir> (weights/phantom-demo is made so)
  --pretrained       see above; --model picks another saved demo model (default phantom-demo)
`;

export async function demoMain(argv: string[]): Promise<number> {
  const a = parseArgs(argv, {
    values: ['out', 'device', 'seed', 'train', 'validate', 'test', 'epochs', 'batch', 'lr', 'workers', 'save-model', 'model'],
    flags: ['quick', 'quiet', 'help', 'pretrained'],
  }, 'demo');
  if (a.flags.has('help')) {
    process.stdout.write(DEMO_HELP);
    return 0;
  }
  if (a.positionals.length) throw new UsageError(`carzero demo: unexpected argument '${a.positionals[0]}'`);
  if (a.flags.has('pretrained')) {
    const training = ['seed', 'train', 'validate', 'test', 'epochs', 'batch', 'lr', 'workers', 'save-model'].filter((k) => a.values.has(k));
    if (training.length || a.flags.has('quick')) throw new UsageError(`carzero demo: --pretrained trains nothing; --${training[0] ?? 'quick'} does not apply`);
    const quiet = a.flags.has('quiet');
    const out = a.values.get('out') ?? 'carzero-demo';
    if (out === '') throw new UsageError('carzero demo: --out must name a folder');
    const res = await runPretrainedDemo({
      out,
      model: a.values.get('model'),
      device: oneOf(a.values.get('device'), ['cpu', 'cuda', 'auto'] as const, 'device', 'demo', 'cpu'),
      log: quiet ? undefined : (line: string) => process.stderr.write(`${line}\n`),
      progress: quiet ? undefined : (label, total, unit) => createProgress({ label, total, unit }),
    });
    // The table and the comparison go to stdout (the status lines above went to stderr).
    const { readFile } = await import('node:fs/promises');
    process.stdout.write(await readFile(`${res.out}/auroc.txt`, 'utf8'));
    const f = (v: number | null) => (v === null ? 'n/a' : v.toFixed(4));
    const same = f(res.macro_auroc) === f(res.recorded_macro_auroc);
    process.stdout.write(`\nmacro AUROC ${f(res.macro_auroc)} (recorded when the model was trained: ${f(res.recorded_macro_auroc)})${same ? '' : ' DIFFERENT'}\n`);
    return 0;
  }
  if (a.values.has('model')) throw new UsageError('carzero demo: --model goes with --pretrained (a training run makes its own model)');
  const int0 = (name: string): number | undefined => {
    const v = a.values.get(name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`carzero demo: --${name} must be a non-negative integer, got '${v}'`);
    return n;
  };
  const num = (name: string): number | undefined => (a.values.has(name) ? positiveInt(a.values.get(name), name, 'demo', 0) : undefined);
  let lr: number | undefined;
  if (a.values.has('lr')) {
    lr = Number(a.values.get('lr'));
    if (!(lr > 0 && lr < 1)) throw new UsageError(`carzero demo: --lr must be a number in (0, 1), got '${a.values.get('lr')}'`);
  }
  const quiet = a.flags.has('quiet');
  const out = a.values.get('out') ?? 'carzero-demo';
  if (out === '') throw new UsageError('carzero demo: --out must name a folder');
  const log = quiet ? undefined : (line: string) => process.stderr.write(`${line}\n`);
  const res = await runDemo({
    out,
    device: oneOf(a.values.get('device'), ['cpu', 'cuda', 'auto'] as const, 'device', 'demo', 'cpu'),
    seed: int0('seed'),
    quick: a.flags.has('quick'),
    train: num('train'),
    validate: num('validate'),
    test: num('test'),
    epochs: num('epochs'),
    batchSize: num('batch'),
    lr,
    workers: int0('workers'),
    log,
    progress: quiet ? undefined : (label, total, unit) => createProgress({ label, total, unit }),
  });
  if (quiet) {
    const { readFile } = await import('node:fs/promises');
    process.stdout.write(await readFile(`${res.out}/auroc.txt`, 'utf8'));
  }
  const saveTo = a.values.get('save-model');
  if (saveTo) {
    const written = await saveDemoModel(res, saveTo, `carzero demo ${argv.join(' ')}`);
    log?.(`saved the trained model to ${saveTo} (${written.length} files)`);
  }
  return 0;
}
