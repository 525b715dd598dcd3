// `carzero demo`: phantom data -> a small CARZero trained from scratch -> zero-shot AUROC table,
// ROC/PR plots and grounding overlays (src/apps/demo/demo.ts).
import { runDemo, runPretrainedDemo, saveDemoModel } from '../apps/demo/demo.js';
import { HELP_OPTION, nonNegativeInt, numberIn, oneOf, parseCommand, positiveInt, UsageError } from './args.js';
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
Prints the per-class AUROC table; writes auroc.{txt,json,csv}, roc.svg, pr.svg, scores.csv,
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
  -h, --help         this help
`;

export async function demoMain(argv: string[]): Promise<number> {
  const a = parseCommand(
    argv,
    {
      ...HELP_OPTION,
      out: { type: 'string', default: 'carzero-demo' },
      device: { type: 'string', default: 'cpu' },
      seed: { type: 'string' },
      train: { type: 'string' },
      validate: { type: 'string' },
      test: { type: 'string' },
      epochs: { type: 'string' },
      batch: { type: 'string' },
      lr: { type: 'string' },
      workers: { type: 'string' },
      'save-model': { type: 'string' },
      model: { type: 'string' },
      quick: { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
      pretrained: { type: 'boolean', default: false },
    },
    'demo',
  );
  const v = a.values;
  if (v.help) {
    process.stdout.write(DEMO_HELP);
    return 0;
  }
  if (a.positionals.length) throw new UsageError(`carzero demo: unexpected argument '${a.positionals[0]}'`);
  const quiet = v.quiet;
  const out = v.out;
  if (out === '') throw new UsageError('carzero demo: --out must name a folder');
  const device = oneOf(v.device, ['cpu', 'cuda', 'auto'] as const, 'device', 'demo', 'cpu');
  if (v.pretrained) {
    const trainingOptions = ['seed', 'train', 'validate', 'test', 'epochs', 'batch', 'lr', 'workers'] as const;
    const training = [...trainingOptions, 'save-model' as const].filter((k) => v[k] !== undefined);
    if (training.length || v.quick)
      throw new UsageError(`carzero demo: --pretrained trains nothing; --${training[0] ?? 'quick'} does not apply`);
    const res = await runPretrainedDemo({
      out,
      model: v.model,
      device,
      log: quiet ? undefined : (line: string) => process.stderr.write(`${line}\n`),
      progress: quiet ? undefined : (label, total, unit) => createProgress({ label, total, unit }),
    });
    // The table and the comparison go to stdout (the status lines above went to stderr).
    const { readFile } = await import('node:fs/promises');
    process.stdout.write(await readFile(`${res.out}/auroc.txt`, 'utf8'));
    const f = (x: number | null) => (x === null ? 'n/a' : x.toFixed(4));
    const same = f(res.macro_auroc) === f(res.recorded_macro_auroc);
    const recorded = `recorded when the model was trained: ${f(res.recorded_macro_auroc)}`;
    process.stdout.write(`\nmacro AUROC ${f(res.macro_auroc)} (${recorded})${same ? '' : ' DIFFERENT'}\n`);
    return 0;
  }
  if (v.model !== undefined)
    throw new UsageError('carzero demo: --model goes with --pretrained (a training run makes its own model)');
  type Count = 'train' | 'validate' | 'test' | 'epochs' | 'batch';
  const num = (name: Count) => positiveInt(v[name], name, 'demo', undefined);
  const log = quiet ? undefined : (line: string) => process.stderr.write(`${line}\n`);
  const res = await runDemo({
    out,
    device,
    seed: nonNegativeInt(v.seed, 'seed', 'demo', undefined),
    quick: v.quick,
    train: num('train'),
    validate: num('validate'),
    test: num('test'),
    epochs: num('epochs'),
    batchSize: num('batch'),
    lr: numberIn(v.lr, [0, 1], 'lr', 'demo', undefined, true),
    workers: nonNegativeInt(v.workers, 'workers', 'demo', undefined),
    log,
    progress: quiet ? undefined : (label, total, unit) => createProgress({ label, total, unit }),
  });
  if (quiet) {
    const { readFile } = await import('node:fs/promises');
    process.stdout.write(await readFile(`${res.out}/auroc.txt`, 'utf8'));
  }
  const saveTo = v['save-model'];
  if (saveTo) {
    const written = await saveDemoModel(res, saveTo, `carzero demo ${argv.join(' ')}`);
    log?.(`saved the trained model to ${saveTo} (${written.length} files)`);
  }
  return 0;
}
