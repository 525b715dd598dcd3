// Training augmentations (spec 1), on the 256x256 zero-padded uint8 image, with the semantics of
// the original's torchvision transforms on a PIL image (the grey image converted to RGB: three
// equal channels, so one channel here):
//
//   RandomCrop(224)              top, left uniform integers in [0, 256 - 224]
//   RandomHorizontalFlip(0.3)    mirror columns when u < 0.3
//   RandomAffine(30, translate=(0.1, 0.1), scale=(0.9, 1.1))
//                                angle ~ U(-30, 30) degrees, tx, ty = round(U(-22.4, 22.4)) (Python
//                                round: half to even; 22.4 = 0.1 x 224), scale ~ U(0.9, 1.1); the
//                                inverse matrix of torchvision's _get_inverse_affine_matrix about the
//                                centre (112, 112) (PIL coordinates, pixel centres at +0.5), then
//                                PIL's Image.transform(AFFINE, NEAREST): its 16.16 fixed-point
//                                stepping (affine_fixed), or the scale-only path (ImagingScaleAffine)
//                                when the matrix has no rotation terms; outside the source: 0.
//                                A positive angle turns the image clockwise on screen.
//   ColorJitter(brightness=(0.8, 1.2), contrast=(0.8, 1.2))
//                                both factors ~ U(0.8, 1.2), applied in a random order (torchvision
//                                draws a permutation of its four adjustments). PIL's ImageEnhance:
//                                brightness = blend with black: v' = f v; contrast = blend with the
//                                grey image's mean m = int(mean + 0.5): v' = m + f (v - m); both in
//                                float32, clipped to [0, 255] and truncated (PIL's ImagingBlend).
//   ToTensor + Normalize         v / 255, (x - 0.4978) / 0.2449 in float32 (src/image normaliseTable).
//
// torch draws its parameters in float32 (torch.empty(1).uniform_); the angle, scale and factors are
// rounded to float32 here too. Validation uses the centre crop (src/image cropNormalise).
import { cropNormalise, normaliseTable } from '../image/preprocess.js';
import { Rng } from './rng.js';

export interface AugmentOptions {
  /** Padded input side; default 256. */
  size?: number;
  /** Crop side; default 224. */
  crop?: number;
  /** Horizontal flip probability; default 0.3. */
  flip?: number;
  /** Rotation range +-degrees; default 30. */
  degrees?: number;
  /** Translation fraction of each side; default 0.1. */
  translate?: number;
  /** Scale range; default [0.9, 1.1]. */
  scale?: [number, number];
  /** Brightness factor range; default [0.8, 1.2]. */
  brightness?: [number, number];
  /** Contrast factor range; default [0.8, 1.2]. */
  contrast?: [number, number];
  /** Normalisation; defaults 0.4978, 0.2449. */
  mean?: number;
  std?: number;
}

/** One draw of every random parameter: enough to replay an augmentation exactly. */
export interface AugmentParams {
  top: number;
  left: number;
  flip: boolean;
  /** Degrees, positive = clockwise on screen (torchvision's affine convention). */
  angle: number;
  tx: number;
  ty: number;
  scale: number;
  brightness: number;
  contrast: number;
  /** Brightness is applied before contrast. */
  brightnessFirst: boolean;
}

const DEFAULTS = {
  size: 256,
  crop: 224,
  flip: 0.3,
  degrees: 30,
  translate: 0.1,
  scale: [0.9, 1.1] as [number, number],
  brightness: [0.8, 1.2] as [number, number],
  contrast: [0.8, 1.2] as [number, number],
  mean: 0.4978,
  std: 0.2449,
};

function opts(o: AugmentOptions = {}) {
  const r = { ...DEFAULTS, ...o };
  if (!Number.isInteger(r.size) || !Number.isInteger(r.crop) || r.crop < 1 || r.crop > r.size)
    throw new RangeError(`augment: crop (${r.crop}) must be an integer in 1..size (${r.size})`);
  return r;
}

/** Python's round() to an integer: half to even. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Draws the parameters of one augmentation, in torchvision's order. */
export function sampleAugmentParams(rng: Rng, options: AugmentOptions = {}): AugmentParams {
  const o = opts(options);
  const top = rng.int(o.size - o.crop + 1);
  const left = rng.int(o.size - o.crop + 1);
  const flip = rng.next() < o.flip;
  const angle = Math.fround(rng.uniform(-o.degrees, o.degrees));
  const maxD = o.translate * o.crop;
  const tx = roundHalfEven(Math.fround(rng.uniform(-maxD, maxD)));
  const ty = roundHalfEven(Math.fround(rng.uniform(-maxD, maxD)));
  const scale = Math.fround(rng.uniform(o.scale[0], o.scale[1]));
  // ColorJitter: the order comes from a permutation of (brightness, contrast, saturation, hue).
  const perm = [0, 1, 2, 3];
  rng.shuffle(perm);
  const brightnessFirst = perm.indexOf(0) < perm.indexOf(1);
  const brightness = Math.fround(rng.uniform(o.brightness[0], o.brightness[1]));
  const contrast = Math.fround(rng.uniform(o.contrast[0], o.contrast[1]));
  return { top, left, flip, angle, tx, ty, scale, brightness, contrast, brightnessFirst };
}

/** torchvision's _get_inverse_affine_matrix (no shear): output pixel -> input position, PIL order. */
export function inverseAffineMatrix(
  cx: number,
  cy: number,
  angle: number,
  tx: number,
  ty: number,
  scale: number,
): number[] {
  const rot = angle * (Math.PI / 180);
  const cos = Math.cos(rot);
  const sin = Math.sin(rot);
  // a = cos, b = -sin, c = sin, d = cos; inverted: [d, -b, 0, -c, a, 0] / scale
  const m = [cos / scale, sin / scale, 0 / scale, -sin / scale, cos / scale, 0 / scale];
  m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
  m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
  m[2] += cx;
  m[5] += cy;
  return m;
}

const floorFix = (v: number) => Math.floor(v * 65536.0 + 0.5);
const coord = (v: number) => (v < 0 ? -1 : Math.trunc(v));

/**
 * PIL Image.transform(size, AFFINE, m, NEAREST) of a w x h uint8 image into a new w x h one
 * (0 outside the source), with PIL's integer paths.
 */
export function pilAffineNearest(
  src: Uint8Array,
  w: number,
  h: number,
  m: readonly number[],
  out = new Uint8Array(w * h),
): Uint8Array {
  out.fill(0);
  if (m[1] === 0 && m[3] === 0) {
    // ImagingScaleAffine: pretabulated columns, double accumulation.
    const xin = new Int32Array(w).fill(-1);
    let xo = m[2] + m[0] * 0.5;
    for (let x = 0; x < w; x++) {
      const v = coord(xo);
      if (v >= 0 && v < w) xin[x] = v;
      xo += m[0];
    }
    let yo = m[5] + m[4] * 0.5;
    for (let y = 0; y < h; y++) {
      const yi = coord(yo);
      if (yi >= 0 && yi < h) {
        const s = yi * w;
        for (let x = 0; x < w; x++) if (xin[x] >= 0) out[y * w + x] = src[s + xin[x]];
      }
      yo += m[4];
    }
    return out;
  }
  const fits = (x: number, y: number) =>
    Math.abs(x * m[0] + y * m[1] + m[2]) < 32768 && Math.abs(x * m[3] + y * m[4] + m[5]) < 32768;
  if (fits(0, 0) && fits(w, h) && fits(0, h) && fits(w, 0)) {
    // affine_fixed: 16.16 fixed point, stepping per pixel and per row.
    const a0 = floorFix(m[0]);
    const a1 = floorFix(m[1]);
    const a3 = floorFix(m[3]);
    const a4 = floorFix(m[4]);
    let a2 = floorFix(m[2] + m[0] * 0.5 + m[1] * 0.5);
    let a5 = floorFix(m[5] + m[3] * 0.5 + m[4] * 0.5);
    for (let y = 0; y < h; y++) {
      let xx = a2;
      let yy = a5;
      const d = y * w;
      for (let x = 0; x < w; x++) {
        const xi = xx >> 16;
        if (xi >= 0 && xi < w) {
          const yi = yy >> 16;
          if (yi >= 0 && yi < h) out[d + x] = src[yi * w + xi];
        }
        xx += a0;
        yy += a3;
      }
      a2 += a1;
      a5 += a4;
    }
    return out;
  }
  // Generic transform with the nearest filter (not reached with the spec's ranges).
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const u = coord(m[0] * (x + 0.5) + m[1] * (y + 0.5) + m[2]);
      const v = coord(m[3] * (x + 0.5) + m[4] * (y + 0.5) + m[5]);
      if (u >= 0 && u < w && v >= 0 && v < h) out[y * w + x] = src[v * w + u];
    }
  }
  return out;
}

/** PIL ImagingBlend of a constant `base` and the image with factor f, as a 256-entry table. */
function blendTable(base: number, f: number): Uint8Array {
  const t = new Uint8Array(256);
  const a = Math.fround(f);
  for (let v = 0; v < 256; v++) {
    const r = Math.fround(base + Math.fround(a * (v - base)));
    t[v] = r <= 0 ? 0 : r >= 255 ? 255 : Math.trunc(r);
  }
  return t;
}

/** PIL ImageEnhance.Brightness(img).enhance(f), in place. */
export function adjustBrightness(img: Uint8Array, f: number): Uint8Array {
  const t = blendTable(0, f);
  for (let i = 0; i < img.length; i++) img[i] = t[img[i]];
  return img;
}

/** PIL ImageEnhance.Contrast(img).enhance(f), in place: blend with the rounded mean grey. */
export function adjustContrast(img: Uint8Array, f: number): Uint8Array {
  let sum = 0;
  for (let i = 0; i < img.length; i++) sum += img[i];
  const mean = Math.trunc(sum / img.length + 0.5);
  const t = blendTable(mean, f);
  for (let i = 0; i < img.length; i++) img[i] = t[img[i]];
  return img;
}

/** The augmented crop x crop uint8 image (before /255 and normalisation). */
export function augmentU8(padded: Uint8Array, p: AugmentParams, options: AugmentOptions = {}): Uint8Array {
  const o = opts(options);
  const { size, crop } = o;
  if (!(padded instanceof Uint8Array) || padded.length !== size * size)
    throw new TypeError(
      `augment: argument 'padded' must be a ${size}x${size} Uint8Array (${size * size} bytes), got ${padded?.length}`,
    );
  if (!(p.top >= 0 && p.top <= size - crop && p.left >= 0 && p.left <= size - crop))
    throw new RangeError(`augment: crop offset (${p.top}, ${p.left}) outside 0..${size - crop}`);
  const img = new Uint8Array(crop * crop);
  for (let y = 0; y < crop; y++) {
    const s = (p.top + y) * size + p.left;
    if (p.flip) for (let x = 0; x < crop; x++) img[y * crop + x] = padded[s + crop - 1 - x];
    else img.set(padded.subarray(s, s + crop), y * crop);
  }
  const m = inverseAffineMatrix(crop * 0.5, crop * 0.5, p.angle, p.tx, p.ty, p.scale);
  const out = pilAffineNearest(img, crop, crop, m);
  if (p.brightnessFirst) {
    adjustBrightness(out, p.brightness);
    adjustContrast(out, p.contrast);
  } else {
    adjustContrast(out, p.contrast);
    adjustBrightness(out, p.brightness);
  }
  return out;
}

/** uint8 -> normalised float32 through the shared table. */
export function normalise(
  img: Uint8Array,
  options: AugmentOptions = {},
  out: Float32Array = new Float32Array(img.length),
): Float32Array {
  const lut = normaliseTable(options.mean ?? DEFAULTS.mean, options.std ?? DEFAULTS.std);
  for (let i = 0; i < img.length; i++) out[i] = lut[img[i]];
  return out;
}

/** A training view of a padded image: random parameters from `rng`, normalised crop x crop. */
export function augment(padded: Uint8Array, rng: Rng, options: AugmentOptions = {}, out?: Float32Array): Float32Array {
  const p = sampleAugmentParams(rng, options);
  return normalise(augmentU8(padded, p, options), options, out);
}

/** The validation view: centre crop + normalisation (the inference preprocessing). */
export function centreCrop(
  padded: Uint8Array,
  options: AugmentOptions = {},
  out?: Float32Array<ArrayBuffer>,
): Float32Array {
  const o = opts(options);
  if (!(padded instanceof Uint8Array) || padded.length !== o.size * o.size)
    throw new TypeError(
      `centreCrop: argument 'padded' must be a ${o.size}x${o.size} Uint8Array, got ${padded?.length} bytes`,
    );
  return cropNormalise(padded, { resize: o.size, crop: o.crop, mean: o.mean, std: o.std }, out);
}
