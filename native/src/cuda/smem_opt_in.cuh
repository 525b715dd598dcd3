// smem_opt_in.cuh: dynamic shared memory above the 48 KB default for a kernel (host code of the
// attention launchers in attention_bf16.cu and native/dev/cuda/attention_bf16_variants.cu).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <map>
#include <mutex>
#include <utility>

#include "cuda/cuda_common.h"

namespace carzero::cuda {

// Opts a kernel into `smem` bytes of dynamic shared memory and asks for the largest shared-memory
// carveout of the SM's L1 (the default carveout may leave room for fewer blocks than the
// registers and shared memory would allow). The attributes are set once per kernel and device,
// and again only when a call needs more than was set (two driver calls per launch otherwise:
// microseconds of host time on every attention call of a small-batch forward).
template <class Kernel>
void smem_opt_in(Kernel kernel, size_t smem) {
  static std::mutex mu;
  static std::map<std::pair<const void*, int>, size_t> set;  // (kernel, device) -> bytes
  int dev = 0;
  CZ_CUDA(cudaGetDevice(&dev));
  std::lock_guard<std::mutex> lock(mu);
  size_t& have = set[{reinterpret_cast<const void*>(kernel), dev}];
  if (have >= smem && have != 0) return;
  CZ_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  CZ_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                               static_cast<int>(cudaSharedmemCarveoutMaxShared)));
  have = smem;
}

}  // namespace carzero::cuda
