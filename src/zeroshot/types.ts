// Types of the zero-shot API (docs/ZEROSHOT-API.md is the contract; keep the two in step).
import type { Device } from '../device.js';
import type { CarzeroConfig, ImageEmbeddings, ScoreResult, TextEmbeddings } from '../model/types.js';

/** A file path, encoded bytes (PNG/JPEG/DICOM), or preprocessed (crop x crop) normalised pixels. */
/**
 * A file path, encoded bytes, prepared pixels, or one frame of a multi-frame DICOM file
 * ({ path, frame } with frame 0-based; named `path#frame` unless `name` is given).
 */
export type ImageInput =
  string | Uint8Array | { pixels: Float32Array; name?: string } | { path: string; frame: number; name?: string };
/** {class: prompt} or {class: [prompt]} in key order (one prompt per class; extra ones are ignored with a warning). */
export type PromptsInput = Record<string, string | string[]>;
/** Text embeddings that know their class names (model.embedTexts(prompts) returns these). */
export type ClassTextEmbeddings = TextEmbeddings & { classes: string[] };

export interface ProgressEvent {
  /** Images finished (scored + skipped). */
  done: number;
  scored: number;
  skipped: number;
  /** Number of inputs when known (an array input); undefined for iterables. */
  total?: number;
}

export interface StreamOptions {
  images: Iterable<ImageInput> | AsyncIterable<ImageInput>;
  /** Images per native call (default: 8 on CPU, 64 on CUDA). */
  batchSize?: number;
  /** Images decoded ahead, the bound on memory (default 2 * batchSize). */
  concurrency?: number;
  /** Abort: stops decoding, lets the in-flight native call finish, rejects with an AbortError. */
  signal?: AbortSignal;
  /** Called after every batch. */
  onProgress?: (p: ProgressEvent) => void;
}

export interface ClassifyOptions extends StreamOptions {
  prompts: PromptsInput | ClassTextEmbeddings;
  /** Prompt warnings (a prompt that cleans to "", extra prompts); default process.emitWarning. */
  onWarning?: (message: string) => void;
}

export interface ClassifiedImage {
  index: number;
  name: string;
  /** (Q) raw logits, classes in prompt order. */
  scores: Float32Array;
}
export interface SkippedImage {
  index: number;
  name: string;
  error: Error;
}

export interface ClassifyResult {
  classes: string[];
  /** Names of the scored images, in input order. */
  images: string[];
  /** scores[i]: (Q) raw logits of images[i]. */
  scores: Float32Array[];
  skipped: SkippedImage[];
}

export interface GroundedImage extends ClassifiedImage {
  /** (Q, crop, crop) grounding maps (spec 5): i2t attention, heads and layers averaged, nearest-upsampled. */
  maps: Float32Array;
  /** The (crop x crop) normalised pixels the model saw (for overlays). */
  pixels: Float32Array;
}

export interface GroundingResult {
  classes: string[];
  images: string[];
  scores: Float32Array[];
  /** Per image (Q, 224, 224). */
  maps: Float32Array[];
  skipped: SkippedImage[];
}

export interface EmbeddedImage {
  index: number;
  name: string;
  /** (C) global embedding. */
  global: Float32Array;
  /** (P, C) local embeddings, when asked for. */
  local?: Float32Array;
}

export function isSkipped(r: ClassifiedImage | SkippedImage | EmbeddedImage): r is SkippedImage {
  return (r as SkippedImage).error !== undefined;
}

/**
 * What the zero-shot pipelines need of a model (CARZero implements it): its config, its device,
 * and the three embedding and scoring calls. Depending on this, not on the CARZero class, keeps the
 * imports one-way (src/model/carzero.ts -> src/zeroshot/).
 */
export interface ZeroShotModel {
  readonly config: CarzeroConfig;
  readonly device: Device;
  embedPrepared(images: readonly { pixels: Float32Array }[]): Promise<ImageEmbeddings>;
  embedTexts(texts: readonly string[]): Promise<TextEmbeddings>;
  score(images: ImageEmbeddings, texts: TextEmbeddings, options?: { attention?: boolean }): Promise<ScoreResult>;
}
