// attention.cpp: multi-head scaled dot-product attention (self and cross), forward and backward.
// Argument validation, work partitioning and ISA dispatch live here; the kernels are in
// attention_impl.h (compiled at the baseline ISA here and with AVX-512 in attention_avx512.cpp).
// Dimension letters: B batch, NH heads, HS head size, Tq queries, Tk keys; see AttnArgs in ops.h.
//
// Forward work units: (b, h, chunk of queries); each unit owns its rows of out/lse/probs, so no
// two units write the same memory. Scratch is bounded per unit (<= 32 x Tk scores).
// Backward work units: (b, h), or (h) alone when a q/k/v memory is shared across the batch
// (stride 0): then one unit owns every += into that memory and no atomics or per-thread copies
// of dK/dV are needed. Heads write disjoint columns, so units never race.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/threadpool.h"
#include "cpu/attention_impl.h"
#include "cpu/cpu_ops.h"
#include "ops_check.h"

namespace carzero::cpu {

// attention_avx512.cpp
void attention_forward_range_avx512(const AttnArgs& a, int64_t b, int64_t h, int64_t q0, int64_t q1);
void attention_backward_range_avx512(const AttnArgs& a, const AttnGrads& g, int64_t h, int64_t b0, int64_t b1);

namespace {

using FwdFn = void (*)(const AttnArgs&, int64_t, int64_t, int64_t, int64_t);
using BwdFn = void (*)(const AttnArgs&, const AttnGrads&, int64_t, int64_t, int64_t);

void forward_range_generic(const AttnArgs& a, int64_t b, int64_t h, int64_t q0, int64_t q1) {
  attn::forward_range(a, b, h, q0, q1);
}
void backward_range_generic(const AttnArgs& a, const AttnGrads& g, int64_t h, int64_t b0, int64_t b1) {
  attn::backward_range(a, g, h, b0, b1);
}

// bf16 or fp16 storage (AttnArgs::dtype): the fp32 kernels run on widened copies of the strided
// spans of q/k/v (and out for the backward); the output rows are rounded back to the storage type.
struct Widened {
  std::vector<float> q, k, v, o;
  AttnArgs args;
  Widened(Exec& ex, const AttnArgs& a, bool with_out) {
    const int64_t C = a.NH * a.HS;
    const bool half = a.dtype == DType::F16;
    args = a;
    args.dtype = DType::F32;
    auto widen = [&](const void* src, int64_t n, std::vector<float>& dst) -> const float* {
      if (!src || n == 0) return nullptr;
      dst.resize(static_cast<size_t>(n));
      const uint16_t* h = static_cast<const uint16_t*>(src);
      ex.pool->run((n + 65535) / 65536, [&](int64_t c) {
        const int64_t e = std::min(n, (c + 1) * 65536);
        if (half)
          for (int64_t i = c * 65536; i < e; ++i) dst[i] = f16_to_f32(h[i]);
        else
          for (int64_t i = c * 65536; i < e; ++i) dst[i] = bf16_to_f32(h[i]);
      });
      return dst.data();
    };
    args.q = widen(a.q, strided_span(a.B, a.q_bs, a.Tq, a.ldq, C), q);
    args.k = widen(a.k, strided_span(a.B, a.k_bs, a.Tk, a.ldk, C), k);
    args.v = widen(a.v, strided_span(a.B, a.v_bs, a.Tk, a.ldv, C), v);
    const int64_t no = strided_span(a.B, a.o_bs, a.Tq, a.ldo, C);
    if (with_out) {
      args.out = const_cast<float*>(widen(a.out, no, o));
    } else {
      o.assign(static_cast<size_t>(no), 0.0f);
      args.out = no ? o.data() : nullptr;
    }
  }
  // out rows (bf16 or fp16) = the fp32 result rows; padding between rows untouched.
  void narrow(const AttnArgs& a) const {
    const int64_t C = a.NH * a.HS;
    const bool half = a.dtype == DType::F16;
    uint16_t* dst = static_cast<uint16_t*>(a.out);
    for (int64_t b = 0; b < a.B; ++b)
      for (int64_t t = 0; t < a.Tq; ++t) {
        const int64_t off = b * a.o_bs + t * a.ldo;
        for (int64_t c = 0; c < C; ++c) dst[off + c] = half ? f32_to_f16(o[off + c]) : f32_to_bf16(o[off + c]);
      }
  }
};

}  // namespace

void attention_forward(Exec& ex, const AttnArgs& a) {
  check_attn_args("attention_forward", a);
  if (a.B == 0 || a.NH == 0 || a.Tq == 0) return;
  if (a.dtype != DType::F32) {  // bf16 or fp16 storage
    Widened w(ex, a, false);
    attention_forward(ex, w.args);
    w.narrow(a);
    return;
  }
  const FwdFn fn = cpu_isa() == CpuIsa::Avx512 ? attention_forward_range_avx512 : forward_range_generic;
  // Split queries only as far as needed to give every thread ~4 units; chunks are multiples of
  // 32 queries (one scratch block) so the K^T copy per unit stays amortised.
  const int64_t bh = a.B * a.NH;
  const int64_t want = 4 * static_cast<int64_t>(ex.pool->size());
  const int64_t max_chunks = (a.Tq + attn::kQB - 1) / attn::kQB;
  const int64_t chunks = std::max<int64_t>(1, std::min(max_chunks, (want + bh - 1) / bh));
  const int64_t per = attn::round_up((a.Tq + chunks - 1) / chunks, attn::kQB);
  const int64_t nchunks = (a.Tq + per - 1) / per;
  ex.pool->run(bh * nchunks, [&](int64_t u) {
    const int64_t c = u % nchunks, bhi = u / nchunks;
    const int64_t b = bhi / a.NH, h = bhi % a.NH;
    const int64_t q0 = c * per, q1 = std::min(a.Tq, q0 + per);
    fn(a, b, h, q0, q1);
  });
}

void attention_backward(Exec& ex, const AttnArgs& a, const AttnGrads& g) {
  const char* op = "attention_backward";
  check_attn_args(op, a);
  if (a.B == 0 || a.NH == 0 || a.Tq == 0 || a.HS == 0) return;
  if (!g.dq && !g.dk && !g.dv) return;
  require_ptr(op, "grads.dout", g.dout, true);
  CZ_ARG(a.lse != nullptr, "%s: args.lse is null (store it in the forward)", op);
  if (a.Tk == 0) return;  // no keys: every output was zero, nothing flows back
  if (a.dtype != DType::F32) {
    Widened w(ex, a, true);
    attention_backward(ex, w.args, g);
    return;
  }
  const BwdFn fn = cpu_isa() == CpuIsa::Avx512 ? attention_backward_range_avx512 : backward_range_generic;
  // A memory shared across the batch (stride 0) whose gradient is requested: one unit per head.
  const bool shared = a.B > 1 && ((g.dq && a.q_bs == 0) || (g.dk && a.k_bs == 0) || (g.dv && a.v_bs == 0));
  if (shared) {
    ex.pool->run(a.NH, [&](int64_t h) { fn(a, g, h, 0, a.B); });
  } else {
    ex.pool->run(a.B * a.NH, [&](int64_t u) {
      const int64_t b = u / a.NH, h = u % a.NH;
      fn(a, g, h, b, b + 1);
    });
  }
}

}  // namespace carzero::cpu
