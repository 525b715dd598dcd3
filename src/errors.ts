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
