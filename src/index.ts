// carzero: CARZero zero-shot chest X-ray classification with native CPU/CUDA kernels.
export { CarzeroError, AddonLoadError, type CarzeroErrorCode } from './errors.js';
export { Device, type CpuDeviceOptions } from './device.js';
export { Tensor, type TensorOptions, type HostArray, type DType } from './tensor.js';
export { ops, runOp, runOpSync, OP_TABLE, type Activation } from './ops.js';
export { info, formatInfo, type CarzeroInfo } from './info.js';
export { native, type NativeAddon, type NativeOpSpec } from './native.js';
