// attention_impl.h: the per-(batch, head) attention kernels behind attention.cpp. Private to the
// CPU backend. This header is compiled twice: by attention.cpp at the baseline ISA and by
// attention_avx512.cpp with AVX-512 flags (the same loops, auto-vectorised wider and with FMA, for
// the backward and for fewer than 8 queries; that file has its own forward for the rest);
// attention.cpp picks one at run time with cpu_isa(). Everything has internal linkage (see
// cpu_util.h) so the two copies never mix.
//
// Dimension letters: B batch, NH heads, HS head size, Tq queries, Tk keys.
// Per (b, h): Q (Tq, HS) rows of stride ldq, K/V (Tk, HS) rows of stride ldk/ldv, O (Tq, HS).
//
// Forward, per block of up to kQB queries (bounded scratch: kQB x Tk scores, never Tq x Tk):
//   S = (scale Q) K^T + maskbias          maskbias_j = 0 or -inf (padding key)
//   P = exp(S - rowmax) / rowsum,  lse = rowmax + log(rowsum)
//   O = P V
// A query whose keys are all masked gets O = 0, lse = -inf (and probs 0).
// Backward (FlashAttention-2, Dao 2023, Alg. 2), with P recomputed from S and the stored lse
// (tiled for Tq >= 8; a direct one-pass form over the keys for fewer queries):
//   P = exp(S - lse), dP = dO V^T, D_i = dO_i . O_i (= sum_j P_ij dP_ij),
//   dS = P * (dP - D),  dQ += scale dS K,  dK += scale dS^T Q,  dV += P^T dO.
// The products run through one small register-tiled kernel (mm_tile) on padded, contiguous copies
// (K^T and V^T for the score-like products, padded rows for the others), so inner loops have
// fixed trip counts and no tails.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu/cpu_util.h"
#include "ops.h"

namespace carzero::cpu {
namespace {
namespace attn {

constexpr int64_t kQB = 32;  // queries per block: the scratch is kQB x TkP floats
#ifndef CARZERO_ATTN_MR
#define CARZERO_ATTN_MR 4
#endif
constexpr int64_t kMR = CARZERO_ATTN_MR;  // rows of the register tile
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// C (kMR x NB) = [C +] A (kMR x K) @ B (K x NB): A rows of stride lda, B rows of stride ldb.
// When a_trans, A is stored transposed: element (r, k) at a[k * lda + r].
template <int NB, bool a_trans>
inline void mm_tile(float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb, int64_t K,
                    bool accumulate) {
  float acc[kMR][NB];
  for (int r = 0; r < kMR; ++r)
    for (int n = 0; n < NB; ++n) acc[r][n] = accumulate ? c[r * ldc + n] : 0.0f;
  for (int64_t k = 0; k < K; ++k) {
    const float* bk = b + k * ldb;
    for (int r = 0; r < kMR; ++r) {
      const float ar = a_trans ? a[k * lda + r] : a[r * lda + k];
      for (int n = 0; n < NB; ++n) acc[r][n] += ar * bk[n];
    }
  }
  for (int r = 0; r < kMR; ++r)
    for (int n = 0; n < NB; ++n) c[r * ldc + n] = acc[r][n];
}

// C (M x N) = [C +] op(A) (M x K) @ B (K x N); M % kMR == 0, N % 16 == 0.
// op(A) = A (M x K, stride lda) or, when a_trans, A stored (K x M) with stride lda.
template <bool a_trans>
inline void mm(float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb, int64_t M, int64_t N,
               int64_t K, bool accumulate) {
  for (int64_t i = 0; i < M; i += kMR) {
    const float* ai = a_trans ? a + i : a + i * lda;
    int64_t n = 0;
    for (; n + 32 <= N; n += 32) mm_tile<32, a_trans>(c + i * ldc + n, ldc, ai, lda, b + n, ldb, K, accumulate);
    for (; n < N; n += 16) mm_tile<16, a_trans>(c + i * ldc + n, ldc, ai, lda, b + n, ldb, K, accumulate);
  }
}

// This thread's scratch of at least `floats` floats, grown on demand and kept across calls (a fresh
// buffer per slice page-faulted). Contents are unspecified: every user writes before it reads.
inline float* scratch(size_t floats) {
  thread_local std::vector<float> buf;
  if (buf.size() < floats) buf.resize(floats);
  return buf.data();
}

// Pointers of one (b, h) slice.
struct Slice {
  const float* q;       // (Tq, HS) stride ldq
  const float* k;       // (Tk, HS) stride ldk
  const float* v;       // (Tk, HS) stride ldv
  float* o;             // (Tq, HS) stride ldo
  const uint8_t* mask;  // (Tk) or null
  float* lse;           // (Tq) or null
  float* probs;         // (Tq, Tk) or null
};

inline Slice slice(const AttnArgs& a, int64_t b, int64_t h) {
  Slice s;
  // fp32 storage here (attention.cpp widens bf16 storage before calling in)
  s.q = static_cast<const float*>(a.q) + b * a.q_bs + h * a.HS;
  s.k = a.k ? static_cast<const float*>(a.k) + b * a.k_bs + h * a.HS : nullptr;
  s.v = a.v ? static_cast<const float*>(a.v) + b * a.v_bs + h * a.HS : nullptr;
  s.o = static_cast<float*>(a.out) + b * a.o_bs + h * a.HS;
  s.mask = a.key_mask ? a.key_mask + b * a.mask_bs : nullptr;
  s.lse = a.lse ? a.lse + (b * a.NH + h) * a.Tq : nullptr;
  s.probs = a.probs ? a.probs + (b * a.NH + h) * a.Tq * a.Tk : nullptr;
  return s;
}

// bias (TkP): 0 for a key that is attended, -inf for a masked key or a padding column.
inline void fill_mask_bias(float* bias, const uint8_t* mask, int64_t Tk, int64_t TkP) {
  for (int64_t j = 0; j < TkP; ++j) bias[j] = (j < Tk && (!mask || mask[j])) ? 0.0f : kNegInf;
}

// dst (HS x TkP) = src^T for src (Tk, HS) with row stride ld; columns j >= Tk zero.
inline void transpose_in(float* dst, const float* src, int64_t ld, int64_t Tk, int64_t TkP, int64_t HS) {
  for (int64_t d = 0; d < HS; ++d) std::memset(dst + d * TkP + Tk, 0, (TkP - Tk) * sizeof(float));
  for (int64_t j = 0; j < Tk; ++j) {
    const float* row = src + j * ld;
    for (int64_t d = 0; d < HS; ++d) dst[d * TkP + j] = row[d];
  }
}

// dst (rows x HSP) = src (n, HS) * mul with row stride ld; padding rows/columns zero.
inline void copy_rows(float* dst, int64_t HSP, const float* src, int64_t ld, int64_t n, int64_t rows, int64_t HS,
                      float mul) {
  for (int64_t i = 0; i < rows; ++i) {
    float* d = dst + i * HSP;
    if (i < n) {
      const float* s = src + i * ld;
      for (int64_t c = 0; c < HS; ++c) d[c] = s[c] * mul;
      for (int64_t c = HS; c < HSP; ++c) d[c] = 0.0f;
    } else {
      std::memset(d, 0, HSP * sizeof(float));
    }
  }
}

// In place on one score row s (TkP), already including the mask bias: s <- softmax(s).
// Returns lse (-inf and s <- 0 when every key is masked).
inline float softmax_row(float* s, int64_t TkP) {
  const float mx = max_f32(s, TkP);
  if (mx == kNegInf) {
    std::memset(s, 0, TkP * sizeof(float));
    return kNegInf;
  }
  const double sum = exp_shift_sum(s, s, TkP, mx);
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t j = 0; j < TkP; ++j) s[j] *= inv;
  return mx + static_cast<float>(std::log(sum));
}

// Forward for few queries (cross-attention with Tq = 1): direct dot products against K rows,
// no transposed copy of K (it would cost as much as the whole computation).
inline void forward_direct(const AttnArgs& a, const Slice& s, int64_t q0, int64_t q1) {
  const int64_t HS = a.HS, Tk = a.Tk;
  std::vector<float> sc(static_cast<size_t>(std::max<int64_t>(Tk, 1))), acc(static_cast<size_t>(HS));
  for (int64_t i = q0; i < q1; ++i) {
    const float* qi = s.q + i * a.ldq;
    for (int64_t j = 0; j < Tk; ++j)
      sc[j] = (s.mask && !s.mask[j]) ? kNegInf : dot_f32(qi, s.k + j * a.ldk, HS) * a.scale;
    const float lse = softmax_row(sc.data(), Tk);
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int64_t j = 0; j < Tk; ++j) {
      const float p = sc[j];
      if (p == 0.0f) continue;  // masked key (or underflow): nothing to add
      const float* vj = s.v + j * a.ldv;
      for (int64_t d = 0; d < HS; ++d) acc[d] += p * vj[d];
    }
    float* oi = s.o + i * a.ldo;
    for (int64_t d = 0; d < HS; ++d) oi[d] = acc[d];
    if (s.lse) s.lse[i] = lse;
    if (s.probs) std::memcpy(s.probs + i * Tk, sc.data(), Tk * sizeof(float));
  }
}

// Forward for queries [q0, q1) of one (b, h) slice.
inline void forward_range(const AttnArgs& a, int64_t b, int64_t h, int64_t q0, int64_t q1) {
  const Slice s = slice(a, b, h);
  const int64_t HS = a.HS, Tk = a.Tk, nq = q1 - q0;
  if (nq < 8) return forward_direct(a, s, q0, q1);
  const int64_t TkP = round_up(std::max<int64_t>(Tk, 1), 16), HSP = round_up(HS, 16);
  const int64_t BQ = std::min(kQB, round_up(nq, kMR));
  // scratch: kt (HS x TkP) | vs (TkP x HSP) | qs (BQ x HS) | sc (BQ x TkP) | o (BQ x HSP) | bias
  float* kt = scratch(static_cast<size_t>(HS * TkP + TkP * HSP + BQ * HS + BQ * TkP + BQ * HSP + TkP));
  float* vs = kt + HS * TkP;
  float* qs = vs + TkP * HSP;
  float* sc = qs + BQ * HS;
  float* o = sc + BQ * TkP;
  float* bias = o + BQ * HSP;
  transpose_in(kt, s.k, a.ldk, Tk, TkP, HS);
  copy_rows(vs, HSP, s.v, a.ldv, Tk, TkP, HS, 1.0f);
  fill_mask_bias(bias, s.mask, Tk, TkP);
  for (int64_t qb = q0; qb < q1; qb += BQ) {
    const int64_t nb = std::min(BQ, q1 - qb), rows = round_up(nb, kMR);
    // qs (rows x HS) = scale * Q[qb : qb + nb], zero padding rows
    for (int64_t i = 0; i < rows; ++i) {
      if (i < nb) {
        const float* qi = s.q + (qb + i) * a.ldq;
        for (int64_t d = 0; d < HS; ++d) qs[i * HS + d] = qi[d] * a.scale;
      } else {
        std::memset(qs + i * HS, 0, HS * sizeof(float));
      }
    }
    mm<false>(sc, TkP, qs, HS, kt, TkP, rows, TkP, HS, false);  // sc = scale Q K^T
    for (int64_t i = 0; i < rows; ++i) {
      float* si = sc + i * TkP;
      if (i >= nb) {
        std::memset(si, 0, TkP * sizeof(float));
        continue;
      }
      for (int64_t j = 0; j < TkP; ++j) si[j] += bias[j];
      const float lse = softmax_row(si, TkP);
      if (s.lse) s.lse[qb + i] = lse;
      if (s.probs) std::memcpy(s.probs + (qb + i) * Tk, si, Tk * sizeof(float));
    }
    mm<false>(o, HSP, sc, TkP, vs, HSP, rows, HSP, TkP, false);  // o = P V
    for (int64_t i = 0; i < nb; ++i) std::memcpy(s.o + (qb + i) * a.ldo, o + i * HSP, HS * sizeof(float));
  }
}

// Backward for few queries (Tq < 8, the alignment head's cross-attention): one streaming pass
// over the keys per query, P_ij = exp(scale q_i.k_j - lse_i) straight from the stored lse, and
// dK/dV rows updated in place (the caller guarantees this task owns them).
inline void backward_direct(const AttnArgs& a, const AttnGrads& g, int64_t b, int64_t h) {
  const Slice s = slice(a, b, h);
  const int64_t HS = a.HS, Tk = a.Tk;
  const float scale = a.scale;
  const float* dout = g.dout + b * a.o_bs + h * HS;
  float* dq = g.dq ? g.dq + b * a.q_bs + h * HS : nullptr;
  float* dk = g.dk ? g.dk + b * a.k_bs + h * HS : nullptr;
  float* dv = g.dv ? g.dv + b * a.v_bs + h * HS : nullptr;
  std::vector<float> dqacc(static_cast<size_t>(HS));
  for (int64_t i = 0; i < a.Tq; ++i) {
    const float lse = s.lse[i];
    if (lse == kNegInf) continue;  // every key masked: the output was a constant 0
    const float* qi = s.q + i * a.ldq;
    const float* doi = dout + i * a.ldo;
    const float D = static_cast<float>(dot_f64(doi, s.o + i * a.ldo, HS));  // D_i = dO_i . O_i
    std::fill(dqacc.begin(), dqacc.end(), 0.0f);
    for (int64_t j = 0; j < Tk; ++j) {
      if (s.mask && !s.mask[j]) continue;
      const float* kj = s.k + j * a.ldk;
      const float pj = exp_fast(dot_f32(qi, kj, HS) * scale - lse);
      if (dv) {
        float* dvj = dv + j * a.ldv;
        for (int64_t d = 0; d < HS; ++d) dvj[d] += pj * doi[d];
      }
      if (dq || dk) {
        const float dsj = pj * (dot_f32(doi, s.v + j * a.ldv, HS) - D) * scale;
        if (dq)
          for (int64_t d = 0; d < HS; ++d) dqacc[d] += dsj * kj[d];
        if (dk) {
          float* dkj = dk + j * a.ldk;
          for (int64_t d = 0; d < HS; ++d) dkj[d] += dsj * qi[d];
        }
      }
    }
    if (dq)
      for (int64_t d = 0; d < HS; ++d) dq[i * a.ldq + d] += dqacc[d];
  }
}

// Backward for head h over batch items [b0, b1) (several items only when a K/V/Q memory is
// shared across the batch, so that one task owns every write to it). All gradients +=.
inline void backward_range(const AttnArgs& a, const AttnGrads& g, int64_t h, int64_t b0, int64_t b1) {
  const int64_t HS = a.HS, Tk = a.Tk, Tq = a.Tq;
  if (Tq < 8) {  // too few queries to amortise the transposed copies of K and V
    for (int64_t b = b0; b < b1; ++b) backward_direct(a, g, b, h);
    return;
  }
  const int64_t TkP = round_up(std::max<int64_t>(Tk, 1), 16), HSP = round_up(HS, 16);
  const int64_t BQ = std::min(kQB, round_up(Tq, kMR));
  const bool need_ds = g.dq || g.dk;
  // scratch: kt, vt (HS x TkP) | ks, dkacc, dvacc (TkP x HSP) | qs, dos, dqb (BQ x HSP) |
  //          p, ds (BQ x TkP) | bias (TkP)
  float* kt = scratch(static_cast<size_t>(2 * HS * TkP + 3 * TkP * HSP + 3 * BQ * HSP + 2 * BQ * TkP + TkP));
  float* vt = kt + HS * TkP;
  float* ks = vt + HS * TkP;
  float* dkacc = ks + TkP * HSP;
  float* dvacc = dkacc + TkP * HSP;
  float* qs = dvacc + TkP * HSP;
  float* dos = qs + BQ * HSP;
  float* dqb = dos + BQ * HSP;
  float* p = dqb + BQ * HSP;
  float* ds = p + BQ * TkP;
  float* bias = ds + BQ * TkP;
  const float scale = a.scale;

  for (int64_t b = b0; b < b1; ++b) {
    const Slice s = slice(a, b, h);
    const float* dout = g.dout + b * a.o_bs + h * HS;
    // K/V-derived copies are rebuilt only when this batch item has its own memory.
    if (b == b0 || a.k_bs != 0) {
      transpose_in(kt, s.k, a.ldk, Tk, TkP, HS);
      copy_rows(ks, HSP, s.k, a.ldk, Tk, TkP, HS, 1.0f);
    }
    if (b == b0 || a.v_bs != 0) transpose_in(vt, s.v, a.ldv, Tk, TkP, HS);
    if (b == b0 || a.mask_bs != 0) fill_mask_bias(bias, s.mask, Tk, TkP);
    if (b == b0 || a.k_bs != 0) std::memset(dkacc, 0, TkP * HSP * sizeof(float));
    if (b == b0 || a.v_bs != 0) std::memset(dvacc, 0, TkP * HSP * sizeof(float));

    for (int64_t qb = 0; qb < Tq; qb += BQ) {
      const int64_t nb = std::min(BQ, Tq - qb), rows = round_up(nb, kMR);
      copy_rows(qs, HSP, s.q + qb * a.ldq, a.ldq, nb, rows, HS, scale);          // scale Q
      copy_rows(dos, HSP, dout + qb * a.ldo, a.ldo, nb, rows, HS, 1.0f);         // dO
      mm<false>(p, TkP, qs, HSP, kt, TkP, rows, TkP, HS, false);                 // S
      if (need_ds) mm<false>(ds, TkP, dos, HSP, vt, TkP, rows, TkP, HS, false);  // dP
      for (int64_t i = 0; i < rows; ++i) {
        float* pi = p + i * TkP;
        float* dsi = ds + i * TkP;
        const float lse = i < nb ? s.lse[qb + i] : kNegInf;
        if (lse == kNegInf) {  // padding row or a query with every key masked: no gradient
          std::memset(pi, 0, TkP * sizeof(float));
          if (need_ds) std::memset(dsi, 0, TkP * sizeof(float));
          continue;
        }
        for (int64_t j = 0; j < TkP; ++j) pi[j] = exp_fast(pi[j] + bias[j] - lse);
        if (need_ds) {
          const float D = static_cast<float>(dot_f64(dos + i * HSP, s.o + (qb + i) * a.ldo, HS));
          for (int64_t j = 0; j < TkP; ++j) dsi[j] = pi[j] * (dsi[j] - D);
        }
      }
      if (g.dv) mm<true>(dvacc, HSP, p, TkP, dos, HSP, TkP, HSP, rows, true);  // dV += P^T dO
      if (g.dk) mm<true>(dkacc, HSP, ds, TkP, qs, HSP, TkP, HSP, rows, true);  // dK += dS^T sQ
      if (g.dq) {
        mm<false>(dqb, HSP, ds, TkP, ks, HSP, rows, HSP, TkP, false);  // dQ = dS K
        float* dq = g.dq + b * a.q_bs + h * HS;
        for (int64_t i = 0; i < nb; ++i) {
          float* dqi = dq + (qb + i) * a.ldq;
          for (int64_t d = 0; d < HS; ++d) dqi[d] += scale * dqb[i * HSP + d];
        }
      }
    }
    // Flush the K/V accumulators when the next item has its own memory, or at the end.
    if (g.dk && (b == b1 - 1 || a.k_bs != 0)) {
      float* dk = g.dk + b * a.k_bs + h * HS;
      for (int64_t j = 0; j < Tk; ++j)
        for (int64_t d = 0; d < HS; ++d) dk[j * a.ldk + d] += dkacc[j * HSP + d];
    }
    if (g.dv && (b == b1 - 1 || a.v_bs != 0)) {
      float* dv = g.dv + b * a.v_bs + h * HS;
      for (int64_t j = 0; j < Tk; ++j)
        for (int64_t d = 0; d < HS; ++d) dv[j * a.ldv + d] += dvacc[j * HSP + d];
    }
  }
}

}  // namespace attn
}  // namespace
}  // namespace carzero::cpu
