// dtype.h: element types and conversions (bf16 / f16 <-> f32, round to nearest even).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace carzero {

enum class DType : int { F32 = 0, BF16 = 1, F16 = 2, I32 = 3, U8 = 4 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::BF16: return 2;
    case DType::F16: return 2;
    case DType::I32: return 4;
    case DType::U8: return 1;
  }
  return 0;
}
const char* dtype_name(DType t);
bool dtype_from_name(const char* name, DType* out);

// bf16: the high 16 bits of an IEEE float, rounded to nearest even; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t f32_to_f16(float f);
float f16_to_f32(uint16_t h);

}  // namespace carzero
