// cpu_features.cpp: CPUID / XGETBV probing. See cpu_features.h.
#include "cpu_features.h"
#include "settings.h"

#include <cpuid.h>

#include <cstdlib>
#include <cstring>

namespace carzero {

static CpuFeatures probe() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
  unsigned max_leaf = a;
  char vendor[13];
  std::memcpy(vendor, &b, 4);
  std::memcpy(vendor + 4, &d, 4);
  std::memcpy(vendor + 8, &c, 4);
  vendor[12] = 0;
  f.vendor = vendor;

  __get_cpuid(1, &a, &b, &c, &d);
  f.sse42 = c & (1u << 20);
  f.fma = c & (1u << 12);
  f.f16c = c & (1u << 29);
  bool osxsave = c & (1u << 27);
  f.avx = c & (1u << 28);
  if (osxsave) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    uint64_t xcr0 = (static_cast<uint64_t>(hi) << 32) | lo;
    f.os_avx = (xcr0 & 0x6) == 0x6;
    f.os_avx512 = f.os_avx && (xcr0 & 0xe0) == 0xe0;
  }
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = b & (1u << 5);
    f.avx512f = b & (1u << 16);
    f.avx512dq = b & (1u << 17);
    f.avx512bw = b & (1u << 30);
    f.avx512vl = b & (1u << 31);
    f.avx512_vnni = c & (1u << 11);
    __cpuid_count(7, 1, a, b, c, d);
    f.avx512_bf16 = a & (1u << 5);
  }
  unsigned ext = 0;
  if (!__get_cpuid(0x80000000, &ext, &b, &c, &d)) ext = 0;
  if (ext >= 0x80000004) {
    unsigned regs[12];
    for (unsigned i = 0; i < 3; ++i)
      __get_cpuid(0x80000002 + i, &regs[i * 4], &regs[i * 4 + 1], &regs[i * 4 + 2], &regs[i * 4 + 3]);
    char brand[49];
    std::memcpy(brand, regs, 48);
    brand[48] = 0;
    f.brand = brand;
    while (!f.brand.empty() && f.brand.back() == ' ') f.brand.pop_back();
    size_t s = f.brand.find_first_not_of(' ');
    f.brand = s == std::string::npos ? "" : f.brand.substr(s);
  }
  return f;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = probe();
  return f;
}

CpuIsa cpu_isa_detected() {
  const auto& f = cpu_features();
  if (f.os_avx512 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx2 && f.fma) return CpuIsa::Avx512;
  if (f.os_avx && f.avx2 && f.fma) return CpuIsa::Avx2;
  return CpuIsa::Generic;
}

static CpuIsa isa_cap() {
  const std::string& s = settings().cpu;
  if (s == "generic") return CpuIsa::Generic;
  if (s == "avx2") return CpuIsa::Avx2;
  return CpuIsa::Avx512;
}

CpuIsa cpu_isa() {
  static const CpuIsa isa = [] {
    CpuIsa d = cpu_isa_detected(), c = isa_cap();
    return static_cast<int>(d) < static_cast<int>(c) ? d : c;
  }();
  return isa;
}

bool cpu_has_bf16_dot() { return cpu_isa() == CpuIsa::Avx512 && cpu_features().avx512_bf16; }

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Generic: return "generic";
    case CpuIsa::Avx2: return "avx2";
    case CpuIsa::Avx512: return "avx512";
  }
  return "?";
}

}  // namespace carzero
