// CARZero's inference preprocessing (spec 1.2-1.3), transcribed from the original resize_img and
// the torchvision transforms: longer side to 256 (the other int(side * (256 / longer)), computed
// in that order as the original does), INTER_AREA (./resize.ts), zero pad floor/ceil to 256x256,
// centre crop 224 (offset 16), x/255, (x - mean)/std in float32 (torch's ToTensor + Normalize).
// One channel is returned: the 3 channels the model sees are equal.
import { resizeArea } from './resize.js';
import { readImage } from './decode.js';
import type { GrayImage } from './types.js';

export interface PreprocessOptions {
  /** Padded square size; default 256. */
  resize?: number;
  /** Centre crop size; default 224. */
  crop?: number;
  /** Normalisation mean; default 0.4978. */
  mean?: number;
  /** Normalisation std; default 0.2449. */
  std?: number;
}

export interface Preprocessed {
  /** (crop, crop) normalised float32, row-major. */
  pixels: Float32Array;
  /** (resize, resize) uint8 after resize + zero pad (training augments from it). */
  padded: Uint8Array;
  /** The resized image's size inside `padded` and its offset there. */
  resized: PadLayout;
}

/** The resized size of a W x H image, as the original resize_img computes it. */
export function resizedSize(width: number, height: number, scale = 256): { width: number; height: number } {
  // size = (H, W); max_ind = index of the first maximum: height when H >= W.
  if (height >= width) return { width: Math.trunc(width * (scale / height)), height: scale };
  return { width: scale, height: Math.trunc(height * (scale / width)) };
}

/** Where a resized image sits in the padded square: its size and the zero pad before it. */
export interface PadLayout {
  width: number;
  height: number;
  left: number;
  top: number;
}

/**
 * The layout resize_img gives a W x H image: the resized size (resizedSize) and the pad before it,
 * floor(pad / 2) on the padded axis (the rest, ceil(pad / 2), comes after).
 */
export function padLayout(width: number, height: number, scale = 256): PadLayout {
  const r = resizedSize(width, height, scale);
  return {
    width: r.width,
    height: r.height,
    left: Math.floor((scale - r.width) / 2),
    top: Math.floor((scale - r.height) / 2),
  };
}

/** Resize (INTER_AREA) + zero pad to scale x scale, as resize_img. */
export function resizeAndPad(img: GrayImage, scale = 256, out?: Uint8Array) {
  const layout = padLayout(img.width, img.height, scale);
  const { width: rw, height: rh, left, top } = layout;
  if (rw < 1 || rh < 1) throw new RangeError(`resizeAndPad: a ${img.width}x${img.height} image resizes to ${rw}x${rh}`);
  const padded = out ?? new Uint8Array(scale * scale);
  if (rw === scale && rh === scale) {
    // Only a full square can be written in place: any narrower image has a row stride of rw, not
    // scale (a 255-wide image written here would be sheared one pixel per row; left is 0 then).
    resizeArea(img.data, img.width, img.height, rw, rh, padded);
  } else {
    padded.fill(0);
    const tmp = resizeArea(img.data, img.width, img.height, rw, rh);
    for (let y = 0; y < rh; y++) padded.set(tmp.subarray(y * rw, (y + 1) * rw), (top + y) * scale + left);
  }
  return { padded, resized: layout };
}

/**
 * torchvision CenterCrop's offset, int(round((size - crop) / 2.0)) with Python's round (half to
 * even): 16 for 256/224; for an odd difference, e.g. 256/223, 16 (not Math.round's 17).
 */
export function centreCropOffset(size: number, crop: number): number {
  const d = size - crop; // (d / 2) is a half exactly when d is odd
  return d % 2 === 0 ? d / 2 : (d - 1) / 2 + (((d - 1) / 2) % 2);
}

const lutCache = new Map<string, Float32Array>();
/** float32 ((v/255) - mean) / std for v = 0..255, each step rounded to float32 as torch does. */
export function normaliseTable(mean = 0.4978, std = 0.2449): Float32Array {
  const key = `${mean},${std}`;
  let t = lutCache.get(key);
  if (!t) {
    t = new Float32Array(256);
    const m = Math.fround(mean);
    const s = Math.fround(std);
    for (let v = 0; v < 256; v++) t[v] = Math.fround(Math.fround(Math.fround(v / 255) - m) / s);
    lutCache.set(key, t);
  }
  return t;
}

/** Centre crop + normalise of a padded square (resize x resize) into (crop, crop) float32. */
export function cropNormalise(padded: Uint8Array, options: PreprocessOptions = {}, out?: Float32Array): Float32Array {
  const { resize = 256, crop = 224, mean = 0.4978, std = 0.2449 } = options;
  const lut = normaliseTable(mean, std);
  const off = centreCropOffset(resize, crop);
  const px = out ?? new Float32Array(crop * crop);
  for (let y = 0; y < crop; y++) {
    const s = (off + y) * resize + off;
    const d = y * crop;
    for (let x = 0; x < crop; x++) px[d + x] = lut[padded[s + x]];
  }
  return px;
}

/** Full inference preprocessing of a decoded grey image. */
export function preprocess(img: GrayImage, options: PreprocessOptions = {}): Preprocessed {
  const { resize = 256, crop = 224 } = options;
  if (!Number.isSafeInteger(resize) || resize < 1)
    throw new RangeError(`preprocess: option 'resize' must be a positive integer, got ${resize}`);
  if (!Number.isSafeInteger(crop) || crop < 1 || crop > resize)
    throw new RangeError(`preprocess: option 'crop' must be an integer in 1..resize, got ${crop}`);
  if (!img || !(img.data instanceof Uint8Array) || img.data.length < img.width * img.height)
    throw new TypeError("preprocess: argument 'img' must be { width, height, data: Uint8Array }");
  const { padded, resized } = resizeAndPad(img, resize);
  return { pixels: cropNormalise(padded, options), padded, resized };
}

/** Reads, decodes and preprocesses one image file (ImageDecodeError names the file). */
export async function loadImage(
  file: string,
  options: PreprocessOptions = {},
): Promise<Preprocessed & { image: GrayImage }> {
  const image = await readImage(file);
  return { ...preprocess(image, options), image };
}
