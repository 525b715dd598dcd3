// xent.cpp: softmax cross-entropy over rows (axis = 1) or columns (axis = 0) of a logit matrix,
// forward and backward side by side. Used by the contrastive image-text losses, where the
// column-wise form is CE(X^T) and must not materialise the transpose.
// Dimension letters: R rows, Cc columns.
//   logits/dlogits (R, Cc); axis = 1: targets/losses/dlosses (R); axis = 0: (Cc)
// loss_i = logsumexp(x_i) - x_i[t_i], logsumexp(x) = m + log(sum exp(x - m)), m = max x.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/threadpool.h"
#include "cpu/cpu_ops.h"
#include "cpu/cpu_util.h"

namespace carzero::cpu {

namespace {

// Returns the number of distributions (R for axis 1, Cc for axis 0) after checking arguments.
int64_t validate(const char* op, const int32_t* targets, int64_t R, int64_t Cc, int axis) {
  require_size(op, "R", R);
  require_size(op, "Cc", Cc);
  CZ_ARG(axis == 0 || axis == 1, "%s: axis = %d must be 0 (columns) or 1 (rows)", op, axis);
  const int64_t count = axis == 1 ? R : Cc, classes = axis == 1 ? Cc : R;
  if (count == 0) return 0;
  require_ptr(op, "targets", targets, true);
  for (int64_t i = 0; i < count; ++i)
    CZ_ARG(targets[i] >= 0 && targets[i] < classes, "%s: targets[%lld] = %d is outside [0, %lld)", op,
           static_cast<long long>(i), targets[i], static_cast<long long>(classes));
  return count;
}

// Column statistics for axis 0 over columns [c0, c1): mx (max) and lse (log-sum-exp), walking
// rows so the inner loop runs along contiguous memory.
void column_lse(const float* x, int64_t R, int64_t Cc, int64_t c0, int64_t c1, float* mx, float* lse) {
  const int64_t w = c1 - c0;
  for (int64_t c = 0; c < w; ++c) mx[c] = -std::numeric_limits<float>::infinity();
  for (int64_t r = 0; r < R; ++r) {
    const float* xr = x + r * Cc + c0;
    for (int64_t c = 0; c < w; ++c) mx[c] = xr[c] > mx[c] ? xr[c] : mx[c];
  }
  std::vector<double> sum(static_cast<size_t>(w), 0.0);
  for (int64_t r = 0; r < R; ++r) {
    const float* xr = x + r * Cc + c0;
    for (int64_t c = 0; c < w; ++c) sum[c] += static_cast<double>(exp_fast(xr[c] - mx[c]));
  }
  for (int64_t c = 0; c < w; ++c) lse[c] = mx[c] + static_cast<float>(std::log(sum[c]));
}

}  // namespace

void softmax_xent_forward(Exec& ex, float* losses, const float* logits, const int32_t* targets, int64_t R, int64_t Cc,
                          int axis) {
  const char* op = "softmax_xent_forward";
  const int64_t count = validate(op, targets, R, Cc, axis);
  if (count == 0) return;
  require_ptr(op, "losses", losses, true);
  require_ptr(op, "logits", logits, true);
  if (axis == 1) {
    ex.pool->parallel_for(R, std::max<int64_t>(1, 2048 / Cc), [&](int64_t r0, int64_t r1) {
      std::vector<float> tmp(static_cast<size_t>(Cc));
      for (int64_t r = r0; r < r1; ++r) {
        const float* x = logits + r * Cc;
        const float m = max_f32(x, Cc);
        const double s = exp_shift_sum(tmp.data(), x, Cc, m);
        losses[r] = static_cast<float>(static_cast<double>(m) + std::log(s) - x[targets[r]]);
      }
    });
  } else {
    ex.pool->parallel_for(Cc, 64, [&](int64_t c0, int64_t c1) {
      std::vector<float> mx(static_cast<size_t>(c1 - c0)), lse(static_cast<size_t>(c1 - c0));
      column_lse(logits, R, Cc, c0, c1, mx.data(), lse.data());
      for (int64_t c = c0; c < c1; ++c) losses[c] = lse[c - c0] - logits[static_cast<int64_t>(targets[c]) * Cc + c];
    });
  }
}

// dlogits (=): axis 1: dx[r, c] = dl[r] * (softmax_r[c] - [c == t_r]);
//              axis 0: dx[r, c] = dl[c] * (softmax^c[r] - [r == t_c]).
void softmax_xent_backward(Exec& ex, float* dlogits, const float* dlosses, const float* logits, const int32_t* targets,
                           int64_t R, int64_t Cc, int axis) {
  const char* op = "softmax_xent_backward";
  const int64_t count = validate(op, targets, R, Cc, axis);
  if (R == 0 || Cc == 0) return;
  require_ptr(op, "dlogits", dlogits, true);
  require_ptr(op, "dlosses", dlosses, true);
  require_ptr(op, "logits", logits, true);
  (void)count;
  if (axis == 1) {
    ex.pool->parallel_for(R, std::max<int64_t>(1, 2048 / Cc), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const float* x = logits + r * Cc;
        float* dx = dlogits + r * Cc;
        const float m = max_f32(x, Cc);
        const float inv = static_cast<float>(1.0 / exp_shift_sum(dx, x, Cc, m));
        const float dl = dlosses[r];
        for (int64_t c = 0; c < Cc; ++c) dx[c] = dl * (dx[c] * inv);
        dx[targets[r]] -= dl;
      }
    });
  } else {
    ex.pool->parallel_for(Cc, 64, [&](int64_t c0, int64_t c1) {
      const int64_t w = c1 - c0;
      std::vector<float> mx(static_cast<size_t>(w)), lse(static_cast<size_t>(w));
      column_lse(logits, R, Cc, c0, c1, mx.data(), lse.data());
      for (int64_t r = 0; r < R; ++r) {
        const float* xr = logits + r * Cc + c0;
        float* dr = dlogits + r * Cc + c0;
        for (int64_t c = 0; c < w; ++c) dr[c] = dlosses[c0 + c] * exp_fast(xr[c] - lse[c]);
      }
      for (int64_t c = c0; c < c1; ++c) dlogits[static_cast<int64_t>(targets[c]) * Cc + c] -= dlosses[c];
    });
  }
}

}  // namespace carzero::cpu
