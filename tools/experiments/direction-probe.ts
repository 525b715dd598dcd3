// Zero-shot AUROC from i2t alone, t2i alone and their mean (the score), per class.
// Usage: npx tsx tools/experiments/direction-probe.ts <model dir> <phantom dir>
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CARZero } from '../../src/model/carzero.js';
import { rocAuc } from '../../src/eval/metrics.js';
import { DEMO_CLASSES } from '../../src/apps/demo/reports.js';
import { DEMO_ZERO_SHOT_PROMPTS } from '../../src/apps/demo/demo.js';

const [dir, data] = process.argv.slice(2);
const idx = JSON.parse(readFileSync(join(data, 'phantom.json'), 'utf8'));
const test = idx.images.filter((i: { split: string }) => i.split === 'test');
const model = await CARZero.load(dir, { device: 'cpu' });
const tx = await model.embedTexts(DEMO_CLASSES.map((c) => DEMO_ZERO_SHOT_PROMPTS[c][0]));
const Q = DEMO_CLASSES.length;
const cols: Record<string, number[][]> = { i2t: [], t2i: [], score: [] };
for (let b = 0; b < test.length; b += 32) {
  const chunk = test.slice(b, b + 32);
  const emb = await model.embedImages(chunk.map((im: { file: string }) => join(data, im.file)));
  const s = await model.score(emb, tx);
  const B = chunk.length;
  for (let i = 0; i < B; i++) {
    cols.i2t.push(Array.from({ length: Q }, (_, q) => s.i2t[i * Q + q]));
    cols.t2i.push(Array.from({ length: Q }, (_, q) => s.t2i[q * B + i]));
    cols.score.push(Array.from({ length: Q }, (_, q) => s.score[i * Q + q]));
  }
  emb[Symbol.dispose]();
}
for (const [name, rows] of Object.entries(cols)) {
  const a = DEMO_CLASSES.map((_, j) =>
    rocAuc(
      test.map((im: { labels: number[] }) => im.labels[j]),
      rows.map((r) => r[j]),
    ),
  );
  console.log(
    `${name.padEnd(6)} macro ${(a.reduce((x, y) => x + y, 0) / Q).toFixed(3)}  ` +
      DEMO_CLASSES.map((c, j) => `${c} ${a[j].toFixed(3)}`).join(' '),
  );
}
model.dispose();
