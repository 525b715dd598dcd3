// CARZero: the model a user loads from a converted model directory (config.json,
// model.safetensors, tokenizer.json; see docs/MODEL-FORMAT.md). It ties the native model to the
// text and image pipelines: texts are cleaned and tokenised here, images decoded and
// preprocessed here, and the heavy work runs natively off the JS thread.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Device } from '../device.js';
import { CarzeroError } from '../errors.js';
import { decodeImage, readImage, preprocess, type GrayImage } from '../image/index.js';
import { cleanText, Tokenizer } from '../text/index.js';
import { Tensor } from '../tensor.js';
import { NativeModel } from './native-model.js';

export type Precision = 'fp32' | 'bf16';

export interface CarzeroConfig {
  format: string;
  format_version: number;
  vision: { image_size: number; patch_size: number; in_chans: number; width: number; depth: number; heads: number; mlp_dim: number; eps: number };
  text: { vocab_size: number; width: number; depth: number; heads: number; intermediate: number; max_position: number; type_vocab: number; eps: number; max_length: number; last_n_layers: number };
  head: { width: number; heads: number; depth: number; ffn: number; mlp: number[]; eps: number };
  preprocess: { resize: number; crop: number; mean: number; std: number };
}

export interface LoadOptions {
  /** 'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or a Device. */
  device?: 'auto' | 'cpu' | 'cuda' | Device;
  /** fp32 (default) or bf16 weights with fp32 accumulation. */
  precision?: Precision;
}

/** Image embeddings (native tensors on the model's device). */
export interface ImageEmbeddings extends Disposable {
  readonly global: Tensor; // (B, C)
  readonly local: Tensor; // (B, P, C)
  readonly count: number;
}

/** Text embeddings, reusable across calls. */
export interface TextEmbeddings extends Disposable {
  readonly sentence: Tensor; // (Q, C)
  readonly words: Tensor; // (Q, L, C)
  readonly count: number;
  /** The cleaned texts the embeddings were computed from. */
  readonly cleaned: string[];
}

export interface ScoreResult {
  /** (B, Q) raw logits: (i2t + t2i^T) / 2. Row b, column q. */
  score: Float32Array;
  i2t: Float32Array; // (B, Q)
  t2i: Float32Array; // (Q, B)
  /** (B, Q, P) grounding attention when asked for. */
  attention?: Float32Array;
  images: number;
  texts: number;
}

/** One decoded, preprocessed image ready for the encoder. */
export interface PreparedImage {
  /** (crop x crop) normalised pixels; the 3 model channels are equal. */
  pixels: Float32Array;
}

function disposable<T extends object>(obj: T, tensors: Tensor[]): T & Disposable {
  return Object.assign(obj, {
    [Symbol.dispose]() {
      for (const t of tensors) t.dispose();
    },
  });
}

export class CARZero implements Disposable {
  readonly config: CarzeroConfig;
  readonly device: Device;
  readonly precision: Precision;
  readonly tokenizer: Tokenizer;
  readonly dir: string;
  #native: NativeModel | undefined;

  private constructor(dir: string, config: CarzeroConfig, device: Device, precision: Precision, tokenizer: Tokenizer, nm: NativeModel) {
    this.dir = dir;
    this.config = config;
    this.device = device;
    this.precision = precision;
    this.tokenizer = tokenizer;
    this.#native = nm;
  }

  /** Loads a converted model directory (`carzero convert` writes one). */
  static async load(dir: string, options: LoadOptions = {}): Promise<CARZero> {
    if (typeof dir !== 'string' || dir.length === 0) throw new TypeError("CARZero.load: argument 'dir' must be a directory path");
    if (options === null || typeof options !== 'object') throw new TypeError("CARZero.load: argument 'options' must be an object");
    const precision = options.precision ?? 'fp32';
    if (precision !== 'fp32' && precision !== 'bf16')
      throw new TypeError(`CARZero.load: option 'precision' must be 'fp32' or 'bf16', got ${String(precision)}`);
    const device = Device.resolve(options.device ?? 'auto');
    let config: CarzeroConfig;
    const cfgPath = join(dir, 'config.json');
    try {
      config = JSON.parse(await readFile(cfgPath, 'utf8')) as CarzeroConfig;
    } catch (e) {
      throw new CarzeroError(`${cfgPath}: ${(e as Error).message}`, (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'CZ_ERR_IO' : 'CZ_ERR_FORMAT');
    }
    if (config.format !== 'carzero-model')
      throw new CarzeroError(`${cfgPath}: not a carzero model directory (format '${String(config.format)}'); convert a checkpoint with \`carzero convert\``, 'CZ_ERR_FORMAT');
    const tokenizer = await Tokenizer.fromFile(join(dir, 'tokenizer.json'));
    const nm = await NativeModel.load(dir, { device, precision });
    return new CARZero(dir, config, device, precision, tokenizer, nm);
  }

  get #model(): NativeModel {
    if (!this.#native) throw new CarzeroError('CARZero: the model has been disposed', 'CZ_ERR_INVALID_ARGUMENT');
    return this.#native;
  }

  /** Decodes and preprocesses one image (path or encoded bytes). Throws ImageDecodeError. */
  async prepareImage(image: string | Uint8Array): Promise<PreparedImage> {
    const p = this.config.preprocess;
    let decoded: GrayImage;
    if (typeof image === 'string') decoded = await readImage(image);
    else if (image instanceof Uint8Array) decoded = decodeImage(image, { name: '<buffer>' });
    else throw new TypeError('prepareImage: an image must be a file path or a Uint8Array/Buffer of encoded bytes');
    return { pixels: preprocess(decoded, p).pixels };
  }

  /** Embeds prepared images (at most what fits one batch; callers batch). */
  async embedPrepared(images: readonly PreparedImage[]): Promise<ImageEmbeddings> {
    const n = images.length;
    if (n === 0) throw new RangeError("embedPrepared: argument 'images' is empty");
    const crop = this.config.preprocess.crop;
    const plane = crop * crop;
    const buf = new Float32Array(n * plane);
    images.forEach((im, i) => {
      if (im.pixels.length !== plane) throw new RangeError(`embedPrepared: images[${i}] has ${im.pixels.length} pixels, expected ${plane}`);
      buf.set(im.pixels, i * plane);
    });
    using pixels = Tensor.from(buf, [n, 1, crop, crop], { device: this.device });
    const { global, local } = await this.#model.embedImages(pixels);
    return disposable({ global, local, count: n }, [global, local]);
  }

  /** Embeds images given as paths or encoded bytes. A bad image throws (per-item handling is the caller's). */
  async embedImages(images: readonly (string | Uint8Array)[]): Promise<ImageEmbeddings> {
    const prepared = await Promise.all(images.map((im) => this.prepareImage(im)));
    return this.embedPrepared(prepared);
  }

  /** Cleans (spec 3.1), tokenises and embeds texts. */
  async embedTexts(texts: readonly string[]): Promise<TextEmbeddings> {
    if (!Array.isArray(texts) || texts.length === 0) throw new RangeError("embedTexts: argument 'texts' must be a non-empty array of strings");
    texts.forEach((t, i) => {
      if (typeof t !== 'string') throw new TypeError(`embedTexts: texts[${i}] must be a string`);
    });
    const cleaned = texts.map((t) => cleanText(t));
    const L = this.config.text.max_length;
    const enc = this.tokenizer.encode(cleaned, { maxLength: L });
    const Q = texts.length;
    using ids = Tensor.from(enc.ids, [Q, L], { dtype: 'i32', device: this.device });
    using mask = Tensor.from(enc.mask, [Q, L], { dtype: 'u8', device: this.device });
    using kinds = Tensor.from(enc.kinds, [Q, L], { dtype: 'u8', device: this.device });
    const { sentence, words } = await this.#model.embedTexts(ids, mask, kinds);
    return disposable({ sentence, words, count: Q, cleaned }, [sentence, words]);
  }

  /** Scores every (image, text) pair: raw logits (spec 5). */
  async score(images: ImageEmbeddings, texts: TextEmbeddings, options: { attention?: boolean } = {}): Promise<ScoreResult> {
    const r = await this.#model.score(images.global, images.local, texts.sentence, texts.words, { attention: !!options.attention });
    try {
      return {
        score: (await r.score.read()) as Float32Array,
        i2t: (await r.i2t.read()) as Float32Array,
        t2i: (await r.t2i.read()) as Float32Array,
        attention: r.attention ? ((await r.attention.read()) as Float32Array) : undefined,
        images: images.count,
        texts: texts.count,
      };
    } finally {
      r.score.dispose();
      r.i2t.dispose();
      r.t2i.dispose();
      r.attention?.dispose();
    }
  }

  dispose(): void {
    this.#native?.dispose();
    this.#native = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
