// avx512_util.h: AVX-512 helpers shared by the *_avx512.cpp files (GEMM packers, attention):
// lane masks, the 16 x 16 register transpose and a vector exp. Include it only from files compiled
// with the AVX-512 flags. Everything has internal linkage, as in cpu_util.h, so no copy of these
// functions can be merged with one built for another ISA.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace carzero::cpu {
namespace {

// The first n lanes of 16 (none for n <= 0, all for n >= 16).
inline __mmask16 first_n16(int64_t n) {
  return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

inline __m512 unpacklo_pd_ps(__m512 a, __m512 b) {
  return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
}
inline __m512 unpackhi_pd_ps(__m512 a, __m512 b) {
  return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
}

// In-place 16 x 16 transpose of 32-bit lanes: r[i] element j becomes r[j] element i.
inline void transpose16(__m512 (&r)[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // u[4 g + j] holds, in 128-bit lane L, column 4 L + j of rows 4 g .. 4 g + 3.
  for (int g = 0; g < 4; ++g) {
    u[4 * g + 0] = unpacklo_pd_ps(t[4 * g], t[4 * g + 2]);
    u[4 * g + 1] = unpackhi_pd_ps(t[4 * g], t[4 * g + 2]);
    u[4 * g + 2] = unpacklo_pd_ps(t[4 * g + 1], t[4 * g + 3]);
    u[4 * g + 3] = unpackhi_pd_ps(t[4 * g + 1], t[4 * g + 3]);
  }
  for (int j = 0; j < 4; ++j) {
    const __m512 v0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);
    const __m512 v1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xdd);
    const __m512 w0 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
    const __m512 w1 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xdd);
    r[j] = _mm512_shuffle_f32x4(v0, w0, 0x88);
    r[8 + j] = _mm512_shuffle_f32x4(v0, w0, 0xdd);
    r[4 + j] = _mm512_shuffle_f32x4(v1, w1, 0x88);
    r[12 + j] = _mm512_shuffle_f32x4(v1, w1, 0xdd);
  }
}

// exp_fast (cpu_util.h) on 16 lanes: the same range reduction, polynomial and operation order, so
// each lane gives what exp_fast gives for it (x < -87.33, including -inf, gives exactly 0).
inline __m512 exp_fast_ps(__m512 x) {
  const __m512 lo = _mm512_set1_ps(-87.33654475f), hi = _mm512_set1_ps(88.72283935f);
  const __m512 xc = _mm512_min_ps(hi, _mm512_max_ps(lo, x));  // a NaN x stays NaN
  const __m512 magic = _mm512_set1_ps(12582912.0f);           // 1.5 * 2^23
  const __m512 t = _mm512_fmadd_ps(xc, _mm512_set1_ps(1.44269504088896341f), magic);
  const __m512 n = _mm512_sub_ps(t, magic);
  const __m512i ni = _mm512_sub_epi32(_mm512_castps_si512(t), _mm512_castps_si512(magic));
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  const __m512 r2 = _mm512_mul_ps(r, r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0f));
  // 2^n as two factors so n = 128 (x near hi) stays finite.
  const __m512i n1 = _mm512_srai_epi32(ni, 1), n2 = _mm512_sub_epi32(ni, n1);
  const __m512i bias = _mm512_set1_epi32(127);
  const __m512 s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n1, bias), 23));
  const __m512 s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n2, bias), 23));
  const __m512 y = _mm512_mul_ps(_mm512_mul_ps(p, s1), s2);
  return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, lo, _CMP_NLT_UQ), y);
}

}  // namespace
}  // namespace carzero::cpu
