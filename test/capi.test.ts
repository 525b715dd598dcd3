// The C ABI (libcarzero.so, native/include/carzero.h) driven through ffi-rs, without the addon:
// proves the shared library exports a usable, self-contained interface for other languages.
import test from 'ava';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DataType, close, load, open } from 'ffi-rs';
import { packageRoot } from '../src/native.js';

const candidates = [
  join(packageRoot, 'build', 'Release', 'libcarzero.so'),
  join(packageRoot, 'prebuilds', 'linux-x64', 'libcarzero.so'),
];
const libPath = candidates.find((p) => existsSync(p));

const LIB = 'carzero_c';
type Param = DataType;
function call<R>(funcName: string, retType: DataType, paramsType: Param[], paramsValue: unknown[]): R {
  return load({ library: LIB, funcName, retType, paramsType, paramsValue } as never) as R;
}
const I32 = DataType.I32,
  PTR = DataType.BigInt,
  BUF = DataType.U8Array;

function i64s(values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 8);
  values.forEach((v, i) => b.writeBigInt64LE(BigInt(v), i * 8));
  return b;
}
function ptrs(values: bigint[]): Buffer {
  const b = Buffer.alloc(Math.max(values.length, 1) * 8);
  values.forEach((v, i) => b.writeBigUInt64LE(v, i * 8));
  return b;
}
const lastError = () => call<string>('cz_last_error', DataType.String, [], []);

function tensorFrom(ctx: bigint, data: Float32Array, shape: number[]): bigint {
  const out = Buffer.alloc(8);
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const st = call<number>(
    'cz_tensor_from_host',
    I32,
    [PTR, I32, BUF, I32, BUF, PTR, BUF],
    [ctx, 0, i64s(shape), shape.length, bytes, BigInt(bytes.length), out],
  );
  if (st !== 0) throw new Error(`cz_tensor_from_host: ${lastError()}`);
  return out.readBigUInt64LE(0);
}

test.before(() => {
  if (!libPath)
    throw new Error(
      `libcarzero.so not found (looked in ${candidates.join(', ')}); build with \`npm run build:native\``,
    );
  open({ library: LIB, path: libPath });
});
test.after.always(() => {
  if (libPath) close(LIB);
});

test.serial('version, status names and the capabilities report', (t) => {
  const v = call<string>('cz_version', DataType.String, [], []);
  t.regex(v, /^\d+\.\d+\.\d+/);
  t.is(call<string>('cz_status_name', DataType.String, [I32], [1]), 'invalid_argument');
  const needed = Buffer.alloc(8);
  t.is(call<number>('cz_info_json', I32, [PTR, PTR, BUF], [0n, 0n, needed]), 0);
  const n = Number(needed.readBigUInt64LE(0));
  const buf = Buffer.alloc(n);
  t.is(call<number>('cz_info_json', I32, [BUF, PTR, BUF], [buf, BigInt(n), needed]), 0);
  const info = JSON.parse(buf.subarray(0, n - 1).toString('utf8'));
  t.is(info.version, v);
  t.true(Array.isArray(info.cpu.features));
  t.is(typeof info.cuda.available, 'boolean');
});

test.serial('context, tensors and an op, end to end', (t) => {
  const out = Buffer.alloc(8);
  t.is(call<number>('cz_context_create', I32, [I32, I32, I32, BUF], [0, 0, 2, out]), 0);
  const ctx = out.readBigUInt64LE(0);
  const a = tensorFrom(ctx, new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
  const b = tensorFrom(ctx, new Float32Array([1, 0, 0, 1, 1, 1]), [3, 2]);
  const bias = tensorFrom(ctx, new Float32Array([10, 20]), [2]);
  const c = tensorFrom(ctx, new Float32Array(4), [2, 2]);
  const params = [0, 0, 1, 0, 0, -1]; // trans_a, trans_b, alpha, beta, act, compute
  const st = call<number>(
    'cz_op_run',
    I32,
    [PTR, DataType.String, BUF, I32, DataType.DoubleArray, I32, PTR, I32],
    [ctx, 'gemm', ptrs([a, b, c, bias]), 4, params, params.length, 0n, 0],
  );
  t.is(st, 0, lastError());
  const res = Buffer.alloc(16);
  t.is(call<number>('cz_tensor_to_host', I32, [PTR, BUF, PTR], [c, res, 16n]), 0);
  t.deepEqual(Array.from(new Float32Array(res.buffer, res.byteOffset, 4)), [
    1 + 3 + 10,
    2 + 3 + 20,
    4 + 6 + 10,
    5 + 6 + 20,
  ]);
  // tensor info
  const dt = Buffer.alloc(4),
    nd = Buffer.alloc(4),
    shp = Buffer.alloc(64);
  t.is(call<number>('cz_tensor_info', I32, [PTR, BUF, BUF, BUF], [c, dt, nd, shp]), 0);
  t.is(nd.readInt32LE(0), 2);
  t.is(Number(shp.readBigInt64LE(0)), 2);
  // a scalar result: sum of squares
  const r = [0];
  const ss = call<number>(
    'cz_op_run',
    I32,
    [PTR, DataType.String, BUF, I32, PTR, I32, DataType.DoubleArray, I32],
    [ctx, 'sum_squares', ptrs([a]), 1, 0n, 0, r, 1],
  );
  t.is(ss, 0);
  for (const x of [a, b, c, bias]) call('cz_tensor_free', DataType.Void, [PTR], [x]);
  call('cz_context_free', DataType.Void, [PTR], [ctx]);
});

test.serial('errors come back as status codes with messages naming the argument', (t) => {
  const out = Buffer.alloc(8);
  t.is(call<number>('cz_context_create', I32, [I32, I32, I32, BUF], [0, 0, 0, out]), 0);
  const ctx = out.readBigUInt64LE(0);
  const a = tensorFrom(ctx, new Float32Array(6), [2, 3]);
  const b = tensorFrom(ctx, new Float32Array(8), [4, 2]);
  const c = tensorFrom(ctx, new Float32Array(4), [2, 2]);
  const st = call<number>(
    'cz_op_run',
    I32,
    [PTR, DataType.String, BUF, I32, PTR, I32, PTR, I32],
    [ctx, 'gemm', ptrs([a, b, c]), 3, 0n, 0, 0n, 0],
  );
  t.is(st, 1);
  t.regex(lastError(), /gemm: inner dimensions differ/);
  t.is(
    call<number>(
      'cz_op_run',
      I32,
      [PTR, DataType.String, BUF, I32, PTR, I32, PTR, I32],
      [ctx, 'nope', ptrs([]), 0, 0n, 0, 0n, 0],
    ),
    1,
  );
  t.regex(lastError(), /unknown op 'nope'/);
  // negative size and wrong byte count
  const tout = Buffer.alloc(8);
  t.is(call<number>('cz_tensor_create', I32, [PTR, I32, BUF, I32, BUF], [ctx, 0, i64s([2, -3]), 2, tout]), 1);
  t.regex(lastError(), /dimension 1 is negative/);
  t.is(
    call<number>(
      'cz_tensor_from_host',
      I32,
      [PTR, I32, BUF, I32, BUF, PTR, BUF],
      [ctx, 0, i64s([2]), 1, Buffer.alloc(4), 4n, tout],
    ),
    1,
  );
  t.regex(lastError(), /4 bytes.*needs 8/);
  t.is(call<number>('cz_tensor_create', I32, [PTR, I32, BUF, I32, BUF], [ctx, 9, i64s([2]), 1, tout]), 1);
  t.regex(lastError(), /unknown dtype 9/);
  // CUDA context on a machine without CUDA: unsupported, with the reason
  const info = Buffer.alloc(4096),
    need = Buffer.alloc(8);
  call<number>('cz_info_json', I32, [BUF, PTR, BUF], [info, 4096n, need]);
  const cuda = JSON.parse(info.subarray(0, Number(need.readBigUInt64LE(0)) - 1).toString()).cuda;
  if (!cuda.available) {
    t.is(call<number>('cz_context_create', I32, [I32, I32, I32, BUF], [1, 0, 0, out]), 5);
    t.regex(lastError(), /cuda: unavailable/);
  }
  for (const x of [a, b, c]) call('cz_tensor_free', DataType.Void, [PTR], [x]);
  call('cz_context_free', DataType.Void, [PTR], [ctx]);
});
