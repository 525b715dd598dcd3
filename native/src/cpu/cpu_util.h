// cpu_util.h: private helpers shared by the CPU op files (not part of the op table): argument
// checks with messages that name the argument, a vectorisable exp, and reductions that stay
// accurate (double lane accumulators) while still vectorising without -ffast-math.
//
// Everything here has internal linkage (anonymous namespace): the header is included both by
// baseline files and by *_avx512.cpp files compiled with AVX-512 flags, and an inline function
// with external linkage would let the linker pick the AVX-512 copy for the baseline caller.
#pragma once
#include "ops_check.h"
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "core/status.h"

namespace carzero::cpu {
namespace {

// ---- argument checks --------------------------------------------------------------------------
using carzero::require_ptr;
using carzero::require_size;

inline float bits_to_float(uint32_t u) { return __builtin_bit_cast(float, u); }
inline uint32_t float_to_bits(float f) { return __builtin_bit_cast(uint32_t, f); }

// exp(x) in float, Cephes expf scheme: x = n*ln2 + r with |r| <= ln2/2, exp(r) by a degree-7
// polynomial (max rel. error about 2 ulp), 2^n built in the exponent bits. Round-to-nearest of
// x*log2(e) uses the 1.5*2^23 magic-number trick so the loop vectorises with plain SSE2 (no
// roundps). x < -87.33 (including -inf) returns exactly 0 (flush where exp would be subnormal),
// x > 88.72 saturates near FLT_MAX (callers subtract a max first, so x <= 0 in practice).
inline float exp_fast(float x) {
  const float lo = -87.33654475f, hi = 88.72283935f;
  float xc = x < lo ? lo : (x > hi ? hi : x);
  const float magic = 12582912.0f;  // 1.5 * 2^23
  float t = xc * 1.44269504088896341f + magic;
  float n = t - magic;
  int32_t ni = static_cast<int32_t>(float_to_bits(t) - float_to_bits(magic));
  float r = xc - n * 0.693359375f;  // Cody-Waite: ln2 = C1 + C2 with C1 exact in few bits
  r = r - n * -2.12194440e-4f;
  float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  // n in [-126, 128]: 2^n as a float; n = 128 only for x near hi, split to stay finite.
  int32_t n1 = ni >> 1, n2 = ni - n1;
  float s1 = bits_to_float(static_cast<uint32_t>(n1 + 127) << 23);
  float s2 = bits_to_float(static_cast<uint32_t>(n2 + 127) << 23);
  float y = p * s1 * s2;
  return x < lo ? 0.0f : y;
}

// Sum of x[0..n) with 8 double lane accumulators (vectorisable, ~1e-16 relative error).
inline double sum_f64(const float* x, int64_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += static_cast<double>(x[i + l]);
  double s = 0;
  for (; i < n; ++i) s += static_cast<double>(x[i]);
  for (int l = 0; l < 8; ++l) s += acc[l];
  return s;
}

// Sum of (x[i] - c)^2 in double lanes (second pass of a two-pass variance).
inline double sum_sq_dev_f64(const float* x, int64_t n, double c) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) {
      double d = static_cast<double>(x[i + l]) - c;
      acc[l] += d * d;
    }
  double s = 0;
  for (; i < n; ++i) {
    double d = static_cast<double>(x[i]) - c;
    s += d * d;
  }
  for (int l = 0; l < 8; ++l) s += acc[l];
  return s;
}

// dot(a, b) over n in double lanes.
inline double dot_f64(const float* a, const float* b, int64_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += static_cast<double>(a[i + l]) * b[i + l];
  double s = 0;
  for (; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  for (int l = 0; l < 8; ++l) s += acc[l];
  return s;
}

// dot(a, b) over n in float with 16 lanes (for hot loops where fp32 accumulation is accurate
// enough: head-size dot products of 64..192 terms).
inline float dot_f32(const float* a, const float* b, int64_t n) {
  float acc[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) acc[l] += a[i + l] * b[i + l];
  float s = 0;
  for (; i < n; ++i) s += a[i] * b[i];
  for (int l = 0; l < 16; ++l) s += acc[l];
  return s;
}

// max over x[0..n) (n >= 1 not required: returns -inf for n == 0). NaN inputs are not propagated
// reliably; callers feed finite or -inf values.
inline float max_f32(const float* x, int64_t n) {
  const float ninf = -std::numeric_limits<float>::infinity();
  float acc[16];
  for (int l = 0; l < 16; ++l) acc[l] = ninf;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) acc[l] = x[i + l] > acc[l] ? x[i + l] : acc[l];
  float m = ninf;
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  for (int l = 0; l < 16; ++l) m = acc[l] > m ? acc[l] : m;
  return m;
}

// y[i] = exp(x[i] - shift) for i < n, returns sum of y in double lanes.
inline double exp_shift_sum(float* y, const float* x, int64_t n, float shift) {
  for (int64_t i = 0; i < n; ++i) y[i] = exp_fast(x[i] - shift);
  return sum_f64(y, n);
}

}  // namespace
}  // namespace carzero::cpu
