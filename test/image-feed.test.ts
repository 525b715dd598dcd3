// The image feed (src/image/feed.ts over the native decode pool): same results as the JavaScript
// path, per-file errors with the file's name and the right code, limits before allocation, and
// decode threads that survive worker_threads being terminated mid-run.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { ImageFeed } from '../src/image/feed.js';
import { ImageDecodeError } from '../src/image/index.js';
import { info } from '../src/info.js';
import { packageRoot } from '../src/native.js';
import { crc32 } from 'node:zlib';
import { greyPng } from './png-helpers.js';

const FIX = join(packageRoot, 'test', 'fixtures');
const tinyImages = [
  'grey8_tall_quirk.png',
  'grey16_tall.png',
  'rgb_wide.png',
  'colour.jpg',
  'grey.jpg',
  'mono1_u16_minmax.dcm',
  'mono1_s16_window_slope.dcm',
].map((f) => join(FIX, 'tiny', 'images', f));
const native = info().images.png && info().images.jpeg;

(native ? test : test.skip)(
  'native and JavaScript feeds give identical crops, padded images and sizes (paths and buffers)',
  async (t) => {
    using nat = new ImageFeed({ decoder: 'native', threads: 2 });
    using js = new ImageFeed({ decoder: 'js' });
    t.is(nat.decoder, 'native');
    t.is(js.decoder, 'js');
    for (const f of tinyImages) {
      const a = await nat.load(f, { output: 'both' });
      const b = await js.load(f, { output: 'both' });
      const c = await nat.load(readFileSync(f), { output: 'both' }, f);
      t.deepEqual([a.width, a.height, a.resized], [b.width, b.height, b.resized], f);
      t.true(Buffer.from(a.padded!).equals(Buffer.from(b.padded!)), `${f}: padded`);
      t.deepEqual(a.pixels, b.pixels, `${f}: pixels`);
      t.deepEqual(a.pixels, c.pixels, `${f}: from a buffer`);
    }
  },
);

test('per-file errors name the file and carry a code', async (t) => {
  using feed = new ImageFeed({ threads: 1 });
  const missing = join(FIX, 'no-such-image.png');
  const e1 = await t.throwsAsync(feed.load(missing), { instanceOf: ImageDecodeError });
  t.is(e1.code, 'CZ_ERR_IO');
  t.true(e1.message.startsWith(missing), e1.message);
  const trunc = join(FIX, 'image', 'src', 'truncated.png');
  const e2 = await t.throwsAsync(feed.load(trunc), { instanceOf: ImageDecodeError });
  t.is(e2.code, 'CZ_ERR_FORMAT');
  t.true(e2.message.includes('truncated.png'), e2.message);
  const e3 = await t.throwsAsync(feed.load(Buffer.from('not an image at all'), {}, 'note.txt'), {
    instanceOf: ImageDecodeError,
  });
  t.regex(e3.message, /^note\.txt: /);
  // The feed goes on after errors.
  const ok = await feed.load(tinyImages[0]);
  t.is(ok.pixels!.length, 224 * 224);
});

(native ? test : test.skip)(
  'an image that declares a huge size is refused from its header; an extreme aspect ratio is a per-file error',
  async (t) => {
    using feed = new ImageFeed({ decoder: 'native', threads: 1 });
    const before = process.memoryUsage().rss;
    const e = await t.throwsAsync(feed.load(greyPng(30000, 30000), {}, 'bomb.png'), { instanceOf: ImageDecodeError });
    t.is(e.code, 'CZ_ERR_OUT_OF_MEMORY');
    t.regex(e.message, /30000 x 30000/);
    t.true(process.memoryUsage().rss - before < 256 << 20, 'no large allocation');
    const e2 = await t.throwsAsync(feed.load(greyPng(65000, 40), {}, 'strip.png'), { instanceOf: ImageDecodeError });
    t.regex(e2.message, /strip\.png: .*resizes to 256x0/);
  },
);

test('options are checked', (t) => {
  t.throws(() => new ImageFeed({ threads: 0 }), { instanceOf: RangeError, message: /'threads'/ });
  t.throws(() => new ImageFeed({ decoder: 'gpu' as 'js' }), { instanceOf: TypeError, message: /'decoder'/ });
});

(native ? test : test.skip)(
  'decode pools in worker threads: two at once, one terminated mid-run, 20 times; no crash, the main feed still works',
  async (t) => {
    const feedJs = join(packageRoot, 'dist', 'image', 'feed.js');
    const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    import(workerData.feed).then(async ({ ImageFeed }) => {
      const feed = new ImageFeed({ threads: 2 });
      parentPort.postMessage('ready');
      for (let round = 0; ; round++) {
        await Promise.all(workerData.files.map((f) => feed.load(f)));
        parentPort.postMessage(round);
      }
    });`;
    for (let i = 0; i < 20; i++) {
      const ws = [0, 1].map(() => new Worker(code, { eval: true, workerData: { feed: feedJs, files: tinyImages } }));
      // wait until both decoded something, then terminate one mid-run and let the other finish a round
      await Promise.all(
        ws.map(
          (w) =>
            new Promise<void>((res, rej) => {
              w.on('error', rej);
              w.on('message', (m) => typeof m === 'number' && res());
            }),
        ),
      );
      await ws[0].terminate();
      await new Promise<void>((res) => ws[1].once('message', () => res()));
      await ws[1].terminate();
    }
    using feed = new ImageFeed({ threads: 1 });
    t.is((await feed.load(tinyImages[0])).pixels!.length, 224 * 224);
  },
);

(native ? test : test.skip)(
  'a PNG eXIf orientation is applied as cv2.imread applies it, by both decoders alike',
  async (t) => {
    const src = readFileSync(join(FIX, 'image', 'src', 'grey8-landscape.png')); // 300 x 200
    // eXIf: a little-endian TIFF block with one IFD entry, Orientation (0x0112) = 6 (rotate 90 cw)
    const tiff = Buffer.from([
      0x49, 0x49, 0x2a, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0,
    ]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(tiff.length);
    const td = Buffer.concat([Buffer.from('eXIf', 'latin1'), tiff]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    const at = 8 + 25; // after the signature and IHDR
    const png = Buffer.concat([src.subarray(0, at), len, td, crc, src.subarray(at)]);
    using nat = new ImageFeed({ decoder: 'native', threads: 1 });
    using js = new ImageFeed({ decoder: 'js' });
    const a = await nat.load(png, { output: 'both' }, 'exif6.png');
    const b = await js.load(png, { output: 'both' }, 'exif6.png');
    t.deepEqual([a.width, a.height], [200, 300]);
    t.deepEqual([b.width, b.height], [200, 300]);
    t.true(Buffer.from(a.padded!).equals(Buffer.from(b.padded!)));
  },
);

test('JavaScript path: an extreme aspect ratio is a per-file ImageDecodeError too', async (t) => {
  using js = new ImageFeed({ decoder: 'js' });
  const e = await t.throwsAsync(js.load(greyPng(65000, 40), {}, 'strip.png'), { instanceOf: ImageDecodeError });
  t.is(e.code, 'CZ_ERR_FORMAT');
  t.regex(e.message, /^strip\.png: a 65000x40 image resizes to 256x0/);
});
