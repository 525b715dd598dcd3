// PyTorch checkpoints (torch.save) read without Python and without running pickled code.
//
// Two container formats:
// - zip (torch >= 1.6, the default): `<prefix>/data.pkl` (the object pickle), `<prefix>/data/<key>`
//   (raw storages, stored uncompressed), `<prefix>/byteorder` ("little" | "big", absent = little),
//   `<prefix>/version`; the prefix folder is `archive/` or the saved file's stem.
// - legacy (torch < 1.6, still common for old `pytorch_model.bin`): consecutive pickles (magic
//   number, protocol version, sys info, the object, the storage key list) followed by each storage
//   as an int64 element count and its bytes (torch/serialization.py `_legacy_save`).
// Tensors are the interpreted `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`
// calls; storages resolve through the persistent id `('storage', type, key, location, numel)`.
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { CheckpointError } from '../errors.js';
import { DTYPE_BYTES, numel, shapeString, type WeightDType, type WeightTensor } from './dtype.js';
import {
  PickleGlobal,
  PickleObject,
  describeValue,
  setKey,
  unpickle,
  type InterpretedCallable,
  type Interpreter,
} from './pickle.js';
import { BufferSource, FileSource, ZipArchive, type ByteSource } from './zip.js';

const STORAGE_DTYPES: Record<string, WeightDType> = {
  DoubleStorage: 'F64',
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
  UntypedStorage: 'U8',
};
const TORCH_DTYPES: Record<string, WeightDType> = {
  float64: 'F64',
  double: 'F64',
  float32: 'F32',
  float: 'F32',
  float16: 'F16',
  half: 'F16',
  bfloat16: 'BF16',
  int64: 'I64',
  long: 'I64',
  int32: 'I32',
  int: 'I32',
  int16: 'I16',
  short: 'I16',
  int8: 'I8',
  uint8: 'U8',
  bool: 'BOOL',
};

/** `torch.FloatStorage` and friends, or a `torch.float32`-style dtype object, as pickled. */
export class TorchTypeRef {
  constructor(
    readonly qualname: string,
    readonly dtype: WeightDType,
  ) {}
  toString(): string {
    return this.qualname;
  }
}

/** Reads a byte range of one storage (the checkpoint supplies it). */
type StorageReader = (byteOffset: number, byteLength: number) => Promise<Buffer>;

export class TorchStorage {
  constructor(
    readonly key: string,
    readonly dtype: WeightDType,
    readonly numel: number,
    readonly location: string,
    readonly readBytes: StorageReader,
  ) {}
}

/** A tensor of the checkpoint: metadata now, bytes on `read()` (contiguous, little-endian). */
export class TorchTensor {
  constructor(
    readonly storage: TorchStorage,
    readonly storageOffset: number,
    readonly shape: number[],
    readonly stride: number[],
    readonly requiresGrad: boolean,
    readonly bigEndian: boolean,
  ) {}

  get dtype(): WeightDType {
    return this.storage.dtype;
  }

  get numel(): number {
    return numel(this.shape);
  }

  isContiguous(): boolean {
    let expect = 1;
    for (let d = this.shape.length - 1; d >= 0; d--) {
      if (this.shape[d]! !== 1 && this.stride[d]! !== expect) return false;
      expect *= this.shape[d]!;
    }
    return true;
  }

  /**
   * The data as a contiguous row-major WeightTensor. Contiguous tensors of an in-memory
   * little-endian checkpoint are zero-copy views; strided ones (a transposed or sliced tensor
   * saved as is) are gathered into a fresh Buffer.
   */
  async read(): Promise<WeightTensor> {
    const es = DTYPE_BYTES[this.dtype];
    const n = this.numel;
    const shape = this.shape.slice();
    if (n === 0) return { dtype: this.dtype, shape, data: Buffer.alloc(0) };
    let data: Buffer;
    if (this.isContiguous()) {
      data = await this.storage.readBytes(this.storageOffset * es, n * es);
    } else {
      let span = 1;
      for (let d = 0; d < shape.length; d++) span += (shape[d]! - 1) * this.stride[d]!;
      const src = await this.storage.readBytes(this.storageOffset * es, span * es);
      data = Buffer.allocUnsafe(n * es);
      const nd = shape.length;
      const idx = new Array<number>(nd).fill(0);
      const last = nd - 1;
      const inner = shape[last]!;
      const innerStride = this.stride[last]!;
      let out = 0;
      // Walk every row (all indices but the last); copy it in one go when its elements are adjacent.
      for (;;) {
        let base = 0;
        for (let d = 0; d < last; d++) base += idx[d]! * this.stride[d]!;
        if (innerStride === 1) {
          src.copy(data, out, base * es, (base + inner) * es);
          out += inner * es;
        } else {
          for (let i = 0; i < inner; i++, out += es)
            src.copy(data, out, (base + i * innerStride) * es, (base + i * innerStride + 1) * es);
        }
        let d = last - 1;
        while (d >= 0 && ++idx[d]! === shape[d]!) idx[d--] = 0;
        if (d < 0) break;
      }
    }
    if (this.bigEndian && es > 1) {
      data = Buffer.from(data); // never swap a shared view in place
      if (es === 2) data.swap16();
      else if (es === 4) data.swap32();
      else data.swap64();
    }
    return { dtype: this.dtype, shape, data };
  }

  toString(): string {
    return `TorchTensor(${this.dtype}, ${shapeString(this.shape)})`;
  }
}

function callable(
  qualname: string,
  fn: (args: unknown[], kwargs?: Record<string, unknown>) => unknown,
): InterpretedCallable {
  return { qualname, call: fn };
}

/** A string argument, or an Error naming what it is instead (type and size only). */
function textOf(v: unknown, what: string): string {
  if (typeof v !== 'string') throw new Error(`${what} is ${describeValue(v)}, not a string`);
  return v;
}

/** collections.OrderedDict(items): the (key, value) pairs with unpickle's key rules. */
function orderedDict(items: unknown): Record<string, unknown> {
  const d: Record<string, unknown> = {};
  if (!Array.isArray(items)) return d;
  for (const kv of items) {
    if (!Array.isArray(kv) || kv.length !== 2)
      throw new Error(`OrderedDict item ${describeValue(kv)} is not a (key, value) pair`);
    setKey(d, kv[0], kv[1]);
  }
  return d;
}

/** _codecs.encode(text, encoding): how protocol 2 spells Python 3 bytes. */
function codecsEncode(a: unknown[]): Buffer {
  const text = textOf(a[0], '_codecs.encode text');
  return Buffer.from(text, a[1] === 'latin1' || a[1] === 'latin-1' ? 'latin1' : 'utf8');
}

function intList(v: unknown, what: string): number[] {
  if (!Array.isArray(v) || v.length > 64 || !v.every((x) => Number.isSafeInteger(x) && (x as number) >= 0))
    throw new Error(`${what} is not a list of at most 64 sizes: ${describeValue(v)}`);
  return v as number[];
}

/** The globals a checkpoint legitimately uses, interpreted; everything else stays inert. */
function torchInterpreter(bigEndian: boolean, persistentLoad: (pid: unknown) => unknown): Interpreter {
  const rebuildTensor = (name: string) =>
    callable(`torch._utils.${name}`, (a) => {
      const [storage, offset, size, stride, requiresGrad] = a;
      if (!(storage instanceof TorchStorage)) throw new Error(`storage argument is ${describeValue(storage)}`);
      if (!Number.isSafeInteger(offset) || (offset as number) < 0)
        throw new Error(`bad storage offset ${describeValue(offset)}`);
      const shape = intList(size, 'size');
      const strides = intList(stride, 'stride');
      if (shape.length !== strides.length)
        throw new Error(`size ${shapeString(shape)} and stride ${shapeString(strides)} differ in length`);
      if (numel(shape) > 0) {
        let last = offset as number;
        for (let d = 0; d < shape.length; d++) last += (shape[d]! - 1) * strides[d]!;
        if (last >= storage.numel)
          throw new Error(
            `tensor ${shapeString(shape)} at offset ${String(offset)} with stride ${shapeString(strides)} ` +
              `reaches element ${last} of storage '${storage.key}' (${storage.numel} elements)`,
          );
      }
      return new TorchTensor(storage, offset as number, shape, strides, requiresGrad === true, bigEndian);
    });
  const table = new Map<string, unknown>([
    ['collections.OrderedDict', callable('collections.OrderedDict', (a) => orderedDict(a[0]))],
    ['torch._utils._rebuild_tensor_v2', rebuildTensor('_rebuild_tensor_v2')],
    ['torch._utils._rebuild_tensor', rebuildTensor('_rebuild_tensor')],
    ['torch._utils._rebuild_parameter', callable('torch._utils._rebuild_parameter', (a) => a[0])],
    ['torch._utils._rebuild_parameter_with_state', callable('torch._utils._rebuild_parameter_with_state', (a) => a[0])],
    [
      // torch 2.x wraps tensor subclasses: _rebuild_from_type_v2(func, new_type, args, state)
      'torch._tensor._rebuild_from_type_v2',
      callable('torch._tensor._rebuild_from_type_v2', (a) => {
        const [fn, , args] = a;
        if (typeof fn === 'object' && fn !== null && 'call' in fn)
          return (fn as InterpretedCallable).call(Array.isArray(args) ? args : []);
        return new PickleObject('torch._tensor', '_rebuild_from_type_v2', a);
      }),
    ],
    ['torch.Size', callable('torch.Size', (a) => (Array.isArray(a[0]) ? (a[0] as unknown[]).slice() : []))],
    // Protocol 2 pickles Python 3 bytes as _codecs.encode(text, 'latin1').
    ['_codecs.encode', callable('_codecs.encode', (a) => codecsEncode(a))],
    ['builtins.set', callable('builtins.set', (a) => new Set(Array.isArray(a[0]) ? a[0] : []))],
    ['builtins.frozenset', callable('builtins.frozenset', (a) => new Set(Array.isArray(a[0]) ? a[0] : []))],
    [
      'builtins.bytearray',
      callable('builtins.bytearray', (a) =>
        Buffer.isBuffer(a[0])
          ? Buffer.from(a[0])
          : typeof a[0] === 'string'
            ? Buffer.from(a[0], 'latin1')
            : Buffer.alloc(0),
      ),
    ],
  ]);
  return {
    resolveGlobal(module, name) {
      const q = `${module}.${name}`;
      if (table.has(q)) return table.get(q);
      if ((module === 'torch' || module === 'torch.storage') && Object.hasOwn(STORAGE_DTYPES, name))
        return new TorchTypeRef(q, STORAGE_DTYPES[name]!);
      if (module === 'torch' && Object.hasOwn(TORCH_DTYPES, name)) return new TorchTypeRef(q, TORCH_DTYPES[name]!);
      return undefined;
    },
    persistentLoad,
  };
}

function storageType(t: unknown): WeightDType {
  if (t instanceof TorchTypeRef) return t.dtype;
  throw new Error(`unsupported storage type ${describeValue(t)}`);
}

export interface TorchCheckpointOptions {
  /**
   * Read the whole file into memory with one read (tensors become views of it) instead of
   * reading storages on demand. Default false.
   */
  inMemory?: boolean;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype;
}

/** An opened torch.save file: the unpickled object graph, tensors as lazy TorchTensor refs. */
export class TorchCheckpoint implements AsyncDisposable {
  readonly file: string;
  readonly format: 'zip' | 'legacy';
  readonly byteOrder: 'little' | 'big';
  /** The saved object (a Lightning checkpoint dict, or a bare state dict). */
  readonly root: unknown;
  #fh: FileHandle | null;

  private constructor(
    file: string,
    format: 'zip' | 'legacy',
    byteOrder: 'little' | 'big',
    root: unknown,
    fh: FileHandle | null,
  ) {
    this.file = file;
    this.format = format;
    this.byteOrder = byteOrder;
    this.root = root;
    this.#fh = fh;
  }

  static async open(file: string, options: TorchCheckpointOptions = {}): Promise<TorchCheckpoint> {
    if (typeof file !== 'string') throw new TypeError("TorchCheckpoint.open: argument 'file' must be a path string");
    if (typeof options !== 'object' || options === null)
      throw new TypeError("TorchCheckpoint.open: argument 'options' must be an object");
    let fh: FileHandle | null = null;
    let source: ByteSource;
    try {
      if (options.inMemory) source = new BufferSource(await readFile(file));
      else {
        fh = await open(file, 'r');
        source = new FileSource(fh, (await fh.stat()).size);
      }
    } catch (e) {
      await fh?.close();
      throw new CheckpointError(`${file}: cannot read: ${(e as Error).message}`, file);
    }
    try {
      const magic = source.size >= 4 ? await source.read(0, 4) : Buffer.alloc(0);
      if (magic.length === 4 && magic.readUInt32LE(0) === 0x04034b50) {
        const { root, byteOrder } = await loadZip(file, source);
        return new TorchCheckpoint(file, 'zip', byteOrder, root, fh);
      }
      if (magic.length >= 1 && magic[0] === 0x80) {
        const buf = source instanceof BufferSource ? source.buf : await source.read(0, source.size);
        await fh?.close();
        return new TorchCheckpoint(file, 'legacy', 'little', loadLegacy(file, buf), null);
      }
      throw new CheckpointError(
        `${file}: not a PyTorch checkpoint ` +
          `(neither a zip archive nor a legacy pickle${source.size < 4 ? `; only ${source.size} bytes` : ''})`,
        file,
      );
    } catch (e) {
      await fh?.close();
      throw e;
    }
  }

  /**
   * The state dict: `root.state_dict` for a Lightning / training checkpoint, else `root` itself
   * when it is a dict of tensors (a `pytorch_model.bin`). Non-tensor values are skipped.
   */
  get stateDict(): Map<string, TorchTensor> {
    const r = this.root;
    const sd = isPlainObject(r) && isPlainObject(r.state_dict) ? r.state_dict : isPlainObject(r) ? r : null;
    if (!sd)
      throw new CheckpointError(
        `${this.file}: holds no state dict (the saved object is ${describeValue(r)})`,
        this.file,
      );
    const out = new Map<string, TorchTensor>();
    for (const [k, v] of Object.entries(sd)) if (v instanceof TorchTensor) out.set(k, v);
    return out;
  }

  async close(): Promise<void> {
    const fh = this.#fh;
    this.#fh = null;
    await fh?.close();
  }

  /** The same as close(): the package's resources all have dispose(). */
  async dispose(): Promise<void> {
    await this.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

async function loadZip(file: string, source: ByteSource): Promise<{ root: unknown; byteOrder: 'little' | 'big' }> {
  const zip = await ZipArchive.open(source, file);
  const pkls = [...zip.entries.keys()].filter((n) => n === 'data.pkl' || /^[^/]+\/data\.pkl$/.test(n));
  if (pkls.length !== 1)
    throw new CheckpointError(
      `${file}: expected one '<prefix>/data.pkl' record in the archive, ` +
        `found ${pkls.length ? pkls.join(', ') : 'none'}`,
      file,
    );
  const pklName = pkls[0]!;
  const prefix = pklName.slice(0, -'data.pkl'.length);
  let byteOrder: 'little' | 'big' = 'little';
  if (zip.entries.has(`${prefix}byteorder`)) {
    const bo = (await zip.read(`${prefix}byteorder`)).toString('latin1').trim();
    if (bo !== 'little' && bo !== 'big')
      throw new CheckpointError(`${file}: ${prefix}byteorder says ${describeValue(bo)}`, file, `${prefix}byteorder`);
    byteOrder = bo;
  }
  const pkl = await zip.read(pklName);
  const storages = new Map<string, TorchStorage>();
  const persistentLoad = (pid: unknown): unknown => {
    if (
      !Array.isArray(pid) ||
      pid[0] !== 'storage' ||
      pid.length < 5 ||
      typeof pid[2] !== 'string' ||
      typeof pid[3] !== 'string'
    )
      throw new Error(
        'unsupported persistent id ' +
          `${describeValue(pid)}${Array.isArray(pid) ? ` (${pid.slice(0, 5).map(describeValue).join(', ')})` : ''}`,
      );
    const key = pid[2];
    const dtype = storageType(pid[1]);
    const cached = storages.get(key);
    if (cached) return cached;
    const entryName = `${prefix}data/${key}`;
    const entry = zip.entries.get(entryName);
    if (!entry)
      throw new CheckpointError(`${file}: storage record '${entryName}' is missing from the archive`, file, entryName);
    const es = DTYPE_BYTES[dtype];
    // numel counts elements of the typed storage (bytes for an untyped one).
    const count = Number(pid[4]);
    if (!Number.isSafeInteger(count) || count < 0 || count * es > entry.size)
      throw new CheckpointError(
        `${file}: storage record '${entryName}' has ${entry.size} bytes, ` +
          `the pickle expects ${describeValue(pid[4])} x ${es}`,
        file,
        entryName,
      );
    let start: number | undefined;
    const readBytes: StorageReader = async (off, len) => {
      if (entry.method !== 0) return (await zip.read(entryName)).subarray(off, off + len);
      start ??= (await zip.dataRange(entryName)).start;
      if (!zip.isVerified(entryName)) {
        // the CRC-32 covers the whole record: a read of all of it checks it on the way
        if (off === 0 && len === entry.size) {
          const b = await source.read(start, len);
          zip.checkCrc(entryName, b);
          return b;
        }
        await zip.verify(entryName);
      }
      return source.read(start + off, len);
    };
    const s = new TorchStorage(key, dtype, count, pid[3], readBytes);
    storages.set(key, s);
    return s;
  };
  const root = unpickle(pkl, torchInterpreter(byteOrder === 'big', persistentLoad), { file, entry: pklName }).value;
  return { root, byteOrder };
}

function loadLegacy(file: string, buf: Buffer): unknown {
  const noPersist = { resolveGlobal: () => undefined };
  let pos = 0;
  const next = (interp: Interpreter, what: string): unknown => {
    if (pos >= buf.length) throw new CheckpointError(`${file}: legacy checkpoint truncated before the ${what}`, file);
    const r = unpickle(buf, interp, { file, entry: what, offset: pos });
    pos = r.end;
    return r.value;
  };
  const magic = next(noPersist, 'magic number');
  if (magic !== 0x1950a86a20f9469cfc6cn)
    throw new CheckpointError(`${file}: not a PyTorch checkpoint (bad legacy magic number)`, file);
  const version = next(noPersist, 'protocol version');
  if (version !== 1001)
    throw new CheckpointError(`${file}: unsupported legacy protocol version ${describeValue(version)}`, file);
  const sysInfo = next(noPersist, 'sys info') as Record<string, unknown>;
  if (sysInfo && sysInfo.little_endian === false)
    throw new CheckpointError(`${file}: big-endian legacy checkpoints are not supported`, file);
  // Storages are laid out after the key list, so resolve lazily: record each persistent id now,
  // fill offsets once the layout is known (tensors are built before the key list is read).
  const roots = new Map<string, { dtype: WeightDType; numel: number; location: string; dataOffset?: number }>();
  const storages = new Map<string, TorchStorage>();
  const persistentLoad = (pid: unknown): unknown => {
    if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 6)
      throw new Error(
        'unsupported persistent id ' +
          `${describeValue(pid)}${Array.isArray(pid) ? ` (${pid.slice(0, 6).map(describeValue).join(', ')})` : ''}`,
      );
    const [, type, rootKey, location, size, view] = pid as [string, unknown, unknown, unknown, unknown, unknown];
    const key = textOf(rootKey, 'storage key');
    const dtype = storageType(type);
    if (!roots.has(key)) roots.set(key, { dtype, numel: Number(size), location: textOf(location, 'storage location') });
    const root = roots.get(key)!;
    const es = DTYPE_BYTES[root.dtype];
    let viewOffset = 0;
    let count = root.numel;
    let sKey = key;
    if (Array.isArray(view)) {
      sKey = textOf(view[0], 'storage view key');
      viewOffset = Number(view[1]);
      count = Number(view[2]);
    }
    const cached = storages.get(sKey);
    if (cached) return cached;
    const s = new TorchStorage(sKey, dtype, count, root.location, async (off, len) => {
      if (root.dataOffset === undefined) throw new CheckpointError(`${file}: storage '${key}' has no data`, file, key);
      const a = root.dataOffset + viewOffset * es + off;
      if (a + len > buf.length) throw new CheckpointError(`${file}: storage '${key}' is truncated`, file, key);
      return buf.subarray(a, a + len);
    });
    storages.set(sKey, s);
    return s;
  };
  const value = next(torchInterpreter(false, persistentLoad), 'object');
  const keys = next(noPersist, 'storage key list');
  if (!Array.isArray(keys)) throw new CheckpointError(`${file}: legacy storage key list is not a list`, file);
  for (const key of keys) {
    if (typeof key !== 'string')
      throw new CheckpointError(`${file}: legacy storage key ${describeValue(key)} is not a string`, file);
    const k = key;
    const r = roots.get(k);
    if (pos + 8 > buf.length)
      throw new CheckpointError(`${file}: legacy checkpoint truncated at storage '${k}'`, file, k);
    const n = Number(buf.readBigInt64LE(pos));
    const es = r ? DTYPE_BYTES[r.dtype] : 1;
    if (!Number.isSafeInteger(n) || n < 0 || pos + 8 + n * es > buf.length)
      throw new CheckpointError(
        `${file}: legacy storage '${k}' declares ${n} elements, more than the ${buf.length - pos - 8} bytes left: ` +
          'truncated or corrupt',
        file,
        k,
      );
    if (r) r.dataOffset = pos + 8;
    pos += 8 + n * es;
  }
  return value;
}

/** Everything a Lightning checkpoint holds, with the state dict read. */
export interface LoadedCheckpoint {
  stateDict: Map<string, WeightTensor>;
  /** `hyper_parameters` as a plain object graph; OmegaConf and other objects are PickleObjects. */
  hyperParameters: unknown;
  /** The other top-level keys (epoch, optimizer_states, ...); tensors there are TorchTensor refs. */
  other: Record<string, unknown>;
}

/** Loads a checkpoint with one read of the file; state-dict tensors are materialised. */
export async function loadTorchCheckpoint(file: string): Promise<LoadedCheckpoint> {
  const ckpt = await TorchCheckpoint.open(file, { inMemory: true });
  const stateDict = new Map<string, WeightTensor>();
  for (const [k, t] of ckpt.stateDict) stateDict.set(k, await t.read());
  const other: Record<string, unknown> = {};
  let hyperParameters: unknown;
  if (isPlainObject(ckpt.root))
    for (const [k, v] of Object.entries(ckpt.root)) {
      if (k === 'hyper_parameters') hyperParameters = v;
      else if (k !== 'state_dict') other[k] = v;
    }
  await ckpt.close();
  return { stateDict, hyperParameters, other };
}

export { PickleGlobal, PickleObject };
