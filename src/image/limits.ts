// Size limits for decoded images, checked against what a file declares (PNG IHDR, JPEG SOF, DICOM
// Rows/Columns/NumberOfFrames) before its pixels are allocated or its compressed data inflated, in
// the JavaScript decoders and (passed down) the native ones. The default, 2^28 pixels (16384 x
// 16384), lies between Pillow's decompression-bomb limit (~8.9e7) and OpenCV's (2^30); chest X-rays
// are ~5-10 M pixels. CARZERO_MAX_PIXELS or the `maxPixels` option changes it.
import { maxPixelsSetting } from '../settings.js';
import { ImageDecodeError } from './errors.js';

export const DEFAULT_MAX_PIXELS = 2 ** 28;
/** Either side (JPEG's own maximum, libjpeg's JPEG_MAX_DIMENSION). */
export const MAX_SIDE = 65500;
const MAX_MAX_PIXELS = 2 ** 40;

function checkMaxPixels(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_MAX_PIXELS)
    throw new RangeError(
      `${what} must be an integer in [1, 2^40], got ${typeof v === 'string' ? `'${v}'` : String(v)}`,
    );
  return v;
}

/** `maxPixels` when given (validated), else CARZERO_MAX_PIXELS, else DEFAULT_MAX_PIXELS. */
export function resolveMaxPixels(maxPixels?: number, what = "option 'maxPixels'"): number {
  if (maxPixels !== undefined) return checkMaxPixels(maxPixels, what);
  const env = maxPixelsSetting();
  if (env === undefined) return DEFAULT_MAX_PIXELS;
  return checkMaxPixels(/^\d+$/.test(env) ? Number(env) : env, 'CARZERO_MAX_PIXELS');
}

/**
 * Refuses (CZ_ERR_OUT_OF_MEMORY, naming the file) an image whose declared size is over the limits,
 * and a degenerate one whose side is 0.
 */
export function checkDeclaredSize(file: string, width: number, height: number, maxPixels: number, frames = 1): void {
  if (!(width >= 1 && height >= 1)) throw new ImageDecodeError(file, `declares an empty image (${width}x${height})`);
  if (width > MAX_SIDE || height > MAX_SIDE)
    throw new ImageDecodeError(
      file,
      `declares ${width}x${height} pixels, over the ${MAX_SIDE}-pixel limit per side; refused before decoding`,
      'CZ_ERR_OUT_OF_MEMORY',
    );
  if (width * height * frames > maxPixels)
    throw new ImageDecodeError(
      file,
      `declares ${width}x${height}${frames > 1 ? `x${frames} frames` : ''} = ${width * height * frames} pixels, ` +
        `over the limit of ${maxPixels} (maxPixels / CARZERO_MAX_PIXELS); refused before decoding`,
      'CZ_ERR_OUT_OF_MEMORY',
    );
}
