// gemm_avx2.cpp: the AVX2 + FMA fp32 GEMM micro-kernel (MR x NR = 6 x 16, two ymm per C row)
// with its fused epilogue (alpha, beta, bias, preact, ReLU / exact GELU), and a packer for the
// common layouts. Compiled with -mavx2 -mfma -mf16c; used only after CPUID says so.
//
// Tile choice: 6 x 16 takes 12 accumulators + 2 B vectors + 1 broadcast of the 16 ymm registers;
// 8 loads per 12 FMAs.
#include <immintrin.h>

#include <algorithm>

#include "cpu/gemm_internal.h"

namespace carzero::cpu::gemm_detail {
namespace {

// erf(x) as x P(x^2) / Q(x^2) on [-4, 4]; same rational fit as the AVX-512 file.
inline __m256 erf_ps(__m256 x) {
  x = _mm256_min_ps(_mm256_set1_ps(4.0f), _mm256_max_ps(_mm256_set1_ps(-4.0f), x));
  const __m256 x2 = _mm256_mul_ps(x, x);
  __m256 p = _mm256_set1_ps(-2.72614225801306e-10f);
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(2.77068142495902e-08f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-2.10102402082508e-06f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-5.69250639462346e-05f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-7.34990630326855e-04f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-2.95459980854025e-03f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-1.60960333262415e-02f));
  p = _mm256_mul_ps(p, x);
  __m256 q = _mm256_set1_ps(-1.45660718464996e-05f);
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-2.13374055278905e-04f));
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-1.68282697438203e-03f));
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-7.37332916720468e-03f));
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-1.42647390514189e-02f));
  return _mm256_div_ps(p, q);
}

inline __m256 gelu_ps(__m256 x) {
  const __m256 e = erf_ps(_mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752440f)));
  const __m256 h = _mm256_mul_ps(x, _mm256_set1_ps(0.5f));
  return _mm256_fmadd_ps(h, e, h);
}

// Lane mask (all bits set = active) for the first n of 8 lanes.
inline __m256i lane_mask(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const int cnt = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(8, n)));
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(cnt), idx);
}

template <int MR, int NV>
inline void store_tile(__m256 (&acc)[MR][NV], float* c, int64_t ldc, int64_t mv, int64_t nv, const TileEpilogue& ep) {
  __m256i mask[NV];
  for (int v = 0; v < NV; ++v) mask[v] = lane_mask(nv - v * 8);
  const __m256 alpha = _mm256_set1_ps(ep.alpha);
  const bool read_c = !ep.first || ep.beta != 0.0f;
  const __m256 cscale = _mm256_set1_ps(ep.first ? ep.beta : 1.0f);
  __m256 bias[NV];
  for (int v = 0; v < NV; ++v)
    bias[v] = ep.last && ep.bias ? _mm256_maskload_ps(ep.bias + v * 8, mask[v]) : _mm256_setzero_ps();
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    if (r >= mv) break;
    float* cr = c + r * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      __m256 z = _mm256_mul_ps(acc[r][v], alpha);
      if (read_c) z = _mm256_fmadd_ps(_mm256_maskload_ps(cr + v * 8, mask[v]), cscale, z);
      if (ep.last) {
        z = _mm256_add_ps(z, bias[v]);
        if (ep.act != Act::None) {
          if (ep.preact) _mm256_maskstore_ps(ep.preact + r * ldc + v * 8, mask[v], z);
          z = ep.act == Act::Relu ? _mm256_max_ps(z, _mm256_setzero_ps()) : gelu_ps(z);
        }
      }
      _mm256_maskstore_ps(cr + v * 8, mask[v], z);
    }
  }
}

// C tile (MR x 8 NV) += A panel (kc x MR floats) x B panel (kc x 8 NV floats), fp32 FMA.
template <int MR, int NV>
void kernel_f32(int64_t kc, const void* a_panel, const void* b_panel, float* c, int64_t ldc, int64_t mv, int64_t nv,
                const TileEpilogue& ep) {
  constexpr int NR = NV * 8;
  const float* a = static_cast<const float*>(a_panel);
  const float* b = static_cast<const float*>(b_panel);
  __m256 acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_setzero_ps();
#pragma GCC unroll 2
  for (int64_t p = 0; p < kc; ++p) {
    __m256 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm256_loadu_ps(b + p * NR + v * 8);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m256 av = _mm256_broadcast_ss(a + p * MR + r);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  store_tile<MR, NV>(acc, c, ldc, mv, nv, ep);
}

// fp32 value rounded to bf16 precision (round to nearest even, NaN kept), as carzero::f32_to_bf16.
inline __m256 round_bf16_ps(__m256 x) {
  const __m256i u = _mm256_castps_si256(x);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
  r = _mm256_and_si256(r, _mm256_set1_epi32(static_cast<int>(0xffff0000u)));
  const __m256i quiet = _mm256_and_si256(_mm256_or_si256(u, _mm256_set1_epi32(0x400000)),
                                         _mm256_set1_epi32(static_cast<int>(0xffff0000u)));
  const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
  return _mm256_blendv_ps(_mm256_castsi256_ps(r), _mm256_castsi256_ps(quiet), nan);
}

// Transposed F32 view (for each k, the W rows are contiguous): a masked copy per k. Other
// layouts and dtypes go through the portable packer.
void pack_avx2(const PackSrc& s, int64_t r0, int64_t rows, int64_t p0, int64_t kc, int w, PackFmt fmt, void* dst) {
  if (!s.trans || s.type != DType::F32 || fmt == PackFmt::Bf16Pairs || w % 8 != 0)
    return pack_generic(s, r0, rows, p0, kc, w, fmt, dst);
  const bool rnd = fmt == PackFmt::F32Bf16;
  const float* x = static_cast<const float*>(s.data);
  const int64_t pbytes = panel_bytes(kc, w, fmt);
  for (int64_t q = 0; q * w < rows; ++q) {
    const int64_t base = r0 + q * w, valid = std::min<int64_t>(w, r0 + rows - base);
    float* out = reinterpret_cast<float*>(static_cast<char*>(dst) + q * pbytes);
    for (int64_t k = 0; k < kc; ++k)
      for (int g = 0; g < w; g += 8) {
        __m256 v = _mm256_maskload_ps(x + (p0 + k) * s.ld + base + g, lane_mask(valid - g));
        if (rnd) v = round_bf16_ps(v);
        _mm256_storeu_ps(out + k * w + g, v);
      }
  }
}

}  // namespace

KernelSet avx2_kernels_f32() {
  KernelSet k;
  k.name = "avx2-f32-6x16";
  k.mr = 6;
  k.nr = 16;
  k.kc = 256;  // A panel 6 x 256 fp32 = 6 KB in L1
  k.nc = 512;  // B block 256 x 512 fp32 = 512 KB in L2
  k.fmt = PackFmt::F32;
  k.kernel = kernel_f32<6, 2>;
  k.pack = pack_avx2;
  return k;
}

}  // namespace carzero::cpu::gemm_detail
