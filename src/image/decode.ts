// Image files -> 8-bit grey, like OpenCV's cv2.imread(path, 0), with the format found by its magic
// bytes (never the file name): PNG (./png.ts), JPEG (./jpeg.ts), DICOM Part 10 (./dicom.ts).
import { readFile } from 'node:fs/promises';
import { decodePng } from './png.js';
import { decodeJpeg } from './jpeg.js';
import { decodeDicom, isDicom } from './dicom.js';
import { ImageDecodeError } from './errors.js';
import { resolveMaxPixels } from './limits.js';
import type { GrayImage } from './types.js';

export type ImageFormat = 'png' | 'jpeg' | 'dicom';

export function detectImageFormat(buf: Uint8Array): ImageFormat | null {
  if (
    buf.length >= 8 &&
    buf[0] === 0x89 &&
    buf[1] === 0x50 &&
    buf[2] === 0x4e &&
    buf[3] === 0x47 &&
    buf[4] === 0x0d &&
    buf[5] === 0x0a &&
    buf[6] === 0x1a &&
    buf[7] === 0x0a
  )
    return 'png';
  if (buf.length >= 3 && buf[0] === 0xff && buf[1] === 0xd8 && buf[2] === 0xff) return 'jpeg';
  if (isDicom(buf)) return 'dicom';
  return null;
}

export interface DecodeOptions {
  /** Names the image in errors (a file path, usually). */
  name?: string;
  /**
   * Largest image accepted, in pixels, checked from the file's header before decoding (default
   * CARZERO_MAX_PIXELS, else 2^28); larger ones are refused with CZ_ERR_OUT_OF_MEMORY.
   */
  maxPixels?: number;
}

/** Decodes an image held in memory; throws ImageDecodeError naming `options.name`. */
export function decodeImage(buffer: Uint8Array, options: DecodeOptions = {}): GrayImage {
  const name = options.name ?? '<buffer>';
  const maxPixels = resolveMaxPixels(options.maxPixels);
  if (!(buffer instanceof Uint8Array))
    throw new TypeError("decodeImage: argument 'buffer' must be a Buffer or Uint8Array");
  const buf = Buffer.isBuffer(buffer) ? buffer : Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  if (buf.length === 0) throw new ImageDecodeError(name, 'empty file');
  const format = detectImageFormat(buf);
  let img: GrayImage;
  try {
    switch (format) {
      case 'png':
        img = decodePng(buf, name, maxPixels);
        break;
      case 'jpeg':
        img = decodeJpeg(buf, name, maxPixels);
        break;
      case 'dicom':
        img = decodeDicom(buf, name, maxPixels);
        break;
      default:
        throw new ImageDecodeError(
          name,
          'unrecognised image format (not PNG, JPEG or DICOM by its first bytes)',
          'CZ_ERR_UNSUPPORTED',
        );
    }
  } catch (e) {
    if (e instanceof ImageDecodeError) throw e;
    throw new ImageDecodeError(name, `cannot decode ${format} (${(e as Error)?.message ?? String(e)})`);
  }
  if (!(img.width > 0 && img.height > 0)) throw new ImageDecodeError(name, `empty image (${img.width}x${img.height})`);
  return img;
}

/** Reads and decodes an image file. */
export async function readImage(file: string, options: Omit<DecodeOptions, 'name'> = {}): Promise<GrayImage> {
  if (typeof file !== 'string') throw new TypeError("readImage: argument 'file' must be a path string");
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (e) {
    throw new ImageDecodeError(file, `cannot read (${(e as Error).message})`, 'CZ_ERR_IO');
  }
  return decodeImage(buf, { ...options, name: file });
}
