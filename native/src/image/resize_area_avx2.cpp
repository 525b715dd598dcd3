// resize_area_avx2.cpp: the horizontal pass of the general INTER_AREA path (resize_area.cpp) for
// eight source rows at once, one row per AVX lane.
//
// Why rows in lanes and not output columns: every row uses the same weight table, so with rows
// in lanes each weight is a broadcast and each source value a contiguous 8-float load from a
// transposed copy of the 8 rows; no gathers. Each lane then runs exactly the scalar sequence
// acc = p0 * a0; acc = acc + p1 * a1; ... of one output value, so the results are the scalar
// (and OpenCV's) results bit for bit, provided the multiply and the add stay separate roundings:
// this file is compiled with -mfma, and GCC would otherwise fuse mul + add into an FMA, whose
// single rounding changes low bits. Hence fp-contract=off for the whole file (checked: the object
// has no vfmadd instruction).
//
// The weight rows are zero-padded to a common length K (AreaTab's stride). A padded term adds
// p * 0 == +0 to a finite non-negative sum, which leaves it unchanged, and a fixed trip count
// keeps the inner loop free of mispredicted exits.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#else
#pragma GCC optimize("fp-contract=off")
#endif
#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace carzero {
namespace img {
namespace detail {

// rows: 8 source rows (duplicates allowed), each w bytes. start[dx] / weight[dx * K + j]: the
// x table. out[r][dx] receives row r's value. tbuf: scratch of (w + K) * 8 floats.
void area_hpass8_avx2(const uint8_t* const rows[8], int w, const int* start, const float* weight, int K, int dw,
                      float* const out[8], float* tbuf) {
  // 1. Transpose to tbuf[x * 8 + r] = float(rows[r][x]), an 8x8 byte tile at a time.
  int x = 0;
  for (; x + 8 <= w; x += 8) {
    const __m128i r0 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(rows[0] + x));
    const __m128i r1 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(rows[1] + x));
    const __m128i r2 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(rows[2] + x));
    const __m128i r3 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(rows[3] + x));
    const __m128i r4 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(rows[4] + x));
    const __m128i r5 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(rows[5] + x));
    const __m128i r6 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(rows[6] + x));
    const __m128i r7 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(rows[7] + x));
    // bytes interleaved by row pairs, then quads, then all eight: c_k holds columns 2k, 2k+1,
    // each as 8 bytes in row order.
    const __m128i a0 = _mm_unpacklo_epi8(r0, r1), a1 = _mm_unpacklo_epi8(r2, r3);
    const __m128i a2 = _mm_unpacklo_epi8(r4, r5), a3 = _mm_unpacklo_epi8(r6, r7);
    const __m128i b0 = _mm_unpacklo_epi16(a0, a1), b1 = _mm_unpackhi_epi16(a0, a1);
    const __m128i b2 = _mm_unpacklo_epi16(a2, a3), b3 = _mm_unpackhi_epi16(a2, a3);
    const __m128i c[4] = {_mm_unpacklo_epi32(b0, b2), _mm_unpackhi_epi32(b0, b2), _mm_unpacklo_epi32(b1, b3),
                          _mm_unpackhi_epi32(b1, b3)};
    float* t = tbuf + size_t(x) * 8;
    for (int k = 0; k < 4; k++) {
      _mm256_storeu_ps(t + 16 * k, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c[k])));
      _mm256_storeu_ps(t + 16 * k + 8, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(c[k], 8))));
    }
  }
  for (; x < w; x++)
    for (int r = 0; r < 8; r++) tbuf[size_t(x) * 8 + r] = float(rows[r][x]);
  // Zero columns past the row for the padded weights to read.
  std::memset(tbuf + size_t(w) * 8, 0, sizeof(float) * size_t(K) * 8);

  // 2. Per output column, the weighted sum in source order, 8 rows in parallel.
  alignas(32) float lanes[8];
  for (int dx = 0; dx < dw; dx++) {
    const float* t = tbuf + size_t(start[dx]) * 8;
    const float* a = weight + size_t(dx) * size_t(K);
    __m256 acc = _mm256_mul_ps(_mm256_loadu_ps(t), _mm256_set1_ps(a[0]));
    for (int j = 1; j < K; j++) {
      const __m256 prod = _mm256_mul_ps(_mm256_loadu_ps(t + 8 * j), _mm256_set1_ps(a[j]));
      acc = _mm256_add_ps(acc, prod);
    }
    _mm256_store_ps(lanes, acc);
    for (int r = 0; r < 8; r++) out[r][dx] = lanes[r];
  }
}

}  // namespace detail
}  // namespace img
}  // namespace carzero
