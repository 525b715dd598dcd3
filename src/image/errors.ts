// Domain error of the image pipeline: one undecodable file, named, so that a caller looping over
// thousands of images can catch it per image and go on.
import { CarzeroError, type CarzeroErrorCode } from '../errors.js';

export class ImageDecodeError extends CarzeroError {
  /** The file (or the name the caller gave the buffer). */
  readonly file: string;
  constructor(file: string, message: string, code: CarzeroErrorCode = 'CZ_ERR_FORMAT') {
    super(`${file}: ${message}`, code);
    this.name = 'ImageDecodeError';
    this.file = file;
  }
}
