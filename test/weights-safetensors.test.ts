// safetensors: round trips (every dtype, metadata, lazy reads), layout, and refusal of corrupt files.
import test from 'ava';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointError } from '../src/errors.js';
import {
  castFloat,
  floatToBf16,
  floatToHalf,
  halfToFloat,
  bf16ToFloat,
  toFloat32,
  type WeightTensor,
} from '../src/weights/dtype.js';
import {
  SafetensorsFile,
  readSafetensors,
  writeSafetensors,
  type SafetensorsInput,
} from '../src/weights/safetensors.js';

let dir = '';
test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'carzero-st-'));
});
test.after.always(async () => {
  await rm(dir, { recursive: true, force: true });
});

function f32(values: number[], shape: number[]): WeightTensor {
  return { dtype: 'F32', shape, data: Buffer.from(new Float32Array(values).buffer) };
}

/** A safetensors file from a raw header object and data bytes. */
function rawFile(header: unknown, data: Buffer, pad = true): Buffer {
  let json = Buffer.from(JSON.stringify(header));
  if (pad) json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

test('round trip: all dtypes, metadata, zero-copy reads and lazy reads agree', async (t) => {
  const file = join(dir, 'all.safetensors');
  const tensors = new Map<string, WeightTensor>([
    ['w.f32', f32([1, -2, 3.5, 0, 1e-3, 7], [2, 3])],
    ['w.f16', castFloat(f32([1, 0.5, -65504, 6e-8], [4]), 'F16')],
    ['w.bf16', castFloat(f32([1, 3.14159, -2.5e30], [3, 1]), 'BF16')],
    ['w.f64', { dtype: 'F64', shape: [2], data: Buffer.from(new Float64Array([Math.PI, -1]).buffer) }],
    ['ids.i64', { dtype: 'I64', shape: [3], data: Buffer.from(new BigInt64Array([1n, -2n, 3n]).buffer) }],
    ['ids.i32', { dtype: 'I32', shape: [1, 2], data: Buffer.from(new Int32Array([5, -6]).buffer) }],
    ['m.u8', { dtype: 'U8', shape: [3], data: Buffer.from([0, 128, 255]) }],
    ['m.bool', { dtype: 'BOOL', shape: [2], data: Buffer.from([1, 0]) }],
    ['scalar', f32([42], [])],
    ['empty', f32([], [0, 4])],
  ]);
  const written = await writeSafetensors(file, tensors, { metadata: { format: 'pt', note: 'test' } });
  const bytes = await readFile(file);
  t.is(written, bytes.length);
  const headerLen = Number(bytes.readBigUInt64LE(0));
  t.is(headerLen % 8, 0, 'header padded to 8 bytes');
  t.true(
    bytes.toString('latin1', 8, 8 + headerLen).endsWith('}') ||
      /\}\s+$/.test(bytes.toString('latin1', 8, 8 + headerLen)),
  );
  t.deepEqual(
    (await readdir(dir)).filter((f) => f.startsWith('.all.')),
    [],
    'no temp file left behind',
  );

  const { tensors: back, metadata } = await readSafetensors(file);
  t.deepEqual(metadata, { format: 'pt', note: 'test' });
  t.deepEqual([...back.keys()].sort(), [...tensors.keys()].sort());
  for (const [name, src] of tensors) {
    const got = back.get(name)!;
    t.is(got.dtype, src.dtype, name);
    t.deepEqual(got.shape, src.shape, name);
    t.true(got.data.equals(src.data), name);
    t.is(got.data.buffer, back.get('w.f32')!.data.buffer, `${name} is a view of the one file buffer`);
  }
  t.deepEqual([...toFloat32(back.get('w.f16')!)], [1, 0.5, -65504, halfToFloat(floatToHalf(6e-8))]);
  t.deepEqual([...toFloat32(back.get('w.bf16')!)], [1, 3.140625, bf16ToFloat(floatToBf16(-2.5e30))]);

  await using lazy = await SafetensorsFile.open(file);
  t.deepEqual(lazy.metadata, { format: 'pt', note: 'test' });
  // Larger elements first: every tensor is aligned to its element size within the data section.
  const sizes = { F64: 8, I64: 8, F32: 4, I32: 4, F16: 2, BF16: 2, U8: 1, BOOL: 1 } as Record<string, number>;
  for (const [name, e] of lazy.entries) t.is(e.offsets[0] % sizes[e.dtype]!, 0, `${name} aligned`);
  t.is(headerLen % 8, 0);
  for (const [name, src] of tensors) t.true((await lazy.read(name)).data.equals(src.data), `lazy ${name}`);
  await t.throwsAsync(lazy.read('nope'), { instanceOf: RangeError, message: /no tensor 'nope'/ });
});

test('the writer is deterministic and streams lazy data functions', async (t) => {
  const a = join(dir, 'a.safetensors');
  const b = join(dir, 'b.safetensors');
  await writeSafetensors(a, [
    ['z', f32([1], [1])],
    ['a', { dtype: 'F16', shape: [2], data: () => Buffer.from([0, 60, 0, 64]) }],
  ]);
  await writeSafetensors(
    b,
    new Map<string, SafetensorsInput>([
      ['a', { dtype: 'F16' as const, shape: [2], data: async () => Buffer.from([0, 60, 0, 64]) }],
      ['z', f32([1], [1])],
    ]),
  );
  t.true((await readFile(a)).equals(await readFile(b)));
  const e = await t.throwsAsync(
    writeSafetensors(join(dir, 'bad.safetensors'), [['x', { dtype: 'F32', shape: [3], data: Buffer.alloc(8) }]]),
  );
  t.regex(e!.message, /tensor 'x' \(F32, \(3\)\) needs 12 bytes, got 8/);
  t.deepEqual(
    (await readdir(dir)).filter((f) => f.startsWith('.bad')),
    [],
    'failed write leaves nothing',
  );
});

test('corrupt and truncated files are refused with the file and the problem named', async (t) => {
  const ok = rawFile(
    { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } },
    Buffer.alloc(12),
  );
  const cases: [string, Buffer, RegExp][] = [
    ['short.safetensors', Buffer.alloc(5), /shorter than the 8-byte header length/],
    ['truncated-header.safetensors', ok.subarray(0, 20), /header length \d+ runs past the end of the file.*truncated/],
    [
      'truncated-data.safetensors',
      ok.subarray(0, ok.length - 2),
      /'b' data_offsets \[8, 12\] run past the end of the data \(10 bytes\)/,
    ],
    ['huge-len.safetensors', Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0, 1]), Buffer.alloc(16)]), /implausible/],
    ['not-json.safetensors', rawFile({}, Buffer.alloc(0)).fill(0x41, 8), /header is not JSON/],
    [
      'bad-dtype.safetensors',
      rawFile({ a: { dtype: 'F8', shape: [1], data_offsets: [0, 1] } }, Buffer.alloc(1)),
      /'a' has unsupported dtype "F8"/,
    ],
    [
      'bad-size.safetensors',
      rawFile({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, Buffer.alloc(8)),
      /'a' \(F32, \(3\)\) needs 12 bytes but data_offsets \[0, 8\] hold 8/,
    ],
    [
      'overlap.safetensors',
      rawFile(
        {
          a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
        },
        Buffer.alloc(12),
      ),
      /'b' data_offsets \[4, 12\] overlap the previous tensor/,
    ],
    [
      'gap.safetensors',
      rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, Buffer.alloc(8)),
      /gap in the data before tensor 'a'/,
    ],
    [
      'trailing.safetensors',
      rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, Buffer.alloc(8)),
      /data section has 8 bytes but the tensors cover 4/,
    ],
    ['bad-meta.safetensors', rawFile({ __metadata__: { a: 1 } }, Buffer.alloc(0)), /__metadata__\.a is not a string/],
  ];
  for (const [name, bytes, re] of cases) {
    const file = join(dir, name);
    await writeFile(file, bytes);
    const e1 = await t.throwsAsync(readSafetensors(file), { instanceOf: CheckpointError }, name);
    t.regex(e1!.message, re, name);
    t.true(e1!.message.startsWith(file), `${name}: message names the file`);
    t.is((e1 as CheckpointError).file, file);
    const e2 = await t.throwsAsync(SafetensorsFile.open(file), { instanceOf: CheckpointError }, `lazy ${name}`);
    t.regex(e2!.message, re, `lazy ${name}`);
  }
  await t.throwsAsync(readSafetensors(join(dir, 'missing.safetensors')), {
    instanceOf: CheckpointError,
    message: /missing\.safetensors: cannot read/,
  });
});

test('f16 and bf16 conversions round to nearest even', (t) => {
  t.is(floatToHalf(1), 0x3c00);
  t.is(floatToHalf(65504), 0x7bff);
  t.is(floatToHalf(65520), 0x7c00); // rounds up to infinity
  t.is(floatToHalf(-0), 0x8000);
  t.is(floatToHalf(2 ** -24), 0x0001);
  t.is(floatToHalf(2 ** -25), 0x0000); // tie -> even (zero)
  t.is(floatToHalf(3 * 2 ** -25), 0x0002); // tie -> even
  t.is(floatToHalf(1 + 2 ** -11), 0x3c00); // tie -> even
  t.is(floatToHalf(1 + 3 * 2 ** -11), 0x3c02);
  t.true(Number.isNaN(halfToFloat(floatToHalf(NaN))));
  t.is(floatToBf16(1 + 2 ** -8), 0x3f80); // tie -> even
  t.is(floatToBf16(1 + 3 * 2 ** -8), 0x3f82);
  t.true(Number.isNaN(bf16ToFloat(floatToBf16(NaN))));
  for (let i = 0; i < 0x7c00; i += 7) t.is(floatToHalf(halfToFloat(i)), i);
});
