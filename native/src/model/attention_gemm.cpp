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
// GEMM over all the chunk's keys at once (their rows are consecutive: k_bs = Tk * ldk).
#include <algorithm>

#include "model/graph.h"

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
  const int64_t NH = a.NH, Tq = a.Tq, Tk = a.Tk, D = a.HS;
  const int64_t per_item = NH * Tq * Tk;
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(a.B, chunk_bytes / (per_item * 4)));
  Tensor sbuf = r.ctx.alloc(DType::F32, {chunk * per_item}, false);
  Tensor dbuf = r.ctx.alloc(DType::F32, {chunk * per_item}, false);
  float* P = static_cast<float*>(sbuf.data());
  float* dS = static_cast<float*>(dbuf.data());
  const float* q = static_cast<const float*>(a.q);
  const float* k = static_cast<const float*>(a.k);
  const float* v = static_cast<const float*>(a.v);
  for (int64_t b0 = 0; b0 < a.B; b0 += chunk) {
    const int64_t nb = std::min(chunk, a.B - b0);
    const int64_t lds = nb * Tk;  // row stride of a score matrix
    // One strided batched GEMM over the chunk's items for head h: C (m, n) = alpha op(A) op(B) + beta C.
    auto gemm = [&](int64_t m, int64_t n, int64_t kk, const float* A, int64_t lda, int64_t sa, bool ta, const float* B,
                    int64_t ldb, int64_t sb, bool tb, float* C, int64_t ldc, int64_t sc, float alpha, float beta,
                    int64_t batch) {
      GemmArgs ga;
      ga.compute = r.compute;
      ga.trans_a = ta, ga.trans_b = tb;
      ga.m = m, ga.n = n, ga.k = kk;
      ga.a = A, ga.lda = lda, ga.stride_a = sa;
      ga.b = B, ga.ldb = ldb, ga.stride_b = sb;
      ga.c = C, ga.ldc = ldc, ga.stride_c = sc;
      ga.batch = batch;
      ga.alpha = alpha, ga.beta = beta;
      r.ops().gemm(r.ex(), ga);
    };
    for (int64_t h = 0; h < NH; ++h) {  // S = s Q K^T
      gemm(Tq, Tk, D, q + b0 * a.q_bs + h * D, a.ldq, a.q_bs, false, k + b0 * a.k_bs + h * D, a.ldk, a.k_bs, true,
           P + h * Tq * lds, lds, Tk, a.scale, 0.0f, nb);
    }
    r.ops().softmax_forward(r.ex(), P, P, NH * Tq * nb, Tk);
    for (int64_t h = 0; h < NH; ++h) {
      const float* dO = g.dout + b0 * a.o_bs + h * D;
      const float* Ph = P + h * Tq * lds;
      if (g.dv)  // dV += P^T dO
        gemm(Tk, D, Tq, Ph, lds, Tk, true, dO, a.ldo, a.o_bs, false, g.dv + b0 * a.v_bs + h * D, a.ldv, a.v_bs, 1.0f,
             1.0f, nb);
      // dP = dO V^T
      gemm(Tq, Tk, D, dO, a.ldo, a.o_bs, false, v + b0 * a.v_bs + h * D, a.ldv, a.v_bs, true, dS + h * Tq * lds, lds,
           Tk, 1.0f, 0.0f, nb);
    }
    r.ops().softmax_backward(r.ex(), dS, P, dS, NH * Tq * nb, Tk);
    for (int64_t h = 0; h < NH; ++h) {
      const float* dSh = dS + h * Tq * lds;
      if (g.dq) {                   // dQ += s dS K
        if (a.q_bs == 0 && nb > 1)  // shared queries: one GEMM over the chunk's Tk * nb keys
          gemm(Tq, D, lds, dSh, lds, 0, false, k + b0 * a.k_bs + h * D, a.ldk, 0, false, g.dq + h * D, a.ldq, 0,
               a.scale, 1.0f, 1);
        else
          gemm(Tq, D, Tk, dSh, lds, Tk, false, k + b0 * a.k_bs + h * D, a.ldk, a.k_bs, false,
               g.dq + b0 * a.q_bs + h * D, a.ldq, a.q_bs, a.scale, 1.0f, nb);
      }
      if (g.dk)  // dK += s dS^T Q
        gemm(Tk, D, Tq, dSh, lds, Tk, true, q + b0 * a.q_bs + h * D, a.ldq, a.q_bs, false, g.dk + b0 * a.k_bs + h * D,
             a.ldk, a.k_bs, a.scale, 1.0f, nb);
    }
  }
}

}  // namespace carzero::model
