// optim.cpp: optimizer step and gradient utilities (not differentiated, so no backward):
//   adam_update (Adam / AdamW), sum_squares (for global-norm clipping), scale.
// Dimension letters: n = number of parameters in the flat buffer.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/threadpool.h"
#include "cpu/cpu_ops.h"
#include "ops_check.h"
#include "cpu/cpu_util.h"

namespace carzero::cpu {

namespace {
constexpr int64_t kGrain = 1 << 14;
}  // namespace

// torch.optim.Adam / AdamW (single-tensor, foreach=False path), per element:
//   g = grad * grad_scale
//   Adam:  g += wd * p                 AdamW: p *= 1 - lr * wd
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   bc1 = 1 - b1^step, bc2 = 1 - b2^step (computed in double)
//   p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)
// param, m, v (n) updated in place; grad (n).
void adam_update(Exec& ex, float* param, const float* grad, float* m, float* v, int64_t n, const AdamArgs& a) {
  const char* op = "adam_update";
  if (!check_adam_args(op, param, grad, m, v, n, a)) return;
  const double steps = static_cast<double>(a.step);
  const double bc1 = 1.0 - std::pow(static_cast<double>(a.beta1), steps);
  const double bc2 = 1.0 - std::pow(static_cast<double>(a.beta2), steps);
  const float step_size = static_cast<float>(static_cast<double>(a.lr) / bc1);
  const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  const float b1 = a.beta1, b2 = a.beta2, omb1 = 1.0f - a.beta1, omb2 = 1.0f - a.beta2;
  const float eps = a.eps, wd = a.weight_decay, gs = a.grad_scale;
  const float decay = 1.0f - a.lr * a.weight_decay;  // AdamW multiplier
  const bool adamw = a.decoupled;
  ex.pool->parallel_for(n, kGrain, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      float p = param[i];
      float g = grad[i] * gs;
      if (adamw)
        p *= decay;
      else
        g += wd * p;
      const float mi = b1 * m[i] + omb1 * g;
      const float vi = b2 * v[i] + omb2 * g * g;
      m[i] = mi;
      v[i] = vi;
      const float denom = std::sqrt(vi) / bc2_sqrt + eps;
      param[i] = p - step_size * (mi / denom);
    }
  });
}

// sum_i x_i^2 in double. Fixed-size blocks summed in block order, so the result is identical for
// any thread count.
double sum_squares(Exec& ex, const float* x, int64_t n) {
  require_size("sum_squares", "n", n);
  if (n == 0) return 0.0;
  require_ptr("sum_squares", "x", x, true);
  const int64_t block = 1 << 15, nblocks = (n + block - 1) / block;
  std::vector<double> part(static_cast<size_t>(nblocks), 0.0);
  ex.pool->parallel_for(nblocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t s = b * block, e = std::min(n, s + block);
      part[static_cast<size_t>(b)] = dot_f64(x + s, x + s, e - s);
    }
  });
  double total = 0.0;
  for (double p : part) total += p;
  return total;
}

// x *= s (in place).
void scale(Exec& ex, float* x, int64_t n, float s) {
  require_size("scale", "n", n);
  if (n == 0) return;
  require_ptr("scale", "x", x, true);
  ex.pool->parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) x[i] *= s;
  });
}

}  // namespace carzero::cpu
