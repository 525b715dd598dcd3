// dropout.cu: inverted dropout from a counter-based RNG (Philox4x32-10), forward and backward.
// The mask is the same pure function of (seed, offset + i) as cpu/dropout.cpp (and
// cpu::philox_uniform), so CPU and CUDA drop exactly the same elements.
// Dimension letters: n = number of elements.   inp/out/dinp/dout (n)
#include <cmath>

#include "cuda/cuda_common.h"
#include "cuda/cuda_ops.h"

namespace carzero::cuda {

namespace {

constexpr int kThreads = 256;
constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;  // Random123 philox.h constants
constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;

// First output word of Philox4x32-10(counter = (c0, c1, 0, 0), key = (k0, k1)).
__device__ __forceinline__ uint32_t philox_word0(uint32_t c0, uint32_t c1, uint32_t k0, uint32_t k1) {
  uint32_t x0 = c0, x1 = c1, x2 = 0, x3 = 0;
#pragma unroll
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      k0 += kW0;
      k1 += kW1;
    }
    const uint32_t hi0 = __umulhi(kM0, x0), lo0 = kM0 * x0;
    const uint32_t hi1 = __umulhi(kM1, x2), lo1 = kM1 * x2;
    x0 = hi1 ^ x1 ^ k0;
    x1 = lo1;
    x2 = hi0 ^ x3 ^ k1;
    x3 = lo0;
  }
  return x0;
}

// out[i] = u(seed, offset + i) >= p ? in[i] * inv_keep : 0   (0 < p < 1)
__global__ void dropout_kernel(float* out, const float* in, int64_t n, float p, float inv_keep, uint32_t k0,
                               uint32_t k1, uint64_t offset) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const uint64_t c = offset + static_cast<uint64_t>(i);
    const uint32_t w = philox_word0(static_cast<uint32_t>(c), static_cast<uint32_t>(c >> 32), k0, k1);
    const float u = static_cast<float>(w >> 8) * 0x1.0p-24f;
    out[i] = u >= p ? in[i] * inv_keep : 0.0f;
  }
}

void validate(const char* op, int64_t n, float p) {
  require_size(op, "n", n);
  CZ_ARG(p >= 0.0f && p <= 1.0f, "%s: p = %g is outside [0, 1]", op, p);
}

void apply_mask(Exec& ex, float* out, const float* in, int64_t n, float p, uint64_t seed, uint64_t offset) {
  CudaState& s = state(ex);
  const size_t bytes = static_cast<size_t>(n) * sizeof(float);
  if (p == 0.0f) {
    if (out != in) CZ_CUDA(cudaMemcpyAsync(out, in, bytes, cudaMemcpyDeviceToDevice, s.stream));
    return;
  }
  if (p == 1.0f) {
    CZ_CUDA(cudaMemsetAsync(out, 0, bytes, s.stream));
    return;
  }
  const float inv_keep = 1.0f / (1.0f - p);
  dropout_kernel<<<grid_for(n, kThreads, s), kThreads, 0, s.stream>>>(
      out, in, n, p, inv_keep, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), offset);
  check_launch("dropout_kernel");
}

}  // namespace

void dropout_forward(Exec& ex, float* out, const float* inp, int64_t n, float p, uint64_t seed, uint64_t offset) {
  validate("dropout_forward", n, p);
  if (n == 0) return;
  require_ptr("dropout_forward", "out", out, true);
  require_ptr("dropout_forward", "inp", inp, true);
  apply_mask(ex, out, inp, n, p, seed, offset);
}

void dropout_backward(Exec& ex, float* dinp, const float* dout, int64_t n, float p, uint64_t seed, uint64_t offset) {
  validate("dropout_backward", n, p);
  if (n == 0) return;
  require_ptr("dropout_backward", "dinp", dinp, true);
  require_ptr("dropout_backward", "dout", dout, true);
  apply_mask(ex, dinp, dout, n, p, seed, offset);
}

}  // namespace carzero::cuda
