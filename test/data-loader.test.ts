// The batch loader: N pairs per batch, drop-last, corrupt/missing images skipped and the batch
// refilled, determinism across worker counts, exact resume from state().
import test from 'ava';
import { readMimicCsv, type MimicDataset } from '../src/data/mimic.js';
import { DataLoader, carzeroBatchSize, type Batch } from '../src/data/loader.js';
import { centreCrop } from '../src/data/augment.js';
import { readImage } from '../src/image/decode.js';
import { resizeAndPad } from '../src/image/preprocess.js';
import { BAD_KEYS, makeDataset } from './data-helpers.js';

const PX = 224 * 224;
let ds: MimicDataset;

test.before(async () => {
  const { root, csv } = makeDataset();
  ds = await readMimicCsv(csv, { root });
});

async function drain(l: DataLoader, max = 100): Promise<Batch[]> {
  const out: Batch[] = [];
  for (let i = 0; i < max; i++) {
    const b = await l.next();
    if (!b) break;
    out.push(b);
  }
  return out;
}

function sameBatches(t: any, a: Batch[], b: Batch[], what: string) {
  t.is(a.length, b.length, `${what}: batch count`);
  a.forEach((x, i) => {
    t.deepEqual(x.indices, b[i].indices, `${what}: batch ${i} indices`);
    t.deepEqual(x.texts, b[i].texts, `${what}: batch ${i} texts`);
    t.is(x.epoch, b[i].epoch);
    t.is(x.step, b[i].step);
    t.true(Buffer.from(x.pixels.buffer).equals(Buffer.from(b[i].pixels.buffer)), `${what}: batch ${i} pixels`);
  });
}

test('N-pair batches, drop-last, bad images skipped and reported, sentences from the report', async (t) => {
  const errors: string[] = [];
  const l = new DataLoader(ds, {
    seed: 5,
    batchSize: 4,
    workers: 0,
    onError: (e) => errors.push(ds.items[e.index].key),
  });
  t.is(ds.items.length, 16);
  const batches = await drain(l);
  // 14 readable images: 3 full batches of 4, the rest dropped.
  t.is(batches.length, 3);
  const seen = new Set<number>();
  for (const b of batches) {
    t.is(b.pixels.length, 4 * PX);
    t.is(b.texts.length, 4);
    t.is(b.indices.length, 4);
    b.indices.forEach((ix, k) => {
      t.false(seen.has(ix), 'an image appears once per epoch');
      seen.add(ix);
      t.false(BAD_KEYS.includes(ds.items[ix].key));
      t.true(ds.items[ix].sentences.includes(b.texts[k]));
    });
    t.true(b.pixels.every((v) => Number.isFinite(v)));
  }
  t.true(errors.every((k) => BAD_KEYS.includes(k)));
  t.deepEqual(l.state().epoch, 1);
  t.is(l.state().cursor, 0);
  // The next epoch: another order.
  const next = await drain(l);
  t.is(next.length, 3);
  t.is(next[0].epoch, 1);
  t.notDeepEqual(
    next.map((b) => b.indices),
    batches.map((b) => b.indices),
  );
  await l.close();
});

const refillTitle =
  'a batch is refilled past failures: with every bad item in one epoch, errors are reported once each';
test(refillTitle, async (t) => {
  const errors: string[] = [];
  const l = new DataLoader(ds, {
    seed: 1,
    batchSize: 7,
    workers: 0,
    onError: (e) => errors.push(ds.items[e.index].key),
  });
  const b = await drain(l);
  t.is(b.length, 2); // 14 readable = 2 x 7: reading the whole epoch meets both bad files
  t.deepEqual(errors.sort(), [...BAD_KEYS].sort());
  await l.close();
});

test('same seed: identical batches for 0, 1 and 2 workers; another seed differs', async (t) => {
  const runs: Batch[][] = [];
  for (const workers of [0, 1, 2]) {
    const l = new DataLoader(ds, { seed: 9, batchSize: 3, workers, prefetch: 5 });
    runs.push(await drain(l));
    await l.close();
  }
  sameBatches(t, runs[0], runs[1], '0 vs 1 workers');
  sameBatches(t, runs[0], runs[2], '0 vs 2 workers');
  const other = new DataLoader(ds, { seed: 10, batchSize: 3, workers: 0 });
  const o = await drain(other);
  t.notDeepEqual(
    o.map((b) => b.indices),
    runs[0].map((b) => b.indices),
  );
});

test('resume: state() after k batches, a new loader from it yields the identical next batches', async (t) => {
  for (const k of [0, 1, 3]) {
    const full = new DataLoader(ds, { seed: 21, batchSize: 4, workers: 0 });
    const ref: Batch[] = [];
    // Two epochs, uninterrupted.
    ref.push(...(await drain(full)), ...(await drain(full)));
    await full.close();

    const a = new DataLoader(ds, { seed: 21, batchSize: 4, workers: 1 });
    const head: Batch[] = [];
    for (let i = 0; i < k; i++) head.push((await a.next())!);
    const saved = JSON.parse(JSON.stringify(a.state()));
    await a.close(); // prefetched work is thrown away
    const b = new DataLoader(ds, { state: saved, batchSize: 4, workers: 2 });
    const tail = [...(await drain(b)), ...(await drain(b))];
    await b.close();
    sameBatches(t, [...head, ...tail], ref, `resume after ${k}`);
  }
});

test('resume across an epoch boundary and with batch size by epoch', async (t) => {
  const bs = (e: number) => (e === 0 ? 5 : 3);
  const full = new DataLoader(ds, { seed: 3, batchSize: bs, workers: 0 });
  const ref = [...(await drain(full)), ...(await drain(full))];
  t.deepEqual(
    ref.map((b) => b.indices.length),
    [5, 5, 3, 3, 3, 3],
  );
  const a = new DataLoader(ds, { seed: 3, batchSize: bs, workers: 0 });
  await drain(a); // epoch 0 done: the state points at epoch 1
  const st = a.state();
  t.deepEqual([st.epoch, st.cursor, st.step], [1, 0, 0]);
  const b = new DataLoader(ds, { state: st, batchSize: bs, workers: 0 });
  sameBatches(t, await drain(b), ref.slice(2), 'epoch 1');
});

test('validation mode: dataset order, centre crop of the decoded image', async (t) => {
  const l = new DataLoader(ds, { batchSize: 2, shuffle: false, augment: false, workers: 0 });
  const b = (await l.next())!;
  t.deepEqual(b.indices, [0, 1]);
  const padded = resizeAndPad(await readImage(ds.items[1].path)).padded;
  t.deepEqual(b.pixels.subarray(PX, 2 * PX), centreCrop(padded));
});

test('state checks and the original batch-size schedule', async (t) => {
  t.deepEqual([0, 1, 2, 5, 6, 14].map(carzeroBatchSize), [64, 64, 128, 128, 256, 256]);
  const l = new DataLoader(ds, { seed: 2, batchSize: 4, workers: 0 });
  t.is(l.batchesPerEpoch(), 4);
  const st = l.state();
  const other = { ...ds, items: ds.items.slice(1) };
  t.throws(() => new DataLoader(other, { state: st, workers: 0 }), { message: /state is for another dataset/ });
  t.throws(() => new DataLoader(ds, { state: st, seed: 3, workers: 0 }), { message: /differs from the state/ });
  t.throws(() => new DataLoader(ds, { prefetch: 0, workers: 0 }), { instanceOf: RangeError });
});
