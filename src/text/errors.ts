// Domain errors of the text pipeline (kept here beside their users; subclasses of CarzeroError so
// callers can catch every package error at once).
import { CarzeroError } from '../errors.js';

/** A prompt file is missing, malformed JSON, or not of the `{class: prompt}` shapes. */
export class PromptFileError extends CarzeroError {
  readonly file: string;
  constructor(file: string, message: string) {
    super(`${file}: ${message}`, 'CZ_ERR_FORMAT');
    this.name = 'PromptFileError';
    this.file = file;
  }
}

/** A tokenizer.json / vocab.txt that cannot be used. */
export class TokenizerFileError extends CarzeroError {
  constructor(message: string) {
    super(message, 'CZ_ERR_FORMAT');
    this.name = 'TokenizerFileError';
  }
}
