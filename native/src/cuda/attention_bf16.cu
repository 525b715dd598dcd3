// attention_bf16.cu: attention with bf16 storage on tensor cores (declared in cuda_ops.h).
// Status: not implemented yet; the entry point exists so benchmarks and callers can probe it
// (attention_bf16_supported) and fall back to the fp32 op.
#include "cuda/cuda_common.h"
#include "cuda/cuda_ops.h"

namespace carzero::cuda {

bool attention_bf16_supported(int64_t) { return false; }

void attention_forward_bf16(Exec&, const AttnArgs&) {
  throw_error(CZ_ERR_UNSUPPORTED, "attention_forward_bf16: the bf16 tensor-core kernel is not built yet");
}

}  // namespace carzero::cuda
