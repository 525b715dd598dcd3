// Tensor and Device through the binding: round trips per dtype, conversions, disposal, and the
// errors bad input must produce (the process survives each of them).
import test from 'ava';
import { CarzeroError, Device, Tensor } from '../src/index.js';
import { native as loadNative } from '../src/native.js';

test('f32, i32, u8 round trip through native memory', (t) => {
  const f = Tensor.from(new Float32Array([1.5, -2, 3.25, 4, 5, 6]), [2, 3]);
  t.deepEqual(f.shape, [2, 3]);
  t.is(f.dtype, 'f32');
  t.is(f.size, 6);
  t.is(f.nbytes, 24);
  t.deepEqual(Array.from(f.toArray()), [1.5, -2, 3.25, 4, 5, 6]);
  const i = Tensor.from(new Int32Array([7, -8, 2147483647]), [3]);
  t.deepEqual(Array.from(i.toArray()), [7, -8, 2147483647]);
  const u = Tensor.from(new Uint8Array([0, 255, 9]), [3, 1]);
  t.deepEqual(Array.from(u.toArray()), [0, 255, 9]);
  for (const x of [f, i, u]) x.dispose();
});

test('number arrays, zeros and write', (t) => {
  const z = Tensor.zeros([4, 0, 2]);
  t.is(z.size, 0);
  t.deepEqual(Array.from(z.toArray()), []);
  const a = Tensor.from([1, 2, 3, 4], [2, 2]);
  a.write(new Float32Array([9, 8, 7, 6]));
  t.deepEqual(Array.from(a.toArray()), [9, 8, 7, 6]);
  const s = Tensor.zeros([]);
  t.is(s.size, 1);
});

test('bf16 and f16 conversion rounds to nearest even and back', (t) => {
  // 1 + 2^-8 is a bf16 tie between 1 and 1 + 2^-7: ties go to even (1.0).
  const vals = new Float32Array([1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -2.5, 65504, 1e-7]);
  const b = Tensor.from(vals, [6], { dtype: 'bf16' });
  t.is(b.dtype, 'bf16');
  const back = b.toFloat32();
  t.is(back[0], 1);
  t.is(back[1], 1);
  t.is(back[2], 1 + 2 ** -6);
  t.is(back[3], -2.5);
  const raw = b.toArray() as Uint16Array;
  t.is(raw[0], 0x3f80);
  const h = Tensor.from(vals, [6], { dtype: 'f16' });
  const hb = h.toFloat32();
  t.is(hb[3], -2.5);
  t.is(hb[4], 65504);
  t.true(Math.abs(hb[5] - 1e-7) < 6e-8); // f16 subnormal
});

test('async read copies off the JS thread', async (t) => {
  const a = Tensor.from(new Float32Array([1, 2, 3]), [3]);
  const r = await a.read();
  t.deepEqual(Array.from(r), [1, 2, 3]);
});

test('using-declarations dispose tensors', (t) => {
  let kept: Tensor;
  {
    using x = Tensor.zeros([8]);
    kept = x;
    t.false(x.disposed);
  }
  t.true(kept.disposed);
  t.is(kept.toString(), 'Tensor(disposed)');
  kept.dispose(); // idempotent
});

test('bad input throws errors naming the argument', (t) => {
  t.throws(() => Tensor.zeros([2, -1]), { instanceOf: RangeError, message: /shape.*\[1\].*non-negative/ });
  t.throws(() => Tensor.zeros([2.5]), { instanceOf: RangeError, message: /shape/ });
  t.throws(() => Tensor.zeros('3' as unknown as number[]), { instanceOf: TypeError, message: /shape/ });
  t.throws(() => Tensor.zeros([2], { dtype: 'f64' as never }), { instanceOf: TypeError, message: /dtype.*f64/ });
  t.throws(() => Tensor.from(new Float32Array(5), [2, 3]), { instanceOf: RangeError, message: /data.*5 elements.*6/ });
  t.throws(() => Tensor.from(new Int32Array(2), [2], { dtype: 'f32' }), {
    instanceOf: TypeError,
    message: /f32 needs a Float32Array/,
  });
  t.throws(() => Tensor.zeros([1, 2, 3, 4, 5, 6, 7, 8, 9]), { instanceOf: RangeError, message: /dimensions/ });
  const x = Tensor.zeros([2]);
  t.throws(() => x.write(new Float32Array(3)), { instanceOf: RangeError, message: /3 elements.*2/ });
  x.dispose();
  t.throws(() => x.toArray(), { instanceOf: CarzeroError, message: /disposed/ });
  t.throws(() => x.shape, { instanceOf: CarzeroError });
});

test('the raw addon validates too (defence when called directly)', (t) => {
  const native = Device.cpu().nativeContext;
  const addon = loadNative() as any;
  t.throws(() => new addon.Tensor(native, 'f32', [-3]), { instanceOf: RangeError, message: /shape.*\[0\]/ });
  t.throws(() => new addon.Tensor(native, 'nope', [3]), { instanceOf: TypeError, message: /dtype/ });
  t.throws(() => new addon.Tensor({}, 'f32', [3]), { instanceOf: TypeError, message: /context/ });
  t.throws(() => new addon.Tensor(native, 'f32', [2], new Float32Array(3)), {
    instanceOf: RangeError,
    message: /12 bytes.*8/,
  });
});

test('devices: cpu with its own pool, cuda explains itself', (t) => {
  const own = Device.cpu({ threads: 1 });
  t.is(own.threads, 1);
  t.is(own.kind, 'cpu');
  own.dispose();
  t.true(own.disposed);
  t.throws(() => Device.cpu({ threads: -2 }), { instanceOf: RangeError, message: /threads/ });
  const info = JSON.parse(loadNative().info());
  if (!info.cuda.available) {
    const err = t.throws(() => Device.cuda(), { instanceOf: CarzeroError });
    t.is(err?.code, 'CZ_ERR_UNSUPPORTED');
    t.regex(err?.message ?? '', /cuda: unavailable \(.+\)/);
    t.is(Device.resolve('auto').kind, 'cpu');
  } else {
    t.pass();
  }
});
