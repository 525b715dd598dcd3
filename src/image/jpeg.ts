// JPEG -> 8-bit grey like OpenCV's imread(path, IMREAD_GRAYSCALE): libjpeg decodes with
// out_color_space = JCS_GRAYSCALE, i.e. the luma component (component 0) through the integer
// "islow" IDCT, no colour conversion; then imread applies the EXIF orientation (tag 0x0112), as
// OpenCV 4.x does unless IMREAD_IGNORE_ORIENTATION is given.
// Decoding is our own ./jpeg-decoder.ts (T.81 baseline/extended sequential and progressive, Huffman,
// 8-bit, libjpeg's islow IDCT and upsampling): exact against cv2 on every fixture, grey and colour.
// Not reproduced (rare for chest X-rays, documented): 4-component (CMYK/YCCK) files are rejected,
// as are arithmetic-coded, 12-bit, lossless and hierarchical ones; an Adobe RGB (transform 0) file
// gives its first component rather than libjpeg's RGB->grey.
import { JpegError, decodeJpegLuma, type JpegLuma } from './jpeg-decoder.js';
import { ImageDecodeError } from './errors.js';
import { DEFAULT_MAX_PIXELS, checkDeclaredSize } from './limits.js';
import type { GrayImage } from './types.js';

/** The Orientation tag (0x0112) of a TIFF-structured EXIF block at buf[t..end), 1 when absent or unreadable. */
export function exifTiffOrientation(buf: Uint8Array, t: number, end: number): number {
  if (t + 8 > end) return 1;
  const le = buf[t] === 0x49;
  const u16 = (p: number) => (le ? buf[p] | (buf[p + 1] << 8) : (buf[p] << 8) | buf[p + 1]);
  const u32 = (p: number) => (le ? (u16(p) | (u16(p + 2) << 16)) >>> 0 : ((u16(p) << 16) | u16(p + 2)) >>> 0);
  const ifd = t + u32(t + 4);
  if (ifd + 2 > end) return 1;
  const count = u16(ifd);
  for (let i = 0; i < count; i++) {
    const e = ifd + 2 + i * 12;
    if (e + 12 > end) return 1;
    if (u16(e) === 0x0112) {
      const v = u16(e + 8);
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return 1;
}

/** EXIF orientation from the APP1 "Exif" segment, 1 when absent or unreadable. */
export function jpegExifOrientation(buf: Uint8Array): number {
  let off = 2;
  while (off + 4 <= buf.length && buf[off] === 0xff) {
    const marker = buf[off + 1];
    if (marker === 0xda || marker === 0xd9) break; // start of scan / end of image
    const len = (buf[off + 2] << 8) | buf[off + 3];
    if (
      marker === 0xe1 &&
      len >= 8 &&
      buf[off + 4] === 0x45 &&
      buf[off + 5] === 0x78 &&
      buf[off + 6] === 0x69 &&
      buf[off + 7] === 0x66 &&
      buf[off + 8] === 0 &&
      buf[off + 9] === 0
    )
      return exifTiffOrientation(buf, off + 10, Math.min(off + 2 + len, buf.length));
    off += 2 + len;
  }
  return 1;
}

/** cv::ApplyExifOrientation on a grey image. */
export function applyOrientation(img: GrayImage, orientation: number): GrayImage {
  if (orientation <= 1 || orientation > 8) return img;
  const { width: w, height: h, data } = img;
  const transpose = orientation >= 5;
  const W = transpose ? h : w;
  const H = transpose ? w : h;
  const out = new Uint8Array(w * h);
  // For each output (x, y) the source pixel; flips follow OpenCV's cases:
  // 2 flip(1), 3 flip(-1), 4 flip(0), 5 transpose, 6 transpose+flip(1), 7 transpose+flip(-1), 8 transpose+flip(0).
  const flipX = orientation === 2 || orientation === 3 || orientation === 6 || orientation === 7;
  const flipY = orientation === 3 || orientation === 4 || orientation === 7 || orientation === 8;
  for (let y = 0; y < H; y++) {
    const ty = flipY ? H - 1 - y : y;
    for (let x = 0; x < W; x++) {
      const tx = flipX ? W - 1 - x : x;
      // (tx, ty) in the transposed/plain image -> source
      out[y * W + x] = transpose ? data[tx * w + ty] : data[ty * w + tx];
    }
  }
  return { width: W, height: H, data: out };
}

export function decodeJpeg(buf: Uint8Array, file: string, maxPixels = DEFAULT_MAX_PIXELS): GrayImage {
  let img: JpegLuma;
  try {
    img = decodeJpegLuma(buf, (w, h) => checkDeclaredSize(file, w, h, maxPixels));
  } catch (e) {
    if (e instanceof ImageDecodeError) throw e;
    if (e instanceof JpegError && e.unsupported) throw new ImageDecodeError(file, e.message, 'CZ_ERR_UNSUPPORTED');
    throw new ImageDecodeError(file, `invalid JPEG (${(e as Error).message ?? String(e)})`);
  }
  const { width, height, data } = img;
  return applyOrientation({ width, height, data }, jpegExifOrientation(buf));
}
