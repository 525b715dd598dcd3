// activations.cpp: elementwise ops, forward and backward side by side.
//   gelu (exact erf form), relu, add (residual).
// Dimension letters: n = number of elements (any shape, dense).
// Backward contract (ops.h): activation gradients are WRITTEN (=).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/threadpool.h"
#include "cpu/cpu_ops.h"
#include "ops_check.h"
#include "cpu/cpu_util.h"

namespace carzero::cpu {

namespace {
// Elements per parallel chunk: enough work to amortise a pool dispatch (~1-2 us).
constexpr int64_t kGrain = 1 << 14;
constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;  // 1/sqrt(2*pi)
}  // namespace

// gelu(x) = x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2)))   (Hendrycks & Gimpel 2016, exact form)
// out (n), inp (n)
void gelu_forward(Exec& ex, float* out, const float* inp, int64_t n) {
  require_size("gelu_forward", "n", n);
  if (n == 0) return;
  require_ptr("gelu_forward", "out", out, true);
  require_ptr("gelu_forward", "inp", inp, true);
  ex.pool->parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float x = inp[i];
      out[i] = 0.5f * x * (1.0f + std::erf(x * kInvSqrt2));
    }
  });
}

// d gelu / dx = Phi(x) + x * phi(x), phi(x) = exp(-x^2/2) / sqrt(2*pi).
// dinp (=) (n), inp (n), dout (n)
void gelu_backward(Exec& ex, float* dinp, const float* inp, const float* dout, int64_t n) {
  require_size("gelu_backward", "n", n);
  if (n == 0) return;
  require_ptr("gelu_backward", "dinp", dinp, true);
  require_ptr("gelu_backward", "inp", inp, true);
  require_ptr("gelu_backward", "dout", dout, true);
  ex.pool->parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float x = inp[i];
      float cdf = 0.5f * (1.0f + std::erf(x * kInvSqrt2));
      float pdf = kInvSqrt2Pi * std::exp(-0.5f * x * x);
      dinp[i] = dout[i] * (cdf + x * pdf);
    }
  });
}

// relu(x) = max(x, 0); out (n), inp (n)
void relu_forward(Exec& ex, float* out, const float* inp, int64_t n) {
  require_size("relu_forward", "n", n);
  if (n == 0) return;
  require_ptr("relu_forward", "out", out, true);
  require_ptr("relu_forward", "inp", inp, true);
  ex.pool->parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
  });
}

// d relu / dx = 1 for x > 0 else 0 (the subgradient 0 at x == 0, as PyTorch).
// dinp (=) (n), inp (n), dout (n)
void relu_backward(Exec& ex, float* dinp, const float* inp, const float* dout, int64_t n) {
  require_size("relu_backward", "n", n);
  if (n == 0) return;
  require_ptr("relu_backward", "dinp", dinp, true);
  require_ptr("relu_backward", "inp", inp, true);
  require_ptr("relu_backward", "dout", dout, true);
  ex.pool->parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dinp[i] = inp[i] > 0.0f ? dout[i] : 0.0f;
  });
}

// out = a + b; out (n), a (n), b (n). out may alias a or b (in-place residual).
void add_forward(Exec& ex, float* out, const float* a, const float* b, int64_t n) {
  require_size("add_forward", "n", n);
  if (n == 0) return;
  require_ptr("add_forward", "out", out, true);
  require_ptr("add_forward", "a", a, true);
  require_ptr("add_forward", "b", b, true);
  ex.pool->parallel_for(n, kGrain, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) out[i] = a[i] + b[i];
  });
}

// da = dout, db = dout (both written, either nullable). da (n), db (n), dout (n)
void copy2d(Exec& ex, float* dst, int64_t dpitch, const float* src, int64_t spitch, const float* add, int64_t apitch,
            int64_t width, int64_t height) {
  if (!check_copy2d_args(dst, dpitch, src, spitch, add, apitch, width, height)) return;
  const int64_t grain = std::max<int64_t>(1, 16384 / width);
  ex.pool->parallel_for(height, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* d = dst + r * dpitch;
      const float* x = src + r * spitch;
      if (add) {
        const float* y = add + r * apitch;
        for (int64_t c = 0; c < width; ++c) d[c] = x[c] + y[c];
      } else {
        std::memcpy(d, x, static_cast<size_t>(width) * sizeof(float));
      }
    }
  });
}

void add_backward(Exec& ex, float* da, float* db, const float* dout, int64_t n) {
  require_size("add_backward", "n", n);
  if (n == 0 || (!da && !db)) return;
  require_ptr("add_backward", "dout", dout, true);
  ex.pool->parallel_for(n, kGrain, [&](int64_t s, int64_t e) {
    if (da && da != dout) std::memcpy(da + s, dout + s, static_cast<size_t>(e - s) * sizeof(float));
    if (db && db != dout) std::memcpy(db + s, dout + s, static_cast<size_t>(e - s) * sizeof(float));
  });
}

}  // namespace carzero::cpu
