// attention_bf16_variants.h: the host entry points of the experimental attention forward kernels
// (attention_bf16_variants.cuh), called by native/src/cuda/attention_bf16.cu in builds configured
// with -DCARZERO_DEV_KERNELS=ON when CARZERO_ATTN_KERNEL names an experiment.
#pragma once
#include <cstdint>
#include <string>

#include "cuda/attention_bf16_common.cuh"
#include "cuda/cuda_common.h"

namespace carzero::cuda {

// Launches the experiment settings().attn_kernel names; false when it does not apply (fp16
// storage, or its preconditions fail: the caller runs the default kernel). Throws
// Error(CZ_ERR_INVALID_ARGUMENT) for a name that is no kernel.
bool attention_forward_dev(CudaState& s, const attn_bf16::TcParams& p, int64_t slices, int64_t NH, bool fp16);

// The bench note of that experiment (kernel, warps, blocks per SM), or "" when it does not apply.
std::string attention_forward_dev_plan(const attn_bf16::TcParams& p);

}  // namespace carzero::cuda
