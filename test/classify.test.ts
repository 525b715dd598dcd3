// Golden parity end to end, as a user runs it: `carzero convert` on the tiny Lightning checkpoint
// in the original format, then `carzero classify` on the fixture images and prompt file, compared
// with the PyTorch reference's scores (tools/reference/, committed under test/fixtures/tiny/).
import test from 'ava';
import { execFile } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  copyFileSync,
  mkdirSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { packageRoot } from '../src/native.js';

const run = promisify(execFile);
const bin = join(packageRoot, 'dist', 'cli', 'main.js');
const tiny = join(packageRoot, 'test', 'fixtures', 'tiny');
const work = mkdtempSync(join(tmpdir(), 'carzero-classify-'));
const modelDir = join(work, 'model');
const batch = ['grey8_tall_quirk.png', 'grey16_tall.png', 'rgb_wide.png', 'colour.jpg'].map((f) =>
  join(tiny, 'images', f),
);

function f32(file: string): Float32Array {
  const b = readFileSync(join(tiny, file));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
const refScore = f32('outputs/score.f32'); // (4, 14)
const refIndex = JSON.parse(readFileSync(join(tiny, 'outputs', 'index.json'), 'utf8')) as { classes: string[] };

function worst(got: number[][], ref: Float32Array, Q: number): number {
  let w = 0;
  got.forEach((row, b) =>
    row.forEach((v, q) => (w = Math.max(w, Math.abs(v - ref[b * Q + q]) / (1e-5 + 1e-4 * Math.abs(ref[b * Q + q]))))),
  );
  return w; // <= 1 means within tol = 1e-5 + 1e-4 |ref| everywhere
}

test.before(async () => {
  if (!existsSync(bin)) throw new Error(`${bin} missing: run \`npm run build:ts\``);
  const cfg = JSON.parse(readFileSync(join(tiny, 'config.json'), 'utf8'));
  await run(process.execPath, [
    bin,
    'convert',
    '--checkpoint',
    join(tiny, 'carzero-tiny.ckpt'),
    '--text-model',
    join(tiny, 'bert-tiny'),
    '--out',
    modelDir,
    '--vit-heads',
    String(cfg.vision.heads),
    '--head-heads',
    String(cfg.head.heads),
  ]);
});
test.after.always(() => rmSync(work, { recursive: true, force: true }));

test('convert + classify (fp32, CPU) reproduce the PyTorch reference scores', async (t) => {
  const { stdout } = await run(process.execPath, [
    bin,
    'classify',
    '--model',
    modelDir,
    '--prompts',
    join(tiny, 'text', 'prompts.json'),
    '--device',
    'cpu',
    ...batch,
  ]);
  const out = JSON.parse(stdout) as { classes: string[]; images: string[]; scores: number[][]; skipped: unknown[] };
  t.deepEqual(out.classes, refIndex.classes);
  t.deepEqual(out.images, batch);
  t.deepEqual(out.skipped, []);
  const w = worst(out.scores, refScore, out.classes.length);
  t.log(`worst error / (1e-5 + 1e-4 |ref|) = ${w.toFixed(3)}`);
  t.true(w <= 1, `scores differ from the reference beyond 1e-5 + 1e-4 |ref| (worst ratio ${w})`);
});

test('the string-valued prompt format, CSV output and a CSV image list give the same scores', async (t) => {
  const list = join(work, 'list.csv');
  writeFileSync(list, 'Path,Other\n' + batch.map((p) => `"${p}",x`).join('\n') + '\n');
  const outCsv = join(work, 'scores.csv');
  await run(process.execPath, [
    bin,
    'classify',
    '--model',
    modelDir,
    '--prompts',
    join(tiny, 'text', 'prompts-str.json'),
    '--format',
    'csv',
    '--out',
    outCsv,
    '--batch',
    '3',
    list,
  ]);
  const lines = readFileSync(outCsv, 'utf8').trim().split('\n');
  t.is(lines[0], ['Path', ...refIndex.classes].map((c) => (c.includes(',') ? `"${c}"` : c)).join(','));
  const rows = lines.slice(1).map((l) => l.split(','));
  t.deepEqual(
    rows.map((r) => r[0]),
    batch,
  );
  t.true(
    worst(
      rows.map((r) => r.slice(1).map(Number)),
      refScore,
      refIndex.classes.length,
    ) <= 1,
  );
});

test('a corrupt image in the batch is reported and skipped; the others are still scored', async (t) => {
  const bad = join(work, 'broken.png');
  const good = readFileSync(batch[0]);
  writeFileSync(bad, good.subarray(0, 60)); // truncated PNG
  const missing = join(work, 'nope.png');
  const { stdout, stderr } = await run(process.execPath, [
    bin,
    'classify',
    '--model',
    modelDir,
    '--prompts',
    join(tiny, 'text', 'prompts.json'),
    batch[0],
    bad,
    missing,
    batch[3],
  ]);
  const out = JSON.parse(stdout) as {
    images: string[];
    scores: number[][];
    skipped: { path: string; error: string }[];
  };
  t.deepEqual(out.images, [batch[0], batch[3]]);
  t.deepEqual(out.skipped.map((s) => s.path).sort(), [bad, missing].sort());
  t.regex(stderr, /skipping .*broken\.png/);
  t.regex(stderr, /2 scored, 2 skipped/);
  const Q = refIndex.classes.length;
  const ref = new Float32Array([...refScore.subarray(0, Q), ...refScore.subarray(3 * Q, 4 * Q)]);
  t.true(worst(out.scores, ref, Q) <= 1);
  // nothing readable at all -> non-zero exit
  const e = await t.throwsAsync(
    run(process.execPath, [bin, 'classify', '--model', modelDir, '--prompts', join(tiny, 'text', 'prompts.json'), bad]),
  );
  t.is((e as { code?: number }).code, 1);
});

test('bf16 precision stays close to the fp32 reference', async (t) => {
  const { stdout } = await run(process.execPath, [
    bin,
    'classify',
    '--model',
    modelDir,
    '--prompts',
    join(tiny, 'text', 'prompts.json'),
    '--precision',
    'bf16',
    ...batch,
  ]);
  const out = JSON.parse(stdout) as { scores: number[][] };
  let maxAbs = 0;
  let maxRef = 0;
  out.scores.forEach((row, b) =>
    row.forEach((v, q) => {
      maxAbs = Math.max(maxAbs, Math.abs(v - refScore[b * 14 + q]));
      maxRef = Math.max(maxRef, Math.abs(refScore[b * 14 + q]));
    }),
  );
  t.log(`bf16: max |score - ref| = ${maxAbs.toExponential(2)} (max |ref| ${maxRef.toFixed(3)})`);
  t.true(maxAbs <= 0.1 * maxRef);
});

test('usage errors: missing options, bad values, bad model dir', async (t) => {
  const e1 = await t.throwsAsync(run(process.execPath, [bin, 'classify', '--prompts', 'x.json', 'a.png']));
  t.is((e1 as { code?: number }).code, 2);
  t.regex((e1 as { stderr?: string }).stderr ?? '', /--model <name\|dir> is required/);
  const e2 = await t.throwsAsync(
    run(process.execPath, [bin, 'classify', '--model', modelDir, '--prompts', 'x.json', '--format', 'xml', 'a.png']),
  );
  t.regex((e2 as { stderr?: string }).stderr ?? '', /--format must be one of json\|csv/);
  const notModel = join(work, 'empty');
  copyFileSync(join(tiny, 'text', 'prompts.json'), join(work, 'p.json'));
  const e3 = await t.throwsAsync(
    run(process.execPath, [bin, 'classify', '--model', notModel, '--prompts', join(work, 'p.json'), batch[0]]),
  );
  t.regex((e3 as { stderr?: string }).stderr ?? '', /empty: no such model directory/);
  mkdirSync(notModel, { recursive: true });
  const e4 = await t.throwsAsync(
    run(process.execPath, [bin, 'classify', '--model', notModel, '--prompts', join(work, 'p.json'), batch[0]]),
  );
  t.regex((e4 as { stderr?: string }).stderr ?? '', /empty\/config\.json: missing model file/);
});

const dicomFolderTitle =
  'a DICOM folder of mixed transfer syntaxes classifies in one command; ' +
  'lossless copies of one image score alike; bad files are skipped';
test(dicomFolderTitle, async (t) => {
  // test/fixtures/dicom (tools/fixtures-dicom.py): the same sources written by dcmtk/GDCM in every
  // transfer syntax, plus corrupt and hostile files (bad-*), and one colour file (refused).
  const dir = join(packageRoot, 'test', 'fixtures', 'dicom');
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as {
    cases: { name: string; file: string; ts: string; lossy: boolean; error?: string }[];
  };
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.dcm'))
    .map((f) => join(dir, f));
  let out: { stdout: string; stderr: string };
  try {
    out = await run(
      process.execPath,
      [
        bin,
        'classify',
        '--model',
        modelDir,
        '--prompts',
        join(tiny, 'text', 'prompts.json'),
        '--device',
        'cpu',
        '--quiet',
        ...files,
      ],
      { maxBuffer: 1 << 26 },
    );
  } catch (e) {
    throw new Error(`classify failed: ${(e as Error).message}\n${(e as { stderr?: string }).stderr ?? ''}`, {
      cause: e,
    });
  }
  const res = JSON.parse(out.stdout) as {
    images: string[];
    scores: number[][];
    skipped: { path?: string; image?: string; error: string }[];
  };
  const scored = new Map(res.images.map((p, i) => [p.split('/').pop()!, res.scores[i]]));
  const syntaxes = new Set<string>();
  for (const c of index.cases) {
    if (c.file.startsWith('bad-') || c.error) continue;
    if (c.file.startsWith('colour-')) continue;
    t.true(scored.has(c.file), `${c.file} (${c.ts}) was not scored`);
    syntaxes.add(c.ts);
  }
  t.true(syntaxes.size >= 13, `scored ${syntaxes.size} transfer syntaxes: ${[...syntaxes].join(' ')}`);
  for (const f of files.map((p) => p.split('/').pop()!).filter((f) => f.startsWith('bad-') || f.startsWith('colour-')))
    t.false(scored.has(f), `${f} should have been skipped`);
  t.true(res.skipped.length >= 13, `skipped ${res.skipped.length}`);
  // One source in every lossless syntax: identical pixels, identical scores.
  const group = [
    'u12-explicit.dcm',
    'u12-deflated.dcm',
    'u12-rle.dcm',
    'u12-j2k.dcm',
    'u12-jpls.dcm',
    'u12-jpsv1.dcm',
    'u12-jpll-sv2.dcm',
  ];
  const ref = scored.get(group[0])!;
  for (const f of group.slice(1)) t.deepEqual(scored.get(f), ref, f);
});

const framesAllTitle =
  '--frames all scores every frame of a multi-frame DICOM as <path>#<frame>; frame 0 is the default row; ' +
  'lossless copies agree frame by frame';
test(framesAllTitle, async (t) => {
  const dir = join(packageRoot, 'test', 'fixtures', 'dicom');
  const files = ['multi-explicit.dcm', 'multi-rle.dcm', 'u8-explicit.dcm'].map((f) => join(dir, f));
  const args = [
    bin,
    'classify',
    '--model',
    modelDir,
    '--prompts',
    join(tiny, 'text', 'prompts.json'),
    '--device',
    'cpu',
    '--quiet',
  ];
  const all = JSON.parse((await run(process.execPath, [...args, '--frames', 'all', ...files])).stdout) as {
    images: string[];
    scores: number[][];
  };
  const first = JSON.parse((await run(process.execPath, [...args, ...files])).stdout) as {
    images: string[];
    scores: number[][];
  };
  t.deepEqual(
    all.images,
    [0, 1, 2]
      .map((f) => `${files[0]}#${f}`)
      .concat(
        [0, 1, 2].map((f) => `${files[1]}#${f}`),
        [files[2]],
      ),
  );
  t.deepEqual(first.images, files);
  const row = (r: typeof all, name: string) => r.scores[r.images.indexOf(name)];
  t.deepEqual(row(all, `${files[0]}#0`), row(first, files[0]));
  t.notDeepEqual(row(all, `${files[0]}#0`), row(all, `${files[0]}#1`));
  for (const f of [0, 1, 2]) t.deepEqual(row(all, `${files[0]}#${f}`), row(all, `${files[1]}#${f}`), `frame ${f}`);
  const bad = (await t.throwsAsync(run(process.execPath, [...args, '--frames', 'some', ...files]))) as {
    code?: number;
    stderr?: string;
  };
  t.is(bad.code, 2);
  t.regex(bad.stderr ?? '', /frames/);
});

test('carzero embed --frames all: one embedding row per frame, named <path>#<frame>', async (t) => {
  const file = join(packageRoot, 'test', 'fixtures', 'dicom', 'multi-rle.dcm');
  const out = join(work, 'frames.json');
  await run(process.execPath, [
    bin,
    'embed',
    '--model',
    modelDir,
    '--images',
    '--frames',
    'all',
    '--quiet',
    '--out',
    out,
    file,
  ]);
  const e = JSON.parse(readFileSync(out, 'utf8')) as { images: string[]; shape: number[]; global: number[][] };
  t.deepEqual(
    e.images,
    [0, 1, 2].map((f) => `${file}#${f}`),
  );
  t.is(e.shape[0], 3);
  t.notDeepEqual(e.global[0], e.global[1]);
});
