// The model's data types: its config, precisions, embeddings and scores. Kept apart from the
// CARZero class so that src/zeroshot/ can use them (and describe the model it needs, ZeroShotModel
// in src/zeroshot/types.ts) without importing the class: the model depends on zero-shot, not back.
import type { Tensor } from '../tensor.js';

/**
 * Numeric precision of the model's GEMMs (activations and accumulation are fp32 in every case):
 * - 'fp32': exact fp32 (the default on CPU; matches the PyTorch reference within 1e-5 relative).
 * - 'tf32': fp32 weights and activations, with the GEMMs on CUDA allowed TF32 tensor cores
 *   (CUBLAS_COMPUTE_32F_FAST_TF32, what PyTorch's allow_tf32 selects; attention stays fp32). The
 *   default on CUDA. The CPU has no TF32: there it computes exactly what 'fp32' does.
 * - 'bf16': weights stored bf16, fp32 accumulation (AVX512_BF16 on CPU): about 2x the CPU
 *   throughput; its effect on scores and AUROC is measured in README.md ("Precision").
 */
export type Precision = 'fp32' | 'tf32' | 'bf16';

/** The precisions the native model loads with (all three: 'tf32' keeps fp32 weights). */
export type NativePrecision = Precision;

/**
 * A model directory's config.json (docs/MODEL-FORMAT.md): the sizes of the three parts and the
 * preprocessing. CARZero.config and NativeModel.config (resolved from the tensor shapes) are one.
 */
export interface CarzeroConfig {
  format: string;
  format_version: number;
  vision: {
    image_size: number;
    patch_size: number;
    in_chans: number;
    width: number;
    depth: number;
    heads: number;
    mlp_dim: number;
    eps: number;
  };
  text: {
    vocab_size: number;
    width: number;
    depth: number;
    heads: number;
    intermediate: number;
    max_position: number;
    type_vocab: number;
    eps: number;
    max_length: number;
    last_n_layers: number;
  };
  head: { width: number; heads: number; depth: number; ffn: number; mlp: number[]; eps: number };
  preprocess: { resize: number; crop: number; mean: number; std: number };
}

/** Image embeddings (native tensors on the model's device). */
export interface ImageEmbeddings extends Disposable {
  readonly global: Tensor; // (B, C)
  readonly local: Tensor; // (B, P, C)
  readonly count: number;
}

/** Text embeddings, reusable across calls. */
export interface TextEmbeddings extends Disposable {
  readonly sentence: Tensor; // (Q, C)
  readonly words: Tensor; // (Q, L, C)
  readonly count: number;
  /** The cleaned texts the embeddings were computed from. */
  readonly cleaned: string[];
}

export interface ScoreResult {
  /** (B, Q) raw logits: (i2t + t2i^T) / 2. Row b, column q. */
  score: Float32Array;
  i2t: Float32Array; // (B, Q)
  t2i: Float32Array; // (Q, B)
  /** (B, Q, P) grounding attention when asked for. */
  attention?: Float32Array;
  images: number;
  texts: number;
}

/** One decoded, preprocessed image ready for the encoder. */
export interface PreparedImage {
  /** (crop x crop) normalised pixels; the 3 model channels are equal. */
  pixels: Float32Array;
}
