// Text pipeline: CARZero's cleaning (spec 3.1), BERT WordPiece tokenisation (spec 3.2), prompt files.
export { cleanText, cleanReportSentences } from './clean.js';
export {
  Tokenizer,
  TOKEN_KIND,
  parseVocab,
  vocabToTokenizerJson,
  type EncodeOptions,
  type EncodedText,
  type VocabOptions,
} from './tokenizer.js';
export { loadPrompts, parsePrompts, type LoadPromptsOptions, type PromptSet } from './prompts.js';
export { PromptFileError, TokenizerFileError } from './errors.js';
