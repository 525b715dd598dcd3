// softmax.cpp: softmax over the last dimension, forward and backward side by side.
// Dimension letters: R rows, Cc columns (the softmax axis).
//   inp/out/dinp/dout (R, Cc)
// Stable form: softmax(x)_j = exp(x_j - max x) / sum_k exp(x_k - max x).
#include <algorithm>
#include <cmath>

#include "core/threadpool.h"
#include "cpu/cpu_ops.h"
#include "cpu/cpu_util.h"

namespace carzero::cpu {

// A row that is entirely -inf has no defined distribution; it gets zeros (as masked attention).
void softmax_forward(Exec& ex, float* out, const float* inp, int64_t rows, int64_t cols) {
  const char* op = "softmax_forward";
  require_size(op, "rows", rows);
  require_size(op, "cols", cols);
  if (rows == 0 || cols == 0) return;
  require_ptr(op, "out", out, true);
  require_ptr(op, "inp", inp, true);
  const int64_t grain = std::max<int64_t>(1, 4096 / cols);
  ex.pool->parallel_for(rows, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = inp + r * cols;
      float* y = out + r * cols;
      const float mx = max_f32(x, cols);
      if (mx == -std::numeric_limits<float>::infinity()) {
        for (int64_t c = 0; c < cols; ++c) y[c] = 0.0f;
        continue;
      }
      const float inv = static_cast<float>(1.0 / exp_shift_sum(y, x, cols, mx));
      for (int64_t c = 0; c < cols; ++c) y[c] *= inv;
    }
  });
}

// dinp_j = y_j * (dout_j - sum_k y_k dout_k)   (=), out = y from the forward.
void softmax_backward(Exec& ex, float* dinp, const float* out, const float* dout, int64_t rows, int64_t cols) {
  const char* op = "softmax_backward";
  require_size(op, "rows", rows);
  require_size(op, "cols", cols);
  if (rows == 0 || cols == 0) return;
  require_ptr(op, "dinp", dinp, true);
  require_ptr(op, "out", out, true);
  require_ptr(op, "dout", dout, true);
  const int64_t grain = std::max<int64_t>(1, 4096 / cols);
  ex.pool->parallel_for(rows, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* y = out + r * cols;
      const float* dy = dout + r * cols;
      float* dx = dinp + r * cols;
      const float d = static_cast<float>(dot_f64(y, dy, cols));
      for (int64_t c = 0; c < cols; ++c) dx[c] = y[c] * (dy[c] - d);
    }
  });
}

}  // namespace carzero::cpu
