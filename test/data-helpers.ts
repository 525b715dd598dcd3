// Shared by the data tests: a small MIMIC-style image tree for test/fixtures/data/mimic.csv,
// generated in a temporary folder (grey PNGs of varied sizes, one JPEG, one corrupt file, one
// missing file).
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';

const here = dirname(fileURLToPath(import.meta.url));
export const FIXTURE_CSV = join(here, 'fixtures', 'data', 'mimic.csv');

/** A grey PNG with a gradient, a bright square and a dark bar placed by `k`. */
export function greyPng(width: number, height: number, k: number): Buffer {
  const png = new PNG({ width, height });
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      let v = (40 + ((x * 3 + y * 2 + k * 17) % 160)) & 0xff;
      if (x > width / 4 + k && x < width / 4 + k + 12 && y > height / 3 && y < height / 3 + 12) v = 250;
      if (y > (height * 2) / 3 && y < (height * 2) / 3 + 5) v = 5;
      const o = (y * width + x) * 4;
      png.data[o] = png.data[o + 1] = png.data[o + 2] = v;
      png.data[o + 3] = 255;
    }
  return PNG.sync.write(png, { colorType: 0 });
}

let made: { root: string; csv: string } | undefined;

/** The image tree (made once per process). */
export function makeDataset(): { root: string; csv: string } {
  if (made) return made;
  const root = mkdtempSync(join(tmpdir(), 'carzero-data-'));
  const sizes: [number, number][] = [
    [120, 150],
    [160, 100],
    [140, 140],
    [90, 130],
  ];
  for (let i = 0; i < 25; i++) {
    const dir = join(root, 'files', 'p10', `s${String(i).padStart(2, '0')}`);
    mkdirSync(dir, { recursive: true });
    const [w, h] = sizes[i % sizes.length];
    writeFileSync(join(dir, `img${String(i).padStart(2, '0')}.png`), greyPng(w, h, i));
  }
  copyFileSync(join(here, 'fixtures', 'image', 'src', 'grey.jpg'), join(root, 'files', 'p10', 's10', 'img10.jpg'));
  // A PNG signature followed by garbage: detected as PNG, fails to decode.
  writeFileSync(
    join(root, 'files', 'p10', 's20', 'corrupt.png'),
    Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(64, 7)]),
  );
  // files/p10/s21/missing.png is never written.
  made = { root, csv: FIXTURE_CSV };
  return made;
}

/** Keys of the items that decode (all kept train items but the corrupt and the missing one). */
export const BAD_KEYS = ['files/p10/s20/corrupt.png', 'files/p10/s21/missing.png'];
