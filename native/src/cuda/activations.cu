// activations.cu: elementwise ops, forward and backward side by side: gelu (exact erf form),
// relu, add (residual). Same contracts as cpu/activations.cpp.
// Dimension letters: n = number of elements (any shape, dense). Grid-stride loops over int64.
#include "cuda/cuda_common.h"
#include "cuda/cuda_ops.h"
#include "ops_check.h"

namespace carzero::cuda {

namespace {

constexpr int kThreads = 256;
constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;

// out (n) = 0.5 x (1 + erf(x / sqrt 2))
__global__ void gelu_forward_kernel(float* out, const float* inp, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float x = inp[i];
    out[i] = 0.5f * x * (1.0f + erff(x * kInvSqrt2));
  }
}

// dinp (=) = dout * (Phi(x) + x phi(x))
__global__ void gelu_backward_kernel(float* dinp, const float* inp, const float* dout, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float x = inp[i];
    const float cdf = 0.5f * (1.0f + erff(x * kInvSqrt2));
    const float pdf = kInvSqrt2Pi * expf(-0.5f * x * x);
    dinp[i] = dout[i] * (cdf + x * pdf);
  }
}

__global__ void relu_forward_kernel(float* out, const float* inp, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

__global__ void relu_backward_kernel(float* dinp, const float* inp, const float* dout, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dinp[i] = inp[i] > 0.0f ? dout[i] : 0.0f;
}

// out may alias a or b: each element is read before it is written by the same thread.
__global__ void add_kernel(float* out, const float* a, const float* b, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = a[i] + b[i];
}

}  // namespace

void gelu_forward(Exec& ex, float* out, const float* inp, int64_t n) {
  require_size("gelu_forward", "n", n);
  if (n == 0) return;
  require_ptr("gelu_forward", "out", out, true);
  require_ptr("gelu_forward", "inp", inp, true);
  CudaState& s = state(ex);
  gelu_forward_kernel<<<grid_for(n, kThreads, s), kThreads, 0, s.stream>>>(out, inp, n);
  check_launch("gelu_forward_kernel");
}

void gelu_backward(Exec& ex, float* dinp, const float* inp, const float* dout, int64_t n) {
  require_size("gelu_backward", "n", n);
  if (n == 0) return;
  require_ptr("gelu_backward", "dinp", dinp, true);
  require_ptr("gelu_backward", "inp", inp, true);
  require_ptr("gelu_backward", "dout", dout, true);
  CudaState& s = state(ex);
  gelu_backward_kernel<<<grid_for(n, kThreads, s), kThreads, 0, s.stream>>>(dinp, inp, dout, n);
  check_launch("gelu_backward_kernel");
}

void relu_forward(Exec& ex, float* out, const float* inp, int64_t n) {
  require_size("relu_forward", "n", n);
  if (n == 0) return;
  require_ptr("relu_forward", "out", out, true);
  require_ptr("relu_forward", "inp", inp, true);
  CudaState& s = state(ex);
  relu_forward_kernel<<<grid_for(n, kThreads, s), kThreads, 0, s.stream>>>(out, inp, n);
  check_launch("relu_forward_kernel");
}

void relu_backward(Exec& ex, float* dinp, const float* inp, const float* dout, int64_t n) {
  require_size("relu_backward", "n", n);
  if (n == 0) return;
  require_ptr("relu_backward", "dinp", dinp, true);
  require_ptr("relu_backward", "inp", inp, true);
  require_ptr("relu_backward", "dout", dout, true);
  CudaState& s = state(ex);
  relu_backward_kernel<<<grid_for(n, kThreads, s), kThreads, 0, s.stream>>>(dinp, inp, dout, n);
  check_launch("relu_backward_kernel");
}

__global__ void copy2d_kernel(float* dst, int64_t dpitch, const float* src, int64_t spitch, const float* add,
                              int64_t apitch, int64_t width, int64_t height) {
  const int64_t n = width * height;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / width, c = i - r * width;
    float v = src[r * spitch + c];
    if (add) v += add[r * apitch + c];
    dst[r * dpitch + c] = v;
  }
}

void add_forward(Exec& ex, float* out, const float* a, const float* b, int64_t n) {
  require_size("add_forward", "n", n);
  if (n == 0) return;
  require_ptr("add_forward", "out", out, true);
  require_ptr("add_forward", "a", a, true);
  require_ptr("add_forward", "b", b, true);
  CudaState& s = state(ex);
  add_kernel<<<grid_for(n, kThreads, s), kThreads, 0, s.stream>>>(out, a, b, n);
  check_launch("add_kernel");
}

void copy2d(Exec& ex, float* dst, int64_t dpitch, const float* src, int64_t spitch, const float* add, int64_t apitch,
            int64_t width, int64_t height) {
  if (!check_copy2d_args(dst, dpitch, src, spitch, add, apitch, width, height)) return;
  CudaState& s = state(ex);
  copy2d_kernel<<<grid_for(width * height, kThreads, s), kThreads, 0, s.stream>>>(dst, dpitch, src, spitch, add, apitch,
                                                                                  width, height);
  check_launch("copy2d_kernel");
}

void add_backward(Exec& ex, float* da, float* db, const float* dout, int64_t n) {
  require_size("add_backward", "n", n);
  if (n == 0 || (!da && !db)) return;
  require_ptr("add_backward", "dout", dout, true);
  CudaState& s = state(ex);
  const size_t bytes = static_cast<size_t>(n) * sizeof(float);
  if (da && da != dout) CZ_CUDA(cudaMemcpyAsync(da, dout, bytes, cudaMemcpyDeviceToDevice, s.stream));
  if (db && db != dout) CZ_CUDA(cudaMemcpyAsync(db, dout, bytes, cudaMemcpyDeviceToDevice, s.stream));
}

}  // namespace carzero::cuda
