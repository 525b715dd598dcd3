// softmax.cu: softmax over the last dimension, forward and backward (cpu/softmax.cpp).
// Dimension letters: R rows, Cc columns (the softmax axis).   inp/out/dinp/dout (R, Cc)
// One warp per row; a row that is entirely -inf gets zeros (as masked attention).
#include <cmath>

#include "cuda/cuda_common.h"
#include "cuda/cuda_device.cuh"
#include "cuda/cuda_ops.h"

namespace carzero::cuda {

namespace {

constexpr int kWarps = 8, kThreads = kWarps * 32;

__global__ void softmax_forward_kernel(float* out, const float* inp, int64_t rows, int64_t cols) {
  const int lane = threadIdx.x & 31;
  for (int64_t r = blockIdx.x * (int64_t)kWarps + (threadIdx.x >> 5); r < rows; r += (int64_t)gridDim.x * kWarps) {
    const float* x = inp + r * cols;
    float* y = out + r * cols;
    float mx = -INFINITY;
    for (int64_t c = lane; c < cols; c += 32) mx = fmaxf(mx, x[c]);
    mx = warp_max(mx);
    if (mx == -INFINITY) {
      for (int64_t c = lane; c < cols; c += 32) y[c] = 0.0f;
      continue;
    }
    double sum = 0.0;
    for (int64_t c = lane; c < cols; c += 32) sum += expf(x[c] - mx);
    const float inv = static_cast<float>(1.0 / warp_sum(sum));
    for (int64_t c = lane; c < cols; c += 32) y[c] = expf(x[c] - mx) * inv;
  }
}

// dinp_j = y_j (dout_j - sum_k y_k dout_k)
__global__ void softmax_backward_kernel(float* dinp, const float* out, const float* dout, int64_t rows, int64_t cols) {
  const int lane = threadIdx.x & 31;
  for (int64_t r = blockIdx.x * (int64_t)kWarps + (threadIdx.x >> 5); r < rows; r += (int64_t)gridDim.x * kWarps) {
    const float* y = out + r * cols;
    const float* dy = dout + r * cols;
    double d = 0.0;
    for (int64_t c = lane; c < cols; c += 32) d += static_cast<double>(y[c]) * dy[c];
    const float df = static_cast<float>(warp_sum(d));
    float* dx = dinp + r * cols;
    for (int64_t c = lane; c < cols; c += 32) dx[c] = y[c] * (dy[c] - df);
  }
}

}  // namespace

void softmax_forward(Exec& ex, float* out, const float* inp, int64_t rows, int64_t cols) {
  const char* op = "softmax_forward";
  require_size(op, "rows", rows);
  require_size(op, "cols", cols);
  if (rows == 0 || cols == 0) return;
  require_ptr(op, "out", out, true);
  require_ptr(op, "inp", inp, true);
  CudaState& s = state(ex);
  softmax_forward_kernel<<<grid_for((rows + kWarps - 1) / kWarps, 1, s), kThreads, 0, s.stream>>>(out, inp, rows, cols);
  check_launch("softmax_forward_kernel");
}

void softmax_backward(Exec& ex, float* dinp, const float* out, const float* dout, int64_t rows, int64_t cols) {
  const char* op = "softmax_backward";
  require_size(op, "rows", rows);
  require_size(op, "cols", cols);
  if (rows == 0 || cols == 0) return;
  require_ptr(op, "dinp", dinp, true);
  require_ptr(op, "out", out, true);
  require_ptr(op, "dout", dout, true);
  CudaState& s = state(ex);
  softmax_backward_kernel<<<grid_for((rows + kWarps - 1) / kWarps, 1, s), kThreads, 0, s.stream>>>(dinp, out, dout,
                                                                                                   rows, cols);
  check_launch("softmax_backward_kernel");
}

}  // namespace carzero::cuda
