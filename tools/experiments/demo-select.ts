// Experiment: the whole demo with settings from the env, scored on a separately seeded selection
// split (never the test split), for choosing the demo's defaults (docs/TRAINING.md).
// env: OPTS (JSON DemoOptions fields: train, epochs, batchSize, lr, size, trainer, ...),
//      OUT (folder; its data/ cache is reused when the phantom options match), SEL (selection seed,
//      default 9001), TAG (a name for the results line).
// Appends one JSON line to $OUT/../select-results.jsonl.
import { appendFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { runDemo } from '../../src/apps/demo/demo.js';

const opts = process.env.OPTS ? JSON.parse(process.env.OPTS) : {};
const out = process.env.OUT ?? '/tmp/cz-select';
const sel = Number(process.env.SEL ?? 9001);
const t0 = performance.now();
const res = await runDemo({
  out,
  seed: 0,
  ...opts,
  selectionSeed: sel,
  overlays: 0,
  log: (l) => process.stderr.write(l + '\n'),
});
const line = {
  tag: process.env.TAG ?? '',
  opts,
  sel,
  macro: res.macro_auroc,
  auroc: res.auroc,
  val: res.history.map((h) => +h.val_loss.toFixed(3)),
  train: res.history.map((h) => +(h.train_loss ?? NaN).toFixed(3)),
  chance: res.chance_loss,
  seconds: res.seconds,
  wall: (performance.now() - t0) / 1000,
};
await appendFile(join(dirname(out), 'select-results.jsonl'), JSON.stringify(line) + '\n');
console.log(JSON.stringify(line));
