// Loader throughput by worker count (docs: src/data/loader.ts defaultWorkers). Full-size grey PNGs
// (2544x3056, like MIMIC-CXR) decoded + padded + augmented, and the same from prepared shards;
// also the longest event-loop stall seen by the main thread (what a trainer would feel).
// node --import tsx bench/data-loader.ts [items=32]
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { DataLoader } from '../src/data/loader.js';
import { prepareShards } from '../src/data/shards.js';
import type { MimicDataset } from '../src/data/mimic.js';

const n = Number(process.argv[2] ?? 32);
const dir = mkdtempSync(join(tmpdir(), 'cz-bench-'));
mkdirSync(join(dir, 'img'));
const W = 2544,
  H = 3056;
for (let k = 0; k < 4; k++) {
  const png = new PNG({ width: W, height: H });
  let s = 12345 + k;
  for (let i = 0; i < W * H; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const v = (((i % W) * 200) / W + (s >>> 28)) & 0xff;
    png.data[i * 4] = png.data[i * 4 + 1] = png.data[i * 4 + 2] = v;
    png.data[i * 4 + 3] = 255;
  }
  writeFileSync(join(dir, 'img', `${k}.png`), PNG.sync.write(png, { colorType: 0 }));
}
const ds: MimicDataset = {
  source: 'bench',
  root: dir,
  split: 'train',
  columns: { path: 'Path', split: 'Split', view: 'View', report: ['R'] },
  items: Array.from({ length: n }, (_, i) => ({
    path: join(dir, 'img', `${i % 4}.png`),
    key: `${i}`,
    row: i + 2,
    sentences: ['a b', 'c d'],
  })),
  counts: { rows: n, inSplit: n, frontal: n, nonFrontal: 0, emptyReport: 0, noSentence: 0, excluded: 0, kept: n },
  dropped: [],
  maxWords: 5,
};

async function measure(label: string, d: MimicDataset, workers: number) {
  let stall = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    stall = Math.max(stall, now - last - 5);
    last = now;
  }, 5);
  const l = new DataLoader(d, { seed: 1, batchSize: d.items.length > 1000 ? 64 : 8, workers });
  await l.next(); // worker start-up and the first batch are not timed
  stall = 0;
  const t0 = performance.now();
  let images = 0;
  for (let b = await l.next(); b; b = await l.next()) images += b.indices.length;
  const s = (performance.now() - t0) / 1000;
  await l.close();
  clearInterval(timer);
  console.log(
    `${label} workers=${workers}: ${(images / s).toFixed(1)} images/s, ` +
      `longest main-thread stall ${stall.toFixed(0)} ms`,
  );
}

for (const w of [0, 1, 2]) await measure('decode PNG 2544x3056', ds, w);
const out = join(dir, 'shards');
await prepareShards(ds, out, { workers: 2 });
const { loadPrepared } = await import('../src/data/shards.js');
const one = await loadPrepared(out);
// Many items over the same records: steady-state throughput.
const prepared = { ...one, items: Array.from({ length: 100 * n }, (_, i) => ({ ...one.items[i % n], key: `${i}` })) };
for (const w of [0, 1, 2]) await measure('prepared shards', prepared, w);
