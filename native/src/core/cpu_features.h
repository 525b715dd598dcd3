// cpu_features.h: what the CPU can do (CPUID + OS support via XGETBV) and which ISA level the
// CPU kernels use. CARZERO_CPU=generic|avx2|avx512 caps the level (to test fallbacks or work
// around a bad CPU); the level actually used is min(detected, cap).
#pragma once
#include <string>

namespace carzero {

enum class CpuIsa : int { Generic = 0, Avx2 = 1, Avx512 = 2 };

struct CpuFeatures {
  bool sse42 = false, avx = false, avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512_bf16 = false, avx512_vnni = false;
  bool os_avx = false, os_avx512 = false;  // the OS saves ymm / zmm state
  std::string vendor, brand;
};

const CpuFeatures& cpu_features();
// Highest level supported by this CPU and OS.
CpuIsa cpu_isa_detected();
// Level used by default: detected, capped by CARZERO_CPU.
CpuIsa cpu_isa();
// bf16 dot-product instructions (AVX512_BF16) usable at the current level.
bool cpu_has_bf16_dot();
const char* cpu_isa_name(CpuIsa isa);

}  // namespace carzero
