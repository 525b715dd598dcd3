// gemm_narrow8.cu: see gemm_narrow8.h.
#include "dev/cuda/gemm_narrow8.h"

#include <cstdint>

#include "cuda/gemm_epilogue.cuh"

namespace carzero::cuda {

namespace {

// The narrowing direction of bf16_dense_kernel, 8 columns a thread (two 16-byte loads, one
// 16-byte store): for N, ld and sb multiples of 8 and 16-byte aligned c. Opt-in
// (CARZERO_GEMM_NARROW=vec) until it has run on a GPU; the op parity runs it
// (scripts/gpu-model-check.sh step ops_gemm_vec).
__global__ void bf16_narrow8_kernel(__nv_bfloat16* c, const float* dense, int act, int64_t batch, int64_t M, int64_t N,
                                    int64_t ld, int64_t sb) {
  const int64_t rows = batch * M, n8 = N / 8;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const int64_t b = r / M, i = r - b * M;
    __nv_bfloat16* crow = c + b * sb + i * ld;
    const float4* drow = reinterpret_cast<const float4*>(dense + r * N);
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < n8; j += (int64_t)gridDim.x * blockDim.x) {
      const float4 x0 = drow[2 * j], x1 = drow[2 * j + 1];
      __nv_bfloat162 y[4] = {__floats2bfloat162_rn(apply_act(x0.x, act), apply_act(x0.y, act)),
                             __floats2bfloat162_rn(apply_act(x0.z, act), apply_act(x0.w, act)),
                             __floats2bfloat162_rn(apply_act(x1.x, act), apply_act(x1.y, act)),
                             __floats2bfloat162_rn(apply_act(x1.z, act), apply_act(x1.w, act))};
      *reinterpret_cast<uint4*>(crow + 8 * j) = *reinterpret_cast<const uint4*>(y);
    }
  }
}

}  // namespace

bool gemm_narrow8_dev(CudaState& s, __nv_bfloat16* c, const float* dense, int act, const GemmArgs& g) {
  const bool fits = g.n % 8 == 0 && g.ldc % 8 == 0 && (g.batch <= 1 || g.stride_c % 8 == 0) &&
                    (reinterpret_cast<uintptr_t>(c) & 15) == 0;
  if (!fits) return false;
  const dim3 grid8 = rows_grid(g.batch * g.m, g.n / 8, 256);
  bf16_narrow8_kernel<<<grid8, 256, 0, s.stream>>>(c, dense, act, g.batch, g.m, g.n, g.ldc, g.stride_c);
  check_launch("bf16_narrow8_kernel");
  return true;
}

}  // namespace carzero::cuda
