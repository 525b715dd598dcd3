// Zero-shot product API (docs/ZEROSHOT-API.md): streaming classification, grounding maps and
// overlays, image embedding streams. CARZero's classify/classifyStream/groundingMaps delegate here.
export * from './types.js';
export { classify, classifyStream, groundingMaps, groundingStream, embedImageStream } from './classify.js';
export { upsampleNearest, jet, overlayPng, writeOverlayPng, type OverlayOptions } from './grounding.js';
export { abortError, inputName, prefetch, prepareEntry, type PreparedEntry } from './pipeline.js';
export { checkPrompts, resolvePrompts, isTextEmbeddings } from './prompts.js';
