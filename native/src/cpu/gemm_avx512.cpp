// gemm_avx512.cpp: the AVX-512 GEMM kernels (compiled with AVX-512F/BW/VL/DQ + BF16 flags, run
// only after CPUID says so): the fp32 micro-kernel (MR x NR = 8 x 32, two zmm per C row), the
// bf16 micro-kernel (VDPBF16PS on K pairs, fp32 accumulation, same tile), their fused epilogue
// (alpha, beta, bias, preact, ReLU / exact GELU) and the packers that transpose, widen or round
// operands into the panel formats of gemm_internal.h.
//
// Tile choice: 8 x 32 uses 16 accumulators + 2 B vectors + 1 broadcast, 10 loads per 16 FMAs
// (Zen 4 issues 2 loads and one 512-bit FMA per cycle), and M = 1576 (ViT-B/16 batch 8) is
// 197 x 8 with no edge rows.
// GCC 12 reports its own _mm512_undefined_* placeholders as maybe-uninitialized (a known false
// positive of the intrinsic headers at -O2/-O3); it is noise, not a finding about this file.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>

#include "cpu/avx512_util.h"
#include "cpu/gemm_internal.h"

namespace carzero::cpu::gemm_detail {
namespace {

// ---- activations ----------------------------------------------------------------------------

// erf(x) as x P(x^2) / Q(x^2) on [-4, 4] (|erf(4)| rounds to 1 in fp32 beyond that); a rational
// minimax fit as used by Eigen's generic_fast_erf_float, max abs error ~4e-7 in fp32.
inline __m512 erf_ps(__m512 x) {
  x = _mm512_min_ps(_mm512_set1_ps(4.0f), _mm512_max_ps(_mm512_set1_ps(-4.0f), x));
  const __m512 x2 = _mm512_mul_ps(x, x);
  __m512 p = _mm512_set1_ps(-2.72614225801306e-10f);
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(2.77068142495902e-08f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-2.10102402082508e-06f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-5.69250639462346e-05f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-7.34990630326855e-04f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-2.95459980854025e-03f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-1.60960333262415e-02f));
  p = _mm512_mul_ps(p, x);
  __m512 q = _mm512_set1_ps(-1.45660718464996e-05f);
  q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-2.13374055278905e-04f));
  q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-1.68282697438203e-03f));
  q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-7.37332916720468e-03f));
  q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-1.42647390514189e-02f));
  return _mm512_div_ps(p, q);
}

// Exact (erf) GELU: 0.5 x (1 + erf(x / sqrt 2)).
inline __m512 gelu_ps(__m512 x) {
  const __m512 e = erf_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752440f)));
  const __m512 h = _mm512_mul_ps(x, _mm512_set1_ps(0.5f));
  return _mm512_fmadd_ps(h, e, h);
}

// ---- epilogue -------------------------------------------------------------------------------

inline __mmask16 col_mask(int64_t nv, int v) {
  const int64_t left = nv - v * 16;
  return left >= 16 ? __mmask16(0xffff) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
}

// Finishes the accumulators of one C tile (MR x 16 NV) and stores rows < mv, columns < nv.
template <int MR, int NV>
inline void store_tile(__m512 (&acc)[MR][NV], float* c, int64_t ldc, int64_t mv, int64_t nv, const TileEpilogue& ep) {
  __mmask16 mask[NV];
  for (int v = 0; v < NV; ++v) mask[v] = col_mask(nv, v);
  const __m512 alpha = _mm512_set1_ps(ep.alpha), beta = _mm512_set1_ps(ep.beta);
  const bool read_c = !ep.first || ep.beta != 0.0f;
  const __m512 cscale = ep.first ? beta : _mm512_set1_ps(1.0f);
  __m512 bias[NV];
  for (int v = 0; v < NV; ++v)
    bias[v] = ep.last && ep.bias ? _mm512_maskz_loadu_ps(mask[v], ep.bias + v * 16) : _mm512_setzero_ps();
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    if (r >= mv) break;
    float* cr = c + r * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      __m512 z = _mm512_mul_ps(acc[r][v], alpha);
      if (read_c) z = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask[v], cr + v * 16), cscale, z);
      if (ep.last) {
        z = _mm512_add_ps(z, bias[v]);
        if (ep.act != Act::None) {
          if (ep.preact) _mm512_mask_storeu_ps(ep.preact + r * ldc + v * 16, mask[v], z);
          z = ep.act == Act::Relu ? _mm512_max_ps(z, _mm512_setzero_ps()) : gelu_ps(z);
        }
      }
      _mm512_mask_storeu_ps(cr + v * 16, mask[v], z);
    }
  }
}

// ---- micro-kernels --------------------------------------------------------------------------

// C tile (MR x 16 NV) += A panel (kc x MR floats) x B panel (kc x 16 NV floats), fp32 FMA.
template <int MR, int NV>
void kernel_f32(int64_t kc, const void* a_panel, const void* b_panel, float* c, int64_t ldc, int64_t mv, int64_t nv,
                const TileEpilogue& ep) {
  constexpr int NR = NV * 16;
  const float* a = static_cast<const float*>(a_panel);
  const float* b = static_cast<const float*>(b_panel);
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  // The C tile is needed right after the loop; start bringing it in now.
  for (int r = 0; r < MR; ++r)
    if (r < mv) _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
#pragma GCC unroll 2
  for (int64_t p = 0; p < kc; ++p) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_ps(b + p * NR + v * 16);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(a[p * MR + r]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  store_tile<MR, NV>(acc, c, ldc, mv, nv, ep);
}

// C tile (MR x 16 NV) += A panel (ceil(kc/2) x MR bf16 pairs) x B panel (ceil(kc/2) x 16 NV
// pairs): each VDPBF16PS multiplies 16 column pairs by one broadcast row pair, fp32 accumulate.
template <int MR, int NV>
void kernel_bf16(int64_t kc, const void* a_panel, const void* b_panel, float* c, int64_t ldc, int64_t mv, int64_t nv,
                 const TileEpilogue& ep) {
  constexpr int NR = NV * 16;
  const uint32_t* a = static_cast<const uint32_t*>(a_panel);  // one bf16 pair per uint32
  const uint32_t* b = static_cast<const uint32_t*>(b_panel);
  const int64_t kp = (kc + 1) / 2;
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int r = 0; r < MR; ++r)
    if (r < mv) _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
#pragma GCC unroll 2
  for (int64_t p = 0; p < kp; ++p) {
    __m512bh bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = (__m512bh)_mm512_loadu_si512(b + p * NR + v * 16);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[p * MR + r]));
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, bv[v]);
    }
  }
  store_tile<MR, NV>(acc, c, ldc, mv, nv, ep);
}

// ---- packing --------------------------------------------------------------------------------

// fp32 -> bf16 bits (round to nearest even, NaN kept quiet) in the low 16 bits of each lane;
// bit-identical to carzero::f32_to_bf16 (the hardware conversion would flush denormals).
inline __m512i bf16_bits(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
  return _mm512_mask_mov_epi32(rounded, nan, quiet);
}
// x rounded to bf16 precision, still fp32.
inline __m512 round_bf16_ps(__m512 x) { return _mm512_castsi512_ps(_mm512_slli_epi32(bf16_bits(x), 16)); }

inline __mmask32 first_n32(int64_t n) {
  return n >= 32 ? __mmask32(0xffffffffu) : n <= 0 ? __mmask32(0) : __mmask32((1u << n) - 1);
}

// n (<= 16) consecutive elements of a F32 or BF16 row as fp32, zero beyond n.
inline __m512 load16_f32(const void* base, DType type, int64_t idx, int64_t n) {
  if (type == DType::F32) return _mm512_maskz_loadu_ps(first_n16(n), static_cast<const float*>(base) + idx);
  const __m256i h = _mm256_maskz_loadu_epi16(first_n16(n), static_cast<const uint16_t*>(base) + idx);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// n (<= 32) consecutive elements of a row as 16 bf16 pairs (element 2i low, 2i+1 high).
inline __m512i load32_pairs(const void* base, DType type, int64_t idx, int64_t n) {
  if (type == DType::BF16) return _mm512_maskz_loadu_epi16(first_n32(n), static_cast<const uint16_t*>(base) + idx);
  const float* f = static_cast<const float*>(base) + idx;
  const __m256i lo = _mm512_cvtepi32_epi16(bf16_bits(_mm512_maskz_loadu_ps(first_n16(n), f)));
  const __m256i hi = _mm512_cvtepi32_epi16(bf16_bits(_mm512_maskz_loadu_ps(first_n16(n - 16), f + 16)));
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

// 8 x 16 transpose for 8-row panels: r[i] (row i, 16 units) becomes 8 vectors, vector q holding
// units 2q and 2q + 1 of rows 0..7 (exactly the panel bytes of those two k). 32 shuffles.
inline void transpose8x16(const __m512 (&r)[8], __m512 (&out)[8]) {
  __m512 t[8], u[8], m[4], n[4];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // u[4 g + j] holds, in 128-bit lane L, unit 4 L + j of rows 4 g .. 4 g + 3.
  for (int g = 0; g < 2; ++g) {
    u[4 * g + 0] = unpacklo_pd_ps(t[4 * g], t[4 * g + 2]);
    u[4 * g + 1] = unpackhi_pd_ps(t[4 * g], t[4 * g + 2]);
    u[4 * g + 2] = unpacklo_pd_ps(t[4 * g + 1], t[4 * g + 3]);
    u[4 * g + 3] = unpackhi_pd_ps(t[4 * g + 1], t[4 * g + 3]);
  }
  for (int j = 0; j < 4; ++j) {
    m[j] = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x44);  // lanes 0, 1 of u[j], then of u[4 + j]
    n[j] = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xee);  // lanes 2, 3
  }
  // Units (4 L + j, 4 L + j + 1), j in {0, 2}: [u[j].L, u[4+j].L, u[j+1].L, u[5+j].L].
  for (int j = 0; j < 4; j += 2) {
    out[(0 + j) / 2] = _mm512_shuffle_f32x4(m[j], m[j + 1], 0x88);   // L = 0
    out[(4 + j) / 2] = _mm512_shuffle_f32x4(m[j], m[j + 1], 0xdd);   // L = 1
    out[(8 + j) / 2] = _mm512_shuffle_f32x4(n[j], n[j + 1], 0x88);   // L = 2
    out[(12 + j) / 2] = _mm512_shuffle_f32x4(n[j], n[j + 1], 0xdd);  // L = 3
  }
}

// What one packed 32-bit unit is, by source dtype and packed format.
enum class UnitKind { F32, F32Round, Bf16Widen, PairsFromBf16, PairsFromF32 };

// 16 whole units of a row starting at unit u (no bounds: the caller checked them).
template <UnitKind U>
inline __m512 load_units(const void* row, int64_t u) {
  if constexpr (U == UnitKind::F32) return _mm512_loadu_ps(static_cast<const float*>(row) + u);
  if constexpr (U == UnitKind::F32Round) return round_bf16_ps(_mm512_loadu_ps(static_cast<const float*>(row) + u));
  if constexpr (U == UnitKind::Bf16Widen) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(row) + u));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  if constexpr (U == UnitKind::PairsFromBf16)
    return _mm512_castsi512_ps(_mm512_loadu_si512(static_cast<const uint16_t*>(row) + 2 * u));
  if constexpr (U == UnitKind::PairsFromF32) {
    const float* f = static_cast<const float*>(row) + 2 * u;
    const __m256i lo = _mm512_cvtepi32_epi16(bf16_bits(_mm512_loadu_ps(f)));
    const __m256i hi = _mm512_cvtepi32_epi16(bf16_bits(_mm512_loadu_ps(f + 16)));
    return _mm512_castsi512_ps(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));
  }
}

// The bulk of a row-view panel: all W rows valid, units [0, units) with units a multiple of 16.
// Fully unrolled so the 16 rows stay in registers; one 16-row group at a time (16 read streams;
// more confuse the hardware prefetcher).
template <UnitKind U>
void pack_rows_full(const PackSrc& s, int64_t base, int64_t p0, int64_t units, int w, uint32_t* out) {
  const int64_t esize = s.type == DType::F32 ? 4 : 2;
  const char* origin = static_cast<const char*>(s.data) + (base * s.ld + p0) * esize;
  const int64_t row_bytes = s.ld * esize;
  int g = 0;
  for (; g + 16 <= w; g += 16) {
    for (int64_t u0 = 0; u0 < units; u0 += 16) {
      __m512 r[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) r[i] = load_units<U>(origin + (g + i) * row_bytes, u0);
      transpose16(r);
#pragma GCC unroll 16
      for (int j = 0; j < 16; ++j) _mm512_storeu_ps(reinterpret_cast<float*>(out + (u0 + j) * w + g), r[j]);
    }
  }
  if (g < w) {  // w % 16 == 8: the last 8 rows
    for (int64_t u0 = 0; u0 < units; u0 += 16) {
      __m512 r[8], t[8];
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) r[i] = load_units<U>(origin + (g + i) * row_bytes, u0);
      transpose8x16(r, t);
      if (w == 8) {  // the 16 units of an 8-row panel are 512 contiguous bytes
#pragma GCC unroll 8
        for (int q = 0; q < 8; ++q) _mm512_storeu_ps(reinterpret_cast<float*>(out + (u0 + 2 * q) * 8), t[q]);
      } else {
#pragma GCC unroll 8
        for (int q = 0; q < 8; ++q) {
          _mm256_storeu_ps(reinterpret_cast<float*>(out + (u0 + 2 * q) * w + g), _mm512_castps512_ps256(t[q]));
          _mm256_storeu_ps(reinterpret_cast<float*>(out + (u0 + 2 * q + 1) * w + g), _mm512_extractf32x8_ps(t[q], 1));
        }
      }
    }
  }
}

// Stores lane group [g, g + width) (width 8 or 16) of out row k at dst + k * W + g.
inline void store_group(float* dst, __m512 v, int width) {
  if (width == 16)
    _mm512_storeu_ps(dst, v);
  else
    _mm256_storeu_ps(dst, _mm512_castps512_ps256(v));
}

// One panel of W (multiple of 8) rows from a row-major view (the row's K values contiguous):
// 16 rows x 16 K at a time are loaded, transposed and stored k-major. Units are fp32 values
// (F32, F32Bf16) or bf16 pairs (Bf16Pairs: 16 units = 32 K values). Whole blocks take the
// unrolled path; partial panels and the K tail the masked one.
void pack_panel_rows(const PackSrc& s, int64_t base, int64_t valid, int64_t p0, int64_t kc, int w, PackFmt fmt,
                     void* dst) {
  const bool pairs = fmt == PackFmt::Bf16Pairs;
  const bool f32 = s.type == DType::F32;
  const bool rnd = fmt == PackFmt::F32Bf16 && f32;
  const int64_t units = pairs ? (kc + 1) / 2 : kc;
  uint32_t* out = static_cast<uint32_t*>(dst);
  // Whole 16-unit blocks need 16 units of every row in range; for pairs that is 32 K values.
  int64_t done = 0;
  if (valid == w) {
    done = pairs ? (kc / 32) * 16 : (kc / 16) * 16;
    if (done > 0) {
      if (pairs) {
        if (f32)
          pack_rows_full<UnitKind::PairsFromF32>(s, base, p0, done, w, out);
        else
          pack_rows_full<UnitKind::PairsFromBf16>(s, base, p0, done, w, out);
      } else if (!f32) {
        pack_rows_full<UnitKind::Bf16Widen>(s, base, p0, done, w, out);
      } else if (rnd) {
        pack_rows_full<UnitKind::F32Round>(s, base, p0, done, w, out);
      } else {
        pack_rows_full<UnitKind::F32>(s, base, p0, done, w, out);
      }
    }
  }
  for (int g = 0; g < w; g += 16) {
    const int width = std::min(16, w - g);
    for (int64_t u0 = done; u0 < units; u0 += 16) {
      __m512 r[16];
      for (int i = 0; i < 16; ++i) {
        const int64_t row = g + i;
        if (i >= width || row >= valid) {
          r[i] = _mm512_setzero_ps();
          continue;
        }
        const int64_t idx = (base + row) * s.ld + p0;
        if (pairs) {
          r[i] = _mm512_castsi512_ps(load32_pairs(s.data, s.type, idx + 2 * u0, kc - 2 * u0));
        } else {
          r[i] = load16_f32(s.data, s.type, idx + u0, kc - u0);
          if (rnd) r[i] = round_bf16_ps(r[i]);
        }
      }
      transpose16(r);
      const int64_t n = std::min<int64_t>(16, units - u0);
      for (int64_t j = 0; j < n; ++j) store_group(reinterpret_cast<float*>(out + (u0 + j) * w + g), r[j], width);
    }
  }
}

// One panel from a transposed view (for each k, the W rows are contiguous): a masked copy per k,
// or, for Bf16Pairs, two k rows interleaved into pairs. Any W.
void pack_panel_cols(const PackSrc& s, int64_t base, int64_t valid, int64_t p0, int64_t kc, int w, PackFmt fmt,
                     void* dst) {
  uint32_t* out = static_cast<uint32_t*>(dst);
  if (fmt == PackFmt::Bf16Pairs) {
    for (int64_t kp = 0; kp < (kc + 1) / 2; ++kp) {
      const int64_t k0 = p0 + 2 * kp;
      const bool has_hi = 2 * kp + 1 < kc;
      for (int g = 0; g < w; g += 16) {
        const __mmask16 lanes = first_n16(w - g), m = first_n16(std::min<int64_t>(w, valid) - g);
        __m512i lo, hi = _mm512_setzero_si512();
        if (s.type == DType::BF16) {
          const uint16_t* x = static_cast<const uint16_t*>(s.data);
          lo = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, x + k0 * s.ld + base + g));
          if (has_hi) hi = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, x + (k0 + 1) * s.ld + base + g));
        } else {
          const float* x = static_cast<const float*>(s.data);
          lo = _mm512_maskz_mov_epi32(m, bf16_bits(_mm512_maskz_loadu_ps(m, x + k0 * s.ld + base + g)));
          if (has_hi)
            hi = _mm512_maskz_mov_epi32(m, bf16_bits(_mm512_maskz_loadu_ps(m, x + (k0 + 1) * s.ld + base + g)));
        }
        _mm512_mask_storeu_epi32(out + kp * w + g, lanes, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
      }
    }
    return;
  }
  const bool rnd = fmt == PackFmt::F32Bf16 && s.type == DType::F32;
  for (int64_t k = 0; k < kc; ++k)
    for (int g = 0; g < w; g += 16) {
      __m512 x = load16_f32(s.data, s.type, (p0 + k) * s.ld + base + g, std::min<int64_t>(w, valid) - g);
      if (rnd) x = round_bf16_ps(x);
      _mm512_mask_storeu_ps(reinterpret_cast<float*>(out + k * w + g), first_n16(w - g), x);
    }
}

void pack_avx512(const PackSrc& s, int64_t r0, int64_t rows, int64_t p0, int64_t kc, int w, PackFmt fmt, void* dst) {
  // The row view transposes in 8-row groups; other widths take the portable packer.
  if (!s.trans && w % 8 != 0) return pack_generic(s, r0, rows, p0, kc, w, fmt, dst);
  const int64_t pbytes = panel_bytes(kc, w, fmt);
  for (int64_t q = 0; q * w < rows; ++q) {
    const int64_t base = r0 + q * w, valid = std::min<int64_t>(w, r0 + rows - base);
    void* panel = static_cast<char*>(dst) + q * pbytes;
    if (s.trans)
      pack_panel_cols(s, base, valid, p0, kc, w, fmt, panel);
    else
      pack_panel_rows(s, base, valid, p0, kc, w, fmt, panel);
  }
}

}  // namespace

KernelSet avx512_kernels_f32() {
  KernelSet k;
  k.name = "avx512-f32-8x32";
  k.mr = 8;
  k.nr = 32;
  k.kc = 384;  // A panel 8 x 384 fp32 = 12 KB in L1
  k.nc = 256;  // B block 384 x 256 fp32 = 384 KB in L2
  k.fmt = PackFmt::F32;
  k.kernel = kernel_f32<8, 2>;
  k.pack = pack_avx512;
  return k;
}

KernelSet avx512_kernels_bf16() {
  KernelSet k;
  k.name = "avx512bf16-8x32";
  k.mr = 8;
  k.nr = 32;
  k.kc = 768;  // A panel 8 x 768 bf16 = 12 KB in L1
  k.nc = 256;  // B block 768 x 256 bf16 = 384 KB in L2
  k.fmt = PackFmt::Bf16Pairs;
  k.kernel = kernel_bf16<8, 2>;
  k.pack = pack_avx512;
  return k;
}

}  // namespace carzero::cpu::gemm_detail
