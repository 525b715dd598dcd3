// A read-only zip reader, enough for torch.save archives (PKWARE APPNOTE 6.3: end of central
// directory, ZIP64 records, local headers, data descriptors) without a dependency. torch stores
// entries uncompressed (method 0) with data descriptors (flag bit 3) and pads local headers so data
// is 64-byte aligned; DEFLATE (method 8) is inflated with node:zlib in case an archive was
// re-zipped by another tool.
//
// Strict, because a checkpoint's bytes become a model's weights: names are unique; every local
// header is read when the archive opens and must agree with its central-directory record (name,
// method, and the CRC and sizes when the local header carries them); the records (local header,
// data, data descriptor) must not overlap each other or the central directory; and an entry's
// CRC-32 is checked the first time it is read (PyTorch does not check it; a shifted or damaged
// record would otherwise load as wrong weights).
//
// Reads go through a ByteSource, either a file handle (read on demand: a multi-GB checkpoint is
// never held whole) or one Buffer (entries are zero-copy slices of it).
import type { FileHandle } from 'node:fs/promises';
import * as zlib from 'node:zlib';
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
    if (offset < 0 || offset + length > this.buf.length)
      throw new RangeError(`read of ${length} bytes at ${offset} past the end (${this.buf.length} bytes)`);
    return this.buf.subarray(offset, offset + length);
  }
}

export class FileSource implements ByteSource {
  constructor(
    readonly fh: FileHandle,
    readonly size: number,
  ) {}
  async read(offset: number, length: number): Promise<Buffer> {
    if (offset < 0 || offset + length > this.size)
      throw new RangeError(`read of ${length} bytes at ${offset} past the end (${this.size} bytes)`);
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
  flags: number;
  crc32: number;
  compressedSize: number;
  size: number;
  /** Offset of the local file header. */
  headerOffset: number;
  /** Offset of the data (after the local header's name and extra field). */
  dataStart: number;
}

// CRC-32 (IEEE, as zip uses): node:zlib's (Node 20.15+), else a table-driven one.
let crcTable: Uint32Array | undefined;
function crc32Js(buf: Uint8Array, crc = 0): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = ~crc >>> 0;
  for (let i = 0; i < buf.length; i++) c = crcTable[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
const zlibCrc = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;
export function crc32(buf: Uint8Array): number {
  return zlibCrc ? zlibCrc(buf) >>> 0 : crc32Js(buf);
}

const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;
const SIG_DESCRIPTOR = 0x08074b50;

function u64(b: Buffer, off: number): number {
  const v = b.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`64-bit field ${v} too large`);
  return Number(v);
}

export class ZipArchive {
  readonly file: string;
  readonly entries: ReadonlyMap<string, ZipEntry>;
  readonly source: ByteSource;

  readonly #verified = new Set<string>();

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
    if (cdOffset + cdSize > size)
      fail(`central directory (${cdSize} bytes at ${cdOffset}) past the end of the file (${size} bytes): truncated?`);
    if (count > cdSize / 46) fail(`central directory of ${cdSize} bytes cannot hold ${count} entries`);
    const cd = await source.read(cdOffset, cdSize);
    const entries = new Map<string, ZipEntry>();
    const rawNames = new Map<string, Buffer>();
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
          if (usize === 0xffffffff) {
            usize = u64(cd, r);
            r += 8;
          }
          if (compressedSize === 0xffffffff) {
            compressedSize = u64(cd, r);
            r += 8;
          }
          if (headerOffset === 0xffffffff) headerOffset = u64(cd, r);
        }
        q += 4 + len;
      }
      if (flags & 1) fail(`entry '${name}' is encrypted`);
      if (entries.has(name)) fail(`entry '${name}' appears twice in the central directory`);
      const crc = cd.readUInt32LE(p + 16);
      entries.set(name, { name, method, flags, crc32: crc, compressedSize, size: usize, headerOffset, dataStart: -1 });
      rawNames.set(name, Buffer.from(cd.subarray(p + 46, p + 46 + nameLen)));
      p += 46 + nameLen + extraLen + commentLen;
    }
    // Every local header against its central record; the records must tile without overlap.
    const spans: { from: number; to: number; name: string }[] = [];
    for (const e of entries.values()) {
      const raw = rawNames.get(e.name)!;
      const where = `entry '${e.name}'`;
      if (e.headerOffset + 30 + raw.length > cdOffset)
        fail(`${where}: local header at ${e.headerOffset} lies in or past the central directory: truncated or corrupt`);
      const lh = await source.read(e.headerOffset, 30 + raw.length);
      if (lh.readUInt32LE(0) !== SIG_LOCAL)
        fail(`${where}: no local header at offset ${e.headerOffset} (corrupt archive)`);
      const lNameLen = lh.readUInt16LE(26);
      const lExtraLen = lh.readUInt16LE(28);
      if (lNameLen !== raw.length || !lh.subarray(30, 30 + raw.length).equals(raw))
        fail(
          `${where}: the local header at ${e.headerOffset} names another entry ` +
            '(the names in the central directory and the local header differ)',
        );
      const lMethod = lh.readUInt16LE(8);
      if (lMethod !== e.method)
        fail(`${where}: compression method ${lMethod} in the local header, ${e.method} in the central directory`);
      e.dataStart = e.headerOffset + 30 + lNameLen + lExtraLen;
      if (!(e.flags & 8)) {
        // sizes and CRC in the local header (ZIP64 sizes in its extra field): they must agree
        const lCrc = lh.readUInt32LE(14);
        let lc = lh.readUInt32LE(18);
        let lu = lh.readUInt32LE(22);
        if (lc === 0xffffffff || lu === 0xffffffff) {
          const extra = await source.read(e.headerOffset + 30 + lNameLen, lExtraLen);
          for (let q = 0; q + 4 <= extra.length; q += 4 + extra.readUInt16LE(q + 2))
            if (extra.readUInt16LE(q) === 1 && q + 20 <= extra.length) {
              lu = u64(extra, q + 4);
              lc = u64(extra, q + 12);
            }
        }
        if (lCrc !== e.crc32 || lc !== e.compressedSize || lu !== e.size)
          fail(
            `${where}: the local header (CRC ${lCrc.toString(16)}, ${lc} -> ${lu} bytes) ` +
              `and the central directory (CRC ${e.crc32.toString(16)}, ${e.compressedSize} -> ${e.size} bytes) ` +
              'disagree',
          );
      }
      let end = e.dataStart + e.compressedSize;
      if (end > cdOffset)
        fail(
          `${where}: ${e.compressedSize} bytes of data at ${e.dataStart} ` +
            `run into the central directory at ${cdOffset}: truncated or corrupt`,
        );
      if (e.flags & 8) {
        // a data descriptor follows: [signature] CRC, sizes (4 + 4 bytes, or 8 + 8 for ZIP64)
        // (writers use the 8-byte form in ZIP64 archives even for small entries: either may match)
        const avail = Math.min(24, cdOffset - end);
        const d = avail >= 12 ? await source.read(end, avail) : Buffer.alloc(0);
        const o = d.length >= 4 && d.readUInt32LE(0) === SIG_DESCRIPTOR ? 4 : 0;
        let len = 0;
        for (const big of [false, true]) {
          const n = o + (big ? 20 : 12);
          if (len || d.length < n || d.readUInt32LE(o) !== e.crc32) continue;
          const dc = big ? Number(d.readBigUInt64LE(o + 4)) : d.readUInt32LE(o + 4);
          const du = big ? Number(d.readBigUInt64LE(o + 12)) : d.readUInt32LE(o + 8);
          if (dc === e.compressedSize && du === e.size) len = n;
        }
        if (!len)
          fail(
            `${where}: no data descriptor matching the central directory after its data ` +
              '(the data does not start where the local header says, or the record is damaged or truncated)',
          );
        end += len;
      }
      spans.push({ from: e.headerOffset, to: end, name: e.name });
    }
    spans.sort((x, y) => x.from - y.from);
    for (let i = 1; i < spans.length; i++)
      if (spans[i]!.from < spans[i - 1]!.to)
        fail(`entries '${spans[i - 1]!.name}' and '${spans[i]!.name}' overlap in the archive`);
    return new ZipArchive(file, source, entries);
  }

  #crcFail(name: string, got: number, want: number): never {
    throw new CheckpointError(
      `${this.file}: entry '${name}' fails its CRC-32 check (${got.toString(16).padStart(8, '0')}, ` +
        `the archive says ${want.toString(16).padStart(8, '0')}): the record is damaged`,
      this.file,
      name,
    );
  }

  /** Checks an entry's (uncompressed) bytes against its CRC-32 once; later calls are free. */
  checkCrc(name: string, data: Uint8Array): void {
    if (this.#verified.has(name)) return;
    const e = this.entries.get(name)!;
    const got = crc32(data);
    if (got !== e.crc32) this.#crcFail(name, got, e.crc32);
    this.#verified.add(name);
  }

  isVerified(name: string): boolean {
    return this.#verified.has(name);
  }

  /** Reads the whole entry once to check its CRC-32 (for callers that read it in parts). */
  async verify(name: string): Promise<void> {
    if (!this.#verified.has(name)) await this.read(name);
  }

  /** The bytes of one entry (a view of the archive buffer for stored entries from a BufferSource). */
  async read(name: string): Promise<Buffer> {
    const { start, entry } = await this.dataRange(name);
    const raw = await this.source.read(start, entry.compressedSize).catch((e: Error) => {
      throw new CheckpointError(`${this.file}: entry '${name}' is truncated (${e.message})`, this.file, name);
    });
    if (entry.method === 0) {
      if (raw.length !== entry.size)
        throw new CheckpointError(
          `${this.file}: stored entry '${name}' has ${raw.length} bytes of data and a size of ${entry.size}`,
          this.file,
          name,
        );
      this.checkCrc(name, raw);
      return raw;
    }
    let out: Buffer;
    try {
      // at most the declared size: a record that inflates to more is refused, not held
      out = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.size) });
      if (out.length !== entry.size) throw new Error(`inflated to ${out.length} bytes, expected ${entry.size}`);
    } catch (e) {
      throw new CheckpointError(
        `${this.file}: entry '${name}' cannot be inflated to its declared ${entry.size} bytes: ${(e as Error).message}`,
        this.file,
        name,
      );
    }
    this.checkCrc(name, out);
    return out;
  }

  /** Absolute offset of an entry's data (after its local header) and its directory record. */
  async dataRange(name: string): Promise<{ start: number; entry: ZipEntry }> {
    const entry = this.entries.get(name);
    if (!entry) throw new CheckpointError(`${this.file}: archive has no entry '${name}'`, this.file, name);
    if (entry.method !== 0 && entry.method !== 8)
      throw new CheckpointError(
        `${this.file}: entry '${name}' uses compression method ${entry.method} (only stored and deflate are supported)`,
        this.file,
        name,
      );
    // checked against the central directory when the archive was opened
    const start = entry.dataStart;
    if (start + entry.compressedSize > this.source.size)
      throw new CheckpointError(
        `${this.file}: entry '${name}' (${entry.compressedSize} bytes at ${start}) ` +
          `runs past the end of the file (${this.source.size} bytes): truncated?`,
        this.file,
        name,
      );
    return { start, entry };
  }
}
