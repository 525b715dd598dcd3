// Domain errors. Argument mistakes are TypeError (wrong kind of value) or RangeError (value out of
// range) naming the argument; everything the native core reports is a CarzeroError whose `code`
// is the C ABI status name (CZ_ERR_INVALID_ARGUMENT, CZ_ERR_OUT_OF_MEMORY, CZ_ERR_CUDA, ...).

export type CarzeroErrorCode =
  | 'CZ_ERR_INVALID_ARGUMENT'
  | 'CZ_ERR_OUT_OF_MEMORY'
  | 'CZ_ERR_IO'
  | 'CZ_ERR_FORMAT'
  | 'CZ_ERR_UNSUPPORTED'
  | 'CZ_ERR_CUDA'
  | 'CZ_ERR_INTERNAL';

export class CarzeroError extends Error {
  readonly code: CarzeroErrorCode;
  constructor(message: string, code: CarzeroErrorCode = 'CZ_ERR_INTERNAL') {
    super(message);
    this.name = 'CarzeroError';
    this.code = code;
  }
}

/** The native addon could not be found or loaded. */
export class AddonLoadError extends CarzeroError {
  constructor(message: string) {
    super(message, 'CZ_ERR_UNSUPPORTED');
    this.name = 'AddonLoadError';
  }
}

/**
 * A weight file (safetensors, PyTorch checkpoint, Hugging Face folder) is unreadable, truncated,
 * corrupt or unsafe. `file` is the path as given; `entry` names the zip record or tensor when the
 * problem is inside one.
 */
export class CheckpointError extends CarzeroError {
  readonly file: string;
  readonly entry: string | undefined;
  constructor(message: string, file: string, entry?: string) {
    super(message, 'CZ_ERR_FORMAT');
    this.name = 'CheckpointError';
    this.file = file;
    this.entry = entry;
  }
}

/** A pickle asked for a dangerous callable (os.system, eval, ...); nothing was executed. */
export class UnsafePickleError extends CheckpointError {
  /** `module.name` of the refused callable. */
  readonly callable: string;
  constructor(message: string, file: string, callable: string, entry?: string) {
    super(message, file, entry);
    this.name = 'UnsafePickleError';
    this.callable = callable;
  }
}

/**
 * `carzero convert` found missing, mis-shaped or inconsistent tensors. `problems` lists every one
 * (the message holds them all too), so a user fixes them in one round.
 */
export class ConvertError extends CarzeroError {
  readonly problems: readonly string[];
  constructor(message: string, problems: readonly string[]) {
    super(message, 'CZ_ERR_FORMAT');
    this.name = 'ConvertError';
    this.problems = problems;
  }
}
