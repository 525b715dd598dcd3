// Image pipeline against OpenCV (Debian python3-opencv 4.6) outputs made by tools/fixtures-image.py,
// and against the reference engineer's fixtures (test/fixtures/tiny/) when they are present.
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  decodeImage,
  readImage,
  loadImage,
  preprocess,
  resizeArea,
  resizedSize,
  normaliseTable,
  ImageDecodeError,
  type GrayImage,
} from '../src/image/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const FIX = path.join(here, 'fixtures', 'image');
interface Case {
  name: string;
  file: string;
  kind: string;
  error?: string;
  width?: number;
  height?: number;
  decoded?: string;
  padded?: string;
}
const index = JSON.parse(readFileSync(path.join(FIX, 'index.json'), 'utf8')) as { cases: Case[] };

function decodeFile(rel: string): GrayImage {
  const f = path.join(FIX, rel);
  return decodeImage(readFileSync(f), { name: f });
}

function diff(a: Uint8Array, b: Uint8Array): { max: number; count: number } {
  let max = 0;
  let count = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (d) {
      count++;
      if (d > max) max = d;
    }
  }
  return { max, count };
}

for (const c of index.cases.filter((x) => !x.error)) {
  test(`decode + preprocess ${c.name} (${c.kind}) matches cv2`, (t) => {
    const img = decodeFile(c.file);
    const expDecoded = decodeFile(c.decoded!);
    t.is(img.width, c.width!);
    t.is(img.height, c.height!);
    const dd = diff(img.data, expDecoded.data);
    t.is(dd.count, 0, `decode differs from cv2.imread(path, 0) on ${dd.count} pixels (max ${dd.max})`);
    const pre = preprocess(img);
    const expPadded = decodeFile(c.padded!);
    const pd = diff(pre.padded, expPadded.data);
    t.is(pd.count, 0, `resize+pad differs from cv2 INTER_AREA on ${pd.count} pixels (max ${pd.max})`);
    // Normalised crop vs the expected padded image through torch's float32 formula.
    const lut = normaliseTable();
    let maxErr = 0;
    for (let y = 0; y < 224; y++)
      for (let x = 0; x < 224; x++) {
        const v = expPadded.data[(y + 16) * 256 + x + 16];
        const ref = (v / 255 - 0.4978) / 0.2449;
        maxErr = Math.max(maxErr, Math.abs(pre.pixels[y * 224 + x] - ref));
        if (lut[v] !== pre.pixels[y * 224 + x]) t.fail('pixels not from the table');
      }
    t.true(maxErr <= 1 / 255 / 0.2449 + 1e-6, `normalised max error ${maxErr}`);
    t.true(maxErr < 1e-6);
  });
}

for (const c of index.cases.filter((x) => x.error)) {
  test(`bad file ${c.name} gives an ImageDecodeError naming it`, async (t) => {
    const f = path.join(FIX, c.file);
    const e = await t.throwsAsync(readImage(f), { instanceOf: ImageDecodeError });
    t.true(e!.message.includes(f), e!.message);
    t.true(e!.message.includes(c.error!), e!.message);
    t.is((e as ImageDecodeError).file, f);
  });
}

test('missing file and non-buffer arguments', async (t) => {
  const f = path.join(FIX, 'src', 'does-not-exist.png');
  const e = await t.throwsAsync(loadImage(f), { instanceOf: ImageDecodeError });
  t.is((e as ImageDecodeError).code, 'CZ_ERR_IO');
  t.throws(() => decodeImage('x' as unknown as Uint8Array), { instanceOf: TypeError });
  t.throws(() => decodeImage(new Uint8Array(0), { name: 'zero.png' }), {
    instanceOf: ImageDecodeError,
    message: /zero\.png: empty/,
  });
});

test('format is found by magic bytes, not by the file name', (t) => {
  const png = readFileSync(path.join(FIX, 'src', 'grey8-landscape.png'));
  const img = decodeImage(png, { name: 'looks-like.jpg' });
  t.is(img.width, 300);
  const jpg = readFileSync(path.join(FIX, 'src', 'grey.jpg'));
  t.is(decodeImage(jpg, { name: 'x.dcm' }).height, 260);
});

test('resizeArea matches cv2 INTER_AREA exactly on the compact case set', (t) => {
  const b = readFileSync(path.join(FIX, 'resize.bin'));
  let o = 0;
  let cases = 0;
  let bad = 0;
  let maxd = 0;
  while (o < b.length) {
    const w = b.readUInt32LE(o),
      h = b.readUInt32LE(o + 4),
      dw = b.readUInt32LE(o + 8),
      dh = b.readUInt32LE(o + 12);
    o += 16;
    const src = new Uint8Array(b.subarray(o, o + w * h));
    o += w * h;
    const ref = b.subarray(o, o + dw * dh);
    o += dw * dh;
    const got = resizeArea(src, w, h, dw, dh);
    const d = diff(got, ref);
    if (d.count) {
      bad++;
      maxd = Math.max(maxd, d.max);
      t.log(`${w}x${h} -> ${dw}x${dh}: ${d.count} pixels differ, max ${d.max}`);
    }
    cases++;
  }
  t.true(cases >= 100);
  t.is(bad, 0, `max diff ${maxd}`);
  t.true(maxd <= 1);
});

test('resizedSize follows the original int(side * (256 / longer))', (t) => {
  t.deepEqual(resizedSize(300, 200), { width: 256, height: 170 });
  t.deepEqual(resizedSize(200, 300), { width: 170, height: 256 });
  t.deepEqual(resizedSize(100, 100), { width: 256, height: 256 });
  t.throws(() => resizeArea(new Uint8Array(4), 2, 2, 0, 1), { instanceOf: RangeError });
});

// Reference engineer's fixtures (test/fixtures/tiny/images/index.json), when present: cv2's decoded
// image, padded 256x256 and normalised 224x224 per image; the DICOM rule's expected 8-bit images.
const TINY = path.join(here, 'fixtures', 'tiny');
const TINY_INDEX = path.join(TINY, 'images', 'index.json');
interface RefBin {
  file: string;
}
interface RefImage {
  name: string;
  file: string;
  decoded?: RefBin;
  padded?: RefBin;
  normalized?: RefBin;
  expected_u8?: RefBin;
}
const tiny = existsSync(TINY_INDEX)
  ? (JSON.parse(readFileSync(TINY_INDEX, 'utf8')) as { images?: RefImage[]; dicom?: RefImage[] })
  : { images: [], dicom: [] };
for (const it of [...(tiny.images ?? []), ...(tiny.dicom ?? [])]) {
  test(`reference fixture ${it.name} (tools/reference)`, (t) => {
    const f = path.join(TINY, 'images', it.file);
    const img = decodeImage(readFileSync(f), { name: f });
    const dec = it.decoded ?? it.expected_u8;
    if (dec) {
      const d = diff(img.data, readFileSync(path.join(TINY, dec.file)));
      t.is(d.count, 0, `decode: ${d.count} pixels differ, max ${d.max}`);
    }
    const pre = preprocess(img);
    if (it.padded) {
      const d = diff(pre.padded, readFileSync(path.join(TINY, it.padded.file)));
      t.is(d.count, 0, `resize/pad: ${d.count} pixels differ, max ${d.max}`);
    }
    if (it.normalized) {
      const b = readFileSync(path.join(TINY, it.normalized.file));
      const ref = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
      let m = 0;
      for (let i = 0; i < ref.length; i++) m = Math.max(m, Math.abs(ref[i] - pre.pixels[i]));
      t.true(m <= 1 / 255 / 0.2449 + 1e-6, `normalised max diff ${m}`);
      t.is(m, 0, `normalised max diff ${m}`);
    }
  });
}
