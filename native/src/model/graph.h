// graph.h: the building blocks the model graphs (vit.cpp, bert.cpp, align_head.cpp) share:
// parameter handles (Lin, LN), a bump allocator over a device workspace (Bump/Workspace), and
// Runner, which issues op-table calls for one context at one precision.
//
// Activation memory: a forward first runs its plan() with a measuring Bump to learn how many
// bytes its shape needs, the Workspace grows once to that size (one context allocation), and the
// plan runs again handing out slices. So a forward pass allocates nothing per layer, and the
// same code runs on any device (all pointers are device pointers from Context::alloc plus
// offsets; host-side loops go through glue.h, which stages device data through the host).
#pragma once
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "core/context.h"
#include "core/status.h"
#include "cpu/cpu_ops.h"

namespace carzero::model {

// A Linear layer: y = x @ W^T + b, W (out, in) stored as wt (F32 or BF16), b (out) f32 or null.
struct Lin {
  const void* w = nullptr;
  DType wt = DType::F32;
  const float* b = nullptr;
  int64_t out = 0, in = 0;
  // W packed once into the CPU GEMM's panels (inference on a CPU context; owned by the model's
  // WeightPacks), or null: every GEMM packs W itself.
  cpu::PackedWeight* packed = nullptr;
  // Rows [r0, r0 + n) of this layer (a slice of a packed projection). The slice has no packed
  // panels of its own (WeightPacks::attach gives it some).
  Lin rows(int64_t r0, int64_t n) const {
    Lin l = *this;
    l.w = static_cast<const char*>(w) + r0 * in * static_cast<int64_t>(dtype_size(wt));
    l.b = b ? b + r0 : nullptr;
    l.out = n;
    l.packed = nullptr;
    return l;
  }
};

// The prepacked GEMM weights of one model (CPU inference): one cpu::PackedWeight per Linear
// weight, attached to its Lin, panels packed on the first GEMM that uses them and freed with this
// object. Only for weights that do not change: a model switching to training (weights updated
// in place every step) clears it and rebinds its Lins without panels.
class WeightPacks {
 public:
  // Gives l its packed panels when ctx runs GEMMs on the CPU kernels; otherwise leaves it alone.
  void attach(const Context& ctx, Lin& l) {
    if (ctx.device() != DeviceType::CPU || ctx.ops().gemm != &cpu::gemm) return;
    if (!l.w || l.out <= 0 || l.in <= 0) return;
    packs_.push_back(std::make_unique<cpu::PackedWeight>(l.w, l.wt, l.out, l.in));
    l.packed = packs_.back().get();
  }
  // Bytes of packed panels held now (they are packed on first use).
  size_t bytes() const {
    size_t n = 0;
    for (const auto& p : packs_) n += p->bytes();
    return n;
  }
  size_t count() const { return packs_.size(); }
  void clear() { packs_.clear(); }

 private:
  std::vector<std::unique_ptr<cpu::PackedWeight>> packs_;
};

// A LayerNorm over C channels.
struct LN {
  const float* w = nullptr;
  const float* b = nullptr;
  int64_t C = 0;
  float eps = 1e-5f;
};

// Bump allocation from a base pointer; with base == null it only measures.
class Bump {
 public:
  Bump(char* base, size_t cap) : base_(base), cap_(cap) {}
  bool measuring() const { return base_ == nullptr; }
  template <typename T = float>
  T* take(int64_t n) {
    size_t start = (used_ + 63) & ~size_t(63);
    size_t bytes = static_cast<size_t>(n < 0 ? 0 : n) * sizeof(T);
    used_ = start + bytes;
    if (!base_) return nullptr;
    CZ_REQUIRE(used_ <= cap_, CZ_ERR_INTERNAL, "workspace plan overflow (%zu > %zu bytes)", used_, cap_);
    return reinterpret_cast<T*>(base_ + start);
  }
  size_t used() const { return used_; }

 private:
  char* base_;
  size_t cap_;
  size_t used_ = 0;
};

// A growable device workspace: grows (reallocates) only when a plan needs more than it has.
class Workspace {
 public:
  // Runs plan(Bump&) once to measure, grows, and runs it again for real.
  template <typename Plan>
  void run_plan(Context& ctx, Plan&& plan) {
    Bump m(nullptr, 0);
    plan(m);
    reserve(ctx, m.used());
    Bump b(static_cast<char*>(buf_.defined() ? buf_.data() : nullptr), cap_);
    if (!buf_.defined()) {  // an empty plan: still hand out (null) slices
      Bump z(nullptr, 0);
      plan(z);
      return;
    }
    plan(b);
  }
  void reserve(Context& ctx, size_t bytes) {
    if (bytes <= cap_ && buf_.defined()) return;
    // Free first, and hand the old block back to the device (a caching allocator would keep it
    // for reuse): the footprint is then the new size, not old + new. Growth is rare (the largest
    // batch so far), so the device synchronisation this costs is too.
    const bool had = buf_.defined();
    buf_ = Tensor();
    if (had) ctx.release_cached();
    buf_ = ctx.alloc(DType::U8, {static_cast<int64_t>(bytes ? bytes : 64)}, false);
    cap_ = bytes ? bytes : 64;
  }
  size_t capacity() const { return cap_; }
  void release() {
    buf_ = Tensor();
    cap_ = 0;
  }

 private:
  Tensor buf_;
  size_t cap_ = 0;
};

// Issues op-table calls for one context at one precision.
struct Runner {
  Context& ctx;
  DType compute = DType::F32;  // GEMM compute type for weight GEMMs
  bool tf32 = false;           // with compute F32: TF32 tensor cores allowed (GemmArgs::tf32)

  const OpTable& ops() const { return ctx.ops(); }
  Exec& ex() const { return ctx.exec(); }

  // The GEMM arguments of linear() (below).
  GemmArgs linear_args(const Lin& l, const float* x, int64_t rows, float* y, Act act = Act::None, float beta = 0.0f,
                       float* preact = nullptr, int64_t ldx = 0, int64_t ldy = 0) const {
    GemmArgs g;
    g.a_type = DType::F32;
    g.b_type = l.wt;
    g.compute = compute;
    g.tf32 = tf32 && compute == DType::F32;
    g.trans_b = true;
    g.m = rows;
    g.n = l.out;
    g.k = l.in;
    g.a = x;
    g.lda = ldx ? ldx : l.in;
    g.b = l.w;
    g.ldb = l.in;
    g.c = y;
    g.ldc = ldy ? ldy : l.out;
    g.beta = beta;
    g.bias = l.b;
    g.act = act;
    g.preact = act != Act::None ? preact : nullptr;
    return g;
  }
  // y (rows, out) = act(x (rows, in) @ W^T + b) + beta * y. Row strides ldx/ldy (0 = dense).
  // preact (rows, out), when non-null and act != None, receives the pre-activation.
  void linear(const Lin& l, const float* x, int64_t rows, float* y, Act act = Act::None, float beta = 0.0f,
              float* preact = nullptr, int64_t ldx = 0, int64_t ldy = 0) const {
    gemm(l, linear_args(l, x, rows, y, act, beta, preact, ldx, ldy));
  }
  // The GEMM g (built by linear_args(l, ...), possibly with other A / C types) through l's
  // prepacked panels when it has them (bit-identical to the plain GEMM), else the op table's.
  void gemm(const Lin& l, const GemmArgs& g) const {
    if (l.packed)
      cpu::gemm_prepacked(ex(), g, *l.packed);
    else
      ops().gemm(ex(), g);
  }
  // Backward of linear() given dy (rows, out) = dL/d(its output, post-activation): dx (rows, in)
  // written, dw (out, in) and db (out) accumulated; any may be null. act/preact as in the forward
  // (preact required when act != None). F32 weights only (training keeps fp32 parameters); the
  // products run at the Runner's compute (BF16/F16: mixed precision, as the forward).
  void linear_backward(const Lin& l, const float* x, int64_t rows, const float* dy, float* dx, float* dw, float* db,
                       Act act = Act::None, const float* preact = nullptr) const {
    if (rows == 0) return;
    // c is not read by the backward; it names dy's layout (the forward's output layout).
    GemmArgs g = linear_args(l, x, rows, const_cast<float*>(dy), act, 0.0f, const_cast<float*>(preact));
    ops().gemm_backward(ex(), g, dy, dx, dw, db);
  }
  // acc += d (n elements).
  void accumulate(float* acc, const float* d, int64_t n) const {
    if (n) ops().add_forward(ex(), acc, acc, d, n);
  }
  // Zero-fills n floats of device memory.
  void zero(float* p, int64_t n) const {
    if (n <= 0) return;
    if (ctx.device() == DeviceType::CPU)
      std::memset(p, 0, static_cast<size_t>(n) * 4);
    else
      ctx.backend()->zero(p, static_cast<size_t>(n) * 4);
  }
  void layernorm_backward(const LN& n, const float* dy, const float* x, const float* mean, const float* rstd,
                          int64_t rows, float* dx, float* dw, float* db) const {
    if (rows) ops().layernorm_backward(ex(), dx, dw, db, dy, x, n.w, mean, rstd, rows, n.C);
  }
  void layernorm(const LN& n, const float* x, float* y, int64_t rows, float* mean = nullptr,
                 float* rstd = nullptr) const {
    ops().layernorm_forward(ex(), y, mean, rstd, x, n.w, n.b, rows, n.C, n.eps);
  }
  // attention_forward on fp32 storage with the Runner's TF32 choice (AttnArgs::tf32: the TF32
  // tensor cores on CUDA where they apply, exact fp32 elsewhere).
  void attention(AttnArgs a) const {
    a.tf32 = tf32 && compute == DType::F32 && a.dtype == DType::F32;
    ops().attention_forward(ex(), a);
  }
  void copy(float* dst, const float* src, int64_t n) const {
    if (n) ops().convert(ex(), dst, DType::F32, src, DType::F32, n);
  }
  void add(float* out, const float* a, const float* b, int64_t n) const {
    if (n) ops().add_forward(ex(), out, a, b, n);
  }
};

// The encoders' self-attention on fp32 q/k/v/out buffers (attention_mixed.cpp). When training
// (activations kept for a backward), the Runner computes in BF16 or F16 on a GPU and the
// tensor-core kernels apply (head size 64, T <= 256: the ViT and BERT), q/k/v are rounded to a
// 16-bit copy (bf16 at BF16, fp16 at F16), the 16-bit kernel runs and its output is widened into
// out, as PyTorch's autocast runs attention in 16 bits; the backward re-derives the same copies
// (out is exact in the 16-bit type) and accumulates fp32 gradients. Otherwise the fp32 kernels: always
// at F32, and for inference (BERT's inference attention stays fp32: bf16 there costs the
// faithfulness check more than it saves; the ViT has its own bf16 inference path).
// CARZERO_MIXED_ATTENTION=0 turns it off; =1 also uses it on the CPU (tests).
void encoder_attention(const Runner& r, const AttnArgs& a, bool training);
void encoder_attention_backward(const Runner& r, const AttnArgs& a, const AttnGrads& g);
// attention_backward (fp32 storage) through GEMMs on materialised scores (attention_gemm.cpp):
// the alignment head's head size 192, which has no tensor-core backward kernel. Falls back to the
// op where its preconditions fail (a key mask, a K/V memory shared across the batch, ...).
// chunk_bytes bounds each of its two score buffers (items are taken in chunks that fit).
void attention_backward_gemm(const Runner& r, const AttnArgs& a, const AttnGrads& g,
                             int64_t chunk_bytes = int64_t{64} << 20);

// Training-mode dropout (inverted, counter-based: ops.h dropout_*). The mask of a site is a pure
// function of (seed, offset), so the backward regenerates it. Each site of the model has its own
// offset range: site(module, layer, index) << 36 (2^36 elements per site). Off: every call is a
// no-op (eval-mode numerics).
struct Dropout {
  bool on = false;
  float p = 0.1f;
  uint64_t seed = 0;
  enum Module : uint64_t { Vision = 1, Text = 2, HeadI2T = 3, HeadT2I = 4 };
  static uint64_t site(uint64_t module, uint64_t layer, uint64_t index) {
    return ((module * 1024 + layer) * 32 + index) << 36;
  }
  // x = dropout(x) in place.
  void forward(const Runner& r, float* x, int64_t n, uint64_t off) const {
    if (on && n) r.ops().dropout_forward(r.ex(), x, x, n, p, seed, off);
  }
  // dx = dropout'(dy) (may alias).
  void backward(const Runner& r, float* dx, const float* dy, int64_t n, uint64_t off) const {
    if (!n) return;
    if (on)
      r.ops().dropout_backward(r.ex(), dx, dy, n, p, seed, off);
    else if (dx != dy)
      r.copy(dx, dy, n);
  }
};

}  // namespace carzero::model
