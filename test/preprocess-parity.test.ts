// Randomized parity of the whole input pipeline (decode + resize + pad + crop + normalise) against
// the original's, run by OpenCV and torch: fixtures from tools/fixtures-preprocess.py (>= 200 files
// whose sizes hit the layout's edge cases: short sides that map to 255 or 1, squares, both
// orientations, odd pads; 8/16-bit and colour PNG, grey/colour baseline and progressive JPEG).
// Each preprocessing implementation the package has is held to it bit for bit.
import test from 'ava';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import { loadImage, padLayout, resizeAndPad, resizedSize, type PadLayout } from '../src/image/index.js';
import { centreCropOffset } from '../src/image/preprocess.js';
import { ImageFeed } from '../src/image/feed.js';
import { info } from '../src/info.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const FIX = path.join(here, 'fixtures', 'preprocess');

interface Case {
  file: string;
  format: string;
  width: number;
  height: number;
  why: string;
  resized: PadLayout;
}
interface Index {
  scale: number;
  crop: number;
  normalise: { mean: number; std: number; table: number[] };
  cases: Case[];
}
const index = JSON.parse(readFileSync(path.join(FIX, 'index.json'), 'utf8')) as Index;
const SCALE = index.scale;
const CROP = index.crop;
const OFF = Math.round((SCALE - CROP) / 2);

/** The reference 224 x 224 uint8 inputs, stacked in index order in one grey PNG. */
function referenceCrops(): Uint8Array[] {
  const png = PNG.sync.read(readFileSync(path.join(FIX, 'expect.png')));
  if (png.width !== CROP || png.height !== CROP * index.cases.length)
    throw new Error(`expect.png is ${png.width}x${png.height}`);
  const crops: Uint8Array[] = [];
  for (let k = 0; k < index.cases.length; k++) {
    const c = new Uint8Array(CROP * CROP);
    for (let i = 0; i < c.length; i++) c[i] = png.data[(k * CROP * CROP + i) * 4]; // pngjs expands grey to RGBA
    crops.push(c);
  }
  return crops;
}

/** One preprocessing implementation: file -> the crop's grey levels, the normalised crop, the layout. */
interface Implementation {
  name: string;
  run(file: string): Promise<{ crop: Uint8Array; pixels: Float32Array; layout: PadLayout }>;
}

/** The crop's grey levels from the padded square. */
function cropOf(padded: Uint8Array): Uint8Array {
  const crop = new Uint8Array(CROP * CROP);
  for (let y = 0; y < CROP; y++)
    crop.set(padded.subarray((OFF + y) * SCALE + OFF, (OFF + y) * SCALE + OFF + CROP), y * CROP);
  return crop;
}

// The native feed (libpng, libjpeg-turbo, native INTER_AREA) when this binary has the codecs. CI
// sets CARZERO_REQUIRE_NATIVE_CODECS=1, so there a binary without them fails instead of skipping.
const images = info().images;
const nativeCodecs = images.png && images.jpeg;
const requireNative = process.env.CARZERO_REQUIRE_NATIVE_CODECS === '1';

const implementations: Implementation[] = [
  {
    name: 'TypeScript (loadImage)',
    async run(file) {
      const r = await loadImage(file);
      return { crop: cropOf(r.padded), pixels: r.pixels, layout: r.resized };
    },
  },
];
if (nativeCodecs) {
  const feed = new ImageFeed({ decoder: 'native', threads: 2 });
  implementations.push({
    name: `native feed (${images.versions})`,
    async run(file) {
      const r = await feed.load(file, { output: 'both' });
      return { crop: cropOf(r.padded!), pixels: r.pixels!, layout: r.resized };
    },
  });
} else if (requireNative) {
  test('the native codecs are in this binary (CARZERO_REQUIRE_NATIVE_CODECS=1)', (t) =>
    t.fail(`carzero info: ${JSON.stringify(images)}`));
} else {
  test.skip('native feed: not in this binary (no codec libraries were found at build time)', () => {});
}

test('the fixture set covers the layout edge cases', (t) => {
  t.true(index.cases.length >= 200);
  const has = (f: (c: Case) => boolean) => index.cases.some(f);
  t.true(
    has((c) => c.width === c.height && c.resized.width === 255),
    'a square whose short side maps to 255',
  );
  t.true(
    has((c) => c.width < c.height && c.resized.width === 255) &&
      has((c) => c.width > c.height && c.resized.height === 255),
  );
  t.true(
    has((c) => c.width < c.height && c.resized.width === 1) && has((c) => c.width > c.height && c.resized.height === 1),
  );
  for (const f of ['png8', 'png16', 'png-rgb', 'jpg-grey', 'jpg-420', 'jpg-444', 'jpg-grey-prog', 'jpg-colour-prog'])
    t.true(
      has((c) => c.format === f),
      f,
    );
  t.is(index.normalise.table.length, 256);
});

for (const impl of implementations) {
  test(`${impl.name}: every fixture's 224 x 224 input equals the original's bit for bit`, async (t) => {
    const refs = referenceCrops();
    const table = Float32Array.from(index.normalise.table);
    const bad: string[] = [];
    for (let k = 0; k < index.cases.length; k++) {
      const c = index.cases[k];
      const r = await impl.run(path.join(FIX, c.file));
      const problems: string[] = [];
      if (JSON.stringify(r.layout) !== JSON.stringify(c.resized))
        problems.push(`layout ${JSON.stringify(r.layout)} != ${JSON.stringify(c.resized)}`);
      let n = 0;
      let max = 0;
      let badNorm = 0;
      for (let i = 0; i < CROP * CROP; i++) {
        const d = Math.abs(r.crop[i] - refs[k][i]);
        if (d) {
          n++;
          max = Math.max(max, d);
        }
        if (r.pixels[i] !== table[refs[k][i]]) badNorm++;
      }
      if (n) problems.push(`${n} pixels differ (max ${max} grey levels)`);
      if (badNorm) problems.push(`${badNorm} normalised values differ from torch's`);
      if (problems.length) bad.push(`${c.file} (${c.width}x${c.height}, ${c.why}): ${problems.join('; ')}`);
    }
    t.is(
      bad.length,
      0,
      `${bad.length} of ${index.cases.length} images differ from the original's input:\n${bad.slice(0, 20).join('\n')}`,
    );
  });
}

test("layout: resized size and pad offsets equal the original's arithmetic for every W x H in 1..4096", (t) => {
  const lay = JSON.parse(readFileSync(path.join(FIX, 'layout.json'), 'utf8')) as {
    max_side: number;
    scale: number;
    exceptions_to_exact_floor: [number, number, number][];
  };
  // The original's short side: int(s * (256 / L)) in doubles; equal to the exact floor(s * 256 / L)
  // except at the (L, s) listed by the generator, where the product lands just below an integer.
  const exc = new Map<number, number>();
  for (const [L, s, v] of lay.exceptions_to_exact_floor) exc.set(L * 8192 + s, v);
  t.true(exc.size > 1000, "the exception list is the generator's, not empty");
  const N = lay.max_side;
  let wrong = 0;
  const examples: string[] = [];
  for (let h = 1; h <= N; h++)
    for (let w = 1; w <= N; w++) {
      const L = Math.max(w, h);
      const s = Math.min(w, h);
      const e = exc.get(L * 8192 + s);
      const short = e ?? Math.floor((s * SCALE - ((s * SCALE) % L)) / L);
      const ew = h >= w ? short : SCALE;
      const eh = h >= w ? SCALE : short;
      const left = Math.floor((SCALE - ew) / 2);
      const top = Math.floor((SCALE - eh) / 2);
      const r = padLayout(w, h, SCALE);
      const q = resizedSize(w, h, SCALE);
      if (r.width !== ew || r.height !== eh || r.left !== left || r.top !== top || q.width !== ew || q.height !== eh) {
        if (++wrong <= 5) examples.push(`${w}x${h}: ${JSON.stringify(r)}, expected ${ew}x${eh} at (${left}, ${top})`);
      }
    }
  t.is(wrong, 0, examples.join('\n'));
});

test('layout: every resized shape (256 x k and k x 256, k = 1..256) is placed whole at its offsets', (t) => {
  // An image already of the resized size resizes to itself (INTER_AREA copies), so this runs
  // resizeAndPad's real placement for each of the 512 shapes a resize can produce.
  const failures: string[] = [];
  for (const portrait of [true, false])
    for (let k = 1; k <= SCALE; k++) {
      const w = portrait ? k : SCALE;
      const h = portrait ? SCALE : k;
      const data = new Uint8Array(w * h);
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data[y * w + x] = 1 + ((x * 7 + y * 13) % 255);
      const out = new Uint8Array(SCALE * SCALE).fill(77); // stale contents must be cleared
      const { padded, resized } = resizeAndPad({ width: w, height: h, data }, SCALE, out);
      const L = padLayout(w, h, SCALE);
      let bad = 0;
      for (let y = 0; y < SCALE; y++)
        for (let x = 0; x < SCALE; x++) {
          const sx = x - L.left;
          const sy = y - L.top;
          const inside = sx >= 0 && sx < w && sy >= 0 && sy < h;
          if (padded[y * SCALE + x] !== (inside ? data[sy * w + sx] : 0)) bad++;
        }
      if (bad || resized.width !== w || resized.height !== h) failures.push(`${w}x${h}: ${bad} misplaced pixels`);
    }
  t.deepEqual(failures, []);
});

test("centre crop offset: torchvision's int(round((size - crop) / 2.0)), half to even", (t) => {
  // Values printed by Python 3: [int(round((s - c) / 2.0)) for s, c in cases]
  const cases: [number, number, number][] = [
    [256, 224, 16],
    [256, 223, 16],
    [256, 221, 18],
    [10, 7, 2],
    [10, 5, 2],
    [7, 7, 0],
    [300, 1, 150],
  ];
  for (const [s, c, want] of cases) t.is(centreCropOffset(s, c), want, `${s}/${c}`);
});
