// Grounding maps (spec 5) against the PyTorch reference attention, the overlay PNG writer, and the
// ground / embed CLIs and classify --resume.
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PNG } from 'pngjs';
import { CARZero, jet, overlayPng, upsampleNearest, readSafetensors } from '../src/index.js';
import { batch, bin, classes, f32, promptsFile, Q, tinyModel, worst } from './zeroshot-helpers.js';

const run = promisify(execFile);
let model: CARZero;
let work: string;
let dir: string;
const prompts = JSON.parse(readFileSync(promptsFile, 'utf8')) as Record<string, string[]>;

test.before(async () => {
  const m = await tinyModel();
  work = m.work;
  dir = m.dir;
  model = await CARZero.load(dir, { device: 'cpu' });
});
test.after.always(() => {
  model?.dispose();
  if (work) rmSync(work, { recursive: true, force: true });
});

test('upsampleNearest: 14x14 -> 224x224, each patch a 16x16 block', (t) => {
  const a = Float32Array.from({ length: 196 }, (_, i) => i);
  const u = upsampleNearest(a, 14, 16);
  t.is(u.length, 224 * 224);
  t.is(u[0], 0);
  t.is(u[15], 0);
  t.is(u[16], 1);
  t.is(u[16 * 224], 14);
  t.is(u[223 * 224 + 223], 195);
  t.throws(() => upsampleNearest(new Float32Array(5), 14, 16), { instanceOf: RangeError });
});

test('groundingMaps match the reference i2t attention (B, Q, P) upsampled', async (t) => {
  const ref = f32('outputs/attention.f32'); // (4, 14, 196)
  const g = await model.groundingMaps({ images: batch, prompts, onWarning: () => {} });
  t.deepEqual(g.classes, classes);
  t.is(g.maps.length, 4);
  for (let b = 0; b < 4; b++) {
    t.is(g.maps[b].length, Q * 224 * 224);
    for (let q = 0; q < Q; q++) {
      const want = upsampleNearest(ref.subarray((b * Q + q) * 196, (b * Q + q + 1) * 196), 14, 16);
      t.true(worst(g.maps[b].subarray(q * 224 * 224, (q + 1) * 224 * 224), want) <= 1, `image ${b} class ${q}`);
    }
  }
  // one sample per patch: a softmax row over [global; patches] with the global entry dropped sums below 1
  let s = 0;
  for (let i = 0; i < 224 * 224; i += 16) if (i % (224 * 16) < 224) s += g.maps[0][i];
  t.true(s > 0.5 && s < 1, `patch attention of one (image, class) sums to ${s}`);
});

test('overlayPng: RGB PNG of the crop size, jet colours where the map is hot', (t) => {
  t.deepEqual(jet(0), [0, 0, 128]);
  t.deepEqual(jet(1), [128, 0, 0]);
  const map = new Float32Array(224 * 224);
  map[0] = 1; // top-left hot, rest cold
  const pixels = new Uint8Array(224 * 224).fill(100);
  const png = PNG.sync.read(overlayPng(pixels, map, { alpha: 1 }));
  t.is(png.width, 224);
  t.is(png.height, 224);
  t.deepEqual([...png.data.subarray(0, 3)], [128, 0, 0]);
  t.deepEqual([...png.data.subarray(4, 7)], [0, 0, 128]);
  const half = PNG.sync.read(overlayPng(pixels, map, { alpha: 0 }));
  t.deepEqual([...half.data.subarray(4, 7)], [100, 100, 100]);
  t.throws(() => overlayPng(pixels, new Float32Array(10)), { instanceOf: RangeError, message: /map/ });
});

test('carzero ground writes overlays per image per class, raw maps and an index', async (t) => {
  const out = join(work, 'maps');
  const { stderr } = await run(process.execPath, [
    bin,
    'ground',
    '--model',
    dir,
    '--prompts',
    promptsFile,
    '--out',
    out,
    '--raw',
    '--device',
    'cpu',
    batch[0],
    join(work, 'missing.png'),
    batch[3],
  ]);
  t.regex(stderr, /skipping .*missing\.png/);
  const index = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8'));
  t.deepEqual(index.classes, classes);
  t.is(index.images.length, 2);
  t.is(index.skipped.length, 1);
  const first = index.images[0];
  t.is(first.path, batch[0]);
  t.is(Object.keys(first.overlays).length, Q);
  const png = PNG.sync.read(readFileSync(join(out, first.overlays.Atelectasis)));
  t.is(png.width, 224);
  const raw = readFileSync(join(out, first.raw.Atelectasis));
  t.is(raw.length, 224 * 224 * 4);
  const ref = f32('outputs/attention.f32');
  const got = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
  t.true(worst(got, upsampleNearest(ref.subarray(0, 196), 14, 16)) <= 1);
  const help = await run(process.execPath, [bin, 'ground', '--help']);
  t.regex(help.stdout, /examples:/);
});

test('carzero embed: images to safetensors, texts to JSON', async (t) => {
  const st = join(work, 'img.safetensors');
  await run(process.execPath, [
    bin,
    'embed',
    '--model',
    dir,
    '--images',
    '--out',
    st,
    '--device',
    'cpu',
    ...batch,
    join(work, 'nope.png'),
  ]);
  const c = await readSafetensors(st);
  const g = c.tensors.get('global')!;
  t.deepEqual(g.shape, [4, 32]);
  const ref = f32('outputs/img_global.f32');
  const data = new Float32Array(g.data.buffer.slice(g.data.byteOffset, g.data.byteOffset + g.data.byteLength));
  t.true(worst(data, ref) <= 1);
  t.deepEqual(JSON.parse(c.metadata.images), batch);
  const js = join(work, 'txt.json');
  await run(process.execPath, [bin, 'embed', '--model', dir, '--texts', '--out', js, promptsFile]);
  const tj = JSON.parse(readFileSync(js, 'utf8'));
  t.deepEqual(tj.classes, classes);
  t.true(worst(tj.sentence.flat(), f32('outputs/txt_sentence.f32')) <= 1);
  const e = await t.throwsAsync(run(process.execPath, [bin, 'embed', '--model', dir, '--out', js, 'x']));
  t.is((e as { code?: number }).code, 2);
});

test('carzero classify --resume skips scored rows, drops a partial last line and appends', async (t) => {
  const out = join(work, 'resume.csv');
  const args = [
    bin,
    'classify',
    '--model',
    dir,
    '--prompts',
    promptsFile,
    '--format',
    'csv',
    '--out',
    out,
    '--device',
    'cpu',
  ];
  await run(process.execPath, [...args, batch[0], batch[1]]);
  const first = readFileSync(out, 'utf8');
  writeFileSync(out, first + batch[2] + ',0.1,0.'); // an interrupted write
  const { stderr } = await run(process.execPath, [...args, '--resume', ...batch]);
  t.regex(stderr, /2 images already in/);
  const lines = readFileSync(out, 'utf8').trim().split('\n');
  t.is(lines.length, 5);
  t.deepEqual(
    lines.slice(1).map((l) => l.split(',')[0]),
    batch,
  );
  t.true(lines.slice(1).every((l) => l.split(',').length === Q + 1));
  // everything done: exit 0, file unchanged
  await run(process.execPath, [...args, '--resume', ...batch]);
  t.is(readFileSync(out, 'utf8').trim().split('\n').length, 5);
  // a different header is refused
  writeFileSync(out, 'Path,Other\n');
  const e = await t.throwsAsync(run(process.execPath, [...args, '--resume', batch[0]]));
  t.regex((e as { stderr?: string }).stderr ?? '', /different header/);
  t.true(existsSync(out));
});
