// The C example (examples/c/classify.c) built as a user builds it, with a plain C compiler against
// native/include/carzero.h and libcarzero.so only, then run on the tiny golden fixtures: the model
// made by `carzero convert`, the normalised pixels of the 4 model-batch images and the tokenised
// prompts; its printed (B x Q) score matrix must match the PyTorch reference, and
// examples/c/prepare.mjs must write those same inputs from the images and prompts. Nothing skips:
// CI must prove the C ABI works from C.
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { packageRoot } from '../src/native.js';

const run = promisify(execFile);
const cli = join(packageRoot, 'dist', 'cli', 'main.js');
const tiny = join(packageRoot, 'test', 'fixtures', 'tiny');
const source = join(packageRoot, 'examples', 'c', 'classify.c');
const libCandidates = [
  join(packageRoot, 'build', 'Release', 'libcarzero.so'),
  join(packageRoot, 'prebuilds', 'linux-x64', 'libcarzero.so'),
];
const work = mkdtempSync(join(tmpdir(), 'carzero-capi-example-'));
const exe = join(work, 'classify');
const modelDir = join(work, 'model');
const batch = ['grey8_tall_quirk', 'grey16_tall', 'rgb_wide', 'colour']; // outputs/index.json order
const B = batch.length,
  Q = 14,
  HW = 224 * 224;
const text = (f: string) => join(tiny, 'text', f);

function f32(file: string): Float32Array {
  const b = readFileSync(join(tiny, file));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
const refScore = f32('outputs/score.f32'); // (4, 14)

type Failure = { code?: number; stdout?: string; stderr?: string; message?: string };
const describe = (e: unknown) => {
  const f = e as Failure;
  return `${f.message ?? e}\nexit ${f.code}\nstdout:\n${f.stdout ?? ''}\nstderr:\n${f.stderr ?? ''}`;
};

/** Runs the example; returns stdout and stderr, or throws with everything it printed. */
async function classify(args: string[]): Promise<{ stdout: string; stderr: string }> {
  try {
    return await run(exe, args);
  } catch (e) {
    throw new Error(`examples/c/classify ${args.join(' ')} failed: ${describe(e)}`, { cause: e });
  }
}

function parseMatrix(stdout: string): number[][] {
  return stdout
    .trim()
    .split('\n')
    .map((line) => line.trim().split(/\s+/).map(Number));
}

/** Worst |got - ref| / (1e-5 + 1e-4 |ref|): <= 1 means within tolerance everywhere. */
function worst(got: number[][], ref: Float32Array): number {
  let w = 0;
  got.forEach((row, b) =>
    row.forEach((v, q) => (w = Math.max(w, Math.abs(v - ref[b * Q + q]) / (1e-5 + 1e-4 * Math.abs(ref[b * Q + q]))))),
  );
  return w;
}

const args = (pixels: string) => [
  modelDir,
  pixels,
  String(B),
  text('ids.i32'),
  text('mask.u8'),
  text('kinds.u8'),
  String(Q),
];

test.before(async () => {
  const lib = libCandidates.find((p) => existsSync(p));
  if (!lib)
    throw new Error(
      `libcarzero.so not found (looked in ${libCandidates.join(', ')}); build with \`npm run build:native\``,
    );
  if (!existsSync(cli)) throw new Error(`${cli} missing: run \`npm run build:ts\``);
  // The build line of examples/c/README.md: C99, warnings as errors, public header + .so only.
  const cc = process.env.CC || 'cc';
  const libDir = dirname(lib);
  const ccArgs = [
    '-std=c99',
    '-Wall',
    '-Wextra',
    '-Wpedantic',
    '-Werror',
    '-O2',
    '-I',
    join(packageRoot, 'native', 'include'),
    source,
    '-o',
    exe,
    '-L',
    libDir,
    '-lcarzero',
    `-Wl,-rpath,${libDir}`,
  ];
  try {
    await run(cc, ccArgs);
  } catch (e) {
    throw new Error(`cannot build the C example: ${cc} ${ccArgs.join(' ')}\n${describe(e)}`, { cause: e });
  }
  const cfg = JSON.parse(readFileSync(join(tiny, 'config.json'), 'utf8'));
  await run(process.execPath, [
    cli,
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
  // (B, 1, 224, 224): the 4 one-channel normalised images, one after the other.
  const pixels = Buffer.concat(batch.map((n) => readFileSync(join(tiny, 'images', 'ref', `${n}.x224.f32`))));
  if (pixels.length !== B * HW * 4) throw new Error(`pixel fixtures: ${pixels.length} bytes, expected ${B * HW * 4}`);
  writeFileSync(join(work, 'pixels1.f32'), pixels);
  // (B, 3, 224, 224): each image repeated into 3 channels, as the reference fed it.
  writeFileSync(
    join(work, 'pixels3.f32'),
    Buffer.concat(
      batch.flatMap((_, b) => {
        const img = pixels.subarray(b * HW * 4, (b + 1) * HW * 4);
        return [img, img, img];
      }),
    ),
  );
});
test.after.always(() => rmSync(work, { recursive: true, force: true }));

test('the C example prints the reference (B x Q) scores and reports the deliberate bad call', async (t) => {
  const { stdout, stderr } = await classify(args(join(work, 'pixels1.f32')));
  const got = parseMatrix(stdout);
  t.is(got.length, B, stdout);
  for (const row of got) {
    t.is(row.length, Q, stdout);
    t.true(row.every(Number.isFinite), stdout);
  }
  const w = worst(got, refScore);
  t.log(`worst error / (1e-5 + 1e-4 |ref|) = ${w.toFixed(3)}`);
  t.true(w <= 1, `scores differ from the reference beyond 1e-5 + 1e-4 |ref| (worst ratio ${w})\n${stdout}`);
  // The deliberate bad call (ids passed as pixels) failed with a status and a message naming it.
  t.regex(stderr, /^deliberate bad call: cz_model_embed_images\(ids as pixels\) -> invalid_argument: .*'pixels'.+$/m);
  t.regex(stderr, /^carzero \d+\.\d+\.\d+/m);
});

test('three-channel pixels give the same scores', async (t) => {
  const { stdout } = await classify(args(join(work, 'pixels3.f32')));
  t.true(worst(parseMatrix(stdout), refScore) <= 1, stdout);
});

test('examples/c/prepare.mjs writes the fixture inputs byte for byte from the images and prompts', async (t) => {
  const dir = join(work, 'prepared');
  mkdirSync(dir);
  const images = ['grey8_tall_quirk.png', 'grey16_tall.png', 'rgb_wide.png', 'colour.jpg'].map((f) =>
    join(tiny, 'images', f),
  );
  const { stdout } = await run(
    process.execPath,
    [join(packageRoot, 'examples', 'c', 'prepare.mjs'), modelDir, text('prompts.json'), ...images],
    { cwd: dir },
  );
  t.is(stdout.trim(), `${B} ${Q}`);
  t.true(readFileSync(join(dir, 'pixels.f32')).equals(readFileSync(join(work, 'pixels1.f32'))), 'pixels.f32');
  for (const f of ['ids.i32', 'mask.u8', 'kinds.u8'])
    t.true(readFileSync(join(dir, f)).equals(readFileSync(text(f))), f);
});

test('errors: a failing carzero call exits 1 with its status and message; bad usage exits 2', async (t) => {
  const missing = join(work, 'no-such-model');
  const e1 = (await t.throwsAsync(run(exe, [missing, ...args(join(work, 'pixels1.f32')).slice(1)]))) as Failure;
  t.is(e1.code, 1);
  t.is(e1.stdout, '');
  t.regex(e1.stderr ?? '', /^classify: cz_model_load failed \(io\): .*no-such-model/m);
  const e2 = (await t.throwsAsync(run(exe, [...args(join(work, 'pixels1.f32')), 'fp8']))) as Failure;
  t.is(e2.code, 1);
  t.regex(e2.stderr ?? '', /^classify: cz_model_load failed \(invalid_argument\): .*fp8/m);
  const e3 = (await t.throwsAsync(
    run(exe, [modelDir, join(work, 'pixels1.f32'), '3', text('ids.i32'), text('mask.u8'), text('kinds.u8'), String(Q)]),
  )) as Failure;
  t.is(e3.code, 1);
  t.regex(e3.stderr ?? '', /pixels1\.f32 has \d+ bytes/);
  const e4 = (await t.throwsAsync(run(exe, [modelDir]))) as Failure;
  t.is(e4.code, 2);
  t.regex(e4.stderr ?? '', /^usage: classify/m);
});

const classifyFilesTitle =
  'examples/c/classify_files: image files + prompt embeddings from `carzero embed --texts` give ' +
  "carzero classify's scores (1e-6), a corrupt file is skipped";
test(classifyFilesTitle, async (t) => {
  const exe2 = join(work, 'classify_files');
  const lib = libCandidates.find((p) => existsSync(p))!;
  const libDir = dirname(lib);
  await run(process.env.CC || 'cc', [
    '-std=c99',
    '-Wall',
    '-Wextra',
    '-Wpedantic',
    '-Werror',
    '-O2',
    '-I',
    join(packageRoot, 'native', 'include'),
    join(packageRoot, 'examples', 'c', 'classify_files.c'),
    '-o',
    exe2,
    '-L',
    libDir,
    '-lcarzero',
    `-Wl,-rpath,${libDir}`,
  ]);
  const prompts = text('prompts.json');
  const emb = join(work, 'prompts.safetensors');
  await run(process.execPath, [cli, 'embed', '--model', modelDir, '--texts', '--out', emb, prompts]);
  const imgDir = join(tiny, 'images');
  const images = readdirSync(imgDir)
    .filter((f) => /\.(png|jpg|dcm)$/.test(f))
    .map((f) => join(imgDir, f));
  const corrupt = join(packageRoot, 'test', 'fixtures', 'image', 'src', 'truncated.png');
  let c: { stdout: string; stderr: string };
  try {
    c = await run(exe2, [modelDir, emb, '--threads', '2', ...images, corrupt]);
  } catch (e) {
    throw new Error(`classify_files failed: ${describe(e)}`, { cause: e });
  }
  const fromC = new Map(
    c.stdout
      .trim()
      .split('\n')
      .map((line) => {
        const [file, rest] = line.split('\t');
        return [file, rest.split(' ').map(Number)] as const;
      }),
  );
  t.regex(c.stderr, /^skipped .*truncated\.png: .+/m);
  t.false(fromC.has(corrupt));
  const { stdout } = await run(process.execPath, [
    cli,
    'classify',
    '--model',
    modelDir,
    '--prompts',
    prompts,
    '--format',
    'json',
    '--quiet',
    ...images,
  ]);
  const js = JSON.parse(stdout) as { images: string[]; scores: number[][] };
  let compared = 0;
  let worstAbs = 0;
  js.images.forEach((file, i) => {
    const row = fromC.get(file);
    if (!row) return;
    t.is(row.length, js.scores[i].length, file);
    row.forEach((v, q) => (worstAbs = Math.max(worstAbs, Math.abs(v - js.scores[i][q]))));
    compared++;
  });
  // Every PNG and JPEG is decoded natively by both; a DICOM syntax the native reader lacks is
  // skipped by C (the CLI decodes it in JavaScript), so only the images both scored are compared.
  const raster = images.filter((f) => !f.endsWith('.dcm')).length;
  t.true(compared >= raster, `compared ${compared} images, expected at least the ${raster} PNG/JPEG files`);
  t.log(`classify_files vs carzero classify: ${compared} images, worst |d| = ${worstAbs}`);
  t.true(worstAbs <= 1e-6, `worst |score difference| ${worstAbs}`);
});
