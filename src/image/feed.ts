// The image feed: file or encoded bytes -> CARZero's model input (the normalised centre crop) or
// the padded 256 x 256 image (training), decoded and preprocessed by the native decode pool
// (native/src/napi/image.cpp: libpng, libjpeg-turbo, the native DICOM reader and INTER_AREA, on
// their own threads) with the JavaScript decoders (./decode.ts) as the fallback: when the addon
// is not loadable, when the binary was built without a codec, or for a DICOM transfer syntax the
// native reader does not decode. Both paths give the same bytes (test/preprocess-parity.test.ts).
import { availableParallelism } from 'node:os';
import { isMainThread } from 'node:worker_threads';
import { native, type NativeImagePool } from '../native.js';
import { CarzeroError } from '../errors.js';
import { decodeImage, readImage } from './decode.js';
import { decodeThreadsSetting, decoderSetting } from '../settings.js';
import { resolveMaxPixels } from './limits.js';
import { ImageDecodeError } from './errors.js';
import { padLayout, preprocess, type PadLayout, type PreprocessOptions } from './preprocess.js';

export type FeedInput = string | Uint8Array;
export type FeedOutput = 'crop' | 'padded' | 'both';

export interface FeedLoadOptions extends PreprocessOptions {
  /** What to return: the normalised crop (default), the padded square, or both. */
  output?: FeedOutput;
  /** The frame of a multi-frame DICOM file, 0-based (default 0; needs the native DICOM reader beyond 0). */
  frame?: number;
}

export interface FedImage {
  /** The decoded image's size. */
  width: number;
  height: number;
  /** The resized image's size and offset in the padded square. */
  resized: PadLayout;
  /** (crop, crop) normalised float32, when output is 'crop' or 'both'. */
  pixels?: Float32Array;
  /** (resize, resize) uint8, when output is 'padded' or 'both'. */
  padded?: Uint8Array;
}

export interface ImageFeedOptions {
  /**
   * Decode threads. Default: CARZERO_DECODE_THREADS when set, else the cores on the main thread
   * and 1 inside a worker thread (whose siblings decode too).
   */
  threads?: number;
  /**
   * 'auto' (default, or CARZERO_DECODER): native, and the JavaScript decoders for what the binary
   * does not decode; 'native': native only (a format the binary lacks is an error); 'js': the
   * JavaScript path only.
   */
  decoder?: 'auto' | 'native' | 'js';
  /**
   * Largest image accepted, in pixels (all frames of a multi-frame DICOM together), checked from
   * each file's header before it is decoded: CARZERO_MAX_PIXELS when set, else 2^28.
   */
  maxPixels?: number;
}

/** The default decode thread count (see ImageFeedOptions.threads). */
export function defaultDecodeThreads(): number {
  const fromEnv = decodeThreadsSetting();
  if (fromEnv !== undefined) return fromEnv;
  return isMainThread ? availableParallelism() : 1;
}

export class ImageFeed implements Disposable {
  #pool: NativeImagePool | null = null;
  #closed = false;
  #strict = false;
  readonly threads: number;
  readonly decoder: 'native' | 'js';
  readonly maxPixels: number;

  constructor(options: ImageFeedOptions = {}) {
    if (options === null || typeof options !== 'object')
      throw new TypeError("ImageFeed: argument 'options' must be an object");
    const decoder = options.decoder ?? decoderSetting() ?? 'auto';
    if (decoder !== 'auto' && decoder !== 'native' && decoder !== 'js') {
      throw new TypeError(`ImageFeed: option 'decoder' must be 'auto', 'native' or 'js', got ${String(decoder)}`);
    }
    const threads = options.threads ?? defaultDecodeThreads();
    if (!Number.isInteger(threads) || threads < 1 || threads > 1024)
      throw new RangeError(`ImageFeed: option 'threads' must be an integer in [1, 1024], got ${String(threads)}`);
    this.threads = threads;
    this.maxPixels = resolveMaxPixels(options.maxPixels, "ImageFeed: option 'maxPixels'");
    if (decoder !== 'js') {
      let Pool: (new (threads: number) => NativeImagePool) | undefined;
      try {
        Pool = native().ImagePool;
      } catch (e) {
        if (decoder === 'native') throw e;
      }
      if (Pool) this.#pool = new Pool(threads);
      else if (decoder === 'native')
        throw new CarzeroError('ImageFeed: the native addon has no image pool (an older build?)', 'CZ_ERR_UNSUPPORTED');
    }
    this.decoder = this.#pool ? 'native' : 'js';
    this.#strict = decoder === 'native';
  }

  /**
   * Decodes and preprocesses one image. `name` names it in errors (default: the path, or
   * '<buffer>'). Throws ImageDecodeError (code CZ_ERR_IO, CZ_ERR_FORMAT, CZ_ERR_UNSUPPORTED or
   * CZ_ERR_OUT_OF_MEMORY for an image larger than the limits).
   */
  async load(input: FeedInput, options: FeedLoadOptions = {}, name?: string): Promise<FedImage> {
    if (this.#closed) throw new CarzeroError('ImageFeed.load: the feed is closed', 'CZ_ERR_INVALID_ARGUMENT');
    if (typeof input !== 'string' && !(input instanceof Uint8Array))
      throw new TypeError("ImageFeed.load: argument 'input' must be a file path or a Uint8Array of encoded bytes");
    const label = name ?? (typeof input === 'string' ? input : '<buffer>');
    const output = options.output ?? 'crop';
    const frame = options.frame ?? 0;
    if (!Number.isInteger(frame) || frame < 0)
      throw new RangeError(`ImageFeed.load: option 'frame' must be a non-negative integer, got ${String(frame)}`);
    if (this.#pool) {
      try {
        return await this.#pool.load(input, {
          resize: options.resize,
          crop: options.crop,
          mean: options.mean,
          std: options.std,
          output,
          frame,
          maxPixels: this.maxPixels,
        });
      } catch (e) {
        const code = (e as { code?: string }).code;
        // A format or syntax this binary does not decode: the JavaScript decoders may.
        if (code !== 'CZ_ERR_UNSUPPORTED' || this.#strict) {
          if (e instanceof CarzeroError) throw new ImageDecodeError(label, e.message, e.code);
          throw e;
        }
      }
    }
    if (frame > 0)
      throw new ImageDecodeError(
        label,
        `frame ${frame}: only the native DICOM reader decodes frames past the first ` +
          '(this binary has none for this file)',
        'CZ_ERR_UNSUPPORTED',
      );
    const img =
      typeof input === 'string'
        ? await readImage(input, { maxPixels: this.maxPixels })
        : decodeImage(input, { name: label, maxPixels: this.maxPixels });
    // An extreme aspect ratio resizes to an empty side: a property of the file, so a per-file error
    const l = padLayout(img.width, img.height, options.resize ?? 256);
    if (l.width < 1 || l.height < 1)
      throw new ImageDecodeError(
        label,
        `a ${img.width}x${img.height} image resizes to ${l.width}x${l.height}`,
        'CZ_ERR_FORMAT',
      );
    const r = preprocess(img, options);
    return {
      width: img.width,
      height: img.height,
      resized: r.resized,
      ...(output !== 'padded' ? { pixels: r.pixels } : {}),
      ...(output !== 'crop' ? { padded: r.padded } : {}),
    };
  }

  /** Stops the decode threads (requests already queued are still answered). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pool?.close();
    this.#pool = null;
  }

  dispose(): void {
    this.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Frames of a DICOM file (1 for a single-frame one), from its header; null when the file is not
 * DICOM, cannot be read, or the binary has no native DICOM reader.
 */
export function dicomFrameCount(input: FeedInput): number | null {
  try {
    const f = native().dicomFrameCount;
    return typeof f === 'function' ? f(input) : null;
  } catch {
    return null;
  }
}

/** One model input before preparation (the image part of zeroshot's ImageInput). */
export type FeedImage = string | Uint8Array | { pixels: Float32Array } | { path: string; frame: number };

/**
 * The normalised crop of one input: decoded and preprocessed by the default feed (a path, encoded
 * bytes, or one frame of a DICOM file), or taken as given (pixels of crop x crop). `name` names
 * it in errors. The one input-preparation step of embed, classify and ground.
 */
export async function inputPixels(input: FeedImage, options: PreprocessOptions, name: string): Promise<Float32Array> {
  const crop = options.crop ?? 224;
  if (typeof input === 'string' || input instanceof Uint8Array)
    return (await defaultFeed().load(input, { ...options, output: 'crop' }, name)).pixels!;
  if (input !== null && typeof input === 'object' && (input as { pixels?: unknown }).pixels instanceof Float32Array) {
    const px = (input as { pixels: Float32Array }).pixels;
    if (px.length !== crop * crop)
      throw new RangeError(`${name}: pixels has ${px.length} values, expected ${crop}x${crop} = ${crop * crop}`);
    return px;
  }
  if (input !== null && typeof input === 'object' && typeof (input as { path?: unknown }).path === 'string') {
    const { path, frame } = input as { path: string; frame: number };
    return (await defaultFeed().load(path, { ...options, frame, output: 'crop' }, name)).pixels!;
  }
  throw new TypeError(
    `${name}: an image must be a file path, a Uint8Array/Buffer of encoded bytes, ` +
      '{ pixels: Float32Array } or { path, frame }',
  );
}

let shared: ImageFeed | undefined;

/** The process-wide (per thread) feed used by classify, embed, ground, eval and the data loader. */
export function defaultFeed(): ImageFeed {
  shared ??= new ImageFeed();
  return shared;
}
