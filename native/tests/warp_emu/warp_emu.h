// warp_emu.h: a host emulation of the CUDA built-ins and warp-level primitives that the bf16
// attention kernels use (native/src/cuda/attention_bf16_kernels.cuh, compiled with CZ_WARP_EMU).
//
// Every thread of a block is a fiber (ucontext) on the calling OS thread; a block runs until all
// its fibers finish, one block after another. Collective operations (shuffles, ldmatrix, mma.sync)
// wait until all 32 lanes of the warp have arrived at the same operation, then each lane computes
// its result from the others' inputs with the PTX fragment layouts; __syncthreads waits for every
// live thread of the block. The emulation is strict where the hardware is strict:
// - lanes of one warp arriving at different collectives, and barriers that never complete
//   (deadlock), are errors;
// - ldmatrix and cp.async addresses must be 16-byte aligned and inside the block's dynamic shared
//   memory, which starts filled with NaN bytes;
// - cp.async copies land only when the issuing thread waits for their group (cp.async.wait_group),
//   so a read before the wait (or before the barrier after it) sees NaN, as it could on a GPU;
// - global reads through cp.async and __ldg must fall inside a tracked allocation (track_global).
// Errors throw std::runtime_error from launch(). Speed is not a goal: a few thousand warp steps a
// millisecond, enough for test shapes.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>

#include "core/dtype.h"

#define __device__
#define __global__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

// bf16 storage with round-to-nearest-even conversion (NaN kept quiet), as cuda_bf16.h.
struct __nv_bfloat16 {
  uint16_t bits;
};
struct __nv_bfloat162 {
  __nv_bfloat16 x, y;
};
inline __nv_bfloat16 __float2bfloat16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return {static_cast<uint16_t>((u >> 16) | 0x40u)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return {static_cast<uint16_t>(u >> 16)};
}
inline float __bfloat162float(__nv_bfloat16 b) {
  const uint32_t u = static_cast<uint32_t>(b.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi) { return {__float2bfloat16(lo), __float2bfloat16(hi)}; }

// fp16 storage, converted by the library's own round-to-nearest-even routines (core/dtype.h).
struct __half {
  uint16_t bits;
};
struct __half2 {
  __half x, y;
};
inline __half __float2half_rn(float f) { return {carzero::f32_to_f16(f)}; }
inline float __half2float(__half h) { return carzero::f16_to_f32(h.bits); }
inline __half2 __floats2half2_rn(float lo, float hi) { return {__float2half_rn(lo), __float2half_rn(hi)}; }

struct alignas(16) uint4 {
  unsigned int x, y, z, w;
};
inline uint4 make_uint4(unsigned int x, unsigned int y, unsigned int z, unsigned int w) { return {x, y, z, w}; }

namespace cz_emu {

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

const Dim3& thread_idx();
const Dim3& block_idx();
const Dim3& block_dim();
const Dim3& grid_dim();
unsigned char* dyn_smem();

void cp_async16(void* dst, const void* src, bool valid, bool aligned);
void cp_commit();
void cp_wait(int pending);
void ldmatrix_x4(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3, const void* p, bool trans);
// mma.sync.m16n8k16 with fp32 accumulation, a and b bf16 (f16 = false) or fp16 (f16 = true).
void mma_m16n8k16(float* d, const uint32_t* a, uint32_t b0, uint32_t b1, bool f16);
// mma.sync.m16n8k8 with TF32 a and b (fp32 bits; the low 13 mantissa bits are ignored, as the
// hardware does) and fp32 accumulation.
void mma_m16n8k8_tf32(float* d, const uint32_t* a, uint32_t b0, uint32_t b1);
// cvt.rna.tf32.f32: x rounded to TF32 (10 mantissa bits; to nearest, ties away from zero).
float round_tf32(float x);
float shfl_xor(float v, int lane_mask);
void syncthreads();

// Runs body (the kernel call) for every thread of every block of the grid with `smem` bytes of
// dynamic shared memory per block. Throws std::runtime_error on an emulation error.
void launch(Dim3 grid, Dim3 block, size_t smem, const std::function<void()>& body);

// Warp collectives executed since the process started (the test prints it).
uint64_t collectives();
// ldmatrix bank conflicts since the process started: the extra shared-memory wavefronts beyond
// one per 8x8 matrix (its 8 rows of 16 bytes conflict-free when they fall in 8 distinct 16-byte
// bank groups), and the number of ldmatrix instructions.
uint64_t ldmatrix_extra_wavefronts();
uint64_t ldmatrix_count();
// Warp-level work counted since the process started: mma.sync instructions, ex2 evaluations
// (per lane), bytes read from global memory through cp.async and __ldg.
struct Work {
  uint64_t mma = 0, ex2 = 0, global_read_bytes = 0;
};
const Work& work();
float ex2(float x);  // 2^x, counted

// Global memory the kernels may read: while any range is registered, every cp.async source and
// __ldg address must lie inside one (an out-of-bounds read is an emulation error, as memcheck's).
void track_global(const void* p, size_t bytes);
void untrack_global(const void* p);
void check_global_read(const void* p, size_t bytes, const char* what);

}  // namespace cz_emu

#define threadIdx (::cz_emu::thread_idx())
#define blockIdx (::cz_emu::block_idx())
#define blockDim (::cz_emu::block_dim())
#define gridDim (::cz_emu::grid_dim())

inline float __shfl_xor_sync(unsigned, float v, int lane_mask) { return cz_emu::shfl_xor(v, lane_mask); }
inline void __syncthreads() { cz_emu::syncthreads(); }
inline unsigned int __ldg(const unsigned int* p) {
  cz_emu::check_global_read(p, sizeof *p, "__ldg");
  return *p;
}
inline float __ldg(const float* p) {  // (not counted: no kernel reads fp32 through __ldg)
  cz_emu::check_global_read(p, sizeof *p, "__ldg");
  return *p;
}
using std::max;
using std::min;
