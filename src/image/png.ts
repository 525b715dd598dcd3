// PNG -> 8-bit grey exactly as OpenCV's imread(path, IMREAD_GRAYSCALE) through libpng 1.6:
// OpenCV's PngDecoder::readData asks libpng for png_set_strip_16 (16-bit samples keep their high
// byte), png_set_strip_alpha, png_set_palette_to_rgb, png_set_expand_gray_1_2_4_to_8 and
// png_set_rgb_to_gray(png_ptr, 1, 0.299, 0.587). libpng turns those weights into 15-bit fixed
// point: red = 29900*32768/100000 = 9797, green = 58700*32768/100000 = 19234, blue = 32768 - both =
// 13737, and computes (png_do_rgb_to_gray, before strip_16):
//   8-bit:  (rc*R + gc*G + bc*B) >> 15           (truncating, "historical approach")
//   16-bit: ((rc*R + gc*G + bc*B + 16384) >> 15) >> 8
// With a gAMA (or sRGB) chunk whose gamma is significant, libpng converts colour pixels through
// linear light with 8-bit tables (gamma_to_1, gamma_from_1, png_gamma_8bit_correct):
//   gamma_from_1[(rc*to1[R] + gc*to1[G] + bc*to1[B] + 16384) >> 15], grey pixels (R=G=B) unchanged.
// That path is reproduced for 8-bit colour; 16-bit colour with gAMA uses the linear formula (libpng's
// 16-bit gamma tables are not reproduced; differences of a grey level or two are possible there).
// Pixel data decoding (zlib, filters, Adam7) is pngjs's; tRNS chunks of grey/RGB images are removed
// before pngjs sees them (pngjs would zero the colour of transparent pixels; libpng only strips alpha).
import * as zlib from 'node:zlib';
import { PNG } from 'pngjs';
import { ImageDecodeError } from './errors.js';
import { DEFAULT_MAX_PIXELS, checkDeclaredSize } from './limits.js';
import type { GrayImage } from './types.js';
import { applyOrientation, exifTiffOrientation } from './jpeg.js';

const RC = 9797;
const GC = 19234;
const BC = 32768 - RC - GC;

interface Scan {
  buffer: Buffer;
  colorType: number;
  bitDepth: number;
  gamma: number; // libpng fixed point (100000 = 1.0), 0 when none
  orientation: number; // EXIF orientation of the first eXIf chunk (imread applies it), 1 without
}

/** Walks the chunks: drops tRNS for non-palette images, reads gAMA/sRGB, checks the layout. */
function scanChunks(buf: Buffer, file: string): Scan {
  if (buf.length < 33) throw new ImageDecodeError(file, 'truncated PNG (no IHDR)');
  const colorType = buf[25];
  const bitDepth = buf[24];
  let gamma = 0;
  let srgb = false;
  const keep: Buffer[] = [buf.subarray(0, 8)];
  let off = 8;
  let sawEnd = false;
  let dropped = false;
  let orientation = 0;
  while (off + 12 <= buf.length) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString('latin1', off + 4, off + 8);
    const end = off + 12 + len;
    if (end > buf.length)
      throw new ImageDecodeError(file, `truncated PNG (chunk ${JSON.stringify(type)} runs past the end of the file)`);
    if (type === 'gAMA' && len === 4) gamma = buf.readUInt32BE(off + 8);
    if (type === 'sRGB') srgb = true;
    if (type === 'eXIf' && orientation === 0) orientation = exifTiffOrientation(buf, off + 8, off + 8 + len);
    if (type === 'tRNS' && colorType !== 3) dropped = true;
    else keep.push(buf.subarray(off, end));
    off = end;
    if (type === 'IEND') {
      sawEnd = true;
      break;
    }
  }
  if (!sawEnd) throw new ImageDecodeError(file, 'truncated PNG (no IEND chunk)');
  if (srgb) gamma = 45455; // png_colorspace_set_sRGB: PNG_GAMMA_sRGB_INVERSE
  return { buffer: dropped ? Buffer.concat(keep) : buf, colorType, bitDepth, gamma, orientation: orientation || 1 };
}

/**
 * pngjs caps what a non-interlaced image's IDAT may inflate to (its declared size), but inflates an
 * interlaced one without a cap: a small interlaced header over a deflate bomb would fill memory.
 * So the IDAT stream of an interlaced PNG is inflated here first with the cap its seven Adam7
 * passes need, and refused past it.
 */
function checkInterlacedInflate(buf: Buffer, file: string): void {
  const width = buf.readUInt32BE(16);
  const height = buf.readUInt32BE(20);
  const bits = buf[24]! * ({ 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as Record<number, number>)[buf[25]!]!;
  if (!(bits > 0)) return; // an invalid colour type: pngjs refuses it
  let expected = 0;
  for (const [x0, y0, dx, dy] of [
    [0, 0, 8, 8],
    [4, 0, 8, 8],
    [0, 4, 4, 8],
    [2, 0, 4, 4],
    [0, 2, 2, 4],
    [1, 0, 2, 2],
    [0, 1, 1, 2],
  ] as const) {
    const cols = Math.ceil((width - x0) / dx);
    const rows = Math.ceil((height - y0) / dy);
    if (cols > 0 && rows > 0) expected += rows * (1 + Math.ceil((cols * bits) / 8));
  }
  const idat: Buffer[] = [];
  for (let off = 8; off + 12 <= buf.length;) {
    const len = buf.readUInt32BE(off);
    if (buf.toString('latin1', off + 4, off + 8) === 'IDAT') idat.push(buf.subarray(off + 8, off + 8 + len));
    off += 12 + len;
  }
  try {
    zlib.inflateSync(Buffer.concat(idat), { maxOutputLength: Math.max(1, expected) });
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError)
      throw new ImageDecodeError(
        file,
        `interlaced PNG data inflates past the ${expected} bytes its ${width}x${height} header declares; refused`,
        'CZ_ERR_OUT_OF_MEMORY',
      );
    // a corrupt stream: pngjs reports it
  }
}

/** png_gamma_8bit_correct with floating arithmetic (Debian's libpng). */
function gammaTable(gammaFixed: number): Uint8Array {
  const t = new Uint8Array(256);
  const significant = gammaFixed < 95000 || gammaFixed > 105000;
  for (let i = 0; i < 256; i++)
    t[i] = significant && i > 0 && i < 255 ? Math.floor(255 * Math.pow(i / 255, gammaFixed * 0.00001) + 0.5) : i;
  return t;
}

/** png_reciprocal: floor(1e10 / a + .5). */
function reciprocal(a: number): number {
  return Math.floor(1e10 / a + 0.5);
}

/** PNG -> grey as imread, then the eXIf orientation applied as imread does (OpenCV 4.6). */
export function decodePng(buf: Buffer, file: string, maxPixels = DEFAULT_MAX_PIXELS): GrayImage {
  // IHDR's size before anything is inflated (pngjs inflates and expands to RGBA in one go)
  if (buf.length >= 24 && buf.toString('latin1', 12, 16) === 'IHDR')
    checkDeclaredSize(file, buf.readUInt32BE(16), buf.readUInt32BE(20), maxPixels);
  const scan = scanChunks(buf, file);
  if (buf.length >= 29 && buf[28] === 1) checkInterlacedInflate(scan.buffer, file);
  return applyOrientation(decodePixels(buf, scan, file), scan.orientation);
}

function decodePixels(buf: Buffer, scan: Scan, file: string): GrayImage {
  let png: PNG;
  try {
    png = PNG.sync.read(scan.buffer, { skipRescale: true });
  } catch (e) {
    throw new ImageDecodeError(file, `invalid PNG (${(e as Error).message})`);
  }
  const { width, height } = png;
  const n = width * height;
  const out = new Uint8Array(n);
  const src = png.data as unknown as Uint8Array | Uint16Array; // RGBA, 16-bit samples when depth 16
  const depth = scan.bitDepth;
  const isColor = (scan.colorType & 2) !== 0; // RGB, RGBA, palette
  if (depth === 16) {
    for (let i = 0, j = 0; i < n; i++, j += 4) {
      if (isColor) {
        const g16 = (RC * src[j] + GC * src[j + 1] + BC * src[j + 2] + 16384) >>> 15;
        out[i] = g16 >>> 8;
      } else out[i] = src[j] >>> 8;
    }
    return { width, height, data: out };
  }
  // 8-bit samples (palette entries are 8-bit); grey below 8 bits arrives unscaled with skipRescale.
  const greyScale = scan.colorType === 0 || scan.colorType === 4 ? 255 / ((1 << depth) - 1) : 1;
  if (!isColor) {
    for (let i = 0, j = 0; i < n; i++, j += 4) out[i] = greyScale === 1 ? src[j] : src[j] * greyScale;
    return { width, height, data: out };
  }
  const useGamma = scan.gamma > 0 && (scan.gamma < 95000 || scan.gamma > 105000);
  if (useGamma) {
    const screen = reciprocal(scan.gamma);
    const to1 = gammaTable(screen);
    const from1 = gammaTable(reciprocal(screen));
    for (let i = 0, j = 0; i < n; i++, j += 4) {
      const r = src[j],
        g = src[j + 1],
        b = src[j + 2];
      out[i] = r === g && r === b ? r : from1[(RC * to1[r] + GC * to1[g] + BC * to1[b] + 16384) >>> 15];
    }
  } else {
    for (let i = 0, j = 0; i < n; i++, j += 4) out[i] = (RC * src[j] + GC * src[j + 1] + BC * src[j + 2]) >>> 15;
  }
  return { width, height, data: out };
}
