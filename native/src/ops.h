// ops.h: the op table. Every op of every backend, forward and backward, declared once.
//
// Conventions (see docs/ARCHITECTURE.md):
// - All buffers are device pointers of the backend that runs the op, dense row-major.
// - Shapes are given in comments with the dimension letters: N rows, C channels, B batch,
//   NH heads, HS head size, Tq/Tk query/key positions, V vocabulary, M/N/K GEMM sizes.
// - Backward contract: parameter gradients ACCUMULATE (+=), activation gradients are WRITTEN (=),
//   unless the op's comment says otherwise (attention_backward accumulates everything, because a
//   key/value memory shared by many queries must gather their gradients).
// - Ops throw carzero::Error on bad arguments (out-of-range ids, unsupported dtype); they never
//   exit or abort. Shape/dtype validation against tensors happens one level up (opsapi.cpp).
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "core/exec.h"

namespace carzero {

enum class Act : int { None = 0, Relu = 1, Gelu = 2 };  // Gelu is the exact erf form

// C[b] = act(alpha * op(A[b]) @ op(B[b]) + beta * C[b] + bias), b in [0, batch).
// op(A) is (M, K): A stored (M, K) with row stride lda, or (K, M) when trans_a.
// op(B) is (K, N): B stored (K, N) with row stride ldb, or (N, K) when trans_b (the nn.Linear
// weight layout: y = x @ W^T is trans_b = true).
// A is stored as a_type, B as b_type (each F32 or BF16). compute = F32 multiplies in fp32;
// compute = BF16 rounds f32 operands to bf16 while packing and multiplies bf16 pairs with fp32
// accumulation (AVX512_BF16 where the CPU has it, an exact emulation elsewhere); compute = F16
// rounds the operands to IEEE half (beyond 65504: +-inf, as fp16 mixed precision overflows) and
// multiplies with fp32 accumulation (CUDA: fp16 tensor cores; CPU: the fp32 kernel on the
// rounded values). A BF16 operand with compute = F32 is widened exactly. bias and preact are F32; C is F32, or BF16
// (c_type: the result rounded once to bf16, beta reading the bf16 C; no preact, so inference only). When act != None
// and preact != null, the pre-activation value is stored there (layout of C), which gemm_backward needs.
struct GemmArgs {
  DType a_type = DType::F32, b_type = DType::F32, compute = DType::F32;
  // compute F32 only: the product may use TF32 tensor cores (CUDA: CUBLAS_COMPUTE_32F_FAST_TF32,
  // what PyTorch's allow_tf32 selects). The CPU has no TF32 and computes exact fp32 either way.
  bool tf32 = false;
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  const void* a = nullptr;
  int64_t lda = 0, stride_a = 0;  // stride_* = elements between consecutive batch items (0 = shared)
  const void* b = nullptr;
  int64_t ldb = 0, stride_b = 0;
  void* c = nullptr;  // c_type: F32, or BF16 (forward only, no preact)
  DType c_type = DType::F32;
  int64_t ldc = 0, stride_c = 0;
  int64_t batch = 1;
  float alpha = 1.0f, beta = 0.0f;
  const float* bias = nullptr;  // (N) or null
  Act act = Act::None;
  float* preact = nullptr;  // (M, N) per batch item, layout of C, or null
};

// Multi-head scaled dot-product attention, self or cross.
// q: (B, Tq, NH*HS) rows of stride ldq, batch stride q_bs; k, v: (B, Tk, NH*HS) likewise
// (k_bs = v_bs = 0 shares one memory across the batch); head h uses columns [h*HS, (h+1)*HS).
// out: (B, Tq, NH*HS), row stride ldo, batch stride o_bs.
// key_mask: (B, Tk) uint8, 1 = attend, 0 = padding (masked out), batch stride mask_bs; null = none.
// lse: (B, NH, Tq) log-sum-exp of the scaled, masked scores per query, stored when non-null
// (attention_backward needs it). probs: (B, NH, Tq, Tk) softmax weights, stored when non-null
// (grounding maps); the inference path leaves it null and never materialises the score matrix.
// A query whose keys are all masked gets a zero output.
// dtype: the storage type of q, k, v and out: F32, or BF16 / F16 (CUDA: tensor-core kernel with
// fp32 softmax and accumulation, the probabilities rounded to the storage type for the PV product
// as in FlashAttention-2; CPU: the fp32 kernel on the stored values, output rounded to the storage
// type). lse and probs are always fp32. attention_backward with BF16/F16 storage reads q/k/v/out
// in that type and writes fp32 gradients (AttnGrads is fp32 only).
// tf32 (F32 storage only; precision 'tf32', PyTorch's allow_tf32): the CUDA forward may run its
// products on the TF32 tensor cores (q, k, v and the probabilities rounded to TF32, fp32
// softmax and accumulation) where the tensor-core kernel applies (head size 32, 64, 128 or 192, no
// probs); elsewhere, in the backward and on the CPU (no TF32) the result is exact fp32.
struct AttnArgs {
  int64_t B = 0, NH = 0, Tq = 0, Tk = 0, HS = 0;
  DType dtype = DType::F32;
  bool tf32 = false;
  const void* q = nullptr;
  int64_t ldq = 0, q_bs = 0;
  const void* k = nullptr;
  int64_t ldk = 0, k_bs = 0;
  const void* v = nullptr;
  int64_t ldv = 0, v_bs = 0;
  void* out = nullptr;
  int64_t ldo = 0, o_bs = 0;
  const uint8_t* key_mask = nullptr;
  int64_t mask_bs = 0;
  float scale = 1.0f;
  float* lse = nullptr;
  float* probs = nullptr;
};
// Gradients for attention_backward, laid out like q, k, v (same ld and batch strides). All
// ACCUMULATE (+=); any may be null to skip it. dout and out are laid out like `out`.
struct AttnGrads {
  const float* dout = nullptr;
  float* dq = nullptr;
  float* dk = nullptr;
  float* dv = nullptr;
};

// PyTorch's Adam (L2 weight decay added to the gradient) or AdamW (decoupled decay), with the
// gradient first multiplied by grad_scale (clipping or loss-scale unscaling folded in).
struct AdamArgs {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
  int64_t step = 1;        // 1-based step count after this update (bias correction)
  bool decoupled = false;  // false: Adam (L2 in gradient), true: AdamW
  float grad_scale = 1.0f;
};

struct OpTable {
  const char* backend;  // "cpu" or "cuda"

  // ---- GEMM --------------------------------------------------------------------------------
  void (*gemm)(Exec&, const GemmArgs&);
  // Given the forward's args (with preact stored when act != None) and dC (layout of C):
  // dA (=, f32, layout of A), dB (+=, f32, layout of B), dbias (+=, (N)). Any may be null.
  // alpha is honoured; beta must have been 0 in the forward. F32 storage; compute F32, or BF16/F16
  // for mixed-precision training (the products round their operands, dZ included, as the forward).
  void (*gemm_backward)(Exec&, const GemmArgs& fwd, const float* dc, float* da, float* db, float* dbias);

  // ---- LayerNorm: out (N, C), mean/rstd (N) (nullable for inference), weight/bias (C) ----------
  void (*layernorm_forward)(Exec&, float* out, float* mean, float* rstd, const float* inp, const float* weight,
                            const float* bias, int64_t N, int64_t C, float eps);
  // dinp (=), dweight/dbias (+=). mean/rstd from the forward.
  void (*layernorm_backward)(Exec&, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                             const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C);

  // Fused residual add + LayerNorm: sum = a + b (b nullable: sum = a), stored to sum_out when
  // non-null (may alias a: the residual stream updated in place); out = LayerNorm(sum) stored
  // as out_type (F32, or BF16 rounded once: a GEMM operand); mean/rstd (nullable) as above.
  // out must not alias a, b or sum_out. The backward is layernorm_backward on sum (+ add_backward).
  void (*add_layernorm_forward)(Exec&, float* sum_out, void* out, DType out_type, float* mean, float* rstd,
                                const float* a, const float* b, const float* weight, const float* bias, int64_t N,
                                int64_t C, float eps);

  // ---- elementwise activations (n elements) ----------------------------------------------------
  void (*gelu_forward)(Exec&, float* out, const float* inp, int64_t n);
  void (*gelu_backward)(Exec&, float* dinp, const float* inp, const float* dout, int64_t n);
  void (*relu_forward)(Exec&, float* out, const float* inp, int64_t n);
  void (*relu_backward)(Exec&, float* dinp, const float* inp, const float* dout, int64_t n);
  // out = a + b (residual add); backward: da = dout, db = dout (both written, either nullable).
  void (*add_forward)(Exec&, float* out, const float* a, const float* b, int64_t n);
  void (*add_backward)(Exec&, float* da, float* db, const float* dout, int64_t n);
  // Strided rows: dst[r * dpitch + c] = src[r * spitch + c] (+ add[r * apitch + c] when add is
  // non-null), r < height, c < width. A pitch of 0 repeats one row (broadcast). dst may be src
  // or add itself with the same pitch (in place); other overlaps are not allowed. One call gathers or scatters a batch
  // of rows (token 0 of every item, the patch tokens of every item) instead of one small copy per item.
  void (*copy2d)(Exec&, float* dst, int64_t dpitch, const float* src, int64_t spitch, const float* add, int64_t apitch,
                 int64_t width, int64_t height);

  // ---- softmax over the last dim: inp/out (rows, cols) ----------------------------------------
  void (*softmax_forward)(Exec&, float* out, const float* inp, int64_t rows, int64_t cols);
  void (*softmax_backward)(Exec&, float* dinp, const float* out, const float* dout, int64_t rows, int64_t cols);

  // ---- attention ----------------------------------------------------------------------------
  void (*attention_forward)(Exec&, const AttnArgs&);
  // Needs the forward's out and lse (args.out, args.lse); recomputes the probabilities.
  void (*attention_backward)(Exec&, const AttnArgs&, const AttnGrads&);

  // ---- embedding gather: out (N, C) = table[ids[i]], table (V, C); ids outside [0, V) throw ---
  void (*embedding_forward)(Exec&, float* out, const int32_t* ids, const float* table, int64_t N, int64_t V, int64_t C);
  void (*embedding_backward)(Exec&, float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t V,
                             int64_t C);

  // ---- patch embedding: conv ps x ps, stride ps, no padding -----------------------------------
  // img (B, Cin, H, W), weight (OC, Cin, ps, ps), bias (OC) nullable, out (B, P, OC) with
  // P = (H/ps)*(W/ps) patches in row-major order. H and W must be multiples of ps.
  void (*patch_embed_forward)(Exec&, float* out, const float* img, const float* weight, const float* bias, int64_t B,
                              int64_t Cin, int64_t H, int64_t W, int64_t OC, int64_t ps);
  // dimg (=, nullable), dweight (+=), dbias (+=, nullable).
  void (*patch_embed_backward)(Exec&, float* dimg, float* dweight, float* dbias, const float* dout, const float* img,
                               const float* weight, int64_t B, int64_t Cin, int64_t H, int64_t W, int64_t OC,
                               int64_t ps);

  // ---- softmax cross-entropy ----------------------------------------------------------------
  // logits (R, Cc). axis = 1: each of the R rows is a distribution over Cc classes, targets (R);
  // axis = 0: each of the Cc columns is a distribution over R entries, targets (Cc) (this is
  // CE(X^T) without a transpose). losses (count) receives -log softmax[target] per distribution.
  void (*softmax_xent_forward)(Exec&, float* losses, const float* logits, const int32_t* targets, int64_t R, int64_t Cc,
                               int axis);
  // dlogits (=) = sum over distributions of dlosses[i] * (softmax_i - onehot_i).
  void (*softmax_xent_backward)(Exec&, float* dlogits, const float* dlosses, const float* logits,
                                const int32_t* targets, int64_t R, int64_t Cc, int axis);

  // ---- optimizer and regularisation (no backward: they are not differentiated) ---------------
  void (*adam_update)(Exec&, float* param, const float* grad, float* m, float* v, int64_t n, const AdamArgs&);
  // Sum of squares of x (n), in double.
  double (*sum_squares)(Exec&, const float* x, int64_t n);
  // x *= s.
  void (*scale)(Exec&, float* x, int64_t n, float s);
  // Inverted dropout with a counter-based RNG: element i is kept iff
  // uniform(seed, offset + i) >= p, kept values scaled by 1/(1-p). Same stream on every backend.
  void (*dropout_forward)(Exec&, float* out, const float* inp, int64_t n, float p, uint64_t seed, uint64_t offset);
  void (*dropout_backward)(Exec&, float* dinp, const float* dout, int64_t n, float p, uint64_t seed, uint64_t offset);

  // ---- dtype conversion: dst (n, dst_type) = src (n, src_type) ---------------------------------
  void (*convert)(Exec&, void* dst, DType dst_type, const void* src, DType src_type, int64_t n);
};

// The CPU table (always present): cpu_ops(), declared in core/exec.h.

}  // namespace carzero
