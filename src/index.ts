// carzero: CARZero zero-shot chest X-ray classification with native CPU/CUDA kernels.
export { CarzeroError, AddonLoadError, type CarzeroErrorCode } from './errors.js';
export { Device, type CpuDeviceOptions } from './device.js';
export { Tensor, type TensorOptions, type HostArray, type DType } from './tensor.js';
export { ops, runOp, runOpSync, OP_TABLE, type Activation } from './ops.js';
export { info, formatInfo, type CarzeroInfo } from './info.js';
export { native, type NativeAddon, type NativeOpSpec } from './native.js';
export { CheckpointError, UnsafePickleError, ConvertError } from './errors.js';
export { CARZero, type LoadOptions, type Precision, type ImageEmbeddings, type TextEmbeddings, type ScoreResult, type CarzeroConfig } from './model/carzero.js';
export { NativeModel } from './model/native-model.js';
export { resolveModel, listModels, verifyModel, modelStoreDir, shippedModelsDir, ModelIntegrityError, type ResolvedModel, type ListedModel, type VerifyResult, type VerifyPolicy } from './model/store.js';
export type { DeviceMemoryStats } from './native.js';
export {
  overlayPng,
  writeOverlayPng,
  upsampleNearest,
  jet,
  isSkipped,
  type ImageInput,
  type PromptsInput,
  type ClassTextEmbeddings,
  type ClassifyOptions,
  type ClassifiedImage,
  type SkippedImage,
  type ClassifyResult,
  type GroundedImage,
  type GroundingResult,
  type EmbeddedImage,
  type ProgressEvent,
  type StreamOptions,
  type OverlayOptions,
} from './zeroshot/index.js';
export { convertCheckpoint, formatConvertReport, type ConvertOptions, type ConvertReport } from './weights/convert.js';
export { readSafetensors, writeSafetensors, SafetensorsFile } from './weights/safetensors.js';
export { TorchCheckpoint, loadTorchCheckpoint } from './weights/torch-zip.js';
export { HfBertFolder } from './weights/hf-bert.js';
export { cleanText, cleanReportSentences, Tokenizer, vocabToTokenizerJson, loadPrompts, PromptFileError, TokenizerFileError } from './text/index.js';
export { decodeImage, readImage, resizeArea, preprocess, loadImage, ImageDecodeError, type GrayImage } from './image/index.js';
export { parseCsv, parseCsvRecords, CsvError } from './data/csv.js';
export * as data from './data/index.js';
