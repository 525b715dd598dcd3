// Prepared training data (`carzero prepare`): the 256x256 zero-padded uint8 images of a dataset's
// items, packed into shard files so that training reads 64 KiB per image instead of decoding.
//
// Directory:  index.json                 what the loader reads (below)
//             shard-00000.bin, ...       one per `shardSize` consecutive items of the dataset
//
// Shard file (little-endian):
//   0   8  magic "CZSHARD1"
//   8   4  u32 format version (2; version 1 shards were written before the fix of images whose
//          resized width is 255 px, which they hold sheared: they are refused and redone)
//   12  4  u32 width (256)            16  4  u32 height (256)
//   20  4  u32 records (count)        24  4  u32 shard number
//   28  4  u32 first dataset item of the shard's slot
//   32  4  u32 trailer bytes (T)      36  4  u32 CRC-32 of the records and the trailer
//   40 24  zero
//   64     count records of width*height bytes (row-major grey)
//   then   T bytes of UTF-8 JSON: { keys: [the slot's item keys], records: [{ key, path, row,
//          sentences }], failed: [{ key, path, row, error }] } -- record r is records[r]
// A shard is written to `<name>.tmp` and renamed, so a file with its final name is complete; on a
// rerun a shard whose header, CRC and slot keys check out is kept, anything else is redone.
//
// index.json: { format: "carzero-prepared", version: 2, size, source, root, split, maxWords,
//   columns, counts, shardSize, shards: [{ file, records, failed }], items: [{ key, path, row,
//   sentences, shard, record }], failed: [{ key, path, row, error }] } (written last, atomically).
import { crc32 } from 'node:zlib';
import { open, readFile, rename, writeFile, mkdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DatasetError, type DatasetItem, type MimicDataset } from './mimic.js';
import { ItemPool } from './pool.js';

export const SHARD_MAGIC = 'CZSHARD1';
export const SHARD_HEADER = 64;
const VERSION = 2;
/** Why a version-1 prepared set is refused. */
const V1_REASON =
  'prepared by carzero before 0.1.1, whose images with a resized width of 255 px were sheared ' +
  '(docs/CHANGELOG.md); run carzero prepare again';

export interface ShardRecordInfo {
  key: string;
  path: string;
  row: number;
  sentences: string[];
}
export interface FailedItem {
  key: string;
  path: string;
  row: number;
  error: string;
}
interface Trailer {
  keys: string[];
  records: ShardRecordInfo[];
  failed: FailedItem[];
}

export interface PreparedIndex {
  format: 'carzero-prepared';
  version: 2;
  size: number;
  source: string;
  root: string;
  split: string;
  maxWords: number;
  columns: MimicDataset['columns'];
  counts: MimicDataset['counts'];
  shardSize: number;
  shards: { file: string; records: number; failed: number }[];
  items: { key: string; path: string; row: number; sentences: string[]; shard: string; record: number }[];
  failed: FailedItem[];
}

export function shardName(k: number): string {
  return `shard-${String(k).padStart(5, '0')}.bin`;
}

/** Serialises one shard. */
export function encodeShard(
  shard: number,
  first: number,
  size: number,
  images: Uint8Array[],
  trailer: Trailer,
): Buffer {
  const rec = size * size;
  const tj = Buffer.from(JSON.stringify(trailer), 'utf8');
  const buf = Buffer.alloc(SHARD_HEADER + images.length * rec + tj.length);
  buf.write(SHARD_MAGIC, 0, 'latin1');
  buf.writeUInt32LE(VERSION, 8);
  buf.writeUInt32LE(size, 12);
  buf.writeUInt32LE(size, 16);
  buf.writeUInt32LE(images.length, 20);
  buf.writeUInt32LE(shard, 24);
  buf.writeUInt32LE(first, 28);
  buf.writeUInt32LE(tj.length, 32);
  images.forEach((im, r) => {
    if (im.length !== rec) throw new RangeError(`encodeShard: record ${r} has ${im.length} bytes, expected ${rec}`);
    buf.set(im, SHARD_HEADER + r * rec);
  });
  tj.copy(buf, SHARD_HEADER + images.length * rec);
  buf.writeUInt32LE(crc32(buf.subarray(SHARD_HEADER)), 36);
  return buf;
}

export interface ShardHeader {
  size: number;
  records: number;
  shard: number;
  first: number;
  trailer: Trailer;
}

/** Reads and checks a whole shard file (header, length, CRC, trailer). */
export async function readShard(file: string): Promise<{ header: ShardHeader; data: Buffer }> {
  const data = await readFile(file);
  const bad = (why: string) => new DatasetError(`${file}: not a valid carzero shard (${why})`, file);
  if (data.length < SHARD_HEADER || data.toString('latin1', 0, 8) !== SHARD_MAGIC) throw bad('bad magic');
  const version = data.readUInt32LE(8);
  if (version === 1) throw bad(`format version 1: ${V1_REASON}`);
  if (version !== VERSION) throw bad(`format version ${version}`);
  const w = data.readUInt32LE(12);
  const h = data.readUInt32LE(16);
  if (w !== h) throw bad(`${w}x${h} records`);
  const records = data.readUInt32LE(20);
  const tlen = data.readUInt32LE(32);
  if (data.length !== SHARD_HEADER + records * w * h + tlen)
    throw bad(`length ${data.length}, header says ${SHARD_HEADER + records * w * h + tlen}`);
  if (crc32(data.subarray(SHARD_HEADER)) !== data.readUInt32LE(36)) throw bad('CRC mismatch');
  let trailer: Trailer;
  try {
    trailer = JSON.parse(data.toString('utf8', SHARD_HEADER + records * w * h));
  } catch (e) {
    throw bad(`trailer: ${(e as Error).message}`);
  }
  if (!Array.isArray(trailer.keys) || !Array.isArray(trailer.records) || trailer.records.length !== records)
    throw bad('trailer does not match the records');
  return { header: { size: w, records, shard: data.readUInt32LE(24), first: data.readUInt32LE(28), trailer }, data };
}

async function writeAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${file}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, file);
}

export interface PrepareOptions {
  /** Items per shard; default 1024. */
  shardSize?: number;
  /** Decoding threads (ItemPool); default 1. */
  workers?: number;
  /** Padded side; default 256. */
  size?: number;
  /** Called after each item (items of kept shards count at once): done, total. */
  onProgress?: (done: number, total: number) => void;
  /** An image that cannot be read (it is left out of the shard). */
  onError?: (item: DatasetItem, error: string) => void;
}

export interface PrepareResult {
  index: PreparedIndex;
  /** Shards kept from an earlier run / written now. */
  kept: number;
  written: number;
}

/** Packs a dataset's padded images into shards under `outDir` (resumable). */
export async function prepareShards(
  dataset: MimicDataset,
  outDir: string,
  options: PrepareOptions = {},
): Promise<PrepareResult> {
  const shardSize = options.shardSize ?? 1024;
  const size = options.size ?? 256;
  if (!Number.isInteger(shardSize) || shardSize < 1)
    throw new RangeError(`prepareShards: shardSize must be a positive integer, got ${shardSize}`);
  await mkdir(outDir, { recursive: true });
  const items = dataset.items;
  const nShards = Math.ceil(items.length / shardSize);
  const pool = new ItemPool(options.workers ?? 1);
  const index: PreparedIndex = {
    format: 'carzero-prepared',
    version: VERSION,
    size,
    source: dataset.source,
    root: dataset.root,
    split: dataset.split,
    maxWords: dataset.maxWords,
    columns: dataset.columns,
    counts: dataset.counts,
    shardSize,
    shards: [],
    items: [],
    failed: [],
  };
  let kept = 0;
  let written = 0;
  let done = 0;
  try {
    for (let k = 0; k < nShards; k++) {
      const first = k * shardSize;
      const slot = items.slice(first, first + shardSize);
      const file = join(outDir, shardName(k));
      let trailer: Trailer | undefined;
      const existing = await stat(file).catch(() => null);
      if (existing) {
        try {
          const { header } = await readShard(file);
          const same =
            header.size === size &&
            header.first === first &&
            header.trailer.keys.length === slot.length &&
            header.trailer.keys.every((key, i) => key === slot[i].key);
          if (same) trailer = header.trailer;
        } catch {
          trailer = undefined;
        }
      }
      if (trailer) {
        kept++;
        done += slot.length;
        options.onProgress?.(done, items.length);
      } else {
        const results = slot.map((it) =>
          pool.run({ source: { path: it.path }, name: it.path, kind: 'padded', options: { size } }),
        );
        const images: Uint8Array[] = [];
        trailer = { keys: slot.map((it) => it.key), records: [], failed: [] };
        for (let i = 0; i < slot.length; i++) {
          const r = await results[i];
          const it = slot[i];
          if (r.ok) {
            images.push(r.data as Uint8Array);
            trailer.records.push({ key: it.key, path: it.path, row: it.row, sentences: it.sentences });
          } else {
            trailer.failed.push({ key: it.key, path: it.path, row: it.row, error: r.error });
            options.onError?.(it, r.error);
          }
          done++;
          options.onProgress?.(done, items.length);
        }
        await writeAtomic(file, encodeShard(k, first, size, images, trailer));
        written++;
      }
      const name = shardName(k);
      index.shards.push({ file: name, records: trailer.records.length, failed: trailer.failed.length });
      trailer.records.forEach((r, i) => index.items.push({ ...r, shard: name, record: i }));
      index.failed.push(...trailer.failed);
    }
  } finally {
    await pool.close();
  }
  await writeAtomic(join(outDir, 'index.json'), JSON.stringify(index) + '\n');
  return { index, kept, written };
}

/** Opens a prepared directory as a dataset whose items point at shard records. */
export async function loadPrepared(dir: string): Promise<MimicDataset> {
  const file = join(dir, 'index.json');
  let index: PreparedIndex;
  try {
    index = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new DatasetError(`${file}: cannot read the prepared index (${(e as Error).message})`, file);
  }
  if (index.format === 'carzero-prepared' && (index.version as number) === 1)
    throw new DatasetError(`${file}: ${V1_REASON}`, file);
  if (index.format !== 'carzero-prepared' || index.version !== VERSION)
    throw new DatasetError(
      `${file}: not a carzero prepared index (format ${index.format}, version ${index.version})`,
      file,
    );
  const rec = index.size * index.size;
  const items: DatasetItem[] = index.items.map((it) => ({
    path: it.path,
    key: it.key,
    row: it.row,
    sentences: it.sentences,
    shard: { file: resolve(dir, it.shard), offset: SHARD_HEADER + it.record * rec },
  }));
  return {
    source: file,
    root: index.root,
    split: index.split,
    columns: index.columns,
    items,
    counts: index.counts,
    dropped: [],
    maxWords: index.maxWords,
  };
}

/** Reads one record's padded image (for checks and tools). */
export async function readShardRecord(file: string, offset: number, size = 256): Promise<Uint8Array> {
  const fh = await open(file, 'r');
  try {
    const buf = new Uint8Array(size * size);
    await fh.read(buf, 0, buf.length, offset);
    return buf;
  } finally {
    await fh.close();
  }
}
