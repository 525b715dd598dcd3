#!/usr/bin/env node
// nccl-check.mjs: the NCCL binding on one GPU (issue: training, data parallel). A group of one:
// collectiveUniqueId, initCollective(rank 0 of 1), a training step, then allReduceGradients and
// allReduceSum must leave the values unchanged (a sum over one rank) and the next step must run.
// Multi-GPU runs (`carzero train --gpus N`) need a machine with N GPUs.
//
//   CARZERO_NCCL_PATH=/path/libnccl.so.2 node tools/parity/nccl-check.mjs [--json out.json]
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const jsonOut = process.argv.includes('--json') ? process.argv[process.argv.indexOf('--json') + 1] : '';
const { Tensor } = await import(join(ROOT, 'dist', 'index.js'));
const { native } = await import(join(ROOT, 'dist', 'internal.js'));
const { NativeModel } = await import(join(ROOT, 'dist', 'model', 'native-model.js'));
const { convertCheckpoint } = await import(join(ROOT, 'dist', 'weights', 'convert.js'));
const report = { tool: 'tools/parity/nccl-check.mjs', ok: false, steps: [] };
const dir = mkdtempSync(join(tmpdir(), 'cz-nccl-'));
try {
  const FX = join(ROOT, 'test', 'fixtures', 'tiny');
  await convertCheckpoint({
    checkpoint: join(FX, 'carzero-tiny.ckpt'),
    textModel: join(FX, 'bert-tiny'),
    out: join(dir, 'model'),
    vitHeads: 2,
  });
  const id = native().collectiveUniqueId();
  report.steps.push(`unique id: ${id.length} bytes`);
  const m = await NativeModel.load(join(dir, 'model'), { device: 'cuda', precision: 'fp32' });
  m.enableTraining({ seed: 1 });
  m.initCollective({ id, rank: 0, world: 1 });
  report.steps.push('initCollective(rank 0 of 1)');
  const n = 2,
    L = m.config.text.max_length,
    side = m.config.vision.image_size;
  const px = Tensor.from(
    Float32Array.from({ length: n * side * side }, (_, i) => Math.sin(i)),
    [n, 1, side, side],
    { device: m.device },
  );
  const ids = Tensor.from(
    Int32Array.from({ length: n * L }, (_, i) => (i % L === 0 ? 2 : i % L === 4 ? 3 : i % L < 4 ? 10 + (i % 7) : 0)),
    [n, L],
    { dtype: 'i32', device: m.device },
  );
  const mask = Tensor.from(
    Uint8Array.from({ length: n * L }, (_, i) => (i % L <= 4 ? 1 : 0)),
    [n, L],
    { dtype: 'u8', device: m.device },
  );
  const kinds = Tensor.from(
    Uint8Array.from({ length: n * L }, (_, i) => (i % L < 4 ? 0 : i % L === 4 ? 2 : 3)),
    [n, L],
    { dtype: 'u8', device: m.device },
  );
  m.zeroGrad();
  const r = await m.forwardBackward({ pixels: px, ids, mask, kinds, lossScale: 1, dropout: false, step: 0 });
  const before = m.gradients().map((g) => Float32Array.from(g.tensor.toArray()));
  m.allReduceGradients();
  const after = m.gradients().map((g) => g.tensor.toArray());
  let same = true;
  for (let i = 0; i < before.length; i++)
    for (let j = 0; j < before[i].length; j++) if (before[i][j] !== after[i][j]) same = false;
  report.steps.push(
    `forwardBackward loss ${r.loss}; allReduceGradients over 1 rank: gradients ${same ? 'unchanged' : 'CHANGED'}`,
  );
  const v = Tensor.from(new Float32Array([1.5, -2, 3]), [3], { device: m.device });
  m.allReduceSum(v);
  const vs = Array.from(v.toArray()).join();
  report.steps.push(`allReduceSum: ${vs}`);
  const r2 = await m.forwardBackward({ pixels: px, ids, mask, kinds, lossScale: 1, dropout: false, step: 1 });
  report.steps.push(`second step loss ${r2.loss}`);
  report.ok = same && vs === '1.5,-2,3' && Number.isFinite(r2.loss);
  m.dispose();
} catch (e) {
  report.steps.push(`FAILED: ${e?.message ?? e}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
for (const s of report.steps) console.log(s);
console.log(report.ok ? 'NCCL: PASS' : 'NCCL: FAIL');
if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify(report, null, 1)}\n`);
process.exit(report.ok ? 0 : 1);
