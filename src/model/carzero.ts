// CARZero: the model a user loads from a converted model directory (config.json,
// model.safetensors, tokenizer.json; see docs/MODEL-FORMAT.md). It ties the native model to the
// text and image pipelines: texts are cleaned and tokenised here, images decoded and
// preprocessed here, and the heavy work runs natively off the JS thread.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Device } from '../device.js';
import { CarzeroError } from '../errors.js';
import { inputPixels } from '../image/feed.js';
import { cleanText, Tokenizer } from '../text/index.js';
import { Tensor } from '../tensor.js';
import { NativeModel } from './native-model.js';
import { checkModelForLoad, resolveModel, type VerifyPolicy } from './store.js';
import * as zs from '../zeroshot/index.js';
import type { CarzeroConfig, ImageEmbeddings, Precision, PreparedImage, ScoreResult, TextEmbeddings } from './types.js';

export type { CarzeroConfig, ImageEmbeddings, Precision, PreparedImage, ScoreResult, TextEmbeddings } from './types.js';
import type {
  ClassifiedImage,
  ClassifyOptions,
  ClassifyResult,
  ClassTextEmbeddings,
  EmbeddedImage,
  GroundedImage,
  GroundingResult,
  ImageInput,
  PromptsInput,
  SkippedImage,
  StreamOptions,
} from '../zeroshot/types.js';

export interface LoadOptions {
  /** 'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or a Device. */
  device?: 'auto' | 'cpu' | 'cuda' | Device;
  /** fp32 | tf32 | bf16 (see Precision). Default: fp32 on CPU, tf32 on CUDA. */
  precision?: Precision;
  /**
   * The sha256 check of a model that has a manifest (src/model/store.ts): 'first' (default) hashes
   * the files when they were not checked as they are now, 'always' on every load, 'never' skips it.
   * The size check against the manifest and the safetensors header check always run.
   */
  verify?: VerifyPolicy;
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

  private constructor(
    dir: string,
    config: CarzeroConfig,
    device: Device,
    precision: Precision,
    tokenizer: Tokenizer,
    nm: NativeModel,
  ) {
    this.dir = dir;
    this.config = config;
    this.device = device;
    this.precision = precision;
    this.tokenizer = tokenizer;
    this.#native = nm;
  }

  /**
   * Loads a model: a directory (`carzero convert` writes one) or a model name, shipped in the
   * package's `weights/` (e.g. 'phantom-demo') or in the user's store (`carzero convert --name`).
   * Refuses a missing, truncated, extended or altered model file with a ModelIntegrityError naming it.
   */
  static async load(model: string, options: LoadOptions = {}): Promise<CARZero> {
    if (typeof model !== 'string' || model.length === 0)
      throw new TypeError("CARZero.load: argument 'model' must be a model name or a directory path");
    if (options === null || typeof options !== 'object')
      throw new TypeError("CARZero.load: argument 'options' must be an object");
    const verify = options.verify ?? 'first';
    if (verify !== 'first' && verify !== 'always' && verify !== 'never')
      throw new TypeError(`CARZero.load: option 'verify' must be 'first', 'always' or 'never', got ${String(verify)}`);
    const dir = resolveModel(model).dir;
    await checkModelForLoad(dir, verify);
    const device = Device.resolve(options.device ?? 'auto');
    const precision = options.precision ?? (device.kind === 'cuda' ? 'tf32' : 'fp32');
    if (precision !== 'fp32' && precision !== 'tf32' && precision !== 'bf16')
      throw new TypeError(
        `CARZero.load: option 'precision' must be 'fp32', 'tf32' or 'bf16', got ${String(precision)}`,
      );
    let config: CarzeroConfig;
    const cfgPath = join(dir, 'config.json');
    try {
      config = JSON.parse(await readFile(cfgPath, 'utf8')) as CarzeroConfig;
    } catch (e) {
      throw new CarzeroError(
        `${cfgPath}: ${(e as Error).message}`,
        (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'CZ_ERR_IO' : 'CZ_ERR_FORMAT',
      );
    }
    if (config === null || typeof config !== 'object' || Array.isArray(config))
      throw new CarzeroError(
        `${cfgPath}: not a carzero model directory (config.json is not a JSON object); ` +
          'convert a checkpoint with `carzero convert`',
        'CZ_ERR_FORMAT',
      );
    if (config.format !== 'carzero-model')
      throw new CarzeroError(
        `${cfgPath}: not a carzero model directory ` +
          `(format ${JSON.stringify(config.format)?.slice(0, 60) ?? 'missing'}); ` +
          'convert a checkpoint with `carzero convert`',
        'CZ_ERR_FORMAT',
      );
    const tokenizer = await Tokenizer.fromFile(join(dir, 'tokenizer.json'));
    const nm = await NativeModel.load(dir, { device, precision });
    return new CARZero(dir, config, device, precision, tokenizer, nm);
  }

  get #model(): NativeModel {
    if (!this.#native) throw new CarzeroError('CARZero: the model has been disposed', 'CZ_ERR_INVALID_ARGUMENT');
    return this.#native;
  }

  /** Decodes and preprocesses one image (path, encoded bytes or pixels). Throws ImageDecodeError. */
  async prepareImage(image: ImageInput): Promise<PreparedImage> {
    const name =
      typeof image === 'string'
        ? image
        : image instanceof Uint8Array
          ? '<buffer>'
          : image !== null && typeof image === 'object' && 'path' in image
            ? (image.name ?? `${image.path}#${image.frame}`)
            : 'prepareImage';
    return { pixels: await inputPixels(image, this.config.preprocess, name) };
  }

  /** Embeds prepared images (at most what fits one batch; callers batch). */
  async embedPrepared(images: readonly PreparedImage[]): Promise<ImageEmbeddings> {
    const n = images.length;
    if (n === 0) throw new RangeError("embedPrepared: argument 'images' is empty");
    const crop = this.config.preprocess.crop;
    const plane = crop * crop;
    const buf = new Float32Array(n * plane);
    images.forEach((im, i) => {
      if (im.pixels.length !== plane)
        throw new RangeError(`embedPrepared: images[${i}] has ${im.pixels.length} pixels, expected ${plane}`);
      buf.set(im.pixels, i * plane);
    });
    using pixels = Tensor.from(buf, [n, 1, crop, crop], { device: this.device });
    const { global, local } = await this.#model.embedImages(pixels);
    return disposable({ global, local, count: n }, [global, local]);
  }

  /**
   * Embeds images given as paths, encoded bytes or pixels, as one batch. A bad image throws
   * (per-item handling: embedImageStream / classifyStream).
   */
  async embedImages(images: readonly ImageInput[]): Promise<ImageEmbeddings> {
    if (!Array.isArray(images) || images.length === 0)
      throw new RangeError("embedImages: argument 'images' must be a non-empty array");
    const prepared = await Promise.all(images.map((im) => this.prepareImage(im)));
    return this.embedPrepared(prepared);
  }

  /** Streams image embeddings (global, and local when asked) with per-item errors, in input order. */
  embedImageStream(options: StreamOptions & { local?: boolean }): AsyncGenerator<EmbeddedImage | SkippedImage> {
    return zs.embedImageStream(this, options);
  }

  /**
   * Cleans (spec 3.1), tokenises and embeds texts. Given a prompts object {class: prompt}, the
   * result also carries `classes` and can be passed as `prompts` to classify calls (reusable).
   */
  async embedTexts(texts: readonly string[]): Promise<TextEmbeddings>;
  async embedTexts(
    prompts: PromptsInput,
    options?: { onWarning?: (message: string) => void },
  ): Promise<ClassTextEmbeddings>;
  async embedTexts(
    texts: readonly string[] | PromptsInput,
    options: { onWarning?: (message: string) => void } = {},
  ): Promise<TextEmbeddings> {
    if (texts !== null && typeof texts === 'object' && !Array.isArray(texts)) {
      const { classes, prompts } = zs.checkPrompts(texts, 'embedTexts', options.onWarning);
      const emb = await this.embedTexts(prompts);
      return Object.assign(emb, { classes });
    }
    if (!Array.isArray(texts) || texts.length === 0)
      throw new RangeError(
        "embedTexts: argument 'texts' must be a non-empty array of strings or a prompts object {class: prompt}",
      );
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
  async score(
    images: ImageEmbeddings,
    texts: TextEmbeddings,
    options: { attention?: boolean } = {},
  ): Promise<ScoreResult> {
    const r = await this.#model.score(images.global, images.local, texts.sentence, texts.words, {
      attention: !!options.attention,
    });
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

  /** Zero-shot scores of every image against every class, collected (docs/ZEROSHOT-API.md). */
  classify(options: ClassifyOptions): Promise<ClassifyResult> {
    return zs.classify(this, options);
  }

  /** Streams per-image scores or SkippedImage in input order, with bounded memory. */
  classifyStream(options: ClassifyOptions): AsyncGenerator<ClassifiedImage | SkippedImage> {
    return zs.classifyStream(this, options);
  }

  /** Grounding maps (spec 5): per image (Q, 224, 224), collected. */
  groundingMaps(options: ClassifyOptions): Promise<GroundingResult> {
    return zs.groundingMaps(this, options);
  }

  /** Streams scores + grounding maps + the model's crop per image. */
  groundingStream(options: ClassifyOptions): AsyncGenerator<GroundedImage | SkippedImage> {
    return zs.groundingStream(this, options);
  }

  /** True once dispose() has run. */
  get disposed(): boolean {
    return this.#native === undefined;
  }

  dispose(): void {
    this.#native?.dispose();
    this.#native = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
