// Experiment: does the trainer learn on the phantom data set? Fine-tunes the tiny fixture model
// on a small generated phantom set and prints the validation loss per epoch against chance.
// Usage: npx tsx tools/experiments/train-phantom.ts [json overrides for the trainer config]
//   env PH_TRAIN, PH_VAL, PH_SEED, PH_SIZE (min image side) set the phantom set.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generatePhantomSet } from '../../src/apps/demo/phantom.js';
import { convertCheckpoint } from '../../src/weights/convert.js';
import { Trainer } from '../../src/train/trainer.js';

const FX = join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'tiny');
const env = (k: string, d: number): number => (process.env[k] ? Number(process.env[k]) : d);
const t0 = Date.now();
const dir = mkdtempSync(join(tmpdir(), 'cz-train-phantom-'));
try {
  const size = env('PH_SIZE', 64);
  const ph = await generatePhantomSet({
    out: join(dir, 'data'),
    seed: env('PH_SEED', 1),
    train: env('PH_TRAIN', 80),
    validate: env('PH_VAL', 32),
    test: 0,
    size: [size, size + 16],
    formats: { png8: 1, png16: 0, jpeg: 0 },
  });
  const tGen = Date.now();
  const model = join(dir, 'model');
  await convertCheckpoint({
    checkpoint: join(FX, 'carzero-tiny.ckpt'),
    textModel: join(FX, 'bert-tiny'),
    out: model,
    vitHeads: 2,
  });
  const over = process.argv[2] ? JSON.parse(process.argv[2]) : {};
  const cfg = {
    model,
    data: { csv: join(ph.out, 'train.csv'), root: ph.out, workers: 0 },
    device: 'cpu',
    seed: 0,
    epochs: 6,
    batch_size: 8,
    validation_batch_size: 8,
    optimizer: { lr: 2e-3 },
    scheduler: { name: 'none' },
    early_stopping_patience: 0,
    augment: false,
    ...over,
  };
  const tr = await Trainer.create(cfg, join(dir, 'run'), { onLoaderError: () => undefined });
  const vb = typeof cfg.validation_batch_size === 'number' ? cfg.validation_batch_size : 8;
  const chance = 2 * Math.log(vb);
  const before = await tr.validate();
  const tVal = Date.now();
  console.log(
    `gen ${(tGen - t0) / 1000}s, first validation ${(tVal - tGen) / 1000}s; ` +
      `chance (2 ln ${vb}) ${chance.toFixed(4)}; untrained val ${before.loss.toFixed(4)}`,
  );
  const r = await tr.run();
  await tr.close();
  for (const h of r.history)
    console.log(
      `epoch ${h.epoch}: train ${h.train_loss?.toFixed(4)} val ${h.val_loss.toFixed(4)} ` +
        `(${(h.val_loss / chance).toFixed(3)} x chance)`,
    );
  console.log(`steps ${r.steps}, total ${(Date.now() - t0) / 1000}s`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
