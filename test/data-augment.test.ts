// Training augmentations (spec 1) against torchvision/PIL semantics derived by hand: crop, flip,
// the affine's geometry (rotation about the centre, integer translation, scale, fill 0), PIL's
// brightness/contrast blends (float32, clipped, truncated), determinism, parameter ranges.
import test from 'ava';
import {
  adjustBrightness,
  adjustContrast,
  augment,
  augmentU8,
  centreCrop,
  inverseAffineMatrix,
  normalise,
  pilAffineNearest,
  sampleAugmentParams,
  type AugmentParams,
} from '../src/data/augment.js';
import { Rng } from '../src/data/rng.js';
import { preprocess } from '../src/image/preprocess.js';

const S = 224;
const ID: AugmentParams = {
  top: 16,
  left: 16,
  flip: false,
  angle: 0,
  tx: 0,
  ty: 0,
  scale: 1,
  brightness: 1,
  contrast: 1,
  brightnessFirst: true,
};

function noise(n: number, seed: number): Uint8Array {
  const r = new Rng(seed);
  return Uint8Array.from({ length: n }, () => r.nextU32() & 0xff);
}
const affine = (img: Uint8Array, angle: number, tx = 0, ty = 0, scale = 1) =>
  pilAffineNearest(img, S, S, inverseAffineMatrix(S / 2, S / 2, angle, tx, ty, scale));
const at = (img: Uint8Array, y: number, x: number) => img[y * S + x];

test('identity parameters give the centre crop; crop offsets pick the window', (t) => {
  const padded = noise(256 * 256, 1);
  const out = augmentU8(padded, ID);
  for (let y = 0; y < S; y += 7) for (let x = 0; x < S; x += 5) t.is(at(out, y, x), padded[(16 + y) * 256 + 16 + x]);
  t.deepEqual(normalise(out), centreCrop(padded));
  const o2 = augmentU8(padded, { ...ID, top: 0, left: 32 });
  t.is(at(o2, 0, 0), padded[32]);
  t.is(at(o2, 223, 223), padded[223 * 256 + 255]);
});

test('horizontal flip mirrors the columns of the crop', (t) => {
  const padded = noise(256 * 256, 2);
  const a = augmentU8(padded, { ...ID, top: 5, left: 9 });
  const b = augmentU8(padded, { ...ID, top: 5, left: 9, flip: true });
  for (let y = 0; y < S; y++)
    for (let x = 0; x < S; x++) if (at(b, y, x) !== at(a, y, S - 1 - x)) return t.fail(`(${y}, ${x})`);
  t.pass();
});

test('rotation by +90 degrees is a clockwise quarter turn about the centre (exact on the pixel grid)', (t) => {
  const img = noise(S * S, 3);
  const r90 = affine(img, 90);
  const r180 = affine(img, 180);
  const rm90 = affine(img, -90);
  let bad = 0;
  for (let y = 0; y < S; y++)
    for (let x = 0; x < S; x++) {
      if (at(r90, y, x) !== at(img, S - 1 - x, y)) bad++; // (r, c) -> (c, 223 - r)
      if (at(r180, y, x) !== at(img, S - 1 - y, S - 1 - x)) bad++;
      if (at(rm90, y, x) !== at(img, x, S - 1 - y)) bad++;
    }
  t.is(bad, 0);
  // A marker right of the centre ends up below it.
  const m = new Uint8Array(S * S);
  m[112 * S + 200] = 255;
  const turned = affine(m, 90);
  t.is(at(turned, 200, S - 1 - 112), 255);
  t.is(
    turned.reduce((s, v) => s + v, 0),
    255,
  );
});

test('translation shifts by whole pixels (x right, y down) and fills 0', (t) => {
  const img = noise(S * S, 4).map((v) => v | 1); // no zeros in the source
  const out = affine(img, 0, 5, -3);
  for (let y = 0; y < S; y++)
    for (let x = 0; x < S; x++) {
      const sy = y + 3;
      const sx = x - 5;
      const want = sy < S && sx >= 0 ? at(img, sy, sx) : 0;
      if (at(out, y, x) !== want) return t.fail(`(${y}, ${x}): ${at(out, y, x)} vs ${want}`);
    }
  t.pass();
});

test('scale is about the centre: x2 turns a 2x2 centre block into 4x4, x0.5 leaves a zero border', (t) => {
  const img = new Uint8Array(S * S);
  for (const y of [111, 112]) for (const x of [111, 112]) img[y * S + x] = 200;
  const big = affine(img, 0, 0, 0, 2);
  for (let y = 0; y < S; y++)
    for (let x = 0; x < S; x++)
      t.is(at(big, y, x), y >= 110 && y <= 113 && x >= 110 && x <= 113 ? 200 : 0, `(${y}, ${x})`);
  const src = noise(S * S, 5).map((v) => v | 1);
  const small = affine(src, 0, 0, 0, 0.5);
  // Output x reads input floor(2 x - 111): columns 56..167 are inside, the rest is fill.
  t.is(at(small, 100, 55), 0);
  t.is(at(small, 100, 56), at(src, 2 * 100 - 111, 1));
  t.is(at(small, 56, 167), at(src, 1, 223));
  t.is(at(small, 100, 168), 0);
  t.is(at(small, 168, 100), 0);
});

test('a 45 degree rotation of a flat image: fill 0 in the corners, the centre kept', (t) => {
  const flat = new Uint8Array(S * S).fill(200);
  const r = affine(flat, 45, 0, 0, 1);
  t.is(at(r, 0, 0), 0);
  t.is(at(r, 223, 223), 0);
  t.is(at(r, 0, 223), 0);
  t.is(at(r, 112, 112), 200);
  t.is(at(r, 0, 112), 200); // the top middle is still inside the rotated square
});

test('inverse matrix matches torchvision _get_inverse_affine_matrix by hand', (t) => {
  // angle 0, scale 2, translate (4, -6), centre (112, 112): [0.5, 0, 112 - 0.5 (112 + 4), 0, 0.5, 112 - 0.5 (112 - 6)]
  const m = inverseAffineMatrix(112, 112, 0, 4, -6, 2);
  t.deepEqual(m, [0.5, 0, 54, -0, 0.5, 59]);
  const r = inverseAffineMatrix(112, 112, 30, 0, 0, 1);
  t.true(
    Math.abs(r[0] - Math.cos(Math.PI / 6)) < 1e-15 && Math.abs(r[1] - 0.5) < 1e-15 && Math.abs(r[3] + 0.5) < 1e-15,
  );
});

test('brightness: v * f in float32, clipped to 255, truncated (PIL blend with black)', (t) => {
  t.deepEqual([...adjustBrightness(new Uint8Array([100, 100]), 1.2)], [120, 120]);
  t.deepEqual([...adjustBrightness(new Uint8Array([100]), 0.8)], [80]);
  t.deepEqual([...adjustBrightness(new Uint8Array([250, 0, 255]), 1.2)], [255, 0, 255]);
  t.deepEqual([...adjustBrightness(new Uint8Array([99]), 0.85)], [84]); // 84.15 -> 84
  // float32 arithmetic: 10 * float32(0.9) = 8.9999998 rounds to 9.0f (double would truncate to 8)
  t.deepEqual([...adjustBrightness(new Uint8Array([10]), 0.9)], [9]);
});

test('contrast: blend with int(mean + 0.5) of the image, float32, clipped, truncated', (t) => {
  t.deepEqual([...adjustContrast(new Uint8Array(16).fill(77), 1.2)], new Array(16).fill(77)); // constant: unchanged
  const two = new Uint8Array(8);
  two.fill(50, 0, 4).fill(150, 4);
  // mean 100: 100 + 1.2 (50 - 100) = 39.9999962f -> 39; 100 + 1.2 * 50 = 160.0000038 -> 160.0f -> 160
  t.deepEqual([...adjustContrast(two.slice(), 1.2)], [39, 39, 39, 39, 160, 160, 160, 160]);
  // 100 + 0.8 (50 - 100) = 60.0000006 -> 60; 100 + 0.8 * 50 = 139.9999994 -> 140.0f -> 140
  t.deepEqual([...adjustContrast(two.slice(), 0.8)], [60, 60, 60, 60, 140, 140, 140, 140]);
  // the mean rounds half up: (100 + 101) / 2 = 100.5 -> 101, so 101 stays
  t.deepEqual([...adjustContrast(new Uint8Array([100, 101]), 1.2)], [99, 101]);
  t.deepEqual([...adjustContrast(new Uint8Array([0, 255, 255, 255]), 1.2)], [0, 255, 255, 255]);
});

test('augment: same seed same output, another seed differs; output = normalise(augmentU8(params))', (t) => {
  const padded = noise(256 * 256, 6);
  const a = augment(padded, new Rng(11));
  const b = augment(padded, new Rng(11));
  const c = augment(padded, new Rng(12));
  t.is(a.length, S * S);
  t.deepEqual(a, b);
  t.notDeepEqual(a, c);
  const p = sampleAugmentParams(new Rng(11));
  t.deepEqual(normalise(augmentU8(padded, p)), a);
});

test('parameter ranges and rates follow the spec', (t) => {
  const r = new Rng(99);
  let flips = 0;
  let bFirst = 0;
  const n = 4000;
  for (let i = 0; i < n; i++) {
    const p = sampleAugmentParams(r);
    if (p.flip) flips++;
    if (p.brightnessFirst) bFirst++;
    t.true(
      Number.isInteger(p.top) && p.top >= 0 && p.top <= 32 && Number.isInteger(p.left) && p.left >= 0 && p.left <= 32,
    );
    t.true(p.angle >= -30 && p.angle <= 30);
    t.true(Number.isInteger(p.tx) && Math.abs(p.tx) <= 22 && Number.isInteger(p.ty) && Math.abs(p.ty) <= 22);
    t.true(p.scale >= 0.9 && p.scale <= 1.1);
    t.true(p.brightness >= 0.8 && p.brightness <= 1.2 && p.contrast >= 0.8 && p.contrast <= 1.2);
  }
  t.true(Math.abs(flips / n - 0.3) < 0.03, `flip rate ${flips / n}`);
  t.true(Math.abs(bFirst / n - 0.5) < 0.03, `brightness-first rate ${bFirst / n}`);
});

test('validation view equals the inference preprocessing', (t) => {
  const img = { width: 300, height: 200, data: noise(300 * 200, 8) };
  const p = preprocess(img);
  t.deepEqual(centreCrop(p.padded), p.pixels);
  t.throws(() => centreCrop(new Uint8Array(10)), { instanceOf: TypeError });
  t.throws(() => augmentU8(new Uint8Array(256 * 256), { ...ID, top: 40 }), { instanceOf: RangeError });
});
