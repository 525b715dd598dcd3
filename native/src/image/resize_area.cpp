// resize_area.cpp: cv2.resize(..., INTER_AREA) on one-channel uint8, bit for bit with OpenCV 4.6
// as Debian's python3-opencv builds it (no IPP, SSE baseline). The algorithm follows our own
// transcription in src/image/resize.ts; this file keeps its results and reorganises the loops
// for speed where that cannot change a single rounding:
//
// - same size: copy.
// - both sides shrinking by exact integer factors ("fast area"): integer sums, then
//   cvRound(float(sum) * float(1/area)); the 2x2 case uses (a+b+c+d+2)>>2 instead, as OpenCV's
//   SIMD kernel does (it differs from the float rounding on exact halves).
// - shrinking otherwise ("general area"): float weights per source index (computeResizeAreaTab),
//   a horizontal pass per source row accumulating float32 products in source order, and a
//   vertical float32 accumulation of beta * row, rounded half-to-even when an output row ends.
// - any side enlarging: the "linear-like" path with 11-bit fixed point coefficients.
//
// Exactness notes (why the restructured loops give OpenCV's bits):
// - OpenCV accumulates the horizontal pass as buf[di] += S[si] * alpha over a table in which the
//   entries of one output column are contiguous and in increasing source order. Summing each
//   column in a register over the same entries in the same order is the same sequence of float
//   operations. 0 + x == x for the first term, so starting from the first product is identical.
// - Integer sums (fast area, linear path) are exact in any order.
// - No fused multiply-add anywhere (see the pragma below and resize_area_avx2.cpp) and no
//   -ffast-math: every float product and sum is rounded on its own, as in OpenCV's build.
// - The AVX2 horizontal pass (resize_area_avx2.cpp, chosen by cpu_isa()) runs eight source rows
//   in the eight lanes, each lane doing the scalar sequence exactly.

// Keep every float multiply and add a separate rounding even if this file is ever built with
// FMA-capable flags (e.g. -march=native): OpenCV's results depend on it.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/cpu_features.h"
#include "core/status.h"
#include "image/image.h"

namespace carzero {
namespace img {
namespace detail {

// cvRound for float: round to nearest, ties to even (the default MXCSR mode, which is what
// OpenCV's cvtss2si-based cvRound uses).
static inline int round_even(float v) {
#if defined(__SSE2__)
  return _mm_cvtss_si32(_mm_set_ss(v));
#else
  return int(std::nearbyint(v));
#endif
}

static inline int round_even(double v) {
#if defined(__SSE2__)
  return _mm_cvtsd_si32(_mm_set_sd(v));
#else
  return int(std::nearbyint(v));
#endif
}

static inline uint8_t sat_u8(int v) { return uint8_t(v < 0 ? 0 : v > 255 ? 255 : v); }

// ---------------------------------------------------------------------------------------------
// Fast area: integer factors sx, sy (the source is at least dw*sx by dh*sy in the normal case;
// cells hanging over the border are averaged over the pixels that exist, as OpenCV does).
static void area_fast(const uint8_t* src, int w, int h, uint8_t* dst, int dw, int dh, int sx, int sy) {
  const float scale = 1.f / float(sx * sy);
  const int full_cols = w / sx;  // output columns whose cell lies fully inside a row
  const bool two_by_two = sx == 2 && sy == 2;
  // Column sums of the sy rows of one output row. OpenCV sums in int; unsigned arithmetic here
  // gives the same (two's complement) value without undefined behaviour should a huge cell ever
  // overflow 32 bits; below that it is exact in any order.
  std::vector<uint32_t> colsum(two_by_two ? 0 : size_t(w));
  for (int dy = 0; dy < dh; dy++) {
    uint8_t* d = dst + size_t(dy) * dw;
    const int y0 = dy * sy;
    if (y0 >= h) {
      std::memset(d, 0, size_t(dw));
      continue;
    }
    // A bottom cell that is cut off by the image border goes entirely through the "partial"
    // code below, like OpenCV's (it passes width 0 to its full-cell loop then).
    const int full = y0 + sy <= h ? std::min(full_cols, dw) : 0;
    int dx = 0;
    if (two_by_two) {
      const uint8_t* __restrict r0 = src + size_t(y0) * w;
      const uint8_t* __restrict r1 = r0 + w;
      for (; dx < full; dx++) {
        const int i = 2 * dx;
        d[dx] = uint8_t((r0[i] + r0[i + 1] + r1[i] + r1[i + 1] + 2) >> 2);
      }
    } else if (full > 0) {
      uint32_t* __restrict cs = colsum.data();
      const int used = full * sx;
      std::memset(cs, 0, sizeof(uint32_t) * size_t(used));
      for (int k = 0; k < sy; k++) {
        const uint8_t* __restrict r = src + size_t(y0 + k) * w;
        for (int x = 0; x < used; x++) cs[x] += r[x];
      }
      for (; dx < full; dx++) {
        uint32_t s = 0;
        const uint32_t* c = cs + dx * sx;
        for (int j = 0; j < sx; j++) s += c[j];
        // float(int) * float, rounded to float, then cvRound: OpenCV's saturate_cast<uchar>.
        d[dx] = sat_u8(round_even(float(int32_t(s)) * scale));
      }
    }
    // Cells cut by the right or bottom border: the mean of the pixels that exist.
    for (; dx < dw; dx++) {
      const int x0 = dx * sx;
      if (x0 >= w) {
        d[dx] = 0;  // OpenCV divides 0 by 0 here; cvRound(NaN) saturates to 0
        continue;
      }
      uint32_t s = 0;
      int32_t count = 0;
      for (int k = 0; k < sy && y0 + k < h; k++) {
        const uint8_t* r = src + size_t(y0 + k) * w;
        for (int j = 0; j < sx && x0 + j < w; j++) {
          s += r[x0 + j];
          count++;
        }
      }
      d[dx] = sat_u8(round_even(float(int32_t(s)) / float(count)));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// General area. The weight table of one axis, as computeResizeAreaTab builds it, regrouped per
// output index: output i uses source indices start[i] .. start[i] + count[i] - 1 with weights
// weight[i * stride .. i * stride + count[i] - 1]. Each weight row is padded with zeros to
// `stride` entries (the AVX2 kernel adds those products: x + 0 * s == x exactly for the finite,
// non-negative sums here, so padding never changes a result).
struct AreaTab {
  std::vector<int> start, count;
  std::vector<float> weight;
  int stride = 1;
};

static AreaTab area_tab(int ssize, int dsize, double scale) {
  AreaTab t;
  t.start.resize(size_t(dsize));
  t.count.resize(size_t(dsize));
  std::vector<std::vector<float>> per(static_cast<size_t>(dsize));
  int maxn = 1;
  for (int dx = 0; dx < dsize; dx++) {
    const double fsx1 = dx * scale;
    const double fsx2 = fsx1 + scale;
    const double cell = std::min(scale, ssize - fsx1);
    int sx1 = int(std::ceil(fsx1));
    int sx2 = int(std::floor(fsx2));
    sx2 = std::min(sx2, ssize - 1);
    sx1 = std::min(sx1, sx2);
    std::vector<float>& wv = per[size_t(dx)];
    int first = sx1;
    if (sx1 - fsx1 > 1e-3) {
      first = sx1 - 1;
      wv.push_back(float((sx1 - fsx1) / cell));
    }
    for (int s = sx1; s < sx2; s++) wv.push_back(float(1.0 / cell));
    if (fsx2 - sx2 > 1e-3) wv.push_back(float(std::min(std::min(fsx2 - sx2, 1.0), cell) / cell));
    t.start[size_t(dx)] = first;
    t.count[size_t(dx)] = int(wv.size());
    maxn = std::max(maxn, int(wv.size()));
  }
  t.stride = maxn;
  t.weight.assign(size_t(dsize) * size_t(maxn), 0.f);
  for (int dx = 0; dx < dsize; dx++)
    std::copy(per[size_t(dx)].begin(), per[size_t(dx)].end(), t.weight.begin() + ptrdiff_t(dx) * maxn);
  return t;
}

// Horizontal pass of one source row, scalar: buf[dx] = sum_j row[start + j] * weight[j], in
// float32, in source order (OpenCV's buf[di] += S[si] * alpha, kept in a register).
static void area_hpass_scalar(const uint8_t* __restrict row, const AreaTab& xt, int dw, float* __restrict buf) {
  const int* __restrict start = xt.start.data();
  const int* __restrict count = xt.count.data();
  const float* __restrict wt = xt.weight.data();
  const int stride = xt.stride;
  for (int dx = 0; dx < dw; dx++) {
    const uint8_t* p = row + start[dx];
    const float* a = wt + ptrdiff_t(dx) * stride;
    const int n = count[dx];
    float acc = float(p[0]) * a[0];
    for (int j = 1; j < n; j++) {
      const float prod = float(p[j]) * a[j];  // rounded to float before the add, as OpenCV
      acc = acc + prod;
    }
    buf[dx] = acc;
  }
}

#if defined(__x86_64__)
// resize_area_avx2.cpp: the horizontal pass of 8 rows at once (rows in lanes).
void area_hpass8_avx2(const uint8_t* const rows[8], int w, const int* start, const float* weight, int K, int dw,
                      float* const out[8], float* tbuf);
#endif

static void area_general(const uint8_t* src, int w, int h, uint8_t* dst, int dw, int dh, double scale_x,
                         double scale_y) {
  const AreaTab xt = area_tab(w, dw, scale_x);
  const AreaTab yt = area_tab(h, dh, scale_y);
#if defined(__x86_64__)
  const bool avx2 = cpu_isa() >= CpuIsa::Avx2;
#else
  const bool avx2 = false;
#endif
  // Horizontal results of the source rows [block, block + nblock): one row in the scalar path,
  // eight with AVX2. Source rows are visited in increasing order (a row shared by two output
  // rows is visited twice in a row), so each row's pass is computed once.
  const int nblock = avx2 ? 8 : 1;
  std::vector<float> hbuf(static_cast<size_t>(dw) * nblock), sumv(static_cast<size_t>(dw));
  std::vector<float> tbuf(avx2 ? (size_t(w) + size_t(xt.stride)) * 8 : 0);
  float* __restrict sum = sumv.data();
  int block = -1 - nblock;  // first source row held in hbuf; none yet
  for (int dy = 0; dy < dh; dy++) {
    const int n = yt.count[size_t(dy)];
    const float* beta = yt.weight.data() + ptrdiff_t(dy) * yt.stride;
    for (int j = 0; j < n; j++) {
      const int sy = yt.start[size_t(dy)] + j;
      if (sy < block || sy >= block + nblock) {
        block = sy;
        if (avx2) {
#if defined(__x86_64__)
          const uint8_t* rows[8];
          float* outs[8];
          for (int r = 0; r < 8; r++) {
            // Past the last row, repeat it (its results are never used).
            rows[r] = src + size_t(std::min(sy + r, h - 1)) * w;
            outs[r] = hbuf.data() + size_t(r) * dw;
          }
          area_hpass8_avx2(rows, w, xt.start.data(), xt.weight.data(), xt.stride, dw, outs, tbuf.data());
#endif
        } else {
          area_hpass_scalar(src + size_t(sy) * w, xt, dw, hbuf.data());
        }
      }
      const float* __restrict buf = hbuf.data() + size_t(sy - block) * dw;
      const float b = beta[j];
      // OpenCV starts a new output row with sum = beta * buf (not 0 + ..., same value) and
      // otherwise sum += beta * buf: a float product rounded, then a float add.
      if (j == 0) {
        for (int dx = 0; dx < dw; dx++) sum[dx] = b * buf[dx];
      } else {
        for (int dx = 0; dx < dw; dx++) {
          const float prod = b * buf[dx];
          sum[dx] = sum[dx] + prod;
        }
      }
    }
    uint8_t* d = dst + size_t(dy) * dw;
    for (int dx = 0; dx < dw; dx++) d[dx] = sat_u8(round_even(sum[dx]));
  }
}

// ---------------------------------------------------------------------------------------------
// Enlarging (either side): OpenCV's resize with INTER_AREA's own interpolation coefficients,
// 11-bit fixed point, horizontal pass in int32, vertical pass as OpenCV's SIMD-equivalent
// ((b0 * (S0 >> 4)) >> 16) + ((b1 * (S1 >> 4)) >> 16) + 2) >> 2 (its uint8 specialisation uses
// the same expression for the scalar tail, so every column gets it).
static constexpr int kCoefBits = 11;
static constexpr int kCoefScale = 1 << kCoefBits;

// One axis's coefficients: source index and the two fixed point weights per output index.
static void linear_coeffs(int ssize, int dsize, double scale, double inv_scale, int* ofs, int* a0, int* a1,
                          int* clamp_from) {
  int xmax = dsize;
  for (int d = 0; d < dsize; d++) {
    int s = int(std::floor(d * scale));
    float f = float((d + 1) - (s + 1) * inv_scale);
    f = f <= 0 ? 0.f : f - float(std::floor(f));
    if (clamp_from && s + 1 >= ssize) {
      // The last source column has no right neighbour: from here on copy it (x axis only;
      // rows are clamped where they are read).
      xmax = std::min(xmax, d);
      if (s >= ssize - 1) {
        f = 0.f;
        s = ssize - 1;
      }
    }
    ofs[d] = s;
    a0[d] = round_even((1.f - f) * float(kCoefScale));
    a1[d] = round_even(f * float(kCoefScale));
  }
  if (clamp_from) *clamp_from = xmax;
}

static void area_linear(const uint8_t* src, int w, int h, uint8_t* dst, int dw, int dh, double scale_x, double scale_y,
                        double inv_x, double inv_y) {
  std::vector<int> xofs(static_cast<size_t>(dw)), xa0(static_cast<size_t>(dw)), xa1(static_cast<size_t>(dw));
  std::vector<int> yofs(static_cast<size_t>(dh)), yb0(static_cast<size_t>(dh)), yb1(static_cast<size_t>(dh));
  int xmax = dw;
  linear_coeffs(w, dw, scale_x, inv_x, xofs.data(), xa0.data(), xa1.data(), &xmax);
  linear_coeffs(h, dh, scale_y, inv_y, yofs.data(), yb0.data(), yb1.data(), nullptr);

  // Two cached horizontal rows: consecutive output rows mostly share their source rows.
  std::vector<int32_t> rowbuf(size_t(dw) * 2);
  int32_t* rows[2] = {rowbuf.data(), rowbuf.data() + dw};
  int row_of[2] = {-1, -1};
  auto hresize = [&](int sy, int32_t* __restrict out) {
    const uint8_t* __restrict r = src + size_t(sy) * w;
    int dx = 0;
    for (; dx < xmax; dx++) {
      const int s = xofs[size_t(dx)];
      out[dx] = r[s] * xa0[size_t(dx)] + r[s + 1] * xa1[size_t(dx)];
    }
    for (; dx < dw; dx++) out[dx] = r[xofs[size_t(dx)]] * kCoefScale;
  };
  auto get_row = [&](int sy, int keep) -> const int32_t* {
    for (int k = 0; k < 2; k++)
      if (row_of[k] == sy) return rows[k];
    const int slot = row_of[0] == keep ? 1 : 0;  // never evict the other row in use
    row_of[slot] = sy;
    hresize(sy, rows[slot]);
    return rows[slot];
  };
  for (int dy = 0; dy < dh; dy++) {
    const int sy0 = yofs[size_t(dy)];
    const int ya = std::min(std::max(sy0, 0), h - 1);
    const int yb = std::min(std::max(sy0 + 1, 0), h - 1);
    const int32_t* s0 = get_row(ya, yb);
    const int32_t* s1 = yb == ya ? s0 : get_row(yb, ya);
    const int b0 = yb0[size_t(dy)], b1 = yb1[size_t(dy)];
    uint8_t* d = dst + size_t(dy) * dw;
    for (int x = 0; x < dw; x++) {
      const int v = (((b0 * (s0[x] >> 4)) >> 16) + ((b1 * (s1[x] >> 4)) >> 16) + 2) >> 2;
      d[x] = sat_u8(v);
    }
  }
}

}  // namespace detail

void resize_area(const uint8_t* src, int32_t w, int32_t h, uint8_t* dst, int32_t dw, int32_t dh) {
  CZ_ARG(src != nullptr && dst != nullptr, "resize_area: null image pointer");
  CZ_ARG(w >= 1 && h >= 1 && dw >= 1 && dh >= 1, "resize_area: bad sizes %dx%d -> %dx%d", w, h, dw, dh);
  if (w == dw && h == dh) {
    std::memcpy(dst, src, size_t(w) * size_t(h));
    return;
  }
  // The scale arithmetic of cv::resize, in double.
  const double inv_x = double(dw) / w, inv_y = double(dh) / h;
  const double scale_x = 1.0 / inv_x, scale_y = 1.0 / inv_y;
  if (scale_x >= 1 && scale_y >= 1) {
    const int ix = detail::round_even(scale_x), iy = detail::round_even(scale_y);
    const double eps = 2.220446049250313e-16;  // DBL_EPSILON
    if (std::fabs(scale_x - ix) < eps && std::fabs(scale_y - iy) < eps)
      detail::area_fast(src, w, h, dst, dw, dh, ix, iy);
    else
      detail::area_general(src, w, h, dst, dw, dh, scale_x, scale_y);
  } else {
    detail::area_linear(src, w, h, dst, dw, dh, scale_x, scale_y, inv_x, inv_y);
  }
}

}  // namespace img
}  // namespace carzero
