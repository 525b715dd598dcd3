// xent.cu: softmax cross-entropy over rows (axis = 1) or columns (axis = 0) of a logit matrix,
// forward and backward (cpu/xent.cpp). The column form is CE(X^T) without a transpose: one
// thread per column walks the rows, so neighbouring threads read neighbouring memory.
// Dimension letters: R rows, Cc columns.
//   logits/dlogits (R, Cc); axis = 1: targets/losses/dlosses (R); axis = 0: (Cc)
// loss_i = logsumexp(x_i) - x_i[t_i]. Targets are checked on the device first (the CPU message).
#include <cmath>

#include "cuda/cuda_common.h"
#include "cuda/cuda_device.cuh"
#include "cuda/cuda_ops.h"

namespace carzero::cuda {

namespace {

constexpr int kWarps = 8, kThreads = kWarps * 32;

// Row r: lse over its Cc logits (warp-wide). Returns -inf-safe values for finite inputs.
__device__ __forceinline__ float row_lse(const float* x, int64_t Cc, int lane) {
  float mx = -INFINITY;
  for (int64_t c = lane; c < Cc; c += 32) mx = fmaxf(mx, x[c]);
  mx = warp_max(mx);
  double s = 0.0;
  for (int64_t c = lane; c < Cc; c += 32) s += expf(x[c] - mx);
  s = warp_sum(s);
  return static_cast<float>(static_cast<double>(mx) + log(s));
}

// Column c: lse over its R logits (one thread).
__device__ __forceinline__ float col_lse(const float* x, int64_t R, int64_t Cc, int64_t c) {
  float mx = -INFINITY;
  for (int64_t r = 0; r < R; ++r) mx = fmaxf(mx, x[r * Cc + c]);
  double s = 0.0;
  for (int64_t r = 0; r < R; ++r) s += expf(x[r * Cc + c] - mx);
  return static_cast<float>(static_cast<double>(mx) + log(s));
}

__device__ __forceinline__ bool target_ok(int32_t t, int64_t classes) { return t >= 0 && t < classes; }

__global__ void xent_rows_forward_kernel(float* losses, const float* logits, const int32_t* targets, int64_t R,
                                         int64_t Cc) {
  const int lane = threadIdx.x & 31;
  for (int64_t r = blockIdx.x * (int64_t)kWarps + (threadIdx.x >> 5); r < R; r += (int64_t)gridDim.x * kWarps) {
    const float* x = logits + r * Cc;
    const float lse = row_lse(x, Cc, lane);
    const int32_t t = targets[r];
    if (lane == 0) losses[r] = target_ok(t, Cc) ? lse - x[t] : NAN;
  }
}

__global__ void xent_cols_forward_kernel(float* losses, const float* logits, const int32_t* targets, int64_t R,
                                         int64_t Cc) {
  for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < Cc; c += (int64_t)gridDim.x * blockDim.x) {
    const int32_t t = targets[c];
    const float lse = col_lse(logits, R, Cc, c);
    losses[c] = target_ok(t, R) ? lse - logits[static_cast<int64_t>(t) * Cc + c] : NAN;
  }
}

// dx[r, c] = dl[r] * (softmax_r[c] - [c == t_r])
__global__ void xent_rows_backward_kernel(float* dlogits, const float* dlosses, const float* logits,
                                          const int32_t* targets, int64_t R, int64_t Cc) {
  const int lane = threadIdx.x & 31;
  for (int64_t r = blockIdx.x * (int64_t)kWarps + (threadIdx.x >> 5); r < R; r += (int64_t)gridDim.x * kWarps) {
    const float* x = logits + r * Cc;
    float* dx = dlogits + r * Cc;
    const float lse = row_lse(x, Cc, lane);
    const float dl = dlosses[r];
    const int32_t t = targets[r];
    for (int64_t c = lane; c < Cc; c += 32) dx[c] = dl * (expf(x[c] - lse) - (c == t ? 1.0f : 0.0f));
  }
}

// dx[r, c] = dl[c] * (softmax^c[r] - [r == t_c])
__global__ void xent_cols_backward_kernel(float* dlogits, const float* dlosses, const float* logits,
                                          const int32_t* targets, int64_t R, int64_t Cc) {
  for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < Cc; c += (int64_t)gridDim.x * blockDim.x) {
    const float lse = col_lse(logits, R, Cc, c);
    const float dl = dlosses[c];
    const int32_t t = targets[c];
    for (int64_t r = 0; r < R; ++r)
      dlogits[r * Cc + c] = dl * (expf(logits[r * Cc + c] - lse) - (r == t ? 1.0f : 0.0f));
  }
}

int64_t validate(CudaState* s, const char* op, const int32_t* targets, int64_t R, int64_t Cc, int axis) {
  require_size(op, "R", R);
  require_size(op, "Cc", Cc);
  CZ_ARG(axis == 0 || axis == 1, "%s: axis = %d must be 0 (columns) or 1 (rows)", op, axis);
  const int64_t count = axis == 1 ? R : Cc, classes = axis == 1 ? Cc : R;
  if (count == 0) return 0;
  require_ptr(op, "targets", targets, true);
  int32_t bad = 0;
  const int64_t i = first_id_out_of_range(*s, targets, count, classes, &bad);
  CZ_ARG(i < 0, "%s: targets[%lld] = %d is outside [0, %lld)", op, static_cast<long long>(i), bad,
         static_cast<long long>(classes));
  return count;
}

}  // namespace

void softmax_xent_forward(Exec& ex, float* losses, const float* logits, const int32_t* targets, int64_t R, int64_t Cc,
                          int axis) {
  const char* op = "softmax_xent_forward";
  CudaState& s = state(ex);
  const int64_t count = validate(&s, op, targets, R, Cc, axis);
  if (count == 0) return;
  require_ptr(op, "losses", losses, true);
  require_ptr(op, "logits", logits, true);
  if (axis == 1) {
    xent_rows_forward_kernel<<<grid_for((R + kWarps - 1) / kWarps, 1, s), kThreads, 0, s.stream>>>(losses, logits,
                                                                                                   targets, R, Cc);
  } else {
    xent_cols_forward_kernel<<<grid_for(Cc, 128, s), 128, 0, s.stream>>>(losses, logits, targets, R, Cc);
  }
  check_launch("xent_forward_kernel");
}

void softmax_xent_backward(Exec& ex, float* dlogits, const float* dlosses, const float* logits, const int32_t* targets,
                           int64_t R, int64_t Cc, int axis) {
  const char* op = "softmax_xent_backward";
  CudaState& s = state(ex);
  validate(&s, op, targets, R, Cc, axis);
  if (R == 0 || Cc == 0) return;
  require_ptr(op, "dlogits", dlogits, true);
  require_ptr(op, "dlosses", dlosses, true);
  require_ptr(op, "logits", logits, true);
  if (axis == 1) {
    xent_rows_backward_kernel<<<grid_for((R + kWarps - 1) / kWarps, 1, s), kThreads, 0, s.stream>>>(
        dlogits, dlosses, logits, targets, R, Cc);
  } else {
    xent_cols_backward_kernel<<<grid_for(Cc, 128, s), 128, 0, s.stream>>>(dlogits, dlosses, logits, targets, R, Cc);
  }
  check_launch("xent_backward_kernel");
}

}  // namespace carzero::cuda
