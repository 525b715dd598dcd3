// `npm run bench -- train`: training steps/s on this machine's CPU (docs/TRAINING.md), the step of
// test/train-step.test.ts: zeroGrad, forwardBackward (dropout off, fixed batch), ops.clipGradNorm
// at 0.25 over all gradients, ops.adamUpdate per parameter (lr 5e-5, betas (0.5, 0.999), eps 1e-8,
// L2 weight decay 1e-6). Each timed step ends when the last Adam update has resolved.
//  - tiny config (test/fixtures/tiny converted with vitHeads 2): batch 4 and 16, median of
//    --steps steps after --warmup steps;
//  - full size (/tmp/carzero-full/carzero-model, made by `npm run bench -- model`): batch 4,
//    one warm-up step and --full-steps timed steps; skipped with a message when missing.
// The batch: the fixture's reference images (x224 f32 planes, grey copied to 3 channels) and its
// tokenised prompts (L = 97), cycled to the batch size.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Device, Tensor, ops } from '../src/index.js';
import { NativeModel } from '../src/model/native-model.js';
import { convertCheckpoint } from '../src/weights/convert.js';
import { packageRoot } from '../src/native.js';

export interface TrainRow {
  config: string;
  batch: number;
  params: number;
  steps: number;
  ms: number;
  ms_min: number;
  steps_per_s: number;
  images_per_s: number;
  fb_ms: number;
  opt_ms: number;
  loss_first: number;
  loss_last: number;
}

const L = 97;
const SIDE = 224;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function f32(path: string): Float32Array {
  const b = readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

function makeBatch(N: number, textDir: string, device: Device) {
  const fx = join(packageRoot, 'test', 'fixtures', 'tiny', 'images', 'ref');
  const planes = ['grey8_tall_quirk', 'grey16_tall', 'rgb_wide', 'colour'].map((n) => f32(join(fx, `${n}.x224.f32`)));
  const px = new Float32Array(N * 3 * SIDE * SIDE);
  for (let i = 0; i < N; i++) {
    const p = planes[i % planes.length];
    for (let c = 0; c < 3; c++) px.set(p, (i * 3 + c) * SIDE * SIDE);
  }
  const idsBuf = readFileSync(join(textDir, 'ids.i32')); // may be a view into a shared pool
  const idsAll = new Int32Array(idsBuf.buffer.slice(idsBuf.byteOffset, idsBuf.byteOffset + idsBuf.byteLength));
  const maskAll = new Uint8Array(readFileSync(join(textDir, 'mask.u8')));
  const kindsAll = new Uint8Array(readFileSync(join(textDir, 'kinds.u8')));
  const rowsAvail = Math.floor(idsAll.length / L);
  const ids = new Int32Array(N * L);
  const mask = new Uint8Array(N * L);
  const kinds = new Uint8Array(N * L);
  for (let i = 0; i < N; i++) {
    const r = i % rowsAvail;
    ids.set(idsAll.subarray(r * L, (r + 1) * L), i * L);
    mask.set(maskAll.subarray(r * L, (r + 1) * L), i * L);
    kinds.set(kindsAll.subarray(r * L, (r + 1) * L), i * L);
  }
  return {
    pixels: Tensor.from(px, [N, 3, SIDE, SIDE], { device }),
    ids: Tensor.from(ids, [N, L], { dtype: 'i32', device }),
    mask: Tensor.from(mask, [N, L], { dtype: 'u8', device }),
    kinds: Tensor.from(kinds, [N, L], { dtype: 'u8', device }),
  };
}

async function benchSteps(
  config: string,
  modelDir: string,
  textDir: string,
  N: number,
  warmup: number,
  steps: number,
): Promise<TrainRow> {
  const device = Device.cpu();
  const model = await NativeModel.load(modelDir, { device });
  model.enableTraining({ seed: 1 });
  const b = makeBatch(N, textDir, device);
  const params = model.parameters();
  const grads = model.gradients();
  const m = params.map((p) => Tensor.zeros(p.tensor.shape, { device }));
  const v = params.map((p) => Tensor.zeros(p.tensor.shape, { device }));
  const nParams = params.reduce((s, p) => s + p.tensor.shape.reduce((a, x) => a * x, 1), 0);
  const t: number[] = [];
  const tfb: number[] = [];
  const topt: number[] = [];
  const losses: number[] = [];
  try {
    for (let s = 1; s <= warmup + steps; s++) {
      const t0 = performance.now();
      model.zeroGrad();
      const r = await model.forwardBackward({
        pixels: b.pixels,
        ids: b.ids,
        mask: b.mask,
        kinds: b.kinds,
        dropout: false,
      });
      const t1 = performance.now();
      await ops.clipGradNorm({ grads: grads.map((g) => g.tensor), maxNorm: 0.25 });
      for (let i = 0; i < params.length; i++)
        await ops.adamUpdate({
          param: params[i].tensor,
          grad: grads[i].tensor,
          m: m[i],
          v: v[i],
          lr: 5e-5,
          beta1: 0.5,
          beta2: 0.999,
          eps: 1e-8,
          weightDecay: 1e-6,
          step: s,
        });
      const t2 = performance.now();
      losses.push(r.loss);
      if (!Number.isFinite(r.loss)) throw new Error(`${config} B=${N}: loss ${r.loss} at step ${s}`);
      if (s > warmup) {
        t.push(t2 - t0);
        tfb.push(t1 - t0);
        topt.push(t2 - t1);
      }
    }
  } finally {
    for (const x of [...m, ...v]) x.dispose();
    for (const x of Object.values(b)) x.dispose();
    model.dispose();
  }
  const ms = median(t);
  return {
    config,
    batch: N,
    params: nParams,
    steps,
    ms,
    ms_min: Math.min(...t),
    steps_per_s: 1000 / ms,
    images_per_s: (N * 1000) / ms,
    fb_ms: median(tfb),
    opt_ms: median(topt),
    loss_first: losses[0],
    loss_last: losses[losses.length - 1],
  };
}

export async function benchTrain(args: string[]): Promise<{ rows: TrainRow[]; notes: string[] }> {
  const quick = args.includes('--quick');
  const num = (flag: string, d: number) => (args.includes(flag) ? Number(args[args.indexOf(flag) + 1]) : d);
  const steps = num('--steps', quick ? 4 : 10);
  const warmup = num('--warmup', 2);
  const fullSteps = num('--full-steps', quick ? 1 : 3);
  const root = args.includes('--root') ? args[args.indexOf('--root') + 1] : '/tmp/carzero-full';
  const notes: string[] = [];
  const rows: TrainRow[] = [];
  const tiny = join(packageRoot, 'test', 'fixtures', 'tiny');
  const work = mkdtempSync(join(tmpdir(), 'carzero-bench-train-'));
  try {
    const dir = join(work, 'model');
    await convertCheckpoint({
      checkpoint: join(tiny, 'carzero-tiny.ckpt'),
      textModel: join(tiny, 'bert-tiny'),
      out: dir,
      vitHeads: 2,
    });
    for (const N of [4, 16]) {
      const r = await benchSteps('tiny (test fixture)', dir, join(tiny, 'text'), N, warmup, steps);
      rows.push(r);
      console.log(
        `train tiny B=${N}: ${r.ms.toFixed(1)} ms/step (${r.steps_per_s.toFixed(2)} steps/s; ` +
          `forwardBackward ${r.fb_ms.toFixed(1)} ms, clip+Adam ${r.opt_ms.toFixed(1)} ms)`,
      );
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const full = join(root, 'carzero-model');
  if (args.includes('--no-full')) notes.push('full-size step: not run (--no-full)');
  else if (!existsSync(join(full, 'model.safetensors')) || !existsSync(join(root, 'text', 'ids.i32'))) {
    const msg =
      `full-size step: skipped, ${full} not found ` +
      `(make it with \`/usr/bin/python3 tools/reference/full_size.py --out ${root}\`, ` +
      'then `npm run bench -- model` converts it)';
    console.log(`bench train: ${msg}`);
    notes.push(msg);
  } else {
    const r = await benchSteps('full size (reference, random weights)', full, join(root, 'text'), 4, 1, fullSteps);
    rows.push(r);
    console.log(
      `train full B=4: ${r.ms.toFixed(0)} ms/step (forwardBackward ${r.fb_ms.toFixed(0)} ms, ` +
        `clip+Adam ${r.opt_ms.toFixed(0)} ms)`,
    );
  }
  notes.push(`tiny: ${warmup} warm-up steps, median of ${steps}; full size: 1 warm-up step, median of ${fullSteps}`);
  return { rows, notes };
}
