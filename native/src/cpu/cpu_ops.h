// cpu_ops.h: the CPU backend's implementations of every op in ops.h (same signatures, same
// contracts; see ops.h for shapes and semantics). cpu/table.cpp binds them into cpu_ops().
#pragma once
#include <cstddef>
#include <memory>

#include "core/cpu_features.h"
#include "ops.h"

namespace carzero::cpu {

void gemm(Exec&, const GemmArgs&);
// The same GEMM with an explicit ISA level (for tests and benchmarks). Throws Unsupported when
// the machine lacks it. bf16 compute uses AVX512_BF16 only at level Avx512 when present.
void gemm_with_isa(Exec&, const GemmArgs&, CpuIsa isa);
void gemm_backward(Exec&, const GemmArgs& fwd, const float* dc, float* da, float* db, float* dbias);

// ---- prepacked weights (inference) ------------------------------------------------------------
// A weight W (n, k), row-major with row stride k (the nn.Linear layout: y = x W^T is GemmArgs
// trans_b = true, b = W, ldb = k), packed ONCE into the micro-kernel's B panels instead of on every
// gemm() call. Packed lazily by the first gemm_prepacked() that needs it, per kernel set (ISA level
// and compute type pick the panel format and K blocking: one entry per combination used, normally
// one), thread-safe. The panels are byte for byte what gemm() packs on each call (same format,
// same K blocks, same zero padding), and the driver runs the same micro-kernels over the same K
// blocks in the same order, so results are bit-identical to gemm().
// W must stay alive and UNCHANGED while this object is used: the owner (the model) drops it when
// the weights can change (training), where gemm() packs per call instead.
class PackedWeight {
 public:
  PackedWeight(const void* w, DType wt, int64_t n, int64_t k);
  ~PackedWeight();
  PackedWeight(const PackedWeight&) = delete;
  PackedWeight& operator=(const PackedWeight&) = delete;
  const void* weight() const { return w_; }
  DType type() const { return wt_; }
  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  // Bytes of packed panels held now (0 before the first use).
  size_t bytes() const;
  // Whether gemm_prepacked(g) reads this object's panels: g multiplies by exactly this weight
  // (b == weight(), trans_b, ldb == k, n, k, b_type equal, one B for every batch item) at F32 or
  // BF16 compute.
  bool matches(const GemmArgs& g) const;
  struct Store;  // the packed entries (gemm.cpp)
  Store* store_for_gemm() { return store_.get(); }

 private:
  const void* w_;
  DType wt_;
  int64_t n_, k_;
  std::unique_ptr<Store> store_;
};

// gemm(ex, g), reading op(B) from pw's panels when pw.matches(g) (packing them on first use);
// otherwise exactly gemm(ex, g). CARZERO_GEMM_PREPACK=0 in the environment turns the panels off
// (every call packs as gemm() does: for A/B timing).
void gemm_prepacked(Exec&, const GemmArgs& g, PackedWeight& pw);
// The same with an explicit ISA level (tests).
void gemm_prepacked_with_isa(Exec&, const GemmArgs& g, PackedWeight& pw, CpuIsa isa);

void layernorm_forward(Exec&, float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t N, int64_t C, float eps);
void layernorm_backward(Exec&, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C);
void add_layernorm_forward(Exec&, float* sum_out, void* out, DType out_type, float* mean, float* rstd, const float* a,
                           const float* b, const float* weight, const float* bias, int64_t N, int64_t C, float eps);
void gelu_forward(Exec&, float* out, const float* inp, int64_t n);
void gelu_backward(Exec&, float* dinp, const float* inp, const float* dout, int64_t n);
void relu_forward(Exec&, float* out, const float* inp, int64_t n);
void relu_backward(Exec&, float* dinp, const float* inp, const float* dout, int64_t n);
void add_forward(Exec&, float* out, const float* a, const float* b, int64_t n);
void add_backward(Exec&, float* da, float* db, const float* dout, int64_t n);
void copy2d(Exec&, float* dst, int64_t dpitch, const float* src, int64_t spitch, const float* add, int64_t apitch,
            int64_t width, int64_t height);
void softmax_forward(Exec&, float* out, const float* inp, int64_t rows, int64_t cols);
void softmax_backward(Exec&, float* dinp, const float* out, const float* dout, int64_t rows, int64_t cols);
void attention_forward(Exec&, const AttnArgs&);
void attention_backward(Exec&, const AttnArgs&, const AttnGrads&);
void embedding_forward(Exec&, float* out, const int32_t* ids, const float* table, int64_t N, int64_t V, int64_t C);
void embedding_backward(Exec&, float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t V, int64_t C);
void patch_embed_forward(Exec&, float* out, const float* img, const float* weight, const float* bias, int64_t B,
                         int64_t Cin, int64_t H, int64_t W, int64_t OC, int64_t ps);
void patch_embed_backward(Exec&, float* dimg, float* dweight, float* dbias, const float* dout, const float* img,
                          const float* weight, int64_t B, int64_t Cin, int64_t H, int64_t W, int64_t OC, int64_t ps);
void softmax_xent_forward(Exec&, float* losses, const float* logits, const int32_t* targets, int64_t R, int64_t Cc,
                          int axis);
void softmax_xent_backward(Exec&, float* dlogits, const float* dlosses, const float* logits, const int32_t* targets,
                           int64_t R, int64_t Cc, int axis);
void adam_update(Exec&, float* param, const float* grad, float* m, float* v, int64_t n, const AdamArgs&);
double sum_squares(Exec&, const float* x, int64_t n);
void scale(Exec&, float* x, int64_t n, float s);
void dropout_forward(Exec&, float* out, const float* inp, int64_t n, float p, uint64_t seed, uint64_t offset);
void dropout_backward(Exec&, float* dinp, const float* dout, int64_t n, float p, uint64_t seed, uint64_t offset);
void convert(Exec&, void* dst, DType dst_type, const void* src, DType src_type, int64_t n);

// Counter-based uniform random number in [0, 1) for (seed, counter): Philox4x32-10 with
// key = (seed lo, seed hi) and counter = (counter lo, counter hi, 0, 0); the first output word
// u gives (u >> 8) * 2^-24. The CUDA backend uses the same function, so dropout masks match.
float philox_uniform(uint64_t seed, uint64_t counter);

}  // namespace carzero::cpu
