// attention_avx512.cpp: the attention kernels of attention_impl.h compiled with AVX-512 flags
// (CMake gives *_avx512.cpp files -mavx512f/bw/vl/dq -mfma). attention.cpp calls these only when
// cpu_isa() reports Avx512.
#include "cpu/attention_impl.h"

namespace carzero::cpu {

void attention_forward_range_avx512(const AttnArgs& a, int64_t b, int64_t h, int64_t q0, int64_t q1) {
  attn::forward_range(a, b, h, q0, q1);
}

void attention_backward_range_avx512(const AttnArgs& a, const AttnGrads& g, int64_t h, int64_t b0, int64_t b1) {
  attn::backward_range(a, g, h, b0, b1);
}

}  // namespace carzero::cpu
