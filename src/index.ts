// carzero: CARZero zero-shot chest X-ray classification with native CPU/CUDA kernels.
// The public API; every name is listed in docs/ZEROSHOT-API.md ("API reference"). What sits under
// it (the addon, the op table, NativeModel) is in ./internal.ts, the `carzero/internal` subpath.

// errors: every one a CarzeroError with a `code`
export {
  CarzeroError,
  AddonLoadError,
  CheckpointError,
  UnsafePickleError,
  ConvertError,
  type CarzeroErrorCode,
} from './errors.js';

// devices, tensors, ops, build information
export { Device, type CpuDeviceOptions } from './device.js';
export { Tensor, type TensorOptions, type HostArray, type DType } from './tensor.js';
export { ops, runOp, type Activation } from './ops.js';
export { info, formatInfo, type CarzeroInfo } from './info.js';

// the model and the model store
export { CARZero, type LoadOptions } from './model/carzero.js';
export type {
  Precision,
  CarzeroConfig,
  ImageEmbeddings,
  TextEmbeddings,
  ScoreResult,
  PreparedImage,
} from './model/types.js';
export {
  resolveModel,
  listModels,
  verifyModel,
  modelStoreDir,
  shippedModelsDir,
  ModelIntegrityError,
  type ResolvedModel,
  type ListedModel,
  type VerifyResult,
  type VerifyPolicy,
} from './model/store.js';

// zero-shot classification and grounding (methods of CARZero; these are their types and helpers)
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

// weights: conversion of the original checkpoint, and the readers
export { convertCheckpoint, formatConvertReport, type ConvertOptions, type ConvertReport } from './weights/convert.js';
export { readSafetensors, writeSafetensors, SafetensorsFile } from './weights/safetensors.js';
export { TorchCheckpoint, loadTorchCheckpoint } from './weights/torch-zip.js';
export { HfBertFolder } from './weights/hf-bert.js';

// text and images
export {
  cleanText,
  cleanReportSentences,
  Tokenizer,
  vocabToTokenizerJson,
  loadPrompts,
  PromptFileError,
  TokenizerFileError,
} from './text/index.js';
export {
  decodeImage,
  readImage,
  resizeArea,
  preprocess,
  loadImage,
  ImageDecodeError,
  type GrayImage,
} from './image/index.js';

// data sets (CSV, MIMIC-style lists, the training loader and shards)
export { parseCsv, parseCsvRecords, CsvError } from './data/csv.js';
export * as data from './data/index.js';

// evaluation with the original protocols
export {
  evaluate,
  readLabels,
  readScoreCsv,
  formatResult,
  rocCurve,
  rocAuc,
  precisionRecallCurve,
  auprc,
  pointingGame,
  plotSvg,
  rocSvg,
  prSvg,
  writePlots,
  PROTOCOLS,
  EvalInputError,
  type ProtocolName,
  type LabelSet,
  type ScoreTable,
  type EvalResult,
  type Evaluated,
  type PointingTrial,
  type PointingResult,
} from './eval/index.js';

// fine-tuning
export {
  Trainer,
  readConfigFile,
  type TrainerOptions,
  type TrainResult,
  type StepInfo,
  type EpochInfo,
} from './train/trainer.js';
export { defaultConfig, validateConfig, ConfigError, type TrainConfig } from './train/config.js';
