// carzero prepare: shards hold exactly the decoded + padded images; resuming keeps complete shards
// and redoes damaged ones; the loader over shards gives the same pixels as decoding.
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readMimicCsv, type MimicDataset } from '../src/data/mimic.js';
import {
  loadPrepared,
  prepareShards,
  readShard,
  readShardRecord,
  shardName,
  SHARD_HEADER,
} from '../src/data/shards.js';
import { DataLoader, createLoader, type Batch } from '../src/data/loader.js';
import { readImage } from '../src/image/decode.js';
import { resizeAndPad } from '../src/image/preprocess.js';
import { packageRoot } from '../src/native.js';
import { BAD_KEYS, makeDataset } from './data-helpers.js';

const run = promisify(execFile);
let ds: MimicDataset;
let root: string;

test.before(async () => {
  const m = makeDataset();
  root = m.root;
  ds = await readMimicCsv(m.csv, { root });
});

async function drain(l: DataLoader): Promise<Batch[]> {
  const out: Batch[] = [];
  for (let b = await l.next(); b; b = await l.next()) out.push(b);
  await l.close();
  return out;
}

test('shards hold the padded images of the readable items; unreadable ones are listed', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'carzero-prep-'));
  const errors: string[] = [];
  const r = await prepareShards(ds, out, { shardSize: 5, workers: 1, onError: (it) => errors.push(it.key) });
  t.is(r.written, 4);
  t.is(r.kept, 0);
  t.deepEqual(errors.sort(), [...BAD_KEYS].sort());
  const index = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8'));
  t.is(index.format, 'carzero-prepared');
  t.is(index.items.length, 14);
  t.deepEqual(index.failed.map((f: { key: string }) => f.key).sort(), [...BAD_KEYS].sort());
  t.deepEqual(
    index.shards.map((s: { records: number }) => s.records),
    [5, 5, 3, 1],
  );
  const { header } = await readShard(join(out, shardName(2)));
  t.is(header.first, 10);
  t.is(header.trailer.keys.length, 5);
  const prepared = await loadPrepared(out);
  for (const it of prepared.items) {
    const want = resizeAndPad(await readImage(it.path)).padded;
    const got = await readShardRecord(it.shard!.file, it.shard!.offset);
    t.deepEqual(got, want, it.key);
    t.deepEqual(it.sentences, ds.items.find((d) => d.key === it.key)!.sentences);
  }
});

test('a rerun keeps complete shards and redoes a damaged or missing one', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'carzero-prep-'));
  await prepareShards(ds, out, { shardSize: 5, workers: 0 });
  const first = readFileSync(join(out, 'index.json'), 'utf8');
  const again = await prepareShards(ds, out, { shardSize: 5, workers: 0 });
  t.deepEqual([again.kept, again.written], [4, 0]);
  truncateSync(join(out, shardName(1)), SHARD_HEADER + 1000);
  const b = readFileSync(join(out, shardName(3)));
  b[SHARD_HEADER + 7] ^= 0xff; // a flipped byte fails the CRC
  writeFileSync(join(out, shardName(3)), b);
  const fixed = await prepareShards(ds, out, { shardSize: 5, workers: 0 });
  t.deepEqual([fixed.kept, fixed.written], [2, 2]);
  t.is(readFileSync(join(out, 'index.json'), 'utf8'), first);
  t.false(existsSync(join(out, `${shardName(1)}.tmp`)));
});

test('the loader over shards yields the same batches as decoding the same items', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'carzero-prep-'));
  await prepareShards(ds, out, { shardSize: 4, workers: 0 });
  const good: MimicDataset = { ...ds, items: ds.items.filter((it) => !BAD_KEYS.includes(it.key)) };
  for (const augment of [false, true]) {
    const fromShards = await drain(await createLoader(out, { seed: 4, batchSize: 3, augment, workers: 1 }));
    const decoded = await drain(new DataLoader(good, { seed: 4, batchSize: 3, augment, workers: 0 }));
    t.is(fromShards.length, 4);
    t.is(fromShards.length, decoded.length);
    fromShards.forEach((b, i) => {
      t.deepEqual(b.indices, decoded[i].indices);
      t.deepEqual(b.texts, decoded[i].texts);
      t.deepEqual(b.pixels, decoded[i].pixels, `augment ${augment}, batch ${i}`);
    });
  }
});

test('carzero prepare (CLI)', async (t) => {
  const bin = join(packageRoot, 'dist', 'cli', 'main.js');
  if (!existsSync(bin)) return t.fail(`${bin} missing: run \`npx tsc -p tsconfig.json\` first`);
  const out = mkdtempSync(join(tmpdir(), 'carzero-prep-'));
  const csv = join(packageRoot, 'test', 'fixtures', 'data', 'mimic.csv');
  const r = await run(process.execPath, [
    bin,
    'prepare',
    '--csv',
    csv,
    '--root',
    root,
    '--out',
    out,
    '--shard-size',
    '8',
    '--quiet',
  ]);
  t.regex(r.stderr, /16 kept; dropped 1 empty reports, 1 with no usable sentence/);
  t.regex(r.stderr, /skipped files\/p10\/s20\/corrupt\.png \(line 23\)/);
  t.regex(r.stderr, /14 images in 2 shards .* \(2 written, 0 kept from an earlier run\); 2 unreadable/);
  const again = await run(process.execPath, [
    bin,
    'prepare',
    '--csv',
    csv,
    '--root',
    root,
    '--out',
    out,
    '--shard-size',
    '8',
    '--quiet',
  ]);
  t.regex(again.stderr, /\(0 written, 2 kept from an earlier run\)/);
  const v = await run(process.execPath, [
    bin,
    'prepare',
    '--csv',
    csv,
    '--root',
    root,
    '--out',
    join(out, 'val'),
    '--split',
    'validate',
    '--quiet',
  ]);
  t.regex(v.stderr, /2 images in 1 shards/);
  const e = await t.throwsAsync(run(process.execPath, [bin, 'prepare', '--csv', csv]));
  t.is((e as { code?: number }).code, 2);
  t.regex((e as { stderr?: string }).stderr ?? '', /--out <dir> is required/);
  const { stdout } = await run(process.execPath, [bin, 'prepare', '--help']);
  t.regex(stdout, /usage: carzero prepare/);
});
