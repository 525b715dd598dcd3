// gemm_epilogue.cuh: the activation of the GEMM epilogue kernels and their launch grid, shared by
// native/src/cuda/gemm.cu and the experiment in native/dev/cuda/gemm_narrow8.cu.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace carzero::cuda {

// act: 0 none, 1 ReLU, 2 exact-erf GELU (Act's values).
__device__ __forceinline__ float apply_act(float z, int act) {
  constexpr float kInvSqrt2 = 0.70710678118654752440f;
  if (act == 1) return z > 0.0f ? z : 0.0f;
  if (act == 2) return 0.5f * z * (1.0f + erff(z * kInvSqrt2));
  return z;
}

// Rows over blockIdx.y (at most 65535; kernels loop over the rest), columns over x.
inline dim3 rows_grid(int64_t rows, int64_t N, int threads) {
  const int64_t gx = std::min<int64_t>((N + threads - 1) / threads, 1024);
  const int64_t gy = std::min<int64_t>(rows, 65535);
  return dim3(static_cast<unsigned>(gx < 1 ? 1 : gx), static_cast<unsigned>(gy < 1 ? 1 : gy));
}

}  // namespace carzero::cuda
