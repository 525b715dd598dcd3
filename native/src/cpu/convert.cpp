// convert.cpp: element type conversion dst (n, dst_type) = src (n, src_type).
// Supported pairs:
//   same type -> copy;  F32 <-> BF16, F32 <-> F16, BF16 <-> F16 (via f32, exact widening first);
//   I32/U8 -> F32/BF16/F16 (value conversion, rounded to nearest even);  U8 -> I32.
// Float -> integer and I32 -> U8 are refused (rounding/saturation would be a silent choice).
// Rounding to bf16/f16 is round-to-nearest-even with NaN kept NaN and overflow to inf
// (core/dtype.h).
#include <cstring>

#include "core/threadpool.h"
#include "cpu/cpu_ops.h"
#include "cpu/cpu_util.h"

namespace carzero::cpu {

namespace {
constexpr int64_t kGrain = 1 << 15;

// Element i of src as float (exact for F32/BF16/F16/U8, RNE for I32 beyond 2^24).
inline float load_as_f32(const void* src, DType t, int64_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(src)[i];
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(src)[i]);
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(src)[i]);
    case DType::I32: return static_cast<float>(static_cast<const int32_t*>(src)[i]);
    case DType::U8: return static_cast<float>(static_cast<const uint8_t*>(src)[i]);
  }
  return 0.0f;
}

bool is_float(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16; }
bool valid(DType t) { return static_cast<int>(t) >= 0 && static_cast<int>(t) <= 4; }

}  // namespace

void convert(Exec& ex, void* dst, DType dst_type, const void* src, DType src_type, int64_t n) {
  const char* op = "convert";
  require_size(op, "n", n);
  CZ_ARG(valid(dst_type), "%s: dst_type = %d is not a dtype", op, static_cast<int>(dst_type));
  CZ_ARG(valid(src_type), "%s: src_type = %d is not a dtype", op, static_cast<int>(src_type));
  const bool ok = dst_type == src_type || is_float(dst_type) || (dst_type == DType::I32 && src_type == DType::U8);
  CZ_REQUIRE(ok, CZ_ERR_UNSUPPORTED, "%s: unsupported dtype pair %s -> %s", op, dtype_name(src_type),
             dtype_name(dst_type));
  if (n == 0) return;
  require_ptr(op, "dst", dst, true);
  require_ptr(op, "src", src, true);
  if (dst_type == src_type) {
    const size_t es = dtype_size(dst_type);
    ex.pool->parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
      std::memcpy(static_cast<char*>(dst) + b * es, static_cast<const char*>(src) + b * es,
                  static_cast<size_t>(e - b) * es);
    });
    return;
  }
  ex.pool->parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    switch (dst_type) {
      case DType::F32: {
        float* d = static_cast<float*>(dst);
        if (src_type == DType::BF16) {  // hot path: plain shift, vectorises
          const uint16_t* s = static_cast<const uint16_t*>(src);
          for (int64_t i = b; i < e; ++i) d[i] = bf16_to_f32(s[i]);
        } else {
          for (int64_t i = b; i < e; ++i) d[i] = load_as_f32(src, src_type, i);
        }
        break;
      }
      case DType::BF16: {
        uint16_t* d = static_cast<uint16_t*>(dst);
        if (src_type == DType::F32) {
          const float* s = static_cast<const float*>(src);
          for (int64_t i = b; i < e; ++i) d[i] = f32_to_bf16(s[i]);
        } else {
          for (int64_t i = b; i < e; ++i) d[i] = f32_to_bf16(load_as_f32(src, src_type, i));
        }
        break;
      }
      case DType::F16: {
        uint16_t* d = static_cast<uint16_t*>(dst);
        for (int64_t i = b; i < e; ++i) d[i] = f32_to_f16(load_as_f32(src, src_type, i));
        break;
      }
      case DType::I32: {  // only U8 -> I32 reaches here
        int32_t* d = static_cast<int32_t*>(dst);
        const uint8_t* s = static_cast<const uint8_t*>(src);
        for (int64_t i = b; i < e; ++i) d[i] = s[i];
        break;
      }
      case DType::U8: break;  // unreachable: refused above
    }
  });
}

}  // namespace carzero::cpu
