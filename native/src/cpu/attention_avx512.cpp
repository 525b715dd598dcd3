// attention_avx512.cpp: the attention kernels for AVX-512 CPUs (CMake gives *_avx512.cpp files
// -mavx512f/bw/vl/dq -mfma); attention.cpp calls these only when cpu_isa() reports Avx512.
//
// Forward (many queries): its own register-tiled products instead of attention_impl.h's copies.
// Per (b, h) slice and block of up to kBQ queries:
//   S = Q K^T   8 x 32 register tiles, Q read in place (rows of stride ldq), K transposed once
//               per slice into kt (HS x TkP, zero columns past Tk) with 16 x 16 register transposes
//   P = softmax(scale S + maskbias) row by row (exp_fast_ps, sums in double), lse as before
//   O = P V     V read in place (rows of stride ldv), written straight into the output rows
// Scratch is attention_impl.h's per-thread buffer. The scale is applied to S rather than to
// a copy of Q: for a power-of-two scale (head size 64: 1/8) that is bit-identical; otherwise the
// two differ by the rounding of one multiplication.
// Few queries (the alignment head's Tq < 8) and the backward: attention_impl.h, compiled here
// with 8-row register tiles.
// GCC 12 reports its own _mm512_undefined_* placeholders as maybe-uninitialized (a known false
// positive of the intrinsic headers), as in gemm_avx512.cpp.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#define CARZERO_ATTN_MR 8
#include "cpu/attention_impl.h"
#include "cpu/avx512_util.h"

namespace carzero::cpu {
namespace {
namespace attn512 {

constexpr int64_t kBQ = 32;  // queries per block: the score scratch is kBQ x TkP floats
constexpr int kTR = 8;       // rows of the register tile

// C (MV x n) = A (MV x K, row stride lda) @ B (K x n, row stride ldb), n <= 16 NV. Columns of B
// and C at or past n are neither read nor written.
template <int MV, int NV>
inline void tile(float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb, int64_t n,
                 int64_t K) {
  __mmask16 m[NV];
  for (int v = 0; v < NV; ++v) m[v] = first_n16(n - 16 * v);
  __m512 acc[MV][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MV; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
#pragma GCC unroll 2
  for (int64_t k = 0; k < K; ++k) {
    __m512 bv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_maskz_loadu_ps(m[v], b + k * ldb + 16 * v);
#pragma GCC unroll 8
    for (int r = 0; r < MV; ++r) {
      const __m512 av = _mm512_set1_ps(a[r * lda + k]);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MV; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(c + r * ldc + 16 * v, m[v], acc[r][v]);
}

template <int NV>
inline void tile_rows(int64_t mv, float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb,
                      int64_t n, int64_t K) {
  switch (mv) {
    case 8: return tile<8, NV>(c, ldc, a, lda, b, ldb, n, K);
    case 7: return tile<7, NV>(c, ldc, a, lda, b, ldb, n, K);
    case 6: return tile<6, NV>(c, ldc, a, lda, b, ldb, n, K);
    case 5: return tile<5, NV>(c, ldc, a, lda, b, ldb, n, K);
    case 4: return tile<4, NV>(c, ldc, a, lda, b, ldb, n, K);
    case 3: return tile<3, NV>(c, ldc, a, lda, b, ldb, n, K);
    case 2: return tile<2, NV>(c, ldc, a, lda, b, ldb, n, K);
    default: return tile<1, NV>(c, ldc, a, lda, b, ldb, n, K);
  }
}

// C (M x N) = A (M x K) @ B (K x N), all row-major with the given row strides. Column blocks of
// 32 outside, row tiles inside, so a block of B (K x 32) is reused from L1 by every row tile.
inline void mm(float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb, int64_t M, int64_t N,
               int64_t K) {
  for (int64_t j = 0; j < N; j += 32) {
    const int64_t n = std::min<int64_t>(32, N - j);
    for (int64_t i = 0; i < M; i += kTR) {
      const int64_t mv = std::min<int64_t>(kTR, M - i);
      if (n > 16)
        tile_rows<2>(mv, c + i * ldc + j, ldc, a + i * lda, lda, b + j, ldb, n, K);
      else
        tile_rows<1>(mv, c + i * ldc + j, ldc, a + i * lda, lda, b + j, ldb, n, K);
    }
  }
}

// kt (HS x TkP) = K^T for K (Tk, HS) with row stride ldk; columns j >= Tk zero.
inline void transpose_keys(float* kt, int64_t TkP, const float* k, int64_t ldk, int64_t Tk, int64_t HS) {
  for (int64_t j0 = 0; j0 < TkP; j0 += 16) {
    for (int64_t d0 = 0; d0 < HS; d0 += 16) {
      const __mmask16 dm = first_n16(HS - d0);
      __m512 r[16];
      for (int i = 0; i < 16; ++i)
        r[i] = j0 + i < Tk ? _mm512_maskz_loadu_ps(dm, k + (j0 + i) * ldk + d0) : _mm512_setzero_ps();
      transpose16(r);
      const int64_t dn = std::min<int64_t>(16, HS - d0);
      for (int64_t i = 0; i < dn; ++i) _mm512_storeu_ps(kt + (d0 + i) * TkP + j0, r[i]);
    }
  }
}

// One score row s (TkP) <- softmax(scale s + bias); returns lse (-inf and s <- 0 when every key is
// masked). Sums in double lanes, as softmax_row does.
inline float softmax_scaled_row(float* s, const float* bias, int64_t TkP, float scale) {
  const __m512 sc = _mm512_set1_ps(scale);
  __m512 mx = _mm512_set1_ps(attn::kNegInf);
  for (int64_t j = 0; j < TkP; j += 16) {
    const __m512 x = _mm512_fmadd_ps(_mm512_loadu_ps(s + j), sc, _mm512_loadu_ps(bias + j));
    _mm512_storeu_ps(s + j, x);
    mx = _mm512_max_ps(mx, x);
  }
  const float m = _mm512_reduce_max_ps(mx);
  if (m == attn::kNegInf) {
    std::memset(s, 0, TkP * sizeof(float));
    return attn::kNegInf;
  }
  const __m512 mv = _mm512_set1_ps(m);
  __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
  for (int64_t j = 0; j < TkP; j += 16) {
    const __m512 e = exp_fast_ps(_mm512_sub_ps(_mm512_loadu_ps(s + j), mv));
    _mm512_storeu_ps(s + j, e);
    lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    hi = _mm512_add_pd(hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
  }
  const double sum = _mm512_reduce_add_pd(_mm512_add_pd(lo, hi));
  const __m512 inv = _mm512_set1_ps(static_cast<float>(1.0 / sum));
  for (int64_t j = 0; j < TkP; j += 16) _mm512_storeu_ps(s + j, _mm512_mul_ps(_mm512_loadu_ps(s + j), inv));
  return m + static_cast<float>(std::log(sum));
}

// Forward for queries [q0, q1) of one (b, h) slice (q1 - q0 >= 8).
void forward_range(const AttnArgs& a, int64_t b, int64_t h, int64_t q0, int64_t q1) {
  const attn::Slice s = attn::slice(a, b, h);
  const int64_t HS = a.HS, Tk = a.Tk;
  const int64_t TkP = attn::round_up(std::max<int64_t>(Tk, 1), 16);
  // scratch: kt (HS x TkP) | sc (kBQ x TkP) | bias (TkP)
  float* kt = attn::scratch(static_cast<size_t>((HS + kBQ + 1) * TkP));
  float* sc = kt + HS * TkP;
  float* bias = sc + kBQ * TkP;
  transpose_keys(kt, TkP, s.k, a.ldk, Tk, HS);
  attn::fill_mask_bias(bias, s.mask, Tk, TkP);
  for (int64_t qb = q0; qb < q1; qb += kBQ) {
    const int64_t nb = std::min(kBQ, q1 - qb);
    mm(sc, TkP, s.q + qb * a.ldq, a.ldq, kt, TkP, nb, TkP, HS);  // S = Q K^T
    for (int64_t i = 0; i < nb; ++i) {
      float* si = sc + i * TkP;
      const float lse = softmax_scaled_row(si, bias, TkP, a.scale);
      if (s.lse) s.lse[qb + i] = lse;
      if (s.probs) std::memcpy(s.probs + (qb + i) * Tk, si, Tk * sizeof(float));
    }
    mm(s.o + qb * a.ldo, a.ldo, sc, TkP, s.v, a.ldv, nb, HS, Tk);  // O = P V
  }
}

}  // namespace attn512
}  // namespace

void attention_forward_range_avx512(const AttnArgs& a, int64_t b, int64_t h, int64_t q0, int64_t q1) {
  if (q1 - q0 < 8) return attn::forward_range(a, b, h, q0, q1);  // few queries: direct dot products
  attn512::forward_range(a, b, h, q0, q1);
}

void attention_backward_range_avx512(const AttnArgs& a, const AttnGrads& g, int64_t h, int64_t b0, int64_t b1) {
  attn::backward_range(a, g, h, b0, b1);
}

}  // namespace carzero::cpu
