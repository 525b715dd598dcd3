// PyTorch checkpoints: zip and legacy formats, every dtype, strided tensors, byte order, DEFLATE,
// hyper-parameter placeholders, and refusal of truncated and malicious files. Expected values come
// from test/fixtures/weights/expected.json (written by make.py with torch 1.13; CI has no torch).
import test from 'ava';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CheckpointError, UnsafePickleError } from '../src/errors.js';
import { toFloat32, type WeightDType } from '../src/weights/dtype.js';
import { PickleObject, unpickle } from '../src/weights/pickle.js';
import { TorchCheckpoint, TorchTensor, loadTorchCheckpoint } from '../src/weights/torch-zip.js';

const fx = fileURLToPath(new URL('./fixtures/weights/', import.meta.url));
const tiny = fileURLToPath(new URL('./fixtures/tiny/', import.meta.url));
type Expect = { dtype?: string; shape: number[]; values: number[] };
const expected = JSON.parse(await readFile(join(fx, 'expected.json'), 'utf8')) as Record<string, Expect> & {
  legacy: Record<string, Expect>;
  small: Record<string, Expect>;
};
const DT: Record<string, string> = {
  float32: 'F32',
  float16: 'F16',
  bfloat16: 'BF16',
  float64: 'F64',
  int64: 'I64',
  int32: 'I32',
  uint8: 'U8',
  bool: 'BOOL',
};
const SENTINEL = '/tmp/carzero-weights-evil-sentinel';

let dir = '';
test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'carzero-pt-'));
});
test.after.always(async () => {
  await rm(dir, { recursive: true, force: true });
});

function close(t: import('ava').ExecutionContext, got: Float32Array, want: number[], what: string): void {
  t.is(got.length, want.length, `${what}: length`);
  // F64 and I64 values pass through f32 in toFloat32; compare with f32 precision.
  for (let i = 0; i < want.length; i++)
    if (Math.abs(got[i]! - want[i]!) > 1e-6 * Math.max(1, Math.abs(want[i]!))) {
      t.fail(`${what}[${i}]: ${got[i]} != ${want[i]}`);
      return;
    }
}

const mixedCkptTitle =
  'mixed.ckpt: every dtype, scalar, empty, strided and shared-storage tensors load with the right values';
test(mixedCkptTitle, async (t) => {
  const ck = await loadTorchCheckpoint(join(fx, 'mixed.ckpt'));
  const names = Object.keys(expected).filter((k) => k !== 'legacy' && k !== 'small');
  t.deepEqual([...ck.stateDict.keys()], names, 'state dict keys in saved order');
  for (const k of names) {
    const want = expected[k]!;
    const got = ck.stateDict.get(k)!;
    t.is(got.dtype, DT[want.dtype!] as WeightDType, k);
    t.deepEqual(got.shape, want.shape, k);
    t.is(
      got.data.length,
      want.values.length * { F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4, U8: 1, BOOL: 1 }[got.dtype as 'F32'],
      `${k} bytes`,
    );
    close(t, toFloat32(got), want.values, k);
  }
  t.is(ck.other.epoch, 3);
  t.is(ck.other.global_step, 1234);
  t.is(ck.other['pytorch-lightning_version'], '1.9.0');
  const opt = ck.other.optimizer_states as { state: Record<string, { exp_avg: TorchTensor }> }[];
  t.true(opt[0]!.state['0']!.exp_avg instanceof TorchTensor, 'tensors outside the state dict stay lazy refs');
  close(t, toFloat32(await opt[0]!.state['0']!.exp_avg.read()), [1, 1], 'exp_avg');
});

test('hyper_parameters: OmegaConf objects become inert placeholders, plain values stay plain', async (t) => {
  const { hyperParameters } = await loadTorchCheckpoint(join(fx, 'mixed.ckpt'));
  const hp = hyperParameters as Record<string, unknown>;
  const cfg = hp.cfg as PickleObject;
  t.true(cfg instanceof PickleObject);
  t.is(cfg.module, 'omegaconf.dictconfig');
  t.is(cfg.name, 'DictConfig');
  const state = cfg.state as Record<string, unknown>;
  t.deepEqual(state._content, { lr: 5e-5, model: { vision: { width: 768 } } });
  const meta = state._metadata as PickleObject;
  t.is(`${meta.module}.${meta.name}`, 'omegaconf.base.ContainerMetadata');
  t.is(String((meta.state as Record<string, unknown>).ref_type), 'builtins.dict');
  t.is(hp.name, 'tiny');
  t.deepEqual(hp.numbers, [1, 2.5, null, true, false, 2n ** 70n, -3]);
  t.deepEqual(hp.tuple, [1, 'a']);
  t.deepEqual(hp.blob, Buffer.from('\x00\x01bytes', 'latin1'));
  t.deepEqual(hp.set, new Set([3]));
  t.is(hp['[1,2]'], 'tuple key');
});

test('lazy TorchCheckpoint reads storages on demand and matches the in-memory load', async (t) => {
  await using ck = await TorchCheckpoint.open(join(fx, 'mixed.ckpt'));
  t.is(ck.format, 'zip');
  const sd = ck.stateDict;
  const tr = sd.get('model.transposed')!;
  t.false(tr.isContiguous());
  t.deepEqual(tr.stride, [1, 6]);
  close(t, toFloat32(await tr.read()), expected['model.transposed']!.values, 'transposed');
  const sl = sd.get('model.sliced')!;
  t.is(sl.storageOffset, 5);
  t.is(sl.storage, sd.get('model.strided')!.storage, 'one storage shared by two views');
});

test('legacy (pre-1.6) format, DEFLATE-compressed and big-endian archives', async (t) => {
  const legacy = await TorchCheckpoint.open(join(fx, 'legacy.bin'));
  t.is(legacy.format, 'legacy');
  for (const [k, want] of Object.entries(expected.legacy)) {
    const got = await legacy.stateDict.get(k)!.read();
    t.deepEqual(got.shape, want.shape, k);
    close(t, toFloat32(got), want.values, `legacy ${k}`);
  }
  for (const f of ['deflate.ckpt', 'bigendian.ckpt']) {
    await using ck = await TorchCheckpoint.open(join(fx, f));
    if (f === 'bigendian.ckpt') t.is(ck.byteOrder, 'big');
    for (const [k, want] of Object.entries(expected.small)) {
      const got = await ck.stateDict.get(k)!.read();
      t.deepEqual(got.shape, want.shape, `${f} ${k}`);
      close(t, toFloat32(got), want.values, `${f} ${k}`);
    }
  }
});

test('truncated and non-checkpoint files are refused with the file named', async (t) => {
  const bytes = await readFile(join(fx, 'mixed.ckpt'));
  for (const [name, data, re] of [
    ['cut-end.ckpt', bytes.subarray(0, bytes.length - 30), /no end-of-central-directory record/],
    ['cut-half.ckpt', bytes.subarray(0, bytes.length >> 1), /truncated/],
    ['empty.ckpt', Buffer.alloc(0), /not a PyTorch checkpoint/],
    ['text.ckpt', Buffer.from('hello world, not a checkpoint'), /not a PyTorch checkpoint/],
  ] as const) {
    const file = join(dir, name);
    await writeFile(file, data);
    for (const inMemory of [false, true]) {
      const e = await t.throwsAsync(TorchCheckpoint.open(file, { inMemory }), { instanceOf: CheckpointError }, name);
      t.regex(e!.message, re, name);
      t.true(e!.message.startsWith(file), `${name} names the file: ${e!.message}`);
    }
  }
  // A storage record cut short inside an otherwise intact archive: caught when read.
  await t.throwsAsync(TorchCheckpoint.open(join(dir, 'nope.ckpt')), {
    instanceOf: CheckpointError,
    message: /nope\.ckpt: cannot read/,
  });
});

test('evil.ckpt is refused before anything runs (os.system and eval)', async (t) => {
  await rm(SENTINEL, { force: true });
  const e = await t.throwsAsync(loadTorchCheckpoint(join(fx, 'evil.ckpt')), { instanceOf: UnsafePickleError });
  t.regex(e!.message, /evil\.ckpt: evil\/data\.pkl: refused: the pickle calls posix\.system \(nothing was executed\)/);
  t.is((e as UnsafePickleError).callable, 'posix.system');
  const e2 = await t.throwsAsync(TorchCheckpoint.open(join(fx, 'evil-eval.ckpt')), { instanceOf: UnsafePickleError });
  t.regex(e2!.message, /refused: the pickle calls builtins\.eval/);
  t.false(existsSync(SENTINEL), 'the shell command never ran');
});

test('the unpickler refuses dangerous globals in every spelling and never calls unknown ones', (t) => {
  const interp = { resolveGlobal: () => undefined };
  const g = (mod: string, name: string) =>
    Buffer.concat([Buffer.from(`\x80\x02c${mod}\n${name}\n`, 'latin1'), Buffer.from(')R.', 'latin1')]);
  for (const [mod, name] of [
    ['os', 'system'],
    ['nt', 'system'],
    ['subprocess', 'Popen'],
    ['builtins', 'exec'],
    ['builtins', 'getattr'],
    ['shutil', 'rmtree'],
    ['importlib.util', 'find_spec'],
    ['webbrowser', 'open'],
  ])
    t.throws(() => unpickle(g(mod!, name!), interp, { file: 'x.pkl' }), {
      instanceOf: UnsafePickleError,
      message: new RegExp(`x\\.pkl: refused: the pickle calls ${mod}\\.${name}`),
    });
  // STACK_GLOBAL spelling (protocol 4)
  t.throws(() => unpickle(g('__builtin__', 'exec'), interp, { file: 'x.pkl' }), {
    instanceOf: UnsafePickleError,
    message: /calls builtins\.exec/,
  });
  const sg = Buffer.from('\x80\x04\x8c\x05posix\x8c\x06system\x93)R.', 'latin1');
  t.throws(() => unpickle(sg, interp, { file: 'y.pkl' }), { instanceOf: UnsafePickleError, message: /posix\.system/ });
  const inert = unpickle(g('numpy', 'frobnicate'), interp, { file: 'z.pkl' }).value as PickleObject;
  t.true(inert instanceof PickleObject);
  t.is(inert.toString(), '<numpy.frobnicate placeholder>');
  // Truncated pickle
  t.throws(() => unpickle(Buffer.from('\x80\x02]q\x00(K\x01', 'latin1'), interp, { file: 'w.pkl' }), {
    instanceOf: CheckpointError,
    message: /w\.pkl: bad pickle at byte \d+: truncated/,
  });
});

const tinyIndexTitle =
  'fixtures/tiny: both checkpoints match the index (sha256 of every tensor), hparams are placeholders';
test(tinyIndexTitle, async (t) => {
  const f = join(tiny, 'carzero-tiny.ckpt');
  t.true(existsSync(f), `${f} is committed`);
  const index = JSON.parse(await readFile(join(tiny, 'checkpoint-index.json'), 'utf8')) as Record<
    string,
    { name: string; dtype: string; shape: number[]; sha256: string }[]
  >;
  for (const [file, key] of [
    ['carzero-tiny.ckpt', 'tensors'],
    ['carzero-tiny-halves.ckpt', 'tensors_halves'],
  ] as const) {
    const ck = await loadTorchCheckpoint(join(tiny, file));
    const want = index[key]!;
    t.is(ck.stateDict.size, want.length, file);
    for (const w of want) {
      const got = ck.stateDict.get(`CARZero.${w.name}`);
      if (!got) {
        t.fail(`${file}: ${w.name} missing`);
        continue;
      }
      t.is(got.dtype, DT[w.dtype] as WeightDType, `${file} ${w.name}`);
      t.deepEqual(got.shape, w.shape, `${file} ${w.name}`);
      t.is(createHash('sha256').update(got.data).digest('hex'), w.sha256, `${file} ${w.name} bytes`);
    }
    const hp = ck.hyperParameters as PickleObject;
    t.true(
      hp instanceof PickleObject && hp.module === 'omegaconf.dictconfig' && hp.name === 'DictConfig',
      `${file} hyper_parameters`,
    );
  }
});

test('fixtures/tiny/evil: every malicious file is refused and no marker appears', async (t) => {
  const d = join(tiny, 'evil');
  t.true(existsSync(d), `${d} is committed`);
  const files = Object.keys(
    (JSON.parse(await readFile(join(d, 'index.json'), 'utf8')) as { files: Record<string, string> }).files,
  );
  t.true(files.length >= 9);
  for (const f of files) {
    const e = await t.throwsAsync(TorchCheckpoint.open(join(d, f)), { instanceOf: UnsafePickleError }, f);
    t.regex(e!.message, /refused: the pickle calls (posix|os|builtins|subprocess)\.\w+ \(nothing was executed\)/, f);
  }
  const markers = (await readdir('/tmp')).filter((n) => n.startsWith('carzero-evil-marker-'));
  t.deepEqual(markers, [], 'no payload ran');
});

/** Re-emits an archive with every size and offset in ZIP64 records (as torch does past 4 GiB). */
async function toZip64(src: string): Promise<Buffer> {
  const { ZipArchive, BufferSource, crc32 } = await import('../src/weights/zip.js');
  const zip = await ZipArchive.open(new BufferSource(await readFile(src)), src);
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let off = 0;
  for (const name of zip.entries.keys()) {
    const data = await zip.read(name);
    const nm = Buffer.from(name);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0);
    lh.writeUInt16LE(45, 4);
    lh.writeUInt32LE(crc32(data), 14);
    lh.writeUInt32LE(data.length, 18);
    lh.writeUInt32LE(data.length, 22);
    lh.writeUInt16LE(nm.length, 26);
    locals.push(lh, nm, data);
    const extra = Buffer.alloc(4 + 24);
    extra.writeUInt16LE(1, 0);
    extra.writeUInt16LE(24, 2);
    extra.writeBigUInt64LE(BigInt(data.length), 4);
    extra.writeBigUInt64LE(BigInt(data.length), 12);
    extra.writeBigUInt64LE(BigInt(off), 20);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0);
    ch.writeUInt16LE(45, 4);
    ch.writeUInt16LE(45, 6);
    ch.writeUInt32LE(crc32(data), 16);
    ch.writeUInt32LE(0xffffffff, 20);
    ch.writeUInt32LE(0xffffffff, 24);
    ch.writeUInt16LE(nm.length, 28);
    ch.writeUInt16LE(extra.length, 30);
    ch.writeUInt32LE(0xffffffff, 42);
    centrals.push(ch, nm, extra);
    off += 30 + nm.length + data.length;
  }
  const cd = Buffer.concat(centrals);
  const z64 = Buffer.alloc(56);
  z64.writeUInt32LE(0x06064b50, 0);
  z64.writeBigUInt64LE(44n, 4);
  z64.writeBigUInt64LE(BigInt(zip.entries.size), 24);
  z64.writeBigUInt64LE(BigInt(zip.entries.size), 32);
  z64.writeBigUInt64LE(BigInt(cd.length), 40);
  z64.writeBigUInt64LE(BigInt(off), 48);
  const loc = Buffer.alloc(20);
  loc.writeUInt32LE(0x07064b50, 0);
  loc.writeBigUInt64LE(BigInt(off + cd.length), 8);
  loc.writeUInt32LE(1, 16);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(0xffff, 8);
  eocd.writeUInt16LE(0xffff, 10);
  eocd.writeUInt32LE(0xffffffff, 12);
  eocd.writeUInt32LE(0xffffffff, 16);
  return Buffer.concat([...locals, cd, z64, loc, eocd]);
}

test('ZIP64 archives (sizes and offsets in ZIP64 records) load the same', async (t) => {
  const file = join(dir, 'zip64.ckpt');
  await writeFile(file, await toZip64(join(fx, 'mixed.ckpt')));
  const a = await loadTorchCheckpoint(file);
  const b = await loadTorchCheckpoint(join(fx, 'mixed.ckpt'));
  t.deepEqual([...a.stateDict.keys()], [...b.stateDict.keys()]);
  for (const [k, v] of b.stateDict) t.true(a.stateDict.get(k)!.data.equals(v.data), k);
});
