// optim.cu: fused Adam/AdamW step, sum of squares (global-norm clipping) and scale; the same
// formulas as cpu/optim.cpp (torch.optim.Adam / AdamW, single-tensor path).
// Dimension letters: n = number of parameters in the flat buffer.
#include <cmath>
#include <cstring>

#include "cuda/cuda_common.h"
#include "cuda/cuda_ops.h"

namespace carzero::cuda {

namespace {

constexpr int kThreads = 256;

struct AdamConsts {
  float b1, b2, omb1, omb2, eps, wd, gs, decay, step_size, bc2_sqrt;
  bool adamw;
};

// param, m, v (n) updated in place from grad (n); one pass, fp32 like the CPU.
__global__ void adam_kernel(float* param, const float* grad, float* m, float* v, int64_t n, AdamConsts k) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float p = param[i];
    float g = grad[i] * k.gs;
    if (k.adamw)
      p *= k.decay;
    else
      g += k.wd * p;
    const float mi = k.b1 * m[i] + k.omb1 * g;
    const float vi = k.b2 * v[i] + k.omb2 * g * g;
    m[i] = mi;
    v[i] = vi;
    const float denom = sqrtf(vi) / k.bc2_sqrt + k.eps;
    param[i] = p - k.step_size * (mi / denom);
  }
}

constexpr int kSumBlocks = 1024;  // fixed partial count: the result does not depend on timing

// partial[block] = sum of x^2 over a block-strided slice, in double (deterministic order).
__global__ void sum_squares_partial_kernel(double* partial, const float* x, int64_t n) {
  __shared__ double sh[kThreads];
  double acc = 0.0;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const double d = x[i];
    acc += d * d;
  }
  sh[threadIdx.x] = acc;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = sh[0];
}

// out[0] = sum of partial[0..count)
__global__ void sum_partials_kernel(double* out, const double* partial, int count) {
  __shared__ double sh[kThreads];
  double acc = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
  sh[threadIdx.x] = acc;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[0] = sh[0];
}

__global__ void scale_kernel(float* x, int64_t n, float s) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    x[i] *= s;
}

}  // namespace

void adam_update(Exec& ex, float* param, const float* grad, float* m, float* v, int64_t n, const AdamArgs& a) {
  const char* op = "adam_update";
  if (!check_adam_args(op, param, grad, m, v, n, a)) return;
  CudaState& s = state(ex);
  const double steps = static_cast<double>(a.step);
  const double bc1 = 1.0 - std::pow(static_cast<double>(a.beta1), steps);
  const double bc2 = 1.0 - std::pow(static_cast<double>(a.beta2), steps);
  AdamConsts k;
  k.step_size = static_cast<float>(static_cast<double>(a.lr) / bc1);
  k.bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  k.b1 = a.beta1, k.b2 = a.beta2, k.omb1 = 1.0f - a.beta1, k.omb2 = 1.0f - a.beta2;
  k.eps = a.eps, k.wd = a.weight_decay, k.gs = a.grad_scale;
  k.decay = 1.0f - a.lr * a.weight_decay;
  k.adamw = a.decoupled;
  adam_kernel<<<grid_for(n, kThreads, s), kThreads, 0, s.stream>>>(param, grad, m, v, n, k);
  check_launch("adam_kernel");
}

double sum_squares(Exec& ex, const float* x, int64_t n) {
  require_size("sum_squares", "n", n);
  if (n == 0) return 0.0;
  require_ptr("sum_squares", "x", x, true);
  CudaState& s = state(ex);
  const int64_t want = (n + kThreads - 1) / kThreads;
  const int blocks = static_cast<int>(want < kSumBlocks ? want : kSumBlocks);
  Scratch part(s, (static_cast<size_t>(blocks) + 1) * sizeof(double));
  double* partial = part.as<double>();
  sum_squares_partial_kernel<<<blocks, kThreads, 0, s.stream>>>(partial, x, n);
  check_launch("sum_squares_partial_kernel");
  sum_partials_kernel<<<1, kThreads, 0, s.stream>>>(partial + blocks, partial, blocks);
  check_launch("sum_partials_kernel");
  double out;
  std::memcpy(&out, read_back(s, partial + blocks, sizeof(double), "sum_squares"), sizeof out);
  return out;
}

void scale(Exec& ex, float* x, int64_t n, float sc) {
  require_size("scale", "n", n);
  if (n == 0) return;
  require_ptr("scale", "x", x, true);
  CudaState& s = state(ex);
  scale_kernel<<<grid_for(n, kThreads, s), kThreads, 0, s.stream>>>(x, n, sc);
  check_launch("scale_kernel");
}

}  // namespace carzero::cuda
