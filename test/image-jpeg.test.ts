// Our JPEG decoder (src/image/jpeg-decoder.ts) on cases the main image fixtures do not reach:
// restart intervals, a marker inside scan data, a luma component sampled below the frame maximum
// (libjpeg's fancy upsampling), and refusals (truncated, arithmetic-coded, 12-bit). Expected images
// are cv2.imread(path, IMREAD_GRAYSCALE) from test/fixtures/image/jpeg-extra/make.py.
import test from 'ava';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeImage, ImageDecodeError } from '../src/image/index.js';
import { decodeJpegLuma, JpegError } from '../src/image/jpeg-decoder.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const DIR = path.join(here, 'fixtures', 'image', 'jpeg-extra');
const read = (name: string) => readFileSync(path.join(DIR, name));

for (const f of readdirSync(DIR).filter((n) => n.endsWith('.jpg'))) {
  test(`${f} decodes exactly as cv2`, (t) => {
    const got = decodeImage(read(f), { name: f });
    const exp = decodeImage(read(f.replace(/\.jpg$/, '.png')), { name: f });
    t.is(got.width, exp.width);
    t.is(got.height, exp.height);
    let n = 0;
    for (let i = 0; i < got.data.length; i++) if (got.data[i] !== exp.data[i]) n++;
    t.is(n, 0, `${n} pixels differ`);
  });
}

test('restart markers are present in the restart fixture', (t) => {
  const d = read('grey-rst2.jpg');
  let rst = 0;
  for (let i = 0; i + 1 < d.length; i++) if (d[i] === 0xff && d[i + 1] >= 0xd0 && d[i + 1] <= 0xd7) rst++;
  t.true(rst > 10);
});

/** Offset of the first marker `code` (its 0xFF) in a file. */
function markerAt(d: Uint8Array, code: number): number {
  for (let i = 2; i + 1 < d.length; i++) if (d[i] === 0xff && d[i + 1] === code) return i;
  return -1;
}

test('a file cut inside its scan data is an error naming the problem and the file', (t) => {
  const d = read('grey-rst2.jpg');
  const cut = d.subarray(0, Math.floor(d.length * 0.6));
  const e = t.throws(() => decodeImage(cut, { name: 'cut.jpg' }), { instanceOf: ImageDecodeError });
  t.regex(
    e!.message,
    /^cut\.jpg: invalid JPEG \(truncated JPEG data: scan of component\(s\) 1 ends at MCU \d+ of \d+\)$/,
  );
  t.is((e as ImageDecodeError).code, 'CZ_ERR_FORMAT');
  const header = d.subarray(0, markerAt(d, 0xc4) + 10);
  t.throws(() => decodeJpegLuma(header), {
    instanceOf: JpegError,
    message: /truncated JPEG data: ends inside the DHT marker segment/,
  });
});

test('arithmetic coding, 12-bit samples and lossless are refused as unsupported', (t) => {
  const d = read('grey-rst2.jpg');
  const sof = markerAt(d, 0xc0);
  const arith = new Uint8Array(d);
  arith[sof + 1] = 0xc9;
  const e1 = t.throws(() => decodeImage(arith, { name: 'a.jpg' }), { instanceOf: ImageDecodeError });
  t.is(e1!.message, 'a.jpg: arithmetic-coded JPEG (SOF9) is not supported');
  t.is((e1 as ImageDecodeError).code, 'CZ_ERR_UNSUPPORTED');
  const p12 = new Uint8Array(d);
  p12[sof + 1] = 0xc1;
  p12[sof + 4] = 12;
  const e2 = t.throws(() => decodeImage(p12, { name: 'b.jpg' }), { instanceOf: ImageDecodeError });
  t.is(e2!.message, 'b.jpg: 12-bit JPEG is not supported (8-bit samples only)');
  const lossless = new Uint8Array(d);
  lossless[sof + 1] = 0xc3;
  t.throws(() => decodeJpegLuma(lossless), { instanceOf: JpegError, message: /lossless JPEG \(SOF3\)/ });
});

test('CMYK and damaged headers', (t) => {
  // A 4-component SOF: refused before any scan, with the message the project has always used.
  const sof = Uint8Array.from([
    0xff, 0xd8, 0xff, 0xc0, 0, 20, 8, 0, 8, 0, 8, 4, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0, 4, 0x11, 0,
  ]);
  const e = t.throws(() => decodeImage(sof, { name: 'k.jpg' }), { instanceOf: ImageDecodeError });
  t.is(e!.message, 'k.jpg: CMYK/YCCK JPEG is not supported');
  t.throws(() => decodeJpegLuma(Uint8Array.from([0xff, 0xd8, 0xff, 0xd9])), { message: /no image data/ });
  t.throws(() => decodeJpegLuma(Uint8Array.from([0xff, 0xd8, 0xff, 0xda, 0, 8, 1, 1, 0, 0, 63, 0])), {
    message: /SOS marker before the frame header/,
  });
  t.throws(() => decodeJpegLuma(Uint8Array.from([0xff, 0xd8, 0xff, 0xf3, 0, 2])), {
    message: /unsupported JPEG marker 0xF3/,
  });
});

test('garbage after a complete single-scan image is ignored, as by libjpeg + OpenCV', (t) => {
  const d = read('grey-rst2.jpg');
  const eoi = d.length - 2;
  const tail = Buffer.concat([d.subarray(0, eoi), Buffer.from([0xff, 0xfe, 0x40, 0x00, 1, 2, 3])]);
  const a = decodeJpegLuma(d);
  const b = decodeJpegLuma(tail);
  t.deepEqual(b.data, a.data);
});
