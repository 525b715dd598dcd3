// Spread of a model's score matrices on 32 test phantoms x their 32 reports: total, per-image (row),
// per-text (column) and the image x text interaction part (what a contrastive loss can use).
// Usage: npx tsx tools/experiments/diag-scores.ts <model dir> <phantom dir>
import { join } from 'node:path';
import { CARZero } from '../../src/model/carzero.js';
import { readFileSync } from 'node:fs';
const dir = process.argv[2];
const data = process.argv[3];
const model = await CARZero.load(dir, { device: 'cpu' });
const idx = JSON.parse(readFileSync(join(data, 'phantom.json'), 'utf8'));
const ims = idx.images.filter((i: any) => i.split === 'test').slice(0, 32);
const sents = ims.map((i: any) => i.report);
const emb = await model.embedImages(ims.map((i: any) => join(data, i.file)));
const tx = await model.embedTexts(sents);
const s = await model.score(emb, tx);
const B = ims.length,
  Q = sents.length;
function stats(name: string, m: Float32Array, rows: number, cols: number) {
  let mean = 0;
  for (const v of m) mean += v;
  mean /= m.length;
  const rm = new Float64Array(rows),
    cm = new Float64Array(cols);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) {
      rm[r] += m[r * cols + c] / cols;
      cm[c] += m[r * cols + c] / rows;
    }
  let tv = 0,
    iv = 0,
    rv = 0,
    cv = 0;
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) {
      const v = m[r * cols + c];
      tv += (v - mean) ** 2;
      iv += (v - rm[r] - cm[c] + mean) ** 2;
    }
  for (const v of rm) rv += (v - mean) ** 2;
  for (const v of cm) cv += (v - mean) ** 2;
  console.log(
    `${name}: mean ${mean.toFixed(4)} std ${Math.sqrt(tv / m.length).toExponential(2)} ` +
      `row-std ${Math.sqrt(rv / rows).toExponential(2)} col-std ${Math.sqrt(cv / cols).toExponential(2)} ` +
      `interaction-std ${Math.sqrt(iv / m.length).toExponential(2)}`,
  );
}
stats('i2t (B,Q)', s.i2t, B, Q);
stats('t2i (Q,B)', s.t2i, Q, B);
// embedding spread
const g = emb.global.toFloat32();
const C = g.length / B;
let gv = 0;
for (let c = 0; c < C; c++) {
  let m = 0;
  for (let b = 0; b < B; b++) m += g[b * C + c] / B;
  for (let b = 0; b < B; b++) gv += (g[b * C + c] - m) ** 2;
}
console.log('global img across-image std per dim', Math.sqrt(gv / (B * C)).toExponential(2));
const se = tx.sentence.toFloat32();
let sv = 0,
  sn = 0;
for (let c = 0; c < C; c++) {
  let m = 0;
  for (let b = 0; b < Q; b++) m += se[b * C + c] / Q;
  for (let b = 0; b < Q; b++) sv += (se[b * C + c] - m) ** 2;
}
for (const v of se) sn += v * v;
console.log(
  'sentence across-text std per dim',
  Math.sqrt(sv / (Q * C)).toExponential(2),
  'rms',
  Math.sqrt(sn / se.length).toExponential(2),
);
