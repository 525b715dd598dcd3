// Image pipeline: decoding like cv2.imread(path, 0) (PNG, JPEG, DICOM) and CARZero's preprocessing.
export type { GrayImage } from './types.js';
export { decodeImage, readImage, detectImageFormat, type DecodeOptions, type ImageFormat } from './decode.js';
export { resizeArea } from './resize.js';
export {
  preprocess,
  loadImage,
  resizeAndPad,
  resizedSize,
  padLayout,
  type PadLayout,
  cropNormalise,
  normaliseTable,
  type PreprocessOptions,
  type Preprocessed,
} from './preprocess.js';
export { ImageDecodeError } from './errors.js';
