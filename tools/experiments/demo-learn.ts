// Experiment: train a from-scratch small CARZero on phantoms and measure zero-shot AUROC.
// env: N_TRAIN N_VAL N_TEST SIZE (model size JSON) PH_MIN PH_MAX; argv[2]: trainer overrides JSON.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generatePhantomSet } from '../../src/apps/demo/phantom.js';
import { createDemoModel, DEMO_MODEL_SIZE } from '../../src/apps/demo/model.js';
import { reportSentences } from '../../src/data/mimic.js';
import { Trainer } from '../../src/train/trainer.js';
import { CARZero } from '../../src/model/carzero.js';
import { rocAuc } from '../../src/eval/metrics.js';
import { DEMO_CLASSES } from '../../src/apps/demo/reports.js';

const env = (k: string, d: number): number => (process.env[k] ? Number(process.env[k]) : d);
const t0 = Date.now();
const dir = process.env.KEEP ?? mkdtempSync(join(tmpdir(), 'cz-demo-learn-'));
const { DEMO_ZERO_SHOT_PROMPTS: SETS } = await import('../../src/apps/demo/demo.js');
// the first (right-side) prompt of each class
const PROMPTS = Object.fromEntries(Object.entries(SETS).map(([c, l]) => [c, l[0]]));
const ph = await generatePhantomSet({
  out: join(process.env.DATA ?? dir, 'data'),
  seed: 1,
  train: env('N_TRAIN', 400),
  validate: env('N_VAL', 64),
  test: env('N_TEST', 200),
  size: [env('PH_MIN', 80), env('PH_MAX', 96)],
  formats: { png8: 1, png16: 0, jpeg: 0 },
  lateral: 0,
});
const tGen = Date.now();
const words = new Set<string>();
let pos = 0,
  tot = 0;
for (const im of ph.index.images)
  if (im.split === 'train')
    for (const s of reportSentences(im.report, 0)) {
      tot++;
      if (!/\b(no|not|without|normal|clear|sharp|unremarkable|intact)\b/.test(s)) pos++;
      for (const w of s.split(' ')) words.add(w);
    }
const size = { ...DEMO_MODEL_SIZE, ...(process.env.SIZE ? JSON.parse(process.env.SIZE) : {}) };
const m = await createDemoModel({
  dir: join(dir, 'model'),
  words,
  size,
  seed: 0,
  headInit: process.env.HEAD_INIT === 'torch' ? 'torch' : 'he',
});
console.log(
  `gen ${(tGen - t0) / 1000}s cached=${ph.cached}; vocab ${m.vocabulary}, params ${m.parameters}; ` +
    `sentences ${tot}, non-negated ${(pos / tot).toFixed(2)}`,
);
let csvPath = join(ph.out, 'train.csv');
if (process.env.POS_ONLY) {
  // Reports reduced to the sentences that state a finding (normal studies keep their normal line).
  const { csvField } = await import('../../src/data/csv.js');
  const { writeFileSync } = await import('node:fs');
  const NEG = /\b(no|not|without|negative|sharp|unremarkable|intact)\b/;
  const lines = ['Path,Split,ViewPosition,Report Impression'];
  for (const im of ph.index.images) {
    const ss = reportSentences(im.report, 0);
    const keep = ss.filter((x) => !NEG.test(x));
    lines.push(
      [im.file, im.split, im.view, (keep.length ? keep : ss).map((x) => x + '.').join(' ')].map(csvField).join(','),
    );
  }
  csvPath = join(dir, 'pos.csv');
  writeFileSync(csvPath, lines.join('\n') + '\n');
}
const over = process.argv[2] ? JSON.parse(process.argv[2]) : {};
const cfg = {
  model: m.dir,
  data: { csv: csvPath, root: ph.out, workers: 1, max_words: 0 },
  device: 'cpu',
  seed: 0,
  epochs: 10,
  batch_size: 32,
  validation_batch_size: 32,
  optimizer: { lr: 1e-3, name: 'adamw', weight_decay: 0.01 },
  scheduler: { name: 'cosine', warmup_steps: 20 },
  early_stopping_patience: 0,
  augment: false,
  dropout: false,
  clip_grad_norm: 1,
  ...over,
};
const tr = await Trainer.create(cfg, join(dir, 'run'), {
  onStep: (s) => {
    if (s.step % 10 === 0)
      console.log(
        `  step ${s.step} loss ${s.loss.toFixed(3)} gn ${s.grad_norm.toFixed(3)} ${s.samples_per_s.toFixed(0)}/s`,
      );
  },
});
const vb = cfg.validation_batch_size;
const chance = 2 * Math.log(vb);
const r = await tr.run();
await tr.close();
for (const h of r.history)
  console.log(
    `epoch ${h.epoch}: train ${h.train_loss?.toFixed(4)} val ${h.val_loss.toFixed(4)} ` +
      `(${(h.val_loss / chance).toFixed(3)} x chance)`,
  );
const tTrain = Date.now();
const model = await CARZero.load(join(dir, 'run', 'last'), { device: 'cpu' });
const test = ph.index.images.filter((im) => im.split === 'test');
const res = await model.classify({ images: test.map((im) => join(ph.out, im.file)), prompts: PROMPTS });
const aucs = DEMO_CLASSES.map((c, j) =>
  rocAuc(
    test.map((im) => im.labels[j]),
    res.scores.map((s) => s[res.classes.indexOf(c)]),
  ),
);
console.log(DEMO_CLASSES.map((c, j) => `${c} ${aucs[j].toFixed(3)}`).join('  '));
console.log(
  `macro AUROC ${(aucs.reduce((a, b) => a + b, 0) / aucs.length).toFixed(4)}; ` +
    `train ${(tTrain - tGen) / 1000}s total ${(Date.now() - t0) / 1000}s`,
);
model.dispose();
if (!process.env.KEEP) rmSync(dir, { recursive: true, force: true });
