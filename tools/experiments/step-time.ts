// Times forwardBackward + Adam for demo-size models (env SIZE JSON, N pairs).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDemoModel, DEMO_MODEL_SIZE } from '../../src/apps/demo/model.js';
import { NativeModel } from '../../src/model/native-model.js';
import { Tensor } from '../../src/tensor.js';
const size = { ...DEMO_MODEL_SIZE, ...(process.env.SIZE ? JSON.parse(process.env.SIZE) : {}) };
const N = Number(process.env.N ?? 32);
const dir = mkdtempSync(join(tmpdir(), 'cz-st-'));
const words = Array.from({ length: 150 }, (_, i) => `w${i}`);
await createDemoModel({ dir, words, size, seed: 0 });
const m = await NativeModel.load(dir, { device: 'cpu', precision: 'fp32' });
m.enableTraining({ seed: 0 });
const L = size.maxLength;
const px = new Float32Array(N * size.image * size.image).map(() => Math.random());
const ids = new Int32Array(N * L),
  mask = new Uint8Array(N * L),
  kinds = new Uint8Array(N * L).fill(3);
for (let i = 0; i < N; i++) {
  for (let j = 0; j < 10; j++) {
    ids[i * L + j] = j === 0 ? 2 : j === 9 ? 3 : 5 + ((i * 7 + j) % 140);
    mask[i * L + j] = 1;
    kinds[i * L + j] = j === 9 ? 2 : 0;
  }
}
const t = {
  pixels: Tensor.from(px, [N, 1, size.image, size.image]),
  ids: Tensor.from(ids, [N, L], { dtype: 'i32' }),
  mask: Tensor.from(mask, [N, L], { dtype: 'u8' }),
  kinds: Tensor.from(kinds, [N, L], { dtype: 'u8' }),
};
for (let k = 0; k < 3; k++) await m.forwardBackward({ ...t, dropout: false, step: k });
const t0 = performance.now();
const K = 10;
for (let k = 0; k < K; k++) {
  m.zeroGrad();
  await m.forwardBackward({ ...t, dropout: false, step: k });
}
const ms = (performance.now() - t0) / K;
console.log(`size ${JSON.stringify(size)} N ${N}: ${ms.toFixed(1)} ms/step, ${((N / ms) * 1000).toFixed(0)} pairs/s`);
