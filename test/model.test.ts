// The native model through the addon (NativeModel over native/src/napi/model.cpp): the tiny
// fixture checkpoint is converted with `convertCheckpoint`, loaded, and its image, text and score
// outputs compared tensor by tensor with the PyTorch reference (test/fixtures/tiny/outputs), as
// |got - ref| <= atol + rtol * |ref|; plus the API's errors, disposal and concurrency.
// (native/tests/model/ checks the graphs against a double reference in much more detail.)
import test from 'ava';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CarzeroError, Device, Tensor } from '../src/index.js';
import { NativeModel } from '../src/model/native-model.js';
import { convertCheckpoint } from '../src/weights/convert.js';

const FX = join(import.meta.dirname, 'fixtures', 'tiny');

interface Index {
  images: string[];
  B: number;
  Q: number;
  P: number;
  L: number;
  C: number;
  tensors: Record<string, { file: string; shape: number[] }>;
}

async function f32(path: string): Promise<Float32Array> {
  const b = await readFile(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

function worst(got: Float32Array, ref: Float32Array, atol: number, rtol: number): { ratio: number; maxErr: number } {
  let ratio = 0;
  let maxErr = 0;
  for (let i = 0; i < ref.length; i++) {
    const e = Math.abs(got[i] - ref[i]);
    maxErr = Math.max(maxErr, e);
    const r = e / (atol + rtol * Math.abs(ref[i]));
    ratio = Number.isNaN(r) ? Infinity : Math.max(ratio, r);
  }
  return { ratio, maxErr };
}

/** ||got - ref|| / ||ref|| and max |got - ref| / max |ref|, in double precision. */
function relErrors(got: Float32Array, ref: Float32Array): { relFro: number; maxRel: number } {
  let dd = 0;
  let rr = 0;
  let maxD = 0;
  let maxR = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = got[i] - ref[i];
    dd += d * d;
    rr += ref[i] * ref[i];
    maxD = Math.max(maxD, Number.isNaN(d) ? Infinity : Math.abs(d));
    maxR = Math.max(maxR, Math.abs(ref[i]));
  }
  return { relFro: Math.sqrt(dd / rr), maxRel: maxD / maxR };
}

let dir = '';
let idx: Index;
let autocast: { errors: Record<string, { rel_fro: number; max_rel: number }> };

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cz-model-test-'));
  await convertCheckpoint({
    checkpoint: join(FX, 'carzero-tiny.ckpt'),
    textModel: join(FX, 'bert-tiny'),
    out: join(dir, 'model'),
    vitHeads: 2,
  });
  idx = JSON.parse(await readFile(join(FX, 'outputs', 'index.json'), 'utf8')) as Index;
  autocast = JSON.parse(await readFile(join(FX, 'outputs', 'autocast-bf16.json'), 'utf8')) as typeof autocast;
});

test.after.always(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function inputs(device: Device) {
  const { B, Q, L } = idx;
  const planes = await Promise.all(idx.images.map((n) => f32(join(FX, 'images', 'ref', `${n}.x224.f32`))));
  const side = 224;
  const grey = new Float32Array(B * side * side);
  planes.forEach((p, i) => grey.set(p, i * side * side));
  const ids = new Int32Array((await readFile(join(FX, 'text', 'ids.i32'))).buffer.slice(0));
  const mask = new Uint8Array(await readFile(join(FX, 'text', 'mask.u8')));
  const kinds = new Uint8Array(await readFile(join(FX, 'text', 'kinds.u8')));
  return {
    pixels: Tensor.from(grey, [B, 1, side, side], { device }),
    ids: Tensor.from(ids.slice(0, Q * L), [Q, L], { dtype: 'i32', device }),
    mask: Tensor.from(mask, [Q, L], { dtype: 'u8', device }),
    kinds: Tensor.from(kinds, [Q, L], { dtype: 'u8', device }),
  };
}

for (const precision of ['fp32', 'bf16'] as const) {
  test.serial(`tiny model (${precision}) matches the PyTorch reference`, async (t) => {
    const device = Device.cpu();
    using m = await NativeModel.load(join(dir, 'model'), { device, precision });
    t.is(m.precision, precision);
    t.is(m.config.vision.width, idx.C);
    t.is(m.config.text.depth, 5);
    const x = await inputs(device);
    const img = await m.embedImages(x.pixels);
    const txt = await m.embedTexts(x.ids, x.mask, x.kinds);
    const sc = await m.score(img.global, img.local, txt.sentence, txt.words, { attention: true });
    t.deepEqual(img.local.shape, [idx.B, idx.P, idx.C]);
    t.deepEqual(txt.words.shape, [idx.Q, idx.L, idx.C]);
    t.deepEqual(sc.t2i.shape, [idx.Q, idx.B]);
    t.truthy(sc.attention);
    const got: Record<string, Tensor> = {
      img_global: img.global,
      img_local: img.local,
      txt_sentence: txt.sentence,
      txt_words: txt.words,
      i2t: sc.i2t,
      t2i: sc.t2i,
      score: sc.score,
      attention: sc.attention!,
    };
    for (const [name, tensor] of Object.entries(got)) {
      const ref = await f32(join(FX, idx.tensors[name].file));
      const g = (await tensor.read()) as Float32Array;
      const maxRef = ref.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
      const logits = ['i2t', 't2i', 'score', 'attention'].includes(name);
      // fp32: the spec's 1e-4 relative (+ a floor near zero); bf16: scaled by the tensor's range.
      const atol = precision === 'fp32' ? (name === 'attention' ? 1e-7 : 1e-5) : (logits ? 0.1 : 0.02) * maxRef;
      const rtol = precision === 'fp32' ? 1e-4 : 3e-2;
      const w = worst(g, ref, atol, rtol);
      t.true(w.ratio <= 1, `${name}: max|err| ${w.maxErr} (worst ratio ${w.ratio})`);
      if (precision === 'bf16') {
        // Issue 15's bar: no output further from the float64 reference than PyTorch's own bf16
        // autocast on the same model and inputs (outputs/autocast-bf16.json), by the relative
        // Frobenius error (docs/PRECISION.md). The max-element error is reported with it.
        const ac = autocast.errors[name];
        const ours = relErrors(g, ref);
        t.true(
          ours.relFro <= ac.rel_fro,
          `${name}: rel_fro ${ours.relFro.toExponential(3)} > autocast ${ac.rel_fro.toExponential(3)} ` +
            `(max_rel ${ours.maxRel.toExponential(3)}, autocast ${ac.max_rel.toExponential(3)})`,
        );
      }
    }
    for (const v of [...Object.values(got), x.pixels, x.ids, x.mask, x.kinds]) v.dispose();
  });
}

test.serial('tf32 on the CPU (no TF32 there) computes exactly what fp32 does', async (t) => {
  const device = Device.cpu();
  using m32 = await NativeModel.load(join(dir, 'model'), { device, precision: 'fp32' });
  using mtf = await NativeModel.load(join(dir, 'model'), { device, precision: 'tf32' });
  t.is(mtf.precision, 'tf32');
  const x = await inputs(device);
  const outs = [];
  for (const m of [m32, mtf]) {
    const img = await m.embedImages(x.pixels);
    const txt = await m.embedTexts(x.ids, x.mask, x.kinds);
    const sc = await m.score(img.global, img.local, txt.sentence, txt.words);
    outs.push([img.global, img.local, txt.sentence, txt.words, sc.score]);
  }
  for (let i = 0; i < outs[0].length; i++) t.deepEqual(await outs[1][i].read(), await outs[0][i].read());
  for (const v of [...outs.flat(), x.pixels, x.ids, x.mask, x.kinds]) v.dispose();
});

test.serial('argument errors name the argument; disposal is safe', async (t) => {
  const device = Device.cpu();
  await t.throwsAsync(NativeModel.load(join(dir, 'nope')), { instanceOf: CarzeroError, message: /nope\/config\.json/ });
  await t.throwsAsync(NativeModel.load(join(dir, 'model'), { precision: 'fp16' as never }), {
    instanceOf: TypeError,
    message: /precision/,
  });
  await t.throwsAsync(NativeModel.load(join(dir, 'model'), { maxImages: 0 }), {
    instanceOf: RangeError,
    message: /maxImages/,
  });
  const m = await NativeModel.load(join(dir, 'model'), { device, maxImages: 1 });
  using bad = Tensor.zeros([1, 3, 100, 100], { device });
  await t.throwsAsync(m.embedImages(bad), { instanceOf: CarzeroError, message: /pixels/ });
  await t.throwsAsync(m.embedImages(42 as never), { instanceOf: TypeError, message: /pixels/ });
  using ids = Tensor.zeros([2, 97], { dtype: 'i32', device });
  using mask = Tensor.zeros([2, 97], { dtype: 'u8', device });
  using kinds = Tensor.zeros([2, 96], { dtype: 'u8', device });
  await t.throwsAsync(m.embedTexts(ids, mask, kinds), { instanceOf: CarzeroError, message: /kinds/ });
  // Several calls in flight at once, then dispose while one is running: all settle.
  using px = Tensor.zeros([3, 1, 224, 224], { device });
  const runs = [m.embedImages(px), m.embedImages(px)];
  m.dispose();
  const done = await Promise.all(runs);
  for (const r of done) {
    t.deepEqual(r.global.shape, [3, 32]);
    r.global.dispose();
    r.local.dispose();
  }
  t.true(m.disposed);
  await t.throwsAsync(m.embedImages(px), { instanceOf: CarzeroError, message: /disposed/ });
});
