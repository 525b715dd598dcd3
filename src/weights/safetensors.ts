// safetensors reader and writer (https://github.com/huggingface/safetensors, format section):
// an 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets},
// "__metadata__": {string: string}}, then the data; offsets are relative to the data start.
//
// Three ways in: readSafetensors (one fs read, tensors are zero-copy slices of that Buffer),
// SafetensorsFile.open (header only; tensor bytes read on demand, for files too big to hold twice)
// and writeSafetensors (streaming, atomic). The header is validated strictly: a file we accept is
// one the native loader (which mmaps it) can trust.
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CheckpointError } from '../errors.js';
import { DTYPE_BYTES, byteLength, isWeightDType, shapeString, type WeightDType, type WeightTensor } from './dtype.js';

/** A tensor entry of the header: where its bytes are (relative to the data start). */
export interface SafetensorsEntry {
  dtype: WeightDType;
  shape: number[];
  /** [begin, end) in bytes from the start of the data section. */
  offsets: [number, number];
}

export interface SafetensorsHeader {
  /** Tensors in file order (by data offset). */
  entries: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
  /** Absolute file offset of the data section (8 + header length). */
  dataStart: number;
}

// 100 MB like the reference implementation's limit: a larger "header" is a corrupt length field,
// and refusing early avoids allocating gigabytes for garbage.
const MAX_HEADER = 100_000_000;

/** Parses and validates the header; `fileSize` is the whole file's length. */
export function parseSafetensorsHeader(head: Buffer, fileSize: number, file: string): SafetensorsHeader {
  const fail = (msg: string): never => {
    throw new CheckpointError(`${file}: not a valid safetensors file: ${msg}`, file);
  };
  if (fileSize < 8 || head.length < 8) fail(`${fileSize} bytes, shorter than the 8-byte header length`);
  const n64 = head.readBigUInt64LE(0);
  if (n64 > BigInt(MAX_HEADER)) fail(`header length ${n64} is implausible (corrupt file?)`);
  const n = Number(n64);
  if (8 + n > fileSize) fail(`header length ${n} runs past the end of the file (${fileSize} bytes): truncated?`);
  if (head.length < 8 + n) fail(`header needs ${8 + n} bytes, got ${head.length}`);
  let json: unknown;
  try {
    json = JSON.parse(head.subarray(8, 8 + n).toString('utf8'));
  } catch (e) {
    fail(`header is not JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('header is not a JSON object');
  const dataStart = 8 + n;
  const dataSize = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const list: [string, SafetensorsEntry][] = [];
  for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) fail('__metadata__ is not an object');
      for (const [k, s] of Object.entries(v as Record<string, unknown>)) {
        if (typeof s !== 'string') fail(`__metadata__.${k} is not a string`);
        metadata[k] = s as string;
      }
      continue;
    }
    const at = `tensor '${name}'`;
    if (typeof v !== 'object' || v === null) fail(`${at} is not an object`);
    const { dtype, shape, data_offsets } = v as Record<string, unknown>;
    if (!isWeightDType(dtype)) fail(`${at} has unsupported dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      fail(`${at} has an invalid shape ${JSON.stringify(shape)}`);
    if (
      !Array.isArray(data_offsets) ||
      data_offsets.length !== 2 ||
      !data_offsets.every((d) => Number.isSafeInteger(d) && d >= 0)
    )
      fail(`${at} has invalid data_offsets ${JSON.stringify(data_offsets)}`);
    const [b, e] = data_offsets as [number, number];
    const want = byteLength(dtype as WeightDType, shape as number[]);
    if (e < b || e - b !== want)
      fail(
        `${at} (${dtype}, ${shapeString(shape as number[])}) needs ${want} bytes ` +
          `but data_offsets [${b}, ${e}] hold ${e - b}`,
      );
    if (e > dataSize)
      fail(`${at} data_offsets [${b}, ${e}] run past the end of the data (${dataSize} bytes): truncated?`);
    list.push([name, { dtype: dtype as WeightDType, shape: (shape as number[]).slice(), offsets: [b, e] }]);
  }
  // The format requires the tensors to tile the data section exactly: sorted by offset, each
  // starts where the previous ended. That rules out overlaps (aliasing) and hidden gaps.
  list.sort((x, y) => x[1].offsets[0] - y[1].offsets[0] || x[1].offsets[1] - y[1].offsets[1]);
  let pos = 0;
  for (const [name, e] of list) {
    if (e.offsets[0] < pos)
      fail(
        `tensor '${name}' data_offsets [${e.offsets[0]}, ${e.offsets[1]}] overlap the previous tensor (ends at ${pos})`,
      );
    if (e.offsets[0] > pos)
      fail(`gap in the data before tensor '${name}' (bytes ${pos}..${e.offsets[0]} belong to no tensor)`);
    pos = e.offsets[1];
  }
  if (pos !== dataSize) fail(`data section has ${dataSize} bytes but the tensors cover ${pos}`);
  return { entries: new Map(list), metadata, dataStart };
}

export interface SafetensorsContents {
  tensors: Map<string, WeightTensor>;
  metadata: Record<string, string>;
}

/** Reads a whole safetensors file with one read; each tensor's `data` is a view of that Buffer. */
export async function readSafetensors(file: string): Promise<SafetensorsContents> {
  if (typeof file !== 'string') throw new TypeError("readSafetensors: argument 'file' must be a path string");
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (e) {
    throw new CheckpointError(`${file}: cannot read: ${(e as Error).message}`, file);
  }
  const h = parseSafetensorsHeader(buf, buf.length, file);
  const tensors = new Map<string, WeightTensor>();
  for (const [name, e] of h.entries)
    tensors.set(name, {
      dtype: e.dtype,
      shape: e.shape,
      data: buf.subarray(h.dataStart + e.offsets[0], h.dataStart + e.offsets[1]),
    });
  return { tensors, metadata: h.metadata };
}

/** An open safetensors file: the header is parsed, tensor bytes are read on demand. */
export class SafetensorsFile implements AsyncDisposable {
  readonly file: string;
  readonly entries: ReadonlyMap<string, SafetensorsEntry>;
  readonly metadata: Readonly<Record<string, string>>;
  #fh: FileHandle | null;
  #dataStart: number;

  private constructor(file: string, fh: FileHandle, h: SafetensorsHeader) {
    this.file = file;
    this.#fh = fh;
    this.entries = h.entries;
    this.metadata = h.metadata;
    this.#dataStart = h.dataStart;
  }

  static async open(file: string): Promise<SafetensorsFile> {
    if (typeof file !== 'string') throw new TypeError("SafetensorsFile.open: argument 'file' must be a path string");
    let fh: FileHandle;
    try {
      fh = await open(file, 'r');
    } catch (e) {
      throw new CheckpointError(`${file}: cannot open: ${(e as Error).message}`, file);
    }
    try {
      const size = (await fh.stat()).size;
      const lenBuf = Buffer.alloc(8);
      const { bytesRead } = await fh.read(lenBuf, 0, 8, 0);
      if (bytesRead < 8) parseSafetensorsHeader(lenBuf.subarray(0, bytesRead), size, file); // throws
      const n = lenBuf.readBigUInt64LE(0);
      const headLen = n > BigInt(MAX_HEADER) || 8 + Number(n) > size ? 8 : 8 + Number(n);
      const head = Buffer.alloc(headLen);
      await fh.read(head, 0, headLen, 0);
      return new SafetensorsFile(file, fh, parseSafetensorsHeader(head, size, file));
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  /** Reads one tensor's bytes (a fresh Buffer). */
  async read(name: string): Promise<WeightTensor> {
    const e = this.entries.get(name);
    if (!e) throw new RangeError(`SafetensorsFile.read: ${this.file} has no tensor '${name}'`);
    if (!this.#fh) throw new Error(`SafetensorsFile.read: ${this.file} is closed`);
    const len = e.offsets[1] - e.offsets[0];
    const data = Buffer.allocUnsafe(len);
    let done = 0;
    while (done < len) {
      const { bytesRead } = await this.#fh.read(data, done, len - done, this.#dataStart + e.offsets[0] + done);
      if (bytesRead === 0)
        throw new CheckpointError(
          `${this.file}: tensor '${name}' is truncated (file changed while open?)`,
          this.file,
          name,
        );
      done += bytesRead;
    }
    return { dtype: e.dtype, shape: e.shape.slice(), data };
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

/** A tensor to write: its bytes now, or a function producing them when the writer reaches it. */
export interface SafetensorsInput {
  dtype: WeightDType;
  shape: readonly number[];
  data: Buffer | (() => Promise<Buffer> | Buffer);
}

export interface WriteSafetensorsOptions {
  /** String key/value pairs stored as `__metadata__`. */
  metadata?: Record<string, string>;
}

/**
 * Layout order: larger elements first, then by name. Every tensor then starts at a multiple of its
 * element size (the header is padded to 8), which lets the native loader use the mmap directly;
 * the reference implementation sorts the same way. Deterministic for a given set of tensors.
 */
function layoutOrder(tensors: Iterable<readonly [string, SafetensorsInput]>): [string, SafetensorsInput][] {
  return [...tensors]
    .map(([k, v]): [string, SafetensorsInput] => [k, v])
    .sort((a, b) => DTYPE_BYTES[b[1].dtype] - DTYPE_BYTES[a[1].dtype] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** The header bytes (length prefix included) for tensors in layout order. */
export function buildSafetensorsHeader(
  ordered: readonly [string, SafetensorsInput][],
  metadata?: Record<string, string>,
): Buffer {
  const obj: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) obj.__metadata__ = metadata;
  let pos = 0;
  for (const [name, t] of ordered) {
    const n = byteLength(t.dtype, t.shape);
    obj[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [pos, pos + n] };
    pos += n;
  }
  const json = Buffer.from(JSON.stringify(obj), 'utf8');
  // Pad the JSON with spaces so the data starts 8-byte aligned (as the reference writer does).
  const padded = Buffer.alloc(json.length + ((8 - (json.length % 8)) % 8), 0x20);
  json.copy(padded);
  const out = Buffer.alloc(8 + padded.length);
  out.writeBigUInt64LE(BigInt(padded.length), 0);
  padded.copy(out, 8);
  return out;
}

/**
 * Writes a safetensors file atomically: to a temporary file beside `file`, then renamed over it,
 * so a crash or error never leaves a half-written model. Lazy `data` functions are called one at a
 * time in layout order, so peak memory is one tensor. Returns the number of bytes written.
 */
export async function writeSafetensors(
  file: string,
  tensors: Iterable<readonly [string, SafetensorsInput]> | ReadonlyMap<string, SafetensorsInput>,
  options: WriteSafetensorsOptions = {},
): Promise<number> {
  if (typeof file !== 'string') throw new TypeError("writeSafetensors: argument 'file' must be a path string");
  const md = options.metadata ?? {};
  for (const [k, v] of Object.entries(md))
    if (typeof v !== 'string') throw new TypeError(`writeSafetensors: option 'metadata.${k}' must be a string`);
  const ordered = layoutOrder(
    tensors instanceof Map ? tensors.entries() : (tensors as Iterable<readonly [string, SafetensorsInput]>),
  );
  const seen = new Set<string>();
  for (const [name, t] of ordered) {
    if (name === '__metadata__')
      throw new RangeError("writeSafetensors: '__metadata__' is reserved, not a tensor name");
    if (seen.has(name)) throw new RangeError(`writeSafetensors: tensor '${name}' given twice`);
    seen.add(name);
    if (!isWeightDType(t.dtype))
      throw new TypeError(`writeSafetensors: tensor '${name}' has unsupported dtype ${String(t.dtype)}`);
  }
  const header = buildSafetensorsHeader(ordered, md);
  const tmp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'w');
  let total: number;
  try {
    await fh.write(header, 0, header.length, 0);
    total = header.length;
    for (const [name, t] of ordered) {
      const data = typeof t.data === 'function' ? await t.data() : t.data;
      const want = byteLength(t.dtype, t.shape);
      if (!Buffer.isBuffer(data) || data.length !== want)
        throw new RangeError(
          `writeSafetensors: tensor '${name}' (${t.dtype}, ${shapeString(t.shape)}) needs ${want} bytes, ` +
            `got ${Buffer.isBuffer(data) ? data.length : typeof data}`,
        );
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await fh.write(data, done, data.length - done, total + done);
        done += bytesWritten;
      }
      total += data.length;
    }
    await fh.sync();
    await fh.close();
  } catch (e) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  try {
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  return total;
}
