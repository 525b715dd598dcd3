// carzero/internal: the layers under the public API, for this package's tests, benchmarks and
// tools: the native addon itself, the op table and the synchronous op runner, and NativeModel (the
// typed wrapper over the native model that CARZero and the Trainer build on). No stability promise:
// these follow the native core and change with it. Applications use the root `carzero` module.
export {
  native,
  packageRoot,
  type NativeAddon,
  type NativeOpSpec,
  type NativeContext,
  type NativeTensor,
  type NativeModelHandle,
  type DeviceMemoryStats,
  type DeviceKind,
} from './native.js';
export { OP_TABLE, runOpSync } from './ops.js';
export {
  NativeModel,
  type NativeModelOptions,
  type NativeImageEmbeddings,
  type NativeTextEmbeddings,
  type NativeScores,
  type ScoreOptions,
  type TrainBatch,
  type StepResult,
  type NamedTensor,
} from './model/native-model.js';
export type { NativePrecision } from './model/types.js';
