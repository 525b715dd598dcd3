// gemm_narrow8.h: an experiment of the CUDA GEMM with a bf16 C (native/src/cuda/gemm.cu): the
// fp32 product rounded to bf16 8 columns a thread instead of one. Built only with
// -DCARZERO_DEV_KERNELS=ON; chosen by CARZERO_GEMM_NARROW=vec; checked on a GPU by the kit's op
// parity step ops_gemm_vec (scripts/gpu-model-check.sh) and timed by bench_cuda.
#pragma once
#include <cuda_bf16.h>

#include "cuda/cuda_common.h"
#include "ops.h"

namespace carzero::cuda {

// c (g's bf16 C, strided) = bf16(act(dense)), dense (batch, M, N) fp32. Returns false (nothing
// launched) unless N, ldc and the batch stride are multiples of 8 and c is 16-byte aligned.
bool gemm_narrow8_dev(CudaState& s, __nv_bfloat16* c, const float* dense, int act, const GemmArgs& g);

}  // namespace carzero::cuda
