// The zero-shot API (docs/ZEROSHOT-API.md): classify / classifyStream / embedTexts(prompts) on the
// tiny model against the PyTorch reference scores; input kinds, per-item errors, order, bounded
// read-ahead, abort, progress, argument errors.
import test from 'ava';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CARZero, isSkipped, type ImageInput } from '../src/index.js';
import { batch, batchNames, classes, f32, promptsFile, Q, refScore, tinyModel, worst } from './zeroshot-helpers.js';

let model: CARZero;
let work: string;
const prompts = JSON.parse(readFileSync(promptsFile, 'utf8')) as Record<string, string[]>;
const quiet = { onWarning: () => {} };

test.before(async () => {
  const m = await tinyModel();
  work = m.work;
  model = await CARZero.load(m.dir, { device: 'cpu' });
});
test.after.always(() => {
  model?.dispose();
  if (work) rmSync(work, { recursive: true, force: true });
});

test('classify reproduces the reference scores; classes in prompt order', async (t) => {
  const r = await model.classify({ images: batch, prompts, ...quiet });
  t.deepEqual(r.classes, classes);
  t.deepEqual(r.images, batch);
  t.deepEqual(r.skipped, []);
  const flat = new Float32Array(r.scores.length * Q);
  r.scores.forEach((s, i) => flat.set(s, i * Q));
  t.true(worst(flat, refScore) <= 1);
});

test('paths, Buffers and preprocessed pixels give the same scores; names as documented', async (t) => {
  const pixels = f32(`images/ref/${batchNames[2]}.x224.f32`);
  const inputs: ImageInput[] = [
    batch[0],
    readFileSync(batch[1]),
    { pixels, name: 'rgb' },
    { pixels: f32(`images/ref/${batchNames[3]}.x224.f32`) },
  ];
  const r = await model.classify({ images: inputs, prompts, batchSize: 3, ...quiet });
  t.deepEqual(r.images, [batch[0], '<buffer #1>', 'rgb', '<pixels #3>']);
  const flat = new Float32Array(4 * Q);
  r.scores.forEach((s, i) => flat.set(s, i * Q));
  t.true(worst(flat, refScore) <= 1);
});

const skippedInputsTitle =
  'unreadable, corrupt, non-image and missing inputs are skipped per item, in input order; the rest is scored';
test(skippedInputsTitle, async (t) => {
  const inputs: ImageInput[] = [
    batch[0],
    '/nonexistent/x.png',
    Buffer.from('not an image at all'),
    readFileSync(batch[1]).subarray(0, 80),
    { pixels: new Float32Array(10), name: 'short' },
    batch[3],
  ];
  const seen: (string | number)[] = [];
  for await (const r of model.classifyStream({ images: inputs, prompts, batchSize: 2, ...quiet }))
    seen.push(isSkipped(r) ? `skip:${r.index}` : r.index);
  t.deepEqual(seen, [0, 'skip:1', 'skip:2', 'skip:3', 'skip:4', 5]);
  const r = await model.classify({ images: inputs, prompts, batchSize: 2, ...quiet });
  t.is(r.scores.length, 2);
  t.regex(r.skipped[0].error.message, /x\.png.*cannot read/);
  t.regex(r.skipped[1].error.message, /unrecognised image format/);
  t.is(r.skipped[3].name, 'short');
  t.is(r.skipped[3].error.name, 'RangeError');
  t.true(worst([...r.scores[0], ...r.scores[1]], [...refScore.subarray(0, Q), ...refScore.subarray(3 * Q)]) <= 1);
});

test('precomputed prompt embeddings (embedTexts(prompts)) are reusable and give identical scores', async (t) => {
  using texts = await model.embedTexts(prompts, quiet);
  t.deepEqual(texts.classes, classes);
  const a = await model.classify({ images: batch.slice(0, 2), prompts: texts });
  const b = await model.classify({ images: batch.slice(2), prompts: texts });
  t.false(texts.sentence.disposed, 'caller-owned embeddings are not disposed by classify');
  const flat = new Float32Array(4 * Q);
  [...a.scores, ...b.scores].forEach((s, i) => flat.set(s, i * Q));
  t.true(worst(flat, refScore) <= 1);
});

test('a prompt that cleans to nothing gets a warning naming the class and is still scored', async (t) => {
  const warnings: string[] = [];
  const r = await model.classify({
    images: [batch[0]],
    prompts: { Effusion: 'Effusion', Edema: 'There is edema' },
    onWarning: (w) => warnings.push(w),
  });
  t.is(warnings.length, 1);
  t.regex(warnings[0], /"Effusion".*cleans to the empty string/);
  t.true(Number.isFinite(r.scores[0][0]));
  // the faithful way: same score as in the reference batch, where "Effusion" is class 2
  t.true(worst([r.scores[0][0]], [refScore[2]]) <= 1);
});

test('async iterables stream with bounded read-ahead, progress per batch', async (t) => {
  let pulled = 0;
  let maxAhead = 0;
  let yielded = 0;
  async function* source() {
    for (let i = 0; i < 24; i++) {
      pulled++;
      maxAhead = Math.max(maxAhead, pulled - yielded);
      yield batch[i % 4];
    }
  }
  const progress: number[] = [];
  for await (const r of model.classifyStream({
    images: source(),
    prompts,
    batchSize: 4,
    concurrency: 6,
    onProgress: (p) => progress.push(p.done),
    ...quiet,
  })) {
    t.false(isSkipped(r));
    t.is(r.index, yielded);
    yielded++;
  }
  t.is(yielded, 24);
  t.deepEqual(progress, [4, 8, 12, 16, 20, 24]);
  t.true(maxAhead <= 4 + 6 + 1, `read ahead ${maxAhead} images`);
});

test('abort: rejects with an AbortError, stops pulling inputs', async (t) => {
  const controller = new AbortController();
  let pulled = 0;
  function* source() {
    for (let i = 0; i < 1000; i++) {
      pulled++;
      yield batch[i % 4];
    }
  }
  const p = model.classify({
    images: source(),
    prompts,
    batchSize: 4,
    concurrency: 4,
    signal: controller.signal,
    onProgress: (e) => e.done >= 8 && controller.abort(),
    ...quiet,
  });
  const e = (await t.throwsAsync(p, { any: true })) as Error | undefined;
  t.true(e instanceof DOMException);
  t.is(e!.name, 'AbortError');
  t.true(pulled < 30, `pulled ${pulled}`);
  // already aborted: rejects at once
  const e2 = (await t.throwsAsync(model.classify({ images: batch, prompts, signal: AbortSignal.abort(), ...quiet }), {
    any: true,
  })) as Error | undefined;
  t.is(e2!.name, 'AbortError');
  // the model still works afterwards
  t.is((await model.classify({ images: [batch[0]], prompts, ...quiet })).scores.length, 1);
});

test('breaking out of classifyStream early cleans up', async (t) => {
  let n = 0;
  for await (const r of model.classifyStream({ images: batch, prompts, batchSize: 1, ...quiet })) {
    t.false(isSkipped(r));
    if (++n === 2) break;
  }
  t.is(n, 2);
});

test('API misuse: TypeError/RangeError naming the argument', async (t) => {
  await t.throwsAsync(model.classify(null as never), { instanceOf: TypeError, message: /options/ });
  await t.throwsAsync(model.classify({ images: 'a.png' as never, prompts }), {
    instanceOf: TypeError,
    message: /images/,
  });
  await t.throwsAsync(model.classify({ images: batch, prompts: {} }), { instanceOf: RangeError, message: /prompts/ });
  await t.throwsAsync(model.classify({ images: batch, prompts: { A: 3 } as never }), {
    instanceOf: TypeError,
    message: /prompts\["A"\]/,
  });
  await t.throwsAsync(model.classify({ images: batch, prompts, batchSize: 0 }), {
    instanceOf: RangeError,
    message: /batchSize/,
  });
  await t.throwsAsync(model.classify({ images: batch, prompts, concurrency: 1.5 }), {
    instanceOf: RangeError,
    message: /concurrency/,
  });
  await t.throwsAsync(model.classify({ images: batch, prompts, signal: {} as never }), {
    instanceOf: TypeError,
    message: /signal/,
  });
  await t.throwsAsync(model.classify({ images: [batch[0], 42 as never], prompts, ...quiet }), {
    instanceOf: TypeError,
    message: /images\[1\]/,
  });
  using texts = await model.embedTexts(['a b c', 'd e f']);
  await t.throwsAsync(model.classify({ images: batch, prompts: texts as never }), {
    instanceOf: TypeError,
    message: /classes/,
  });
  await t.throwsAsync(model.classify({ images: batch, prompts: Object.assign(texts, { classes: ['x'] }) }), {
    instanceOf: RangeError,
    message: /classes/,
  });
  await t.throwsAsync(CARZero.load(join(work, 'model'), { precision: 'fp16' as never }), {
    instanceOf: TypeError,
    message: /precision/,
  });
});

test('tf32 is accepted (fp32 kernels on CPU: identical scores); embedImages takes pixels', async (t) => {
  using m = await CARZero.load(join(work, 'model'), { device: 'cpu', precision: 'tf32' });
  t.is(m.precision, 'tf32');
  const r = await m.classify({ images: batch, prompts, ...quiet });
  const flat = new Float32Array(4 * Q);
  r.scores.forEach((s, i) => flat.set(s, i * Q));
  t.true(worst(flat, refScore) <= 1);
  using emb = await m.embedImages([{ pixels: f32(`images/ref/${batchNames[0]}.x224.f32`) }]);
  const g = (await emb.global.read()) as Float32Array;
  t.true(worst(g, f32('outputs/img_global.f32').subarray(0, g.length)) <= 1);
});

test('embedImageStream yields global (and local) embeddings matching the reference', async (t) => {
  const ref = f32('outputs/img_global.f32');
  const C = ref.length / 4;
  const got: Float32Array[] = [];
  for await (const r of model.embedImageStream({ images: [...batch, '/missing.png'], batchSize: 3, local: true })) {
    if (isSkipped(r)) {
      t.is(r.index, 4);
      continue;
    }
    t.is(r.local!.length, 196 * C);
    got.push(r.global);
  }
  t.is(got.length, 4);
  const flat = new Float32Array(4 * C);
  got.forEach((g, i) => flat.set(g, i * C));
  t.true(worst(flat, ref) <= 1);
});
