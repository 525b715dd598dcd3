// attention_bf16_common.cuh: what the 16-bit attention forward kernels share: the kernel
// parameters (TcParams), the inline-PTX primitives (cp.async, ldmatrix, mma.sync, ex2), rounding
// to the storage type, and one warp's step over a tile of keys (attend_tile) with its end
// (finish_rows). The kernels are in attention_bf16_tiled.cuh and attention_bf16_whole.cuh (the
// production ones) and native/dev/cuda/attention_bf16_variants.cuh (experiments); the planning in
// attention_bf16_kernels.cuh. The warp emulator test (native/tests/warp_emu) compiles these
// headers on the host with CZ_WARP_EMU defined: the inline-PTX primitives and the CUDA built-ins
// are then replaced by a lane-by-lane emulation, so the kernels' indexing, barriers and masking
// are checked on machines without a GPU.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/settings.h"
#include "ops.h"

#ifdef CZ_WARP_EMU
#include "warp_emu.h"
#define CZ_DYN_SMEM(name) unsigned char* name = ::cz_emu::dyn_smem()
#define CZ_ATTN_BF16_NS attn_bf16_emu  // the emulated copies do not clash with the library's kernels
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#define CZ_DYN_SMEM(name) extern __shared__ __align__(16) unsigned char name[]
#define CZ_ATTN_BF16_NS attn_bf16
#endif

namespace carzero::cuda::CZ_ATTN_BF16_NS {
using bf16 = __nv_bfloat16;

constexpr int kWarpsTC = 4, kThreadsTC = kWarpsTC * 32;

// The parameters of one forward call, for storage type T: bf16 (the 16-bit kernels, whose fp16
// instances reuse the bf16 pointers for the same bits) or float (the TF32 kernel).
template <class T>
struct AttnTcParams {
  const T *q, *k, *v;
  T* out;
  float* lse;
  const uint8_t* mask;
  int64_t ldq, ldk, ldv, ldo, q_bs, k_bs, v_bs, o_bs, mask_bs;
  int64_t Tq, Tk, NH;
  int64_t rows;     // query rows per grid.z slice: Tq, or B * Tq when flattened
  int flat;         // 1: row r is (item r / Tq, query r % Tq) and K/V/mask are shared
  int aligned;      // 1: every q/k/v row start is 16-byte aligned (cp.async); 0: element loads
  int out_aligned;  // 1: out rows aligned for two-element stores; 0: element stores
  float scale_log2;
};
using TcParams = AttnTcParams<bf16>;
using TfParams = AttnTcParams<float>;

#ifndef CZ_WARP_EMU
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes (8 bf16) global -> shared; zero-filled when !valid.
__device__ __forceinline__ void copy16(bf16* dst, const bf16* src, bool valid, int aligned) {
  if (aligned) {
    const int bytes = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(bytes));
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i) dst[i] = valid ? src[i] : __float2bfloat16(0.0f);
  }
}
// 16 bytes (4 floats) global -> shared; zero-filled when !valid.
__device__ __forceinline__ void copy16(float* dst, const float* src, bool valid, int aligned) {
  if (aligned) {
    const int bytes = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(bytes));
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) dst[i] = valid ? src[i] : 0.0f;
  }
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldsm_x4(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(smem_addr(p)));
}
// d (16x8, fp32) += a (16x16, row) * b (16x8, col), a and b bf16 (H = false) or fp16 (H = true)
template <bool H>
__device__ __forceinline__ void mma16816(float* d, const uint32_t* a, uint32_t b0, uint32_t b1) {
  if constexpr (H) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}
// 2^x on the SFU (ex2.approx, relative error ~2^-22; 2^-inf = 0): the probabilities are rounded
// to bf16 right after, and exp is the throughput limit of attention at head size 64.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
// fp32 rounded to TF32 (cvt.rna: to nearest, ties away from zero), as the fp32 bits with the low
// 13 mantissa bits clear: what the tf32 mma reads (it ignores those bits, i.e. would truncate).
__device__ __forceinline__ float round_tf32(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return __uint_as_float(r);
}
// d (16x8, fp32) += a (16x8, row) * b (8x8, col), a and b TF32 (fp32 bits, see round_tf32)
__device__ __forceinline__ void mma1688_tf32(float* d, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ uint32_t f32_bits(float x) { return __float_as_uint(x); }
#else
__device__ __forceinline__ void copy16(bf16* dst, const bf16* src, bool valid, int aligned) {
  ::cz_emu::cp_async16(dst, src, valid, aligned != 0);
}
__device__ __forceinline__ void copy16(float* dst, const float* src, bool valid, int aligned) {
  ::cz_emu::cp_async16(dst, src, valid, aligned != 0);
}
__device__ __forceinline__ void cp_commit() { ::cz_emu::cp_commit(); }
template <int N>
__device__ __forceinline__ void cp_wait() {
  ::cz_emu::cp_wait(N);
}
__device__ __forceinline__ void ldsm_x4(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3, const void* p) {
  ::cz_emu::ldmatrix_x4(r0, r1, r2, r3, p, false);
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3, const void* p) {
  ::cz_emu::ldmatrix_x4(r0, r1, r2, r3, p, true);
}
template <bool H>
__device__ __forceinline__ void mma16816(float* d, const uint32_t* a, uint32_t b0, uint32_t b1) {
  ::cz_emu::mma_m16n8k16(d, a, b0, b1, H);
}
__device__ __forceinline__ float fast_exp2(float x) { return ::cz_emu::ex2(x); }
__device__ __forceinline__ float round_tf32(float x) { return ::cz_emu::round_tf32(x); }
__device__ __forceinline__ void mma1688_tf32(float* d, const uint32_t* a, uint32_t b0, uint32_t b1) {
  ::cz_emu::mma_m16n8k8_tf32(d, a, b0, b1);
}
__device__ __forceinline__ uint32_t f32_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}
#endif  // CZ_WARP_EMU

// Two floats rounded (to nearest even) to the storage type, lo in the low half: bf16 (H = false)
// or fp16 (H = true).
template <bool H>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  if constexpr (H) {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  } else {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  }
}
// One element of the storage type (the 16 bits behind a bf16 pointer) as a float, and back.
template <bool H>
__device__ __forceinline__ float to_f32(bf16 x) {
  if constexpr (H)
    return __half2float(*reinterpret_cast<const __half*>(&x));
  else
    return __bfloat162float(x);
}
template <bool H>
__device__ __forceinline__ bf16 from_f32(float x) {
  if constexpr (H) {
    const __half v = __float2half_rn(x);
    return *reinterpret_cast<const bf16*>(&v);
  } else {
    return __float2bfloat16(x);
  }
}

// Start of query row r (of the block's slice z) for head h.
template <class T>
__device__ __forceinline__ int64_t q_item(const AttnTcParams<T>& p, int64_t r, int64_t z) {
  return p.flat ? r / p.Tq : z;
}

// The tiled kernels' loaders (attention_bf16_tiled.cuh, attention_tf32.cuh), all threads of the
// block taking part, in 16-byte chunks (cp.async where aligned) of E = 16 / sizeof(T) elements;
// shared rows have stride SD. The Q tile: rows r0 .. r0 + BQ of slice z, head h (zero past the end).
template <int D, int BQ, int SD, class T>
__device__ __forceinline__ void load_q_tile(T* Qs, const AttnTcParams<T>& p, int64_t r0, int64_t z, int64_t h) {
  constexpr int E = 16 / sizeof(T), CH = D / E;
  for (int idx = threadIdx.x; idx < BQ * CH; idx += kThreadsTC) {
    const int rr = idx / CH, c = idx - rr * CH;
    const int64_t r = r0 + rr;
    const bool ok = r < p.rows;
    const T* src = p.q;
    if (ok) {
      const int64_t it = q_item(p, r, z), t = p.flat ? r - it * p.Tq : r;
      src = p.q + it * p.q_bs + t * p.ldq + h * D + c * E;
    }
    copy16(Qs + rr * SD + c * E, src, ok, p.aligned);
  }
}
// BK rows of K and V from key k0 into ks and vs (kb, vb: key 0 of the slice and head; zero past Tk).
template <int D, int BK, int SD, class T>
__device__ __forceinline__ void load_kv_tile(T* ks, T* vs, const AttnTcParams<T>& p, const T* kb, const T* vb,
                                             int64_t k0) {
  constexpr int E = 16 / sizeof(T), CH = D / E;
  for (int idx = threadIdx.x; idx < BK * CH; idx += kThreadsTC) {
    const int rr = idx / CH, c = idx - rr * CH;
    const int64_t key = k0 + rr;
    const bool ok = key < p.Tk;
    copy16(ks + rr * SD + c * E, ok ? kb + key * p.ldk + c * E : p.k, ok, p.aligned);
    copy16(vs + rr * SD + c * E, ok ? vb + key * p.ldv + c * E : p.v, ok, p.aligned);
  }
}

// The tiled kernels' key loop (attention_bf16_tiled.cuh, attention_tf32.cuh): a block of 4 warps
// owns BQ query rows of slice z, head h; the Q tile and double-buffered K/V stages of BK keys live
// in shared memory at smem (Q (BQ, SD), then 2 x K, then 2 x V (BK, SD)), filled by cp.async
// with the next stage in flight while one is used. Per tile: landed(it, Qs, ks, vs) once the
// thread's own copies of the stage (and of Q, at it = 0) have landed, before the barrier; then
// step(it, Qs, ks, vs, kbase, rem) (keys kbase .. kbase + rem of the tile) for every warp with a
// row before p.rows (the others only help load); then a barrier before the stage is refilled.
template <int D, int BQ, int BK, int SD, class T, class Landed, class Step>
__device__ __forceinline__ void tiled_key_loop(const AttnTcParams<T>& p, unsigned char* smem, Landed landed,
                                               Step step) {
  T* Qs = reinterpret_cast<T*>(smem);
  T* Ks = Qs + BQ * SD;
  T* Vs = Ks + 2 * BK * SD;
  const int warp = threadIdx.x >> 5;
  const int64_t h = blockIdx.y, z = blockIdx.z, r0 = static_cast<int64_t>(blockIdx.x) * BQ;
  const T* kb = p.k + z * p.k_bs + h * D;
  const T* vb = p.v + z * p.v_bs + h * D;
  load_q_tile<D, BQ, SD>(Qs, p, r0, z, h);
  load_kv_tile<D, BK, SD>(Ks, Vs, p, kb, vb, 0);
  cp_commit();
  const int ntiles = static_cast<int>((p.Tk + BK - 1) / BK);
  const bool warp_active = r0 + warp * 16 < p.rows;
  for (int it = 0; it < ntiles; ++it) {
    if (it + 1 < ntiles) {
      const int nx = (it + 1) & 1;
      load_kv_tile<D, BK, SD>(Ks + nx * BK * SD, Vs + nx * BK * SD, p, kb, vb, static_cast<int64_t>(it + 1) * BK);
      cp_commit();
      cp_wait<1>();
    } else {
      cp_wait<0>();
    }
    T* ks = Ks + (it & 1) * BK * SD;
    T* vs = Vs + (it & 1) * BK * SD;
    landed(it, Qs, ks, vs);
    __syncthreads();
    if (warp_active) {
      const int64_t kbase = static_cast<int64_t>(it) * BK;
      step(it, static_cast<const T*>(Qs), static_cast<const T*>(ks), static_cast<const T*>(vs), kbase,
           static_cast<int>(p.Tk - kbase < BK ? p.Tk - kbase : BK));
    }
    __syncthreads();  // this stage is refilled by the next iteration's prefetch
  }
}

// The online-softmax step of one warp's 16 query rows over a tile of keys, on S in the m16n8
// accumulator layout (the same for the 16-bit and the TF32 products; lane (g, t4) holds columns
// 2 t4, 2 t4 + 1 of each 8-key tile j for rows g and g + 8): scaling into the log2 domain,
// masking (keys past rem, padding), the update of the running max m and the per-thread partial
// sums l, and the rescaling of the accumulator o. s becomes P (0 for every key not attended).
template <int NT, int ND>
__device__ __forceinline__ void softmax_tile(float (&s)[NT][4], float (&o)[ND][4], float (&m)[2], float (&l)[2],
                                             int rem, const uint8_t* mask, float scale_log2, int t4) {
  // scale into the log2 domain, mask (keys past rem, padding), row max over the quad
  float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int kl = j * 8 + 2 * t4 + e;
      const bool ok = kl < rem && (!mask || mask[kl] != 0);
      s[j][e] = ok ? s[j][e] * scale_log2 : -INFINITY;
      s[j][e + 2] = ok ? s[j][e + 2] * scale_log2 : -INFINITY;
      mx0 = fmaxf(mx0, s[j][e]);
      mx1 = fmaxf(mx1, s[j][e + 2]);
    }
  mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
  mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
  mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
  mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
  const float mn0 = fmaxf(m[0], mx0), mn1 = fmaxf(m[1], mx1);
  // A row with no attended key so far keeps m = -inf: use 0 as the base (every p is 0 then).
  const float base0 = mn0 == -INFINITY ? 0.0f : mn0;
  const float base1 = mn1 == -INFINITY ? 0.0f : mn1;
  const float c0 = fast_exp2(m[0] - base0), c1 = fast_exp2(m[1] - base1);
  float ls0 = 0.0f, ls1 = 0.0f;
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    if (j * 8 >= rem) {  // keys wholly past the tile's end: p = 0 without the exponentials
      s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
      continue;
    }
    s[j][0] = fast_exp2(s[j][0] - base0);
    s[j][1] = fast_exp2(s[j][1] - base0);
    s[j][2] = fast_exp2(s[j][2] - base1);
    s[j][3] = fast_exp2(s[j][3] - base1);
    ls0 += s[j][0] + s[j][1];
    ls1 += s[j][2] + s[j][3];
  }
  l[0] = l[0] * c0 + ls0;  // per-thread partial sums; quad-reduced at the end
  l[1] = l[1] * c1 + ls1;
  m[0] = mn0, m[1] = mn1;
#pragma unroll
  for (int n = 0; n < ND; ++n) {
    o[n][0] *= c0, o[n][1] *= c0;
    o[n][2] *= c1, o[n][3] *= c1;
  }
}

// One warp's 16 query rows against one tile of keys in shared memory (keys kbase .. kbase + rem,
// rem <= BK): S = Q K^T on the tensor cores, scaling into the log2 domain and masking, the
// online-softmax update of the running max m, the per-thread partial sums l and the accumulator
// o, then O += P V. kat(r, c) / vat(r, c): the shared address of 16-byte chunk c of key / value
// row r of the tile (the two kernels lay their tiles out differently). Keys past rem are skipped
// in 8-key (S) and 16-key (PV) steps; value rows up to the next multiple of 16 must be finite
// (the loaders zero-fill them).
template <int D, int BK, bool H, class KAt, class VAt>
__device__ __forceinline__ void attend_tile(const uint32_t (&qf)[D / 16][4], float (&o)[D / 8][4], float (&m)[2],
                                            float (&l)[2], int rem, const uint8_t* mask, float scale_log2, int lane,
                                            KAt kat, VAt vat) {
  constexpr int KD = D / 16, NT = BK / 8, ND = D / 8;
  static_assert(KD % 2 == 0 && ND % 2 == 0 && BK % 16 == 0, "tile shapes");
  const int t4 = lane & 3;
  float s[NT][4];
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
    if (j * 8 >= rem) continue;
#pragma unroll
    for (int kk = 0; kk < KD; kk += 2) {
      uint32_t b0, b1, b2, b3;
      ldsm_x4(b0, b1, b2, b3, kat(j * 8 + (lane & 7), kk * 2 + (lane >> 3)));
      mma16816<H>(s[j], qf[kk], b0, b1);
      mma16816<H>(s[j], qf[kk + 1], b2, b3);
    }
  }
  softmax_tile(s, o, m, l, rem, mask, scale_log2, t4);
  // O += P V, P rounded to bf16 straight from the S accumulators
#pragma unroll
  for (int kk = 0; kk < BK / 16; ++kk) {
    if (kk * 16 >= rem) break;
    uint32_t a[4];
    a[0] = pack2<H>(s[2 * kk][0], s[2 * kk][1]);
    a[1] = pack2<H>(s[2 * kk][2], s[2 * kk][3]);
    a[2] = pack2<H>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
    a[3] = pack2<H>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
    for (int n = 0; n < ND; n += 2) {
      uint32_t b0, b1, b2, b3;
      const int i = lane >> 3;
      ldsm_x4_t(b0, b1, b2, b3, vat(kk * 16 + (i & 1) * 8 + (lane & 7), n + (i >> 1)));
      mma16816<H>(o[n], a, b0, b1);
      mma16816<H>(o[n + 1], a, b2, b3);
    }
  }
}

// Two adjacent output elements: rounded to bf16 (fp16 when H; one 32-bit store when aligned), or
// fp32 as they are.
template <bool H>
__device__ __forceinline__ void store_out2(bf16* dst, float x0, float x1, int aligned) {
  if (aligned) {
    *reinterpret_cast<uint32_t*>(dst) = pack2<H>(x0, x1);
  } else {
    dst[0] = from_f32<H>(x0);
    dst[1] = from_f32<H>(x1);
  }
}
template <bool H>
__device__ __forceinline__ void store_out2(float* dst, float x0, float x1, int) {
  dst[0] = x0;
  dst[1] = x1;
}

// The end of a warp's 16 rows (first row wr0 of slice z): row sums over the quad, normalise,
// store in the storage type (and lse when asked).
template <int D, bool H, class T>
__device__ __forceinline__ void finish_rows(const AttnTcParams<T>& p, const float (&o)[D / 8][4], const float (&m)[2],
                                            const float (&l)[2], int64_t wr0, int64_t z, int64_t h, int lane) {
  constexpr int ND = D / 8;
  const int g = lane >> 2, t4 = lane & 3;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    float ls = l[half];
    ls += __shfl_xor_sync(0xffffffffu, ls, 1);
    ls += __shfl_xor_sync(0xffffffffu, ls, 2);
    const int64_t r = wr0 + g + half * 8;
    if (r >= p.rows) continue;
    const float inv = ls > 0.0f ? 1.0f / ls : 0.0f;
    const int64_t itm = q_item(p, r, z), t = p.flat ? r - itm * p.Tq : r;
    T* orow = p.out + itm * p.o_bs + t * p.ldo + h * D;
#pragma unroll
    for (int n = 0; n < ND; ++n)
      store_out2<H>(orow + n * 8 + 2 * t4, o[n][half * 2] * inv, o[n][half * 2 + 1] * inv, p.out_aligned);
    if (p.lse && t4 == 0)
      p.lse[(itm * p.NH + h) * p.Tq + t] = ls > 0.0f ? (m[half] + log2f(ls)) * 0.69314718055994531f : -INFINITY;
  }
}

}  // namespace carzero::cuda::CZ_ATTN_BF16_NS
