// convert.cu: element type conversion dst (n, dst_type) = src (n, src_type), the same pairs and
// bit-exact rounding as cpu/convert.cpp (core/dtype.h): RNE to bf16/f16, NaN stays NaN,
// overflow to inf; I32/U8 -> float by value (RNE); U8 -> I32; same type copies.
#include <cstring>

#include "core/dtype.h"
#include "cuda/cuda_common.h"
#include "cuda/cuda_ops.h"

namespace carzero::cuda {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ uint16_t d_f32_to_bf16(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
__device__ __forceinline__ float d_bf16_to_f32(uint16_t h) { return __uint_as_float(static_cast<uint32_t>(h) << 16); }
// A transcription of carzero::f32_to_f16 / f16_to_f32 (core/dtype.cpp), so results are identical.
__device__ __forceinline__ uint16_t d_f32_to_f16(float f) {
  const uint32_t x = __float_as_uint(f);
  const uint32_t sign = (x >> 16) & 0x8000u, mag = x & 0x7fffffffu;
  if (mag > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);
  if (mag >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);
  if (mag < 0x38800000u) {
    if (mag < 0x33000000u) return static_cast<uint16_t>(sign);
    const uint32_t e = mag >> 23, m = (mag & 0x7fffffu) | 0x800000u, shift = 126 - e;
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) r++;
    return static_cast<uint16_t>(sign | r);
  }
  const uint32_t r = mag - 0x38000000u;
  uint32_t out = r >> 13;
  const uint32_t rem = r & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (out & 1u))) out++;
  return static_cast<uint16_t>(sign | out);
}
__device__ __forceinline__ float d_f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu;
  uint32_t m = h & 0x3ffu, x;
  if (e == 0) {
    if (m == 0) {
      x = sign;
    } else {
      int sh = 0;
      while (!(m & 0x400u)) {
        m <<= 1;
        sh++;
      }
      m &= 0x3ffu;
      x = sign | ((113u - sh) << 23) | (m << 13);
    }
  } else if (e == 31) {
    x = sign | 0x7f800000u | (m << 13);
  } else {
    x = sign | ((e + 112u) << 23) | (m << 13);
  }
  return __uint_as_float(x);
}

__device__ __forceinline__ float load_as_f32(const void* src, int t, int64_t i) {
  switch (t) {
    case 0: return static_cast<const float*>(src)[i];
    case 1: return d_bf16_to_f32(static_cast<const uint16_t*>(src)[i]);
    case 2: return d_f16_to_f32(static_cast<const uint16_t*>(src)[i]);
    case 3: return __int2float_rn(static_cast<const int32_t*>(src)[i]);
    default: return static_cast<float>(static_cast<const uint8_t*>(src)[i]);
  }
}

// dst (n, dst_t) = src (n, src_t) for dst_t in {F32, BF16, F16} or the U8 -> I32 pair.
__global__ void convert_kernel(void* dst, int dst_t, const void* src, int src_t, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    switch (dst_t) {
      case 0: static_cast<float*>(dst)[i] = load_as_f32(src, src_t, i); break;
      case 1: static_cast<uint16_t*>(dst)[i] = d_f32_to_bf16(load_as_f32(src, src_t, i)); break;
      case 2: static_cast<uint16_t*>(dst)[i] = d_f32_to_f16(load_as_f32(src, src_t, i)); break;
      case 3: static_cast<int32_t*>(dst)[i] = static_cast<const uint8_t*>(src)[i]; break;
      default: break;
    }
  }
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
  CudaState& s = state(ex);
  if (dst_type == src_type) {
    if (dst != src)
      CZ_CUDA(
          cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * dtype_size(dst_type), cudaMemcpyDeviceToDevice, s.stream));
    return;
  }
  convert_kernel<<<grid_for(n, kThreads, s), kThreads, 0, s.stream>>>(dst, static_cast<int>(dst_type), src,
                                                                      static_cast<int>(src_type), n);
  check_launch("convert_kernel");
}

}  // namespace carzero::cuda
