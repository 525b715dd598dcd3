// The typed surface of the native addon (native/src/napi/). Everything the addon exports is
// declared here; the rest of the package talks to native code only through this module.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AddonLoadError, CarzeroError } from './errors.js';

export type DType = 'f32' | 'bf16' | 'f16' | 'i32' | 'u8';
export type DeviceKind = 'cpu' | 'cuda';

export interface NativeContext {
  readonly device: DeviceKind | null;
  readonly threads: number;
  readonly disposed: boolean;
  dispose(): void;
}

export interface NativeTensor {
  readonly shape: number[];
  readonly dtype: DType;
  readonly nbytes: number;
  readonly disposed: boolean;
  dispose(): void;
  readSync(): ArrayBuffer;
  read(): Promise<ArrayBuffer>;
  writeSync(data: ArrayBufferView | ArrayBuffer): void;
}

export interface NativeOpSpec {
  name: string;
  doc: string;
  variadic: boolean;
  args: { name: string; role: 'in' | 'out' | 'inout'; dtypes: DType[]; optional: boolean }[];
  params: { name: string; default: number }[];
  results: string[];
}

/** A loaded CARZero model (native/src/napi/model.cpp); results are native f32 tensors. */
/** Device memory of a model's allocator, in bytes (NativeModel.deviceMemory). */
export interface DeviceMemoryStats {
  inUse: number;
  cached: number;
  peakInUse: number;
}

export interface NativeModelHandle {
  /** JSON text of the resolved configuration (sizes as used). */
  readonly config: string;
  readonly precision: 'fp32' | 'bf16' | 'tf32';
  readonly disposed: boolean;
  embedImages(pixels: NativeTensor): Promise<{ global: NativeTensor; local: NativeTensor }>;
  embedTexts(
    ids: NativeTensor,
    mask: NativeTensor,
    kinds: NativeTensor,
  ): Promise<{ sentence: NativeTensor; words: NativeTensor }>;
  score(
    imgGlobal: NativeTensor,
    imgLocal: NativeTensor,
    sentence: NativeTensor,
    words: NativeTensor,
    options?: { attention?: boolean },
  ): Promise<{ i2t: NativeTensor; t2i: NativeTensor; score: NativeTensor; attention?: NativeTensor }>;
  /** Training layout + gradient arena (docs/TRAINING.md); synchronous; fp32 models only. */
  enableTraining(options?: { seed?: number; precision?: 'fp32' | 'bf16' | 'fp16'; recompute?: boolean }): void;
  zeroGrad(): void;
  workspaceBytes(): number;
  deviceMemory(resetPeak?: boolean): DeviceMemoryStats;
  initCollective(options: { id: Buffer; rank: number; world: number }): void;
  allReduceGradients(): void;
  allReduceSum(tensor: unknown): void;
  freeze(options: { vision?: boolean; text?: boolean }): void;
  forwardBackward(batch: NativeTrainBatch): Promise<NativeStepResult>;
  /** Trainable parameters / their gradients by checkpoint name: tensors viewing the arenas. */
  parameters(): { name: string; tensor: NativeTensor }[];
  gradients(): { name: string; tensor: NativeTensor }[];
  dispose(): void;
}

export interface NativeTrainBatch {
  pixels: NativeTensor;
  ids: NativeTensor;
  mask: NativeTensor;
  kinds: NativeTensor;
  lossScale?: number;
  dropout?: boolean;
  step?: number;
  /** Also return I (i2t) and T (t2i), (N, N). */
  matrices?: boolean;
}

export interface NativeStepResult {
  loss: number;
  i2t_loss: number;
  t2i_loss: number;
  i2t?: NativeTensor;
  t2i?: NativeTensor;
}

export interface NativeModelLoadOptions {
  precision?: 'fp32' | 'bf16' | 'tf32';
  /** Images per ViT chunk (default 32), texts per BERT chunk (128), images and texts per
   * alignment-head chunk (64, 256): bound activation memory for large inputs. */
  maxImages?: number;
  maxTexts?: number;
  maxScoreImages?: number;
  maxScoreTexts?: number;
}

export interface NativeModelClass {
  load(context: NativeContext, dir: string, options?: NativeModelLoadOptions): Promise<NativeModelHandle>;
}

/** The decode pool (native/src/napi/image.cpp): reads, decodes and preprocesses on its own threads. */
export interface NativeImagePool {
  readonly threads: number;
  readonly pending: number;
  load(
    input: string | Uint8Array,
    options: {
      resize?: number;
      crop?: number;
      mean?: number;
      std?: number;
      output?: 'crop' | 'padded' | 'both';
      frame?: number;
      maxPixels?: number;
    },
  ): Promise<{
    width: number;
    height: number;
    resized: { width: number; height: number; left: number; top: number };
    pixels?: Float32Array;
    padded?: Uint8Array;
  }>;
  close(): void;
}

export interface NativeAddon {
  readonly version: string;
  ImagePool: new (threads?: number) => NativeImagePool;
  /** Frames of a DICOM file from its header (throws for a non-DICOM or unreadable file). */
  dicomFrameCount(input: string | Uint8Array): number;
  Model: NativeModelClass;
  Context: new (device: DeviceKind, deviceIndex?: number, threads?: number) => NativeContext;
  Tensor: new (
    context: NativeContext,
    dtype: DType,
    shape: readonly number[],
    data?: ArrayBufferView | ArrayBuffer,
  ) => NativeTensor;
  setErrorClass(cls: new (message: string, code: string) => Error): void;
  /** JSON text of the capabilities report. */
  info(): string;
  /** JSON text: NativeOpSpec[]. */
  opList(): string;
  /** 128 bytes identifying a new data-parallel group (NCCL's unique id; CUDA builds with NCCL). */
  collectiveUniqueId(): Buffer;
  /** Runs an op off the JS thread; resolves with its scalar results. */
  runOp(
    context: NativeContext,
    name: string,
    tensors: readonly (NativeTensor | null)[],
    params?: readonly number[],
  ): Promise<number[]>;
  /** The same on the calling thread, for tiny ops. */
  runOpSync(
    context: NativeContext,
    name: string,
    tensors: readonly (NativeTensor | null)[],
    params?: readonly number[],
  ): number[];
}

/** The package root (holds build/ or prebuilds/). */
export const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

let cached: NativeAddon | undefined;

/** Loads the addon once (a prebuilt binary, else the local build). */
export function native(): NativeAddon {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  let addon: NativeAddon;
  try {
    const load = require('node-gyp-build') as (dir: string) => unknown;
    addon = load(packageRoot) as NativeAddon;
  } catch (e) {
    throw new AddonLoadError(
      `carzero: could not load the native addon from ${packageRoot} ` +
        `(no prebuilt binary for ${process.platform}-${process.arch} and no local build): ` +
        `${(e as Error).message}. Run \`npm run build:native\` in the package to build it.`,
    );
  }
  addon.setErrorClass(CarzeroError as unknown as new (message: string, code: string) => Error);
  cached = addon;
  return addon;
}
