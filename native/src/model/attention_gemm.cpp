// attention_gemm.cpp: the backward of attention with fp32 storage as five batched GEMMs on
// materialised score matrices, for the alignment head (head size 192, Tq = the prompts of a batch,
// Tk = 1 + the word or patch count). No fused tensor-core backward kernel exists at that head size
// (the 16-bit one holds head size 64 only); the fp32 kernel it replaces runs on CUDA cores. The
// GEMMs run at the Runner's compute type (BF16 in mixed-precision training: bf16 tensor cores,
// with P, dO and dS rounded to bf16 for their products, as FlashAttention-2 and PyTorch's
// autocast do), the softmax and its backward in fp32. Per chunk of items, for each head h and
// item b (scale s, P = softmax(s Q K^T) recomputed):
//   S = s Q K^T; P = softmax(S)           dV += P^T dO
//   dP = dO V^T; dS = P * (dP - rowsum(dP * P))
//   dQ += s dS K;                          dK += s dS^T Q
// The score buffers are laid out (NH, Tq, items, Tk): each (h, b) matrix has row stride items * Tk
// and the items follow each other Tk apart, so every product is one strided batched GEMM per head,
// and with the queries shared by every item (the head's first layer, q_bs = 0) dQ of a head is one
// GEMM over all the chunk's keys at once (their rows are consecutive: k_bs = Tk * ldk). At bf16
// compute, Q, K, V, dO, P and dS are rounded into bf16 copies once per chunk and the GEMMs read those.
#include <algorithm>
#include <vector>

#include "model/graph.h"
#include "ops_check.h"

namespace carzero::model {

namespace {

bool gemm_path_applies(const AttnArgs& a) {
  if (a.dtype != DType::F32 || a.key_mask || a.Tk == 0 || a.Tq == 0 || a.B == 0 || a.NH == 0 || a.HS == 0) return false;
  if (a.B > 1 && (a.k_bs == 0 || a.v_bs == 0)) return false;  // dK, dV would gather across items
  if (a.q_bs == 0 && a.B > 1 && a.k_bs != a.Tk * a.ldk) return false;
  return true;
}

}  // namespace

void attention_backward_gemm(const Runner& r, const AttnArgs& a, const AttnGrads& g, int64_t chunk_bytes) {
  if (!gemm_path_applies(a) || !g.dout || (!g.dq && !g.dk && !g.dv)) return r.ops().attention_backward(r.ex(), a, g);
  const int64_t NH = a.NH, Tq = a.Tq, Tk = a.Tk, D = a.HS, C = NH * D;
  const int64_t per_item = NH * Tq * Tk;
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(a.B, chunk_bytes / (per_item * 4)));
  // At bf16 compute every operand is rounded to bf16 once per chunk (the GEMMs would otherwise
  // round the same spans again for every head); the values multiplied are the same.
  const bool b16 = r.compute == DType::BF16;
  Tensor sbuf = r.ctx.alloc(DType::F32, {chunk * per_item}, false);
  Tensor dbuf = r.ctx.alloc(DType::F32, {chunk * per_item}, false);
  float* P = static_cast<float*>(sbuf.data());
  float* dS = static_cast<float*>(dbuf.data());
  // An operand of the GEMMs: fp32 in place, or its bf16 copy; at(off) is element off of it.
  struct Src {
    const void* base;
    DType t;
    const void* at(int64_t off) const {
      return static_cast<const char*>(base) + off * static_cast<int64_t>(dtype_size(t));
    }
  };
  std::vector<Tensor> copies;  // this chunk's bf16 copies
  auto src = [&](const float* p, int64_t span) -> Src {
    if (!b16) return {p, DType::F32};
    copies.push_back(r.ctx.alloc(DType::BF16, {span}, false));
    r.ops().convert(r.ex(), copies.back().data(), DType::BF16, p, DType::F32, span);
    return {copies.back().data(), DType::BF16};
  };
  const float* q = static_cast<const float*>(a.q);
  const float* k = static_cast<const float*>(a.k);
  const float* v = static_cast<const float*>(a.v);
  for (int64_t b0 = 0; b0 < a.B; b0 += chunk) {
    const int64_t nb = std::min(chunk, a.B - b0);
    const int64_t lds = nb * Tk;  // row stride of a score matrix
    copies.clear();
    const Src qs = src(q + b0 * a.q_bs, strided_span(nb, a.q_bs, Tq, a.ldq, C));
    const Src ks = src(k + b0 * a.k_bs, strided_span(nb, a.k_bs, Tk, a.ldk, C));
    const Src vs = src(v + b0 * a.v_bs, strided_span(nb, a.v_bs, Tk, a.ldv, C));
    const Src dos = src(g.dout + b0 * a.o_bs, strided_span(nb, a.o_bs, Tq, a.ldo, C));
    // One strided batched GEMM over the chunk's items for head h: C (m, n) = alpha op(A) op(B) + beta C.
    auto gemm = [&](int64_t m, int64_t n, int64_t kk, Src A, int64_t aoff, int64_t lda, int64_t sa, bool ta, Src B,
                    int64_t boff, int64_t ldb, int64_t sb, bool tb, float* Cp, int64_t ldc, int64_t sc, float alpha,
                    float beta, int64_t batch) {
      GemmArgs ga;
      ga.compute = r.compute;
      ga.trans_a = ta, ga.trans_b = tb;
      ga.m = m, ga.n = n, ga.k = kk;
      ga.a = A.at(aoff), ga.a_type = A.t, ga.lda = lda, ga.stride_a = sa;
      ga.b = B.at(boff), ga.b_type = B.t, ga.ldb = ldb, ga.stride_b = sb;
      ga.c = Cp, ga.ldc = ldc, ga.stride_c = sc;
      ga.batch = batch;
      ga.alpha = alpha, ga.beta = beta;
      r.ops().gemm(r.ex(), ga);
    };
    for (int64_t h = 0; h < NH; ++h)  // S = s Q K^T
      gemm(Tq, Tk, D, qs, h * D, a.ldq, a.q_bs, false, ks, h * D, a.ldk, a.k_bs, true, P + h * Tq * lds, lds, Tk,
           a.scale, 0.0f, nb);
    r.ops().softmax_forward(r.ex(), P, P, NH * Tq * nb, Tk);
    const Src ps = src(P, NH * Tq * lds);
    for (int64_t h = 0; h < NH; ++h) {
      if (g.dv)  // dV += P^T dO
        gemm(Tk, D, Tq, ps, h * Tq * lds, lds, Tk, true, dos, h * D, a.ldo, a.o_bs, false, g.dv + b0 * a.v_bs + h * D,
             a.ldv, a.v_bs, 1.0f, 1.0f, nb);
      // dP = dO V^T
      gemm(Tq, Tk, D, dos, h * D, a.ldo, a.o_bs, false, vs, h * D, a.ldv, a.v_bs, true, dS + h * Tq * lds, lds, Tk,
           1.0f, 0.0f, nb);
    }
    r.ops().softmax_backward(r.ex(), dS, P, dS, NH * Tq * nb, Tk);
    const Src dss = src(dS, NH * Tq * lds);
    for (int64_t h = 0; h < NH; ++h) {
      const int64_t sh = h * Tq * lds;
      if (g.dq) {                   // dQ += s dS K
        if (a.q_bs == 0 && nb > 1)  // shared queries: one GEMM over the chunk's Tk * nb keys
          gemm(Tq, D, lds, dss, sh, lds, 0, false, ks, h * D, a.ldk, 0, false, g.dq + h * D, a.ldq, 0, a.scale, 1.0f,
               1);
        else
          gemm(Tq, D, Tk, dss, sh, lds, Tk, false, ks, h * D, a.ldk, a.k_bs, false, g.dq + b0 * a.q_bs + h * D, a.ldq,
               a.q_bs, a.scale, 1.0f, nb);
      }
      if (g.dk)  // dK += s dS^T Q
        gemm(Tk, D, Tq, dss, sh, lds, Tk, true, qs, h * D, a.ldq, a.q_bs, false, g.dk + b0 * a.k_bs + h * D, a.ldk,
             a.k_bs, a.scale, 1.0f, nb);
    }
  }
}

}  // namespace carzero::model
