// attention_mixed.cpp: the encoders' self-attention on fp32 buffers (training keeps fp32
// activations), run on the GPU's tensor-core kernels in the Runner's 16-bit type when it computes
// in BF16 or F16 (graph.h, encoder_attention): bf16 storage for BF16, fp16 for F16 (as PyTorch's
// fp16 autocast runs attention in half).
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "model/graph.h"
#include "ops_check.h"
#include "core/settings.h"

namespace carzero::model {

namespace {

// The tensor-core kernels: head size 64, T <= 256 (the ViT's and BERT's shapes); a dense out.
bool mixed_applies(const Runner& r, const AttnArgs& a, bool training) {
  const int mode = settings().mixed_attention;  // -1 auto (on a GPU), 0 off, 1 also on the CPU (tests)
  if (!training || a.dtype != DType::F32 || r.compute == DType::F32 || mode == 0) return false;
  if (mode < 0 && r.ctx.device() == DeviceType::CPU) return false;
  const int64_t C = a.NH * a.HS;
  return a.HS == 64 && a.Tq <= 256 && a.Tk <= 256 && !a.probs && a.ldo == C && (a.B <= 1 || a.o_bs == a.Tq * C);
}

// 16-bit copies (bf16 or fp16) of q/k/v (one conversion over their common span when they
// interleave, as in a packed qkv buffer; else one each) and a 16-bit out; args16 points into them.
struct Copies16 {
  Tensor qkv16, q16, k16, v16, out16;
  AttnArgs args16;
  int64_t nout = 0;

  DType dt;
  Copies16(const Runner& r, const AttnArgs& a, bool with_out) : dt(r.compute == DType::F16 ? DType::F16 : DType::BF16) {
    const int64_t C = a.NH * a.HS;
    const float* q = static_cast<const float*>(a.q);
    const float* k = static_cast<const float*>(a.k);
    const float* v = static_cast<const float*>(a.v);
    const int64_t nq = strided_span(a.B, a.q_bs, a.Tq, a.ldq, C);
    const int64_t nk = strided_span(a.B, a.k_bs, a.Tk, a.ldk, C);
    const int64_t nv = strided_span(a.B, a.v_bs, a.Tk, a.ldv, C);
    const float* lo = std::min({q, k, v});
    const float* hi = std::max({q + nq, k + nk, v + nv});
    args16 = a;
    args16.dtype = dt;
    auto to16 = [&](Tensor& t, const float* src, int64_t n) {
      t = r.ctx.alloc(dt, {n}, false);
      r.ops().convert(r.ex(), t.data(), dt, src, DType::F32, n);
      return static_cast<uint16_t*>(t.data());
    };
    if (hi - lo <= nq + nk + nv) {  // interleaved (packed): one copy of the common span
      uint16_t* base = to16(qkv16, lo, hi - lo);
      args16.q = base + (q - lo), args16.k = base + (k - lo), args16.v = base + (v - lo);
    } else {
      args16.q = to16(q16, q, nq);
      args16.k = to16(k16, k, nk);
      args16.v = to16(v16, v, nv);
    }
    nout = strided_span(a.B, a.o_bs, a.Tq, a.ldo, C);
    out16 = r.ctx.alloc(dt, {nout}, false);
    if (with_out) r.ops().convert(r.ex(), out16.data(), dt, a.out, DType::F32, nout);
    args16.out = out16.data();
  }
};

}  // namespace

void encoder_attention(const Runner& r, const AttnArgs& a, bool training) {
  if (!mixed_applies(r, a, training)) return r.attention(a);
  Copies16 c(r, a, false);
  r.ops().attention_forward(r.ex(), c.args16);
  r.ops().convert(r.ex(), a.out, DType::F32, c.out16.data(), c.dt, c.nout);
}

void encoder_attention_backward(const Runner& r, const AttnArgs& a, const AttnGrads& g) {
  if (!mixed_applies(r, a, true)) return r.ops().attention_backward(r.ex(), a, g);
  // out holds the widened 16-bit output of the forward, so its 16-bit copy is exact
  Copies16 c(r, a, true);
  r.ops().attention_backward(r.ex(), c.args16, g);
}

}  // namespace carzero::model
