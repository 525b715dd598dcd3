// NativeModel: the typed wrapper over the addon's `Model` class (native/src/napi/model.cpp):
// load a converted model directory onto a Device, embed images and texts, score every pair.
// Inputs and results are Tensors on the model's device; every call runs natively off the JS
// thread. Argument mistakes throw TypeError/RangeError naming the argument; native failures are
// CarzeroErrors. CARZero (./carzero.ts) adds preprocessing and tokenisation on top.
import { Device } from '../device.js';
import { CarzeroError } from '../errors.js';
import { native, type DeviceMemoryStats, type NativeModelHandle, type NativeTensor } from '../native.js';
import { Tensor } from '../tensor.js';
import type { CarzeroConfig, NativePrecision } from './types.js';

export interface NativeModelOptions {
  /** 'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or a Device. Default 'auto'. */
  device?: 'auto' | 'cpu' | 'cuda' | Device;
  /** fp32 (default), bf16 (GEMM weights stored bf16, fp32 accumulation and activations) or tf32
   * (fp32; CUDA GEMMs may use TF32 tensor cores; exact fp32 on the CPU). */
  precision?: NativePrecision;
  /** Images per internal ViT chunk (bounds activation memory; default 32). */
  maxImages?: number;
  /** Texts per internal BERT chunk (default 128). */
  maxTexts?: number;
  /** Images / texts per alignment-head chunk (defaults 64 / 256). */
  maxScoreImages?: number;
  maxScoreTexts?: number;
}

export interface ScoreOptions {
  /** Also return the grounding maps (B, Q, P). Default false. */
  attention?: boolean;
}

export interface NativeImageEmbeddings {
  global: Tensor; // (B, C)
  local: Tensor; // (B, P, C)
}
export interface NativeTextEmbeddings {
  sentence: Tensor; // (Q, C)
  words: Tensor; // (Q, L, C)
}
export interface NativeScores {
  i2t: Tensor; // (B, Q)
  t2i: Tensor; // (Q, B)
  score: Tensor; // (B, Q) = (i2t + t2i^T) / 2, raw logits
  attention?: Tensor; // (B, Q, P)
}

// Tensor's constructor is private to the public API; results of native calls are wrapped here.
// (A static @internal factory on Tensor would be the cleaner home for this.)
type TensorCtor = new (t: NativeTensor, device: Device) => Tensor;
function wrap(t: NativeTensor, device: Device): Tensor {
  return new (Tensor as unknown as TensorCtor)(t, device);
}

function checkTensor(t: unknown, what: string, device: Device): NativeTensor {
  if (!(t instanceof Tensor)) throw new TypeError(`${what} must be a Tensor`);
  if (t.device !== device && t.device.kind !== device.kind)
    throw new TypeError(`${what} is on ${t.device}, the model on ${device}`);
  return t.native;
}

function checkCount(v: unknown, what: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 2 ** 20)
    throw new RangeError(`${what} must be an integer in [1, 2^20], got ${String(v)}`);
  return v;
}

export interface TrainBatch {
  /** (N, 3 or 1, H, W) f32, normalised */
  pixels: Tensor;
  /** (N, L) i32, u8, u8 as for embedTexts */
  ids: Tensor;
  mask: Tensor;
  kinds: Tensor;
  /** multiplies the upstream gradient (default 1) */
  lossScale?: number;
  /** training-mode dropout (default true) */
  dropout?: boolean;
  /** seeds this step's dropout masks */
  step?: number;
  /** also return I and T */
  matrices?: boolean;
}

export interface StepResult {
  loss: number;
  i2t_loss: number;
  t2i_loss: number;
  i2t?: Tensor;
  t2i?: Tensor;
}

export interface NamedTensor {
  name: string;
  tensor: Tensor;
}

export class NativeModel implements Disposable {
  readonly device: Device;
  readonly precision: NativePrecision;
  /** The resolved configuration (sizes from the tensor shapes). */
  readonly config: CarzeroConfig;
  #handle: NativeModelHandle | undefined;

  private constructor(handle: NativeModelHandle, device: Device) {
    this.#handle = handle;
    this.device = device;
    this.precision = handle.precision;
    this.config = JSON.parse(handle.config) as CarzeroConfig;
  }

  /** Loads <dir>/config.json + <dir>/model.safetensors (validated tensor by tensor). */
  static async load(dir: string, options: NativeModelOptions = {}): Promise<NativeModel> {
    if (typeof dir !== 'string' || dir.length === 0)
      throw new TypeError("NativeModel.load: argument 'dir' must be a non-empty string");
    if (options === null || typeof options !== 'object')
      throw new TypeError("NativeModel.load: argument 'options' must be an object");
    const precision = options.precision ?? 'fp32';
    if (precision !== 'fp32' && precision !== 'bf16' && precision !== 'tf32')
      throw new TypeError(
        `NativeModel.load: option 'precision' must be 'fp32', 'bf16' or 'tf32', got ${String(precision)}`,
      );
    const device = Device.resolve(options.device ?? 'auto');
    const handle = await native().Model.load(device.nativeContext, dir, {
      precision,
      maxImages: checkCount(options.maxImages, "NativeModel.load: option 'maxImages'"),
      maxTexts: checkCount(options.maxTexts, "NativeModel.load: option 'maxTexts'"),
      maxScoreImages: checkCount(options.maxScoreImages, "NativeModel.load: option 'maxScoreImages'"),
      maxScoreTexts: checkCount(options.maxScoreTexts, "NativeModel.load: option 'maxScoreTexts'"),
    });
    return new NativeModel(handle, device);
  }

  get disposed(): boolean {
    return this.#handle === undefined;
  }

  get #live(): NativeModelHandle {
    if (!this.#handle) throw new CarzeroError('NativeModel: the model has been disposed', 'CZ_ERR_INVALID_ARGUMENT');
    return this.#handle;
  }

  /** pixels (B, 3 or 1, H, W) f32, normalised -> global (B, C), local (B, P, C). */
  async embedImages(pixels: Tensor): Promise<NativeImageEmbeddings> {
    const h = this.#live;
    const px = checkTensor(pixels, "embedImages: argument 'pixels'", this.device);
    const r = await h.embedImages(px);
    return { global: wrap(r.global, this.device), local: wrap(r.local, this.device) };
  }

  /** ids (Q, L) i32, mask (Q, L) u8, kinds (Q, L) u8 -> sentence (Q, C), words (Q, L, C). */
  async embedTexts(ids: Tensor, mask: Tensor, kinds: Tensor): Promise<NativeTextEmbeddings> {
    const h = this.#live;
    const r = await h.embedTexts(
      checkTensor(ids, "embedTexts: argument 'ids'", this.device),
      checkTensor(mask, "embedTexts: argument 'mask'", this.device),
      checkTensor(kinds, "embedTexts: argument 'kinds'", this.device),
    );
    return { sentence: wrap(r.sentence, this.device), words: wrap(r.words, this.device) };
  }

  /** Scores every (image, text) pair in both directions (spec 5). */
  async score(
    imgGlobal: Tensor,
    imgLocal: Tensor,
    sentence: Tensor,
    words: Tensor,
    options: ScoreOptions = {},
  ): Promise<NativeScores> {
    const h = this.#live;
    if (options === null || typeof options !== 'object')
      throw new TypeError("score: argument 'options' must be an object");
    if (options.attention !== undefined && typeof options.attention !== 'boolean')
      throw new TypeError(`score: option 'attention' must be a boolean, got ${String(options.attention)}`);
    const r = await h.score(
      checkTensor(imgGlobal, "score: argument 'imgGlobal'", this.device),
      checkTensor(imgLocal, "score: argument 'imgLocal'", this.device),
      checkTensor(sentence, "score: argument 'sentence'", this.device),
      checkTensor(words, "score: argument 'words'", this.device),
      { attention: !!options.attention },
    );
    const out: NativeScores = {
      i2t: wrap(r.i2t, this.device),
      t2i: wrap(r.t2i, this.device),
      score: wrap(r.score, this.device),
    };
    if (r.attention) out.attention = wrap(r.attention, this.device);
    return out;
  }

  // ---- training (docs/TRAINING.md) ---------------------------------------------------------

  /** Switches to the training layout (writable parameters by checkpoint name, a zeroed gradient
   * arena, seeded dropout). fp32 models only. `precision` is that of the training steps: 'fp32',
   * or 'bf16' / 'fp16' mixed precision (fp32 parameters and gradients, the linear layers'
   * products on bf16- or fp16-rounded operands). `recompute` keeps only each ViT block's and BERT
   * layer's input and re-runs the block before its backward (less memory, ~1/3 more compute). */
  enableTraining(options: { seed?: number; precision?: 'fp32' | 'bf16' | 'fp16'; recompute?: boolean } = {}): void {
    const h = this.#live;
    if (this.precision !== 'fp32')
      throw new CarzeroError(
        `enableTraining: training needs an fp32 model (this one is ${this.precision})`,
        'CZ_ERR_INVALID_ARGUMENT',
      );
    if (options.seed !== undefined && (!Number.isSafeInteger(options.seed) || options.seed < 0))
      throw new RangeError(`enableTraining: option 'seed' must be a non-negative integer, got ${String(options.seed)}`);
    if (options.precision !== undefined && !['fp32', 'bf16', 'fp16'].includes(options.precision))
      throw new TypeError(
        `enableTraining: option 'precision' must be 'fp32', 'bf16' or 'fp16', got ${JSON.stringify(options.precision)}`,
      );
    h.enableTraining({
      seed: options.seed ?? 0,
      precision: options.precision ?? 'fp32',
      recompute: options.recompute ?? false,
    });
  }

  /** Joins a data-parallel group (docs/TRAINING.md "Data parallel"): `id` from
   * `collectiveUniqueId()` in one process, the same in every rank. CUDA models only (NCCL). */
  initCollective(options: { id: Buffer; rank: number; world: number }): void {
    const { id, rank, world } = options;
    if (!Buffer.isBuffer(id))
      throw new TypeError("initCollective: option 'id' must be a Buffer from collectiveUniqueId()");
    if (!Number.isSafeInteger(world) || world < 1 || !Number.isSafeInteger(rank) || rank < 0 || rank >= world)
      throw new RangeError(`initCollective: rank ${rank} of world ${world}`);
    this.#live.initCollective({ id, rank, world });
  }

  /** Averages the gradient arena over the data-parallel ranks (queued on the device's stream). */
  allReduceGradients(): void {
    this.#live.allReduceGradients();
  }

  /** Sums an f32 tensor on this model's device in place over the ranks. */
  allReduceSum(t: Tensor): void {
    this.#live.allReduceSum(checkTensor(t, "allReduceSum: argument 'tensor'", this.device));
  }

  /** Bytes of the native activation workspace (it grows to the largest pass run so far). */
  workspaceBytes(): number {
    return this.#live.workspaceBytes();
  }

  /** The model's device allocator (GPU models; zeros on the CPU): bytes held by live allocations,
   * bytes cached for reuse, and the most bytes live at once since the last `resetPeak`
   * (parameters, gradients, activations and op scratch of this model; not tensors made
   * elsewhere, such as an optimizer's moments). */
  deviceMemory(options: { resetPeak?: boolean } = {}): DeviceMemoryStats {
    return this.#live.deviceMemory(options.resetPeak === true);
  }

  zeroGrad(): void {
    this.#live.zeroGrad();
  }

  /** Frozen encoders get no gradients and keep no activations. */
  freeze(options: { vision?: boolean; text?: boolean }): void {
    this.#live.freeze(options);
  }

  /** One forward + backward over N (image, sentence) pairs; gradients accumulate (x lossScale). */
  async forwardBackward(batch: TrainBatch): Promise<StepResult> {
    const h = this.#live;
    const r = await h.forwardBackward({
      pixels: checkTensor(batch.pixels, "forwardBackward: 'pixels'", this.device),
      ids: checkTensor(batch.ids, "forwardBackward: 'ids'", this.device),
      mask: checkTensor(batch.mask, "forwardBackward: 'mask'", this.device),
      kinds: checkTensor(batch.kinds, "forwardBackward: 'kinds'", this.device),
      lossScale: batch.lossScale,
      dropout: batch.dropout,
      step: batch.step,
      matrices: batch.matrices,
    });
    const out: StepResult = { loss: r.loss, i2t_loss: r.i2t_loss, t2i_loss: r.t2i_loss };
    if (r.i2t) out.i2t = wrap(r.i2t, this.device);
    if (r.t2i) out.t2i = wrap(r.t2i, this.device);
    return out;
  }

  /** Trainable parameters by checkpoint name (tensors viewing the parameter arena). */
  parameters(): NamedTensor[] {
    return this.#live.parameters().map((e) => ({ name: e.name, tensor: wrap(e.tensor, this.device) }));
  }

  /** Their gradients (tensors viewing the gradient arena), in the same order. */
  gradients(): NamedTensor[] {
    return this.#live.gradients().map((e) => ({ name: e.name, tensor: wrap(e.tensor, this.device) }));
  }

  /** Releases the model's weights now (work in flight finishes safely). Idempotent. */
  dispose(): void {
    this.#handle?.dispose();
    this.#handle = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
