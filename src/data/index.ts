// Training data: MIMIC-CXR-style lists, seeded augmentations, the batch loader, prepared shards.
export { parseCsv, parseCsvRecords, csvField, CsvError, type CsvTable } from './csv.js';
export {
  readMimicCsv,
  parseMimicCsv,
  reportSentences,
  describeDataset,
  DatasetError,
  type MimicDataset,
  type DatasetItem,
  type DroppedRow,
  type MimicColumns,
  type ReadMimicOptions,
  type SplitName,
} from './mimic.js';
export { Rng, permutation, type RngState } from './rng.js';
export {
  augment,
  augmentU8,
  centreCrop,
  normalise,
  sampleAugmentParams,
  inverseAffineMatrix,
  pilAffineNearest,
  adjustBrightness,
  adjustContrast,
  type AugmentOptions,
  type AugmentParams,
} from './augment.js';
export {
  DataLoader,
  createLoader,
  carzeroBatchSize,
  defaultWorkers,
  datasetFingerprint,
  RNG_PURPOSE,
  type Batch,
  type LoaderOptions,
  type LoaderState,
  type LoaderError,
} from './loader.js';
export { ItemPool, processItem, type ItemTask, type ItemResult, type ItemSource } from './pool.js';
export {
  prepareShards,
  loadPrepared,
  readShard,
  readShardRecord,
  encodeShard,
  shardName,
  SHARD_MAGIC,
  SHARD_HEADER,
  type PreparedIndex,
  type PrepareOptions,
  type PrepareResult,
} from './shards.js';
