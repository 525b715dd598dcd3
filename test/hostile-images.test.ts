// Decompression bombs and huge declared sizes (issue 17, class 3), in the JavaScript decoders (the
// fallback of a build without the native codecs) as in the native ones: refused from the header,
// before pixels are allocated or data inflated past what the header declares; the limit is an
// option (maxPixels) and an environment variable (CARZERO_MAX_PIXELS); and a batch with bombs
// among good images reports and skips them, scores the rest, and stays under 1 GB.
import test from 'ava';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ImageFeed } from '../src/image/feed.js';
import { ImageDecodeError, decodeImage } from '../src/image/index.js';
import { info } from '../src/info.js';
import { packageRoot } from '../src/native.js';
import { greyPng } from './png-helpers.js';
import { batch, bin, promptsFile, tinyModel } from './zeroshot-helpers.js';

const run = promisify(execFile);
const FIX = join(packageRoot, 'test', 'fixtures');
const nativeCodecs = info().images.png && info().images.dicom;
const decoders = (nativeCodecs ? ['js', 'native'] : ['js']) as ('js' | 'native')[];
const work = await mkdtemp(join(tmpdir(), 'carzero-bombs-'));
test.after.always(() => rm(work, { recursive: true, force: true }));

const bombs: [string, () => Buffer, RegExp][] = [
  ['bomb-30000.png', () => greyPng(30000, 30000, false), /30000 ?x ?30000/],
  ['bad-deflate-bomb.dcm', () => readFileSync(join(FIX, 'dicom', 'bad-deflate-bomb.dcm')), /inflates past|declares/],
  ['bad-huge-explicit.dcm', () => readFileSync(join(FIX, 'dicom', 'bad-huge-explicit.dcm')), /declares|limit/],
];

for (const decoder of decoders)
  for (const [name, make, re] of bombs)
    test(`${decoder} decoder: ${name} is refused before a large allocation`, async (t) => {
      using feed = new ImageFeed({ decoder, threads: 1 });
      const bytes = make();
      const before = process.memoryUsage().rss;
      const e = await t.throwsAsync(feed.load(bytes, {}, name), { instanceOf: ImageDecodeError });
      t.is(e.code, 'CZ_ERR_OUT_OF_MEMORY', e.message);
      t.regex(e.message, new RegExp(`^${name.replace('.', '\\.')}: `));
      t.regex(e.message, re);
      t.true(
        process.memoryUsage().rss - before < 256 << 20,
        `RSS grew by ${(process.memoryUsage().rss - before) >> 20} MiB`,
      );
    });

// A 64 x 64 interlaced header over 1 GiB of zeros (1 MB deflated). pngjs caps the inflate of a
// non-interlaced image only, so the JavaScript decoder checks interlaced ones itself and refuses
// this; libpng inflates only the rows it needs and decodes the image (as cv2.imread does). Either
// way, nothing near 1 GiB is allocated.
const interlacedBombTitle = (decoder: string) =>
  `${decoder} decoder: an interlaced PNG over a deflate bomb is refused or decoded, never inflated whole`;
for (const decoder of decoders)
  test(interlacedBombTitle(decoder), async (t) => {
    using feed = new ImageFeed({ decoder, threads: 1 });
    const bytes = greyPng(64, 64, true, { interlaced: true, idatBytes: 1 << 30 });
    t.true(bytes.length < 2 << 20);
    const before = process.memoryUsage().rss;
    const r = await feed.load(bytes, {}, 'interlaced-bomb.png').then(
      (img) => `decoded ${img.width}x${img.height}`,
      (e: ImageDecodeError) => `${e.code}: ${e.message}`,
    );
    t.log(`${decoder}: ${r.slice(0, 160)}`);
    if (decoder === 'js')
      t.regex(r, /^CZ_ERR_OUT_OF_MEMORY: interlaced-bomb\.png: interlaced PNG data inflates past the \d+ bytes/);
    else t.regex(r, /^decoded 64x64|^CZ_ERR_(FORMAT|OUT_OF_MEMORY): interlaced-bomb\.png/);
    t.true(
      process.memoryUsage().rss - before < 256 << 20,
      `RSS grew by ${(process.memoryUsage().rss - before) >> 20} MiB`,
    );
  });

for (const decoder of decoders)
  test(`${decoder} decoder: the maxPixels option`, async (t) => {
    const img = greyPng(100, 100);
    using small = new ImageFeed({ decoder, threads: 1, maxPixels: 9999 });
    const e = await t.throwsAsync(small.load(img, {}, 'p100.png'), { instanceOf: ImageDecodeError });
    t.is(e.code, 'CZ_ERR_OUT_OF_MEMORY');
    t.regex(e.message, /p100\.png: .*10000 pixels|100 ?x ?100/);
    using enough = new ImageFeed({ decoder, threads: 1, maxPixels: 10000 });
    t.is((await enough.load(img, {}, 'p100.png')).width, 100);
  });

test.serial('CARZERO_MAX_PIXELS sets the default limit; a bad value names the variable', (t) => {
  const saved = process.env.CARZERO_MAX_PIXELS;
  try {
    process.env.CARZERO_MAX_PIXELS = '5000';
    t.is(new ImageFeed({ decoder: 'js' }).maxPixels, 5000);
    const e = t.throws(() => decodeImage(greyPng(100, 100), { name: 'env.png' }), { instanceOf: ImageDecodeError });
    t.regex(e.message, /env\.png: .*over the limit of 5000/);
    process.env.CARZERO_MAX_PIXELS = 'lots';
    t.throws(() => new ImageFeed({ decoder: 'js' }), { instanceOf: RangeError, message: /CARZERO_MAX_PIXELS/ });
    t.throws(() => new ImageFeed({ decoder: 'js', maxPixels: 0.5 }), {
      instanceOf: RangeError,
      message: /'maxPixels'/,
    });
  } finally {
    if (saved === undefined) delete process.env.CARZERO_MAX_PIXELS;
    else process.env.CARZERO_MAX_PIXELS = saved;
  }
});

const bombBatchTitle = (decoder: string) =>
  `${decoder} decoders (CARZERO_DECODER): a batch with bombs among good images: ` +
  'the bombs are reported and skipped, the good ones scored, peak memory under 1 GB';
for (const decoder of decoders)
  test(bombBatchTitle(decoder), async (t) => {
    const { dir } = await tinyModel();
    const files = bombs.map(([name, make]) => {
      const f = join(work, `${decoder}-${name}`);
      writeFileSync(f, make());
      return f;
    });
    const inputs = [batch[0]!, files[0]!, batch[1]!, files[1]!, batch[2]!, files[2]!, batch[3]!];
    // The child's peak RSS, printed on exit: VmHWM of its own address space (getrusage's maxRSS
    // would include the parent's RSS at fork time, which Linux carries across exec).
    const probe = join(work, `maxrss-${decoder}.mjs`);
    writeFileSync(
      probe,
      "import { readFileSync } from 'node:fs';\n" +
        "process.on('exit', () => process.stderr.write(" +
        "`maxrss-kb ${/VmHWM:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]}\\n`));\n",
    );
    const env = { ...process.env, CARZERO_DECODER: decoder };
    const out = await run(
      process.execPath,
      [
        '--import',
        probe,
        bin,
        'classify',
        '--model',
        dir,
        '--prompts',
        promptsFile,
        '--format',
        'csv',
        '--quiet',
        ...inputs,
      ],
      { maxBuffer: 1 << 24, env },
    ).catch((e: { stdout: string; stderr: string; code: number }) => e);
    const rows = out.stdout.trim().split('\n');
    t.is(rows.length, 1 + batch.length, out.stderr);
    for (const b of batch)
      t.true(
        rows.some((r) => r.startsWith(`${b},`)),
        `${b} scored`,
      );
    for (const f of files) t.regex(out.stderr, new RegExp(`skipped ${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
    const kb = Number(/maxrss-kb (\d+)/.exec(out.stderr)?.[1]);
    t.log(`${decoder}: peak RSS of the classify process: ${(kb / 1024).toFixed(0)} MiB`);
    t.true(kb > 0 && kb < 1 << 20, `peak RSS ${kb} kB`);
  });
