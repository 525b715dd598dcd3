// A read-only zip reader, enough for torch.save archives (PKWARE APPNOTE 6.3: end of central
// directory, ZIP64 records, local headers) without a dependency. torch stores entries
// uncompressed (method 0) and pads local headers so data is 64-byte aligned; DEFLATE (method 8)
// is inflated with node:zlib in case an archive was re-zipped by another tool.
//
// Reads go through a ByteSource, either a file handle (read on demand: a multi-GB checkpoint is
// never held whole) or one Buffer (entries are zero-copy slices of it).
import type { FileHandle } from 'node:fs/promises';
import { inflateRawSync } from 'node:zlib';
import { CheckpointError } from '../errors.js';

export interface ByteSource {
  readonly size: number;
  /** Exactly `length` bytes at `offset` (throws if the source is shorter). */
  read(offset: number, length: number): Promise<Buffer>;
}

export class BufferSource implements ByteSource {
  constructor(readonly buf: Buffer) {}
  get size(): number {
    return this.buf.length;
  }
  async read(offset: number, length: number): Promise<Buffer> {
    if (offset < 0 || offset + length > this.buf.length) throw new RangeError(`read of ${length} bytes at ${offset} past the end (${this.buf.length} bytes)`);
    return this.buf.subarray(offset, offset + length);
  }
}

export class FileSource implements ByteSource {
  constructor(
    readonly fh: FileHandle,
    readonly size: number,
  ) {}
  async read(offset: number, length: number): Promise<Buffer> {
    if (offset < 0 || offset + length > this.size) throw new RangeError(`read of ${length} bytes at ${offset} past the end (${this.size} bytes)`);
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(out, done, length - done, offset + done);
      if (bytesRead === 0) throw new RangeError(`file ended at ${offset + done} (expected ${this.size} bytes)`);
      done += bytesRead;
    }
    return out;
  }
}

export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  /** Offset of the local file header. */
  headerOffset: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;

function u64(b: Buffer, off: number): number {
  const v = b.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`64-bit field ${v} too large`);
  return Number(v);
}

export class ZipArchive {
  readonly file: string;
  readonly entries: ReadonlyMap<string, ZipEntry>;
  readonly source: ByteSource;

  private constructor(file: string, source: ByteSource, entries: Map<string, ZipEntry>) {
    this.file = file;
    this.source = source;
    this.entries = entries;
  }

  /** Reads the central directory. `file` is only used in error messages. */
  static async open(source: ByteSource, file: string): Promise<ZipArchive> {
    const fail = (msg: string): never => {
      throw new CheckpointError(`${file}: ${msg}`, file);
    };
    const size = source.size;
    if (size < 22) fail(`not a zip archive (${size} bytes): truncated or not a PyTorch checkpoint`);
    // The end-of-central-directory record is 22 bytes plus a comment of at most 65535 bytes.
    const tailLen = Math.min(size, 22 + 65535);
    const tail = await source.read(size - tailLen, tailLen);
    let eocd = -1;
    for (let i = tail.length - 22; i >= 0; i--)
      if (tail.readUInt32LE(i) === SIG_EOCD && i + 22 + tail.readUInt16LE(i + 20) <= tail.length) {
        eocd = i;
        break;
      }
    if (eocd < 0) fail('not a zip archive or truncated (no end-of-central-directory record)');
    let count = tail.readUInt16LE(eocd + 10);
    let cdSize = tail.readUInt32LE(eocd + 12);
    let cdOffset = tail.readUInt32LE(eocd + 16);
    const eocdAbs = size - tailLen + eocd;
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      // ZIP64: a locator (20 bytes) right before the EOCD points at the ZIP64 EOCD record.
      if (eocdAbs < 20) fail('ZIP64 locator missing (truncated?)');
      const loc = await source.read(eocdAbs - 20, 20);
      if (loc.readUInt32LE(0) !== SIG_ZIP64_LOCATOR) fail('ZIP64 locator missing (corrupt archive)');
      const z64 = u64(loc, 8);
      if (z64 + 56 > size) fail('ZIP64 end-of-central-directory record past the end (truncated?)');
      const rec = await source.read(z64, 56);
      if (rec.readUInt32LE(0) !== SIG_ZIP64_EOCD) fail('bad ZIP64 end-of-central-directory record');
      count = u64(rec, 32);
      cdSize = u64(rec, 40);
      cdOffset = u64(rec, 48);
    }
    if (cdOffset + cdSize > size) fail(`central directory (${cdSize} bytes at ${cdOffset}) past the end of the file (${size} bytes): truncated?`);
    const cd = await source.read(cdOffset, cdSize);
    const entries = new Map<string, ZipEntry>();
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cd.length || cd.readUInt32LE(p) !== SIG_CENTRAL) fail(`central directory entry ${i} is corrupt`);
      const flags = cd.readUInt16LE(p + 8);
      const method = cd.readUInt16LE(p + 10);
      let compressedSize = cd.readUInt32LE(p + 20);
      let usize = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      let headerOffset = cd.readUInt32LE(p + 42);
      if (p + 46 + nameLen + extraLen + commentLen > cd.length) fail(`central directory entry ${i} is corrupt`);
      const name = cd.toString(flags & 0x800 ? 'utf8' : 'latin1', p + 46, p + 46 + nameLen);
      // ZIP64 extended information (header id 1): only the fields whose 32-bit value is saturated
      // are present, in this order.
      let q = p + 46 + nameLen;
      const extraEnd = q + extraLen;
      while (q + 4 <= extraEnd) {
        const id = cd.readUInt16LE(q);
        const len = cd.readUInt16LE(q + 2);
        if (id === 1) {
          let r = q + 4;
          if (usize === 0xffffffff) (usize = u64(cd, r)), (r += 8);
          if (compressedSize === 0xffffffff) (compressedSize = u64(cd, r)), (r += 8);
          if (headerOffset === 0xffffffff) headerOffset = u64(cd, r);
        }
        q += 4 + len;
      }
      if (flags & 1) fail(`entry '${name}' is encrypted`);
      entries.set(name, { name, method, compressedSize, size: usize, headerOffset });
      p += 46 + nameLen + extraLen + commentLen;
    }
    return new ZipArchive(file, source, entries);
  }

  /** The bytes of one entry (a view of the archive buffer for stored entries from a BufferSource). */
  async read(name: string): Promise<Buffer> {
    const { start, entry } = await this.dataRange(name);
    const raw = await this.source.read(start, entry.compressedSize).catch((e: Error) => {
      throw new CheckpointError(`${this.file}: entry '${name}' is truncated (${e.message})`, this.file, name);
    });
    if (entry.method === 0) return raw;
    try {
      const out = inflateRawSync(raw);
      if (out.length !== entry.size) throw new Error(`inflated to ${out.length} bytes, expected ${entry.size}`);
      return out;
    } catch (e) {
      throw new CheckpointError(`${this.file}: entry '${name}' cannot be inflated: ${(e as Error).message}`, this.file, name);
    }
  }

  /** Absolute offset of an entry's data (after its local header) and its directory record. */
  async dataRange(name: string): Promise<{ start: number; entry: ZipEntry }> {
    const entry = this.entries.get(name);
    if (!entry) throw new CheckpointError(`${this.file}: archive has no entry '${name}'`, this.file, name);
    if (entry.method !== 0 && entry.method !== 8)
      throw new CheckpointError(`${this.file}: entry '${name}' uses compression method ${entry.method} (only stored and deflate are supported)`, this.file, name);
    if (entry.headerOffset + 30 > this.source.size)
      throw new CheckpointError(`${this.file}: entry '${name}' lies past the end of the file: truncated?`, this.file, name);
    const lh = await this.source.read(entry.headerOffset, 30);
    if (lh.readUInt32LE(0) !== SIG_LOCAL) throw new CheckpointError(`${this.file}: entry '${name}' has a corrupt local header`, this.file, name);
    // The local extra field may differ from the central one (torch pads it for alignment).
    const start = entry.headerOffset + 30 + lh.readUInt16LE(26) + lh.readUInt16LE(28);
    if (start + entry.compressedSize > this.source.size)
      throw new CheckpointError(
        `${this.file}: entry '${name}' (${entry.compressedSize} bytes at ${start}) runs past the end of the file (${this.source.size} bytes): truncated?`,
        this.file,
        name,
      );
    return { start, entry };
  }
}
