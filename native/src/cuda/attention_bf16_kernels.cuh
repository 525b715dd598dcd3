// attention_bf16_kernels.cuh: the device code of the bf16 attention forward kernels and their
// host-side planning, launched by attention_bf16.cu (which documents them; the backward is in
// attention_bf16_bwd.cuh). The warp emulator test (native/tests/warp_emu)
// compiles this header on the host with CZ_WARP_EMU defined: the inline-PTX primitives
// (cp.async, ldmatrix, mma.sync, ex2) and the CUDA built-ins are then replaced by a lane-by-lane
// emulation, so the kernels' indexing, barriers and masking are checked on machines without a GPU.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

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

struct TcParams {
  const bf16 *q, *k, *v;
  bf16* out;
  float* lse;
  const uint8_t* mask;
  int64_t ldq, ldk, ldv, ldo, q_bs, k_bs, v_bs, o_bs, mask_bs;
  int64_t Tq, Tk, NH;
  int64_t rows;  // query rows per grid.z slice: Tq, or B * Tq when flattened
  int flat;      // 1: row r is (item r / Tq, query r % Tq) and K/V/mask are shared
  int aligned;   // 1: every q/k/v row start is 16-byte aligned (cp.async); 0: element loads
  int out_aligned;  // 1: out rows 4-byte aligned (bf16x2 stores); 0: element stores
  float scale_log2;
};

#ifndef CZ_WARP_EMU
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes (8 bf16) global -> shared; zero-filled when !valid.
__device__ __forceinline__ void copy16(bf16* dst, const bf16* src, bool valid, int aligned) {
  if (aligned) {
    const int bytes = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)),
                 "l"(src), "r"(bytes));
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i) dst[i] = valid ? src[i] : __float2bfloat16(0.0f);
  }
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldsm_x4(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3,
                                        const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3,
                                          const void* p) {
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
#else
__device__ __forceinline__ void copy16(bf16* dst, const bf16* src, bool valid, int aligned) {
  ::cz_emu::cp_async16(dst, src, valid, aligned != 0);
}
__device__ __forceinline__ void cp_commit() { ::cz_emu::cp_commit(); }
template <int N>
__device__ __forceinline__ void cp_wait() {
  ::cz_emu::cp_wait(N);
}
__device__ __forceinline__ void ldsm_x4(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3,
                                        const void* p) {
  ::cz_emu::ldmatrix_x4(r0, r1, r2, r3, p, false);
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3,
                                          const void* p) {
  ::cz_emu::ldmatrix_x4(r0, r1, r2, r3, p, true);
}
template <bool H>
__device__ __forceinline__ void mma16816(float* d, const uint32_t* a, uint32_t b0, uint32_t b1) {
  ::cz_emu::mma_m16n8k16(d, a, b0, b1, H);
}
__device__ __forceinline__ float fast_exp2(float x) { return ::cz_emu::ex2(x); }
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
  if constexpr (H) return __half2float(*reinterpret_cast<const __half*>(&x));
  else return __bfloat162float(x);
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
__device__ __forceinline__ int64_t q_item(const TcParams& p, int64_t r, int64_t z) {
  return p.flat ? r / p.Tq : z;
}

// One warp's 16 query rows against one tile of keys in shared memory (keys kbase .. kbase + rem,
// rem <= BK): S = Q K^T on the tensor cores, scaling into the log2 domain and masking, the
// online-softmax update of the running max m, the per-thread partial sums l and the accumulator
// o, then O += P V. kat(r, c) / vat(r, c): the shared address of 16-byte chunk c of key / value
// row r of the tile (the two kernels lay their tiles out differently). Keys past rem are skipped
// in 8-key (S) and 16-key (PV) steps; value rows up to the next multiple of 16 must be finite
// (the loaders zero-fill them).
template <int D, int BK, bool H, class KAt, class VAt>
__device__ __forceinline__ void attend_tile(const uint32_t (&qf)[D / 16][4], float (&o)[D / 8][4],
                                            float (&m)[2], float (&l)[2], int rem,
                                            const uint8_t* mask, float scale_log2, int lane,
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

// The end of a warp's 16 rows (first row wr0 of slice z): row sums over the quad, normalise,
// store bf16 (and lse when asked).
template <int D, bool H>
__device__ __forceinline__ void finish_rows(const TcParams& p, const float (&o)[D / 8][4],
                                            const float (&m)[2], const float (&l)[2], int64_t wr0,
                                            int64_t z, int64_t h, int lane) {
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
    bf16* orow = p.out + itm * p.o_bs + t * p.ldo + h * D;
#pragma unroll
    for (int n = 0; n < ND; ++n) {
      const float x0 = o[n][half * 2] * inv, x1 = o[n][half * 2 + 1] * inv;
      if (p.out_aligned) {
        *reinterpret_cast<uint32_t*>(orow + n * 8 + 2 * t4) = pack2<H>(x0, x1);
      } else {
        orow[n * 8 + 2 * t4] = from_f32<H>(x0);
        orow[n * 8 + 2 * t4 + 1] = from_f32<H>(x1);
      }
    }
    if (p.lse && t4 == 0)
      p.lse[(itm * p.NH + h) * p.Tq + t] =
          ls > 0.0f ? (m[half] + log2f(ls)) * 0.69314718055994531f : -INFINITY;
  }
}

// The tiled kernel (any Tk, flattened queries, unaligned rows): a block of 4 warps owns 64 query
// rows of one (item, head), each warp 16; K and V go through shared memory in tiles of BK keys,
// double-buffered with cp.async; rows padded by 16 bytes so an ldmatrix's 8 row addresses hit
// distinct banks.
template <int D>
struct TcCfg {
  static constexpr int BQ = 64;                  // query rows per block
  static constexpr int BK = D <= 128 ? 64 : 32;  // keys per tile
  static constexpr int SD = D + 8;               // shared row stride (elements): +16 bytes
  static constexpr size_t smem_bytes() {
    return static_cast<size_t>(BQ + 4 * BK) * SD * sizeof(bf16);  // Q + 2 stages of K and V
  }
};

template <int D, bool H>
__global__ void __launch_bounds__(kThreadsTC) attention_fwd_tc_kernel(TcParams p) {
  using Cfg = TcCfg<D>;
  constexpr int BQ = Cfg::BQ, BK = Cfg::BK, SD = Cfg::SD;
  constexpr int KD = D / 16;  // k-steps over the head dim (S = Q K^T)
  constexpr int ND = D / 8;   // 8-dim column tiles of O
  constexpr int CH = D / 8;   // 16-byte chunks per row
  CZ_DYN_SMEM(smraw);
  bf16* Qs = reinterpret_cast<bf16*>(smraw);  // (BQ, SD)
  bf16* Ks = Qs + BQ * SD;                    // 2 x (BK, SD)
  bf16* Vs = Ks + 2 * BK * SD;                // 2 x (BK, SD)

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t h = blockIdx.y, z = blockIdx.z, r0 = static_cast<int64_t>(blockIdx.x) * BQ;
  const int64_t wr0 = r0 + warp * 16;  // the warp's first row
  const bf16* kb = p.k + z * p.k_bs + h * D;
  const bf16* vb = p.v + z * p.v_bs + h * D;
  const uint8_t* mb = p.mask ? p.mask + z * p.mask_bs : nullptr;

  // Q tile (rows past the end are zero).
  for (int idx = threadIdx.x; idx < BQ * CH; idx += kThreadsTC) {
    const int rr = idx / CH, c = idx - rr * CH;
    const int64_t r = r0 + rr;
    const bool ok = r < p.rows;
    const bf16* src = p.q;
    if (ok) {
      const int64_t it = q_item(p, r, z), t = p.flat ? r - it * p.Tq : r;
      src = p.q + it * p.q_bs + t * p.ldq + h * D + c * 8;
    }
    copy16(Qs + rr * SD + c * 8, src, ok, p.aligned);
  }
  auto load_kv = [&](int stage, int64_t k0) {
    bf16* ks = Ks + stage * BK * SD;
    bf16* vs = Vs + stage * BK * SD;
    for (int idx = threadIdx.x; idx < BK * CH; idx += kThreadsTC) {
      const int rr = idx / CH, c = idx - rr * CH;
      const int64_t key = k0 + rr;
      const bool ok = key < p.Tk;
      copy16(ks + rr * SD + c * 8, ok ? kb + key * p.ldk + c * 8 : p.k, ok, p.aligned);
      copy16(vs + rr * SD + c * 8, ok ? vb + key * p.ldv + c * 8 : p.v, ok, p.aligned);
    }
  };
  load_kv(0, 0);
  cp_commit();

  uint32_t qf[KD][4];
  float o[ND][4];
  float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.0f, 0.0f};  // rows g and g + 8
#pragma unroll
  for (int n = 0; n < ND; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;

  const int ntiles = static_cast<int>((p.Tk + BK - 1) / BK);
  const bool warp_active = wr0 < p.rows;
  for (int it = 0; it < ntiles; ++it) {
    if (it + 1 < ntiles) {
      load_kv((it + 1) & 1, static_cast<int64_t>(it + 1) * BK);
      cp_commit();
      cp_wait<1>();
    } else {
      cp_wait<0>();
    }
    __syncthreads();
    if (it == 0) {
#pragma unroll
      for (int kk = 0; kk < KD; ++kk) {
        const int i = lane >> 3;
        const bf16* a = Qs + (warp * 16 + (i & 1) * 8 + (lane & 7)) * SD + kk * 16 + (i >> 1) * 8;
        ldsm_x4(qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], a);
      }
    }
    // A warp whose rows are all past the end only helps load tiles.
    if (warp_active) {
      const bf16* ks = Ks + (it & 1) * BK * SD;
      const bf16* vs = Vs + (it & 1) * BK * SD;
      const int64_t kbase = static_cast<int64_t>(it) * BK;
      const int rem = static_cast<int>(p.Tk - kbase < BK ? p.Tk - kbase : BK);
      attend_tile<D, BK, H>(
          qf, o, mrow, lrow, rem, mb ? mb + kbase : nullptr, p.scale_log2, lane,
          [&](int r, int c) { return ks + r * SD + c * 8; },
          [&](int r, int c) { return vs + r * SD + c * 8; });
    }
    __syncthreads();  // this stage is refilled by the next iteration's prefetch
  }
  if (warp_active) finish_rows<D, H>(p, o, mrow, lrow, wr0, z, h, lane);
}

// The whole-sequence kernel (head size 64, Tk <= kWholeMaxTk, per-item K/V, 16-byte aligned
// rows: the ViT's and BERT's self-attention): one block per (item, head) loads all of K and V
// into shared memory once (the tiled kernel reloads them for every 64 query rows: 4 times at
// T = 197), then each of its NW warps walks its 16-row query tiles (tiles w, w + NW, ...) over
// the keys in 64-key steps with no block-wide synchronisation. Q fragments come straight from
// global memory in the mma A layout. Shared rows are 128 bytes with the 16-byte chunks XOR-
// swizzled by (row & 7) instead of padded (conflict-free ldmatrix, 4 blocks of 53 KB per SM at
// T = 197); rows from Tk up to the next multiple of 16 are zero.
constexpr int kWholeMaxTk = 256;

// Shared memory of the whole-sequence kernels: K and V of one pair (Tk rounded up to 16 rows of
// 64 bf16 each); the persistent kernel holds two such stages.
inline size_t whole_kv_smem(int64_t Tk) {
  return static_cast<size_t>((Tk + 15) & ~int64_t{15}) * 64 * sizeof(bf16) * 2;
}

__device__ __forceinline__ const bf16* swz64(const bf16* base, int r, int c) {
  return base + r * 64 + ((c ^ (r & 7)) << 3);
}

// cp.async of `rows` rows of 64 bf16 (row stride ld) into swizzled shared memory; rows from
// `valid` on are zero-filled. All threads of the block take part (thread t of n).
__device__ __forceinline__ void load_rows64(bf16* dst, const bf16* src, int64_t ld, int64_t valid,
                                            int rows, int t, int n) {
  for (int idx = t; idx < rows * 8; idx += n) {
    const int rr = idx >> 3, c = idx & 7;
    const bool ok = rr < valid;
    copy16(const_cast<bf16*>(swz64(dst, rr, c)), ok ? src + rr * ld + c * 8 : src, ok, 1);
  }
}

// The A fragments (mma layout) of query rows 16 mt + g and 16 mt + g + 8 of (item z, head h),
// head size 64, read straight from global memory (zero past Tq).
__device__ __forceinline__ void load_q64(const TcParams& p, int64_t z, int64_t h, int mt, int lane,
                                         uint32_t (&qf)[4][4]) {
  const bf16* qb = p.q + z * p.q_bs + h * 64 + 2 * (lane & 3);
  const int64_t ra = mt * 16 + (lane >> 2), rb = ra + 8;
  const bf16* qa = qb + ra * p.ldq;
  const bf16* qr = qb + rb * p.ldq;
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    qf[kk][0] = ra < p.Tq ? __ldg(reinterpret_cast<const unsigned int*>(qa + kk * 16)) : 0u;
    qf[kk][1] = rb < p.Tq ? __ldg(reinterpret_cast<const unsigned int*>(qr + kk * 16)) : 0u;
    qf[kk][2] = ra < p.Tq ? __ldg(reinterpret_cast<const unsigned int*>(qa + kk * 16 + 8)) : 0u;
    qf[kk][3] = rb < p.Tq ? __ldg(reinterpret_cast<const unsigned int*>(qr + kk * 16 + 8)) : 0u;
  }
}

// One warp's query tile mt of (item z, head h) against all of K and V in shared memory (swizzled,
// head size 64), in 64-key steps; the output rows are stored.
template <bool H>
__device__ __forceinline__ void attend_rows64(const TcParams& p, const uint32_t (&qf)[4][4],
                                              const bf16* Ks, const bf16* Vs, const uint8_t* mb,
                                              int mt, int64_t z, int64_t h, int lane) {
  float o[8][4];
  float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.0f, 0.0f};
#pragma unroll
  for (int n = 0; n < 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  for (int k0 = 0; k0 < p.Tk; k0 += 64) {
    const int rem = static_cast<int>(p.Tk - k0 < 64 ? p.Tk - k0 : 64);
    attend_tile<64, 64, H>(
        qf, o, mrow, lrow, rem, mb ? mb + k0 : nullptr, p.scale_log2, lane,
        [&](int r, int c) { return swz64(Ks, k0 + r, c); },
        [&](int r, int c) { return swz64(Vs, k0 + r, c); });
  }
  finish_rows<64, H>(p, o, mrow, lrow, static_cast<int64_t>(mt) * 16, z, h, lane);
}

// What a whole-sequence block (blockIdx.x = head h, blockIdx.y = item z) works on: K and V of its
// pair in global memory (kb, vb), their swizzled copies in shared memory (Ks, Vs: tkp rows each,
// Tk rounded up to 16), the key mask row, and the thread's warp and lane.
struct WholePair {
  int tkp, warp, lane;
  int64_t h, z;
  bf16 *Ks, *Vs;
  const bf16 *kb, *vb;
  const uint8_t* mb;
  __device__ WholePair(const TcParams& p, unsigned char* smem)
      : tkp(static_cast<int>((p.Tk + 15) & ~int64_t{15})),
        warp(static_cast<int>(threadIdx.x >> 5)),
        lane(static_cast<int>(threadIdx.x & 31)),
        h(blockIdx.x),
        z(blockIdx.y),
        Ks(reinterpret_cast<bf16*>(smem)),
        Vs(reinterpret_cast<bf16*>(smem) + tkp * 64),
        kb(p.k + z * p.k_bs + h * 64),
        vb(p.v + z * p.v_bs + h * 64),
        mb(p.mask ? p.mask + z * p.mask_bs : nullptr) {}
};

template <int NW, bool H>
__global__ void __launch_bounds__(NW * 32, NW == 4 ? 4 : 2) attention_fwd_whole64_kernel(TcParams p) {
  CZ_DYN_SMEM(smraw);
  const WholePair w(p, smraw);
  load_rows64(w.Ks, w.kb, p.ldk, p.Tk, w.tkp, threadIdx.x, NW * 32);
  load_rows64(w.Vs, w.vb, p.ldv, p.Tk, w.tkp, threadIdx.x, NW * 32);
  cp_commit();
  const int mtiles = static_cast<int>((p.Tq + 15) / 16);
  uint32_t qf[4][4];
  if (w.warp < mtiles) load_q64(p, w.z, w.h, w.warp, w.lane, qf);  // in flight while K and V land
  cp_wait<0>();
  __syncthreads();
  for (int mt = w.warp; mt < mtiles; mt += NW) {
    attend_rows64<H>(p, qf, w.Ks, w.Vs, w.mb, mt, w.z, w.h, w.lane);
    if (mt + NW < mtiles) load_q64(p, w.z, w.h, mt + NW, w.lane, qf);
  }
}

// The persistent whole-sequence kernel (opt-in, CARZERO_ATTN_KERNEL=persist; Tq <= 256): as many blocks as fit on the device at once, each looping over (item, head) pairs
// it, it + gridDim.x, ... with two shared-memory stages, so the K/V of the next pair load
// (cp.async) while the current one is computed. A block has one warp per 16-row query tile
// (13 at T = 197), so every warp has the same work per pair; each warp loads the Q fragments of
// its next tile (of this pair or the next) from global memory right after storing its output,
// so they are in flight across the block barrier.
constexpr int kPersistMaxWarps = 16;

template <bool H>
__global__ void __launch_bounds__(kPersistMaxWarps * 32, 1)
    attention_fwd_persist64_kernel(TcParams p, int64_t items) {
  constexpr int D = 64;
  CZ_DYN_SMEM(smraw);
  const int tkp = static_cast<int>((p.Tk + 15) & ~int64_t{15});
  const int stage_elems = 2 * tkp * 64;  // K, then V
  bf16* stages = reinterpret_cast<bf16*>(smraw);
  const int nthreads = static_cast<int>(blockDim.x), nw = nthreads >> 5;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int mtiles = static_cast<int>((p.Tq + 15) / 16);
  auto issue = [&](int64_t item, int st) {
    const int64_t h = item % p.NH, z = item / p.NH;
    const bf16* kb = p.k + z * p.k_bs + h * D;
    const bf16* vb = p.v + z * p.v_bs + h * D;
    bf16* Ks = stages + st * stage_elems;
    load_rows64(Ks, kb, p.ldk, p.Tk, tkp, threadIdx.x, nthreads);
    load_rows64(Ks + tkp * 64, vb, p.ldv, p.Tk, tkp, threadIdx.x, nthreads);
  };
  uint32_t qf[4][4];
  auto load_q = [&](int64_t item, int mt) { load_q64(p, item / p.NH, item % p.NH, mt, lane, qf); };
  int64_t it = blockIdx.x;
  if (it < items) {
    issue(it, 0);
    if (warp < mtiles) load_q(it, warp);
  }
  cp_commit();
  for (int st = 0; it < items; it += gridDim.x, st ^= 1) {
    const int64_t nx = it + gridDim.x;
    if (nx < items) issue(nx, st ^ 1);
    cp_commit();  // (an empty group when there is no next pair)
    cp_wait<1>();  // this pair's group has landed
    __syncthreads();
    const bf16* Ks = stages + st * stage_elems;
    const bf16* Vs = Ks + tkp * 64;
    const int64_t h = it % p.NH, z = it / p.NH;
    const uint8_t* mb = p.mask ? p.mask + z * p.mask_bs : nullptr;
    for (int mt = warp; mt < mtiles; mt += nw) {
      attend_rows64<H>(p, qf, Ks, Vs, mb, mt, z, h, lane);
      // the Q fragments of this warp's next tile: of this pair, else of its next pair
      if (mt + nw < mtiles) load_q(it, mt + nw);
      else if (nx < items) load_q(nx, warp);
    }
    __syncthreads();  // every warp is done with this stage before it is refilled
  }
}

// The 32-row whole-sequence kernel (opt-in, CARZERO_ATTN_KERNEL=wide / wide8; head size 64,
// Tk <= 256, per-item K/V, aligned rows, scale > 0), written after run 6's H100 timings put the
// 16-row kernel above far from both its memory and its tensor-core limits (0.288 ms at the ViT
// shape); an estimate of its instructions (about 650 per warp and 16 x 64 tile, most of them not
// tensor-core work; no profiler was available) points at issue slots and latency. It follows
// FlashAttention-2 more closely:
// - a warp's job is 32 query rows (two 16-row mma tiles), so every K and V fragment read from
//   shared memory feeds two tiles: half the ldmatrix of the 16-row kernel per row;
// - the ldmatrix addresses are per-lane offsets computed once (the swizzle of a row depends only
//   on the row mod 8, and every key tile starts at a multiple of 64);
// - the row maximum is taken over the raw scores and the exponent is one fma into ex2
//   (2^(s * scale log2 e - max * scale log2 e)); full key tiles without a mask skip the masking;
// - K and V arrive in four cp.async groups of 64 keys, and every warp's first job waits for them
//   one at a time, so the first tiles are computed while the later ones are still loading.
// Rows past Tq are zero queries (their outputs are not stored); with an odd number of 16-row tiles
// the last job computes its first tile only (wide_key_tile's `single`); 8-key groups past a key
// tile's end get no exponentials.
// MT = tiles per job: 2 above (about 250 registers: 2 blocks of 4 warps per SM); MT = 1 (opt-in,
// CARZERO_ATTN_KERNEL=lean) keeps the other changes with 16-row jobs and 4 blocks per SM, which
// tells the shared K/V fragments apart from the other savings when the two are timed.
template <int MT>
__device__ __forceinline__ void wide_tile_init(float (&o)[MT][8][4], float (&m)[MT][2],
                                               float (&l)[MT][2]) {
#pragma unroll
  for (int t = 0; t < MT; ++t) {
    m[t][0] = m[t][1] = -INFINITY;
    l[t][0] = l[t][1] = 0.0f;
#pragma unroll
    for (int n = 0; n < 8; ++n) o[t][n][0] = o[t][n][1] = o[t][n][2] = o[t][n][3] = 0.0f;
  }
}

// Two 16-row query tiles (qf[t]) against keys 0 .. rem - 1 (rem <= 64) of one 64-key tile: Kt and
// Vt point at its first row in swizzled shared memory. MASKED: keys from rem on and keys whose
// mask byte is 0 are excluded (a full tile without a mask passes MASKED = false). m holds the
// running row maxima of the raw scores, l the per-thread partial row sums (quad-reduced at the
// end), o the unnormalised output.
template <bool MASKED, int MT, bool H>
__device__ __forceinline__ void wide_tile(const uint32_t (&qf)[MT][4][4], float (&o)[MT][8][4],
                                          float (&m)[MT][2], float (&l)[MT][2], int rem,
                                          const uint8_t* mask, float sl2, const bf16* Kt,
                                          const bf16* Vt, const int (&kofs)[2],
                                          const int (&vofs)[4], int lane) {
  float s[MT][8][4];
#pragma unroll
  for (int j = 0; j < 8; ++j) {
#pragma unroll
    for (int t = 0; t < MT; ++t) s[t][j][0] = s[t][j][1] = s[t][j][2] = s[t][j][3] = 0.0f;
    if (MASKED && j * 8 >= rem) continue;
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      uint32_t b0, b1, b2, b3;
      ldsm_x4(b0, b1, b2, b3, Kt + j * 8 * 64 + kofs[hh]);
#pragma unroll
      for (int t = 0; t < MT; ++t) {
        mma16816<H>(s[t][j], qf[t][2 * hh], b0, b1);
        mma16816<H>(s[t][j], qf[t][2 * hh + 1], b2, b3);
      }
    }
  }
  if (MASKED) {
    const int t4 = lane & 3;
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int kl = j * 8 + 2 * t4 + e;
        if (!(kl < rem && (!mask || mask[kl] != 0))) {
#pragma unroll
          for (int t = 0; t < MT; ++t) s[t][j][e] = s[t][j][e + 2] = -INFINITY;
        }
      }
  }
  float base[MT][2];
#pragma unroll
  for (int t = 0; t < MT; ++t) {
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      mx0 = fmaxf(mx0, fmaxf(s[t][j][0], s[t][j][1]));
      mx1 = fmaxf(mx1, fmaxf(s[t][j][2], s[t][j][3]));
    }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    const float mn[2] = {fmaxf(m[t][0], mx0), fmaxf(m[t][1], mx1)};
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      // A row with no attended key so far keeps m = -inf: base 0 then (every p is 0).
      base[t][r] = mn[r] == -INFINITY ? 0.0f : mn[r] * sl2;
      const float c = fast_exp2(fmaf(m[t][r], sl2, -base[t][r]));  // 0 when m was -inf
      m[t][r] = mn[r];
      l[t][r] *= c;
#pragma unroll
      for (int n = 0; n < 8; ++n) o[t][n][2 * r] *= c, o[t][n][2 * r + 1] *= c;
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      // 8-key groups wholly past rem: p = 0 without the exponentials (the SFU's ex2 throughput is
      // the scarce one; at T = 197 the last tile has 5 keys of 64)
      if (MASKED && j * 8 >= rem) {
        s[t][j][0] = s[t][j][1] = s[t][j][2] = s[t][j][3] = 0.0f;
        continue;
      }
      s[t][j][0] = fast_exp2(fmaf(s[t][j][0], sl2, -base[t][0]));
      s[t][j][1] = fast_exp2(fmaf(s[t][j][1], sl2, -base[t][0]));
      s[t][j][2] = fast_exp2(fmaf(s[t][j][2], sl2, -base[t][1]));
      s[t][j][3] = fast_exp2(fmaf(s[t][j][3], sl2, -base[t][1]));
      l[t][0] += s[t][j][0] + s[t][j][1];
      l[t][1] += s[t][j][2] + s[t][j][3];
    }
  }
  // O += P V, P rounded to bf16 straight from the S accumulators; each V fragment feeds both tiles
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    if (MASKED && kk * 16 >= rem) break;
    uint32_t a[MT][4];
#pragma unroll
    for (int t = 0; t < MT; ++t) {
      a[t][0] = pack2<H>(s[t][2 * kk][0], s[t][2 * kk][1]);
      a[t][1] = pack2<H>(s[t][2 * kk][2], s[t][2 * kk][3]);
      a[t][2] = pack2<H>(s[t][2 * kk + 1][0], s[t][2 * kk + 1][1]);
      a[t][3] = pack2<H>(s[t][2 * kk + 1][2], s[t][2 * kk + 1][3]);
    }
#pragma unroll
    for (int np = 0; np < 4; ++np) {
      uint32_t b0, b1, b2, b3;
      ldsm_x4_t(b0, b1, b2, b3, Vt + kk * 16 * 64 + vofs[np]);
#pragma unroll
      for (int t = 0; t < MT; ++t) {
        mma16816<H>(o[t][2 * np], a[t], b0, b1);
        mma16816<H>(o[t][2 * np + 1], a[t], b2, b3);
      }
    }
  }
}

// Waits until cp.async groups 0 .. kt of this thread have landed (4 groups committed).
__device__ __forceinline__ void wide_wait_stage(int kt) {
  switch (kt) {
    case 0: cp_wait<3>(); break;
    case 1: cp_wait<2>(); break;
    case 2: cp_wait<1>(); break;
    default: cp_wait<0>(); break;
  }
}

// The per-lane ldmatrix offsets of wide_tile (a key tile starts at a multiple of 64 rows).
__device__ __forceinline__ void wide_offsets(int lane, int (&kofs)[2], int (&vofs)[4]) {
  const int l7 = lane & 7, i4 = lane >> 3;
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) kofs[hh] = l7 * 64 + (((4 * hh + i4) ^ l7) << 3);
#pragma unroll
  for (int np = 0; np < 4; ++np)
    vofs[np] = ((i4 & 1) * 8 + l7) * 64 + (((2 * np + (i4 >> 1)) ^ l7) << 3);
}

// Key tile kt (64 keys from Ks / Vs, swizzled) for the job's MT query tiles: the unmasked form
// when the tile is full and there is no key mask.
template <int MT, bool H>
__device__ __forceinline__ void wide_key_tile(const TcParams& p, const uint32_t (&qf)[MT][4][4],
                                              float (&o)[MT][8][4], float (&m)[MT][2],
                                              float (&l)[MT][2], int kt, const bf16* Ks,
                                              const bf16* Vs, const uint8_t* mb,
                                              const int (&kofs)[2], const int (&vofs)[4], int lane,
                                              bool single = false) {
  const int rem = static_cast<int>(p.Tk - kt * 64 < 64 ? p.Tk - kt * 64 : 64);
  const bf16* Kt = Ks + kt * 64 * 64;
  const bf16* Vt = Vs + kt * 64 * 64;
  const uint8_t* mk = mb ? mb + kt * 64 : nullptr;
  if constexpr (MT == 2) {
    // A job whose second tile lies wholly past Tq (the last job when the 16-row tiles are odd in
    // number: 1 of 7 jobs at T = 197) computes its first tile only.
    if (single) {
      const auto& qf1 = *reinterpret_cast<const uint32_t(*)[1][4][4]>(&qf[0]);
      auto& o1 = *reinterpret_cast<float(*)[1][8][4]>(&o[0]);
      auto& m1 = *reinterpret_cast<float(*)[1][2]>(&m[0]);
      auto& l1 = *reinterpret_cast<float(*)[1][2]>(&l[0]);
      if (rem == 64 && !mb)
        wide_tile<false, 1, H>(qf1, o1, m1, l1, rem, nullptr, p.scale_log2, Kt, Vt, kofs, vofs, lane);
      else
        wide_tile<true, 1, H>(qf1, o1, m1, l1, rem, mk, p.scale_log2, Kt, Vt, kofs, vofs, lane);
      return;
    }
  }
  if (rem == 64 && !mb)
    wide_tile<false, MT, H>(qf, o, m, l, rem, nullptr, p.scale_log2, Kt, Vt, kofs, vofs, lane);
  else
    wide_tile<true, MT, H>(qf, o, m, l, rem, mk, p.scale_log2, Kt, Vt, kofs, vofs, lane);
}

// Stores the job's MT query tiles (first tile index t0) of (item z, head h).
template <int MT, bool H>
__device__ __forceinline__ void wide_store(const TcParams& p, const float (&o)[MT][8][4],
                                           const float (&m)[MT][2], const float (&l)[MT][2],
                                           int t0, int64_t z, int64_t h, int lane) {
#pragma unroll
  for (int t = 0; t < MT; ++t) {
    // finish_rows takes the maxima in the scaled log2 domain (for lse)
    const float ms[2] = {m[t][0] * p.scale_log2, m[t][1] * p.scale_log2};
    finish_rows<64, H>(p, o[t], ms, l[t], static_cast<int64_t>(t0 + t) * 16, z, h, lane);
  }
}

template <int NW, int MT, bool H>
__global__ void __launch_bounds__(NW * 32, MT == 1 ? 4 : NW <= 4 ? 2 : 1)
    attention_fwd_wide64_kernel(TcParams p) {
  CZ_DYN_SMEM(smraw);
  const WholePair w(p, smraw);
  const int tkp = w.tkp, warp = w.warp, lane = w.lane;
  const int64_t h = w.h, z = w.z;
  bf16 *Ks = w.Ks, *Vs = w.Vs;
  const bf16 *kb = w.kb, *vb = w.vb;
  const uint8_t* mb = w.mb;
  const int ntiles = static_cast<int>((p.Tk + 63) / 64);  // 1 .. 4
  // group kt: key rows [64 kt, 64 kt + 64) of K and V (zero from Tk to tkp); empty groups past
  // the last tile keep the count at four.
#pragma unroll
  for (int kt = 0; kt < 4; ++kt) {
    if (kt < ntiles) {
      const int r0 = kt * 64, rows = min(64, tkp - r0);
      load_rows64(Ks + r0 * 64, kb + r0 * p.ldk, p.ldk, p.Tk - r0, rows, threadIdx.x, NW * 32);
      load_rows64(Vs + r0 * 64, vb + r0 * p.ldv, p.ldv, p.Tk - r0, rows, threadIdx.x, NW * 32);
    }
    cp_commit();
  }
  int kofs[2], vofs[4];
  wide_offsets(lane, kofs, vofs);
  const int mtiles = static_cast<int>((p.Tq + 15) / 16), njobs = (mtiles + MT - 1) / MT;
  uint32_t qf[MT][4][4];
  if (warp < njobs)
#pragma unroll
    for (int t = 0; t < MT; ++t) load_q64(p, z, h, MT * warp + t, lane, qf[t]);
  for (int it = 0;; ++it) {
    const int job = warp + it * NW;
    const bool active = job < njobs;
    if (it > 0) {
      if (!active) break;
#pragma unroll
      for (int t = 0; t < MT; ++t) load_q64(p, z, h, MT * job + t, lane, qf[t]);
    }
    float o[MT][8][4], m[MT][2], l[MT][2];
    wide_tile_init(o, m, l);
    for (int kt = 0; kt < ntiles; ++kt) {
      if (it == 0) {  // every warp of the block runs this first pass: the barriers are uniform
        wide_wait_stage(kt);
        __syncthreads();
      }
      if (active)
        wide_key_tile<MT, H>(p, qf, o, m, l, kt, Ks, Vs, mb, kofs, vofs, lane, MT * job + 1 >= mtiles);
    }
    if (!active) break;
    wide_store<MT, H>(p, o, m, l, MT * job, z, h, lane);
  }
}

// The persistent, warp-specialised form of the 32-row kernel (opt-in, CARZERO_ATTN_KERNEL=pwide;
// head size 64, Tq and Tk <= 256): one block of 8 warps per SM loops over (item, head) pairs
// it, it + gridDim.x, ... Warp 7 only loads: while warps 0-6 compute pair it from one shared-
// memory stage (Q, K and V, swizzled; Q rows up to a multiple of 32, zero past Tq), it fills the
// other stage with pair it + gridDim.x by cp.async and waits for it; one barrier per pair hands
// the stages over. So the loads of the next pair run under the tensor-core work of this one (the
// non-persistent kernels overlap them only across blocks), all global reads are 16-byte cp.async,
// and each compute warp keeps about 250 registers (8 x 32 x 250 fills the register file). The
// compute warps take the 32-row jobs of a pair in turn (7 jobs at T = 197: one each).
constexpr int kPwideWarps = 8;

__host__ __device__ inline size_t pwide_stage_elems(int64_t Tq, int64_t Tk) {
  return static_cast<size_t>(((Tq + 31) & ~int64_t{31}) + 2 * ((Tk + 15) & ~int64_t{15})) * 64;
}

template <bool H>
__global__ void __launch_bounds__(kPwideWarps * 32, 1) attention_fwd_pwide64_kernel(TcParams p, int64_t items) {
  constexpr int NC = kPwideWarps - 1;  // compute warps; warp NC loads
  CZ_DYN_SMEM(smraw);
  const int tqp = static_cast<int>((p.Tq + 31) & ~int64_t{31});
  const int tkp = static_cast<int>((p.Tk + 15) & ~int64_t{15});
  const size_t stage_elems = pwide_stage_elems(p.Tq, p.Tk);
  bf16* stages = reinterpret_cast<bf16*>(smraw);
  const int warp = static_cast<int>(threadIdx.x >> 5), lane = static_cast<int>(threadIdx.x & 31);
  const int ntiles = static_cast<int>((p.Tk + 63) / 64);
  const int njobs = static_cast<int>((p.Tq + 31) / 32);
  // The loader: Q, K and V of pair `item` into stage st (then waits for them).
  auto load_pair = [&](int64_t item, int st) {
    const int64_t h = item % p.NH, z = item / p.NH;
    bf16* Qs = stages + st * stage_elems;
    bf16* Ks = Qs + tqp * 64;
    bf16* Vs = Ks + tkp * 64;
    load_rows64(Qs, p.q + z * p.q_bs + h * 64, p.ldq, p.Tq, tqp, lane, 32);
    load_rows64(Ks, p.k + z * p.k_bs + h * 64, p.ldk, p.Tk, tkp, lane, 32);
    load_rows64(Vs, p.v + z * p.v_bs + h * 64, p.ldv, p.Tk, tkp, lane, 32);
    cp_commit();
    cp_wait<0>();
  };
  int kofs[2], vofs[4];
  wide_offsets(lane, kofs, vofs);
  int64_t it = blockIdx.x;
  if (warp == NC && it < items) load_pair(it, 0);
  __syncthreads();
  for (int st = 0; it < items; it += gridDim.x, st ^= 1) {
    const int64_t nx = it + gridDim.x;
    if (warp == NC) {
      if (nx < items) load_pair(nx, st ^ 1);  // under the compute warps' work on pair it
    } else {
      const int64_t h = it % p.NH, z = it / p.NH;
      const bf16* Qs = stages + st * stage_elems;
      const bf16* Ks = Qs + tqp * 64;
      const bf16* Vs = Ks + tkp * 64;
      const uint8_t* mb = p.mask ? p.mask + z * p.mask_bs : nullptr;
      for (int job = warp; job < njobs; job += NC) {
        uint32_t qf[2][4][4];
        const int i4 = lane >> 3;
#pragma unroll
        for (int t = 0; t < 2; ++t)
#pragma unroll
          for (int kk = 0; kk < 4; ++kk)
            ldsm_x4(qf[t][kk][0], qf[t][kk][1], qf[t][kk][2], qf[t][kk][3],
                    swz64(Qs, job * 32 + t * 16 + (i4 & 1) * 8 + (lane & 7), 2 * kk + (i4 >> 1)));
        float o[2][8][4], m[2][2], l[2][2];
        wide_tile_init(o, m, l);
        const bool single = 2 * job + 1 >= (p.Tq + 15) / 16;
        for (int kt = 0; kt < ntiles; ++kt)
          wide_key_tile<2, H>(p, qf, o, m, l, kt, Ks, Vs, mb, kofs, vofs, lane, single);
        wide_store<2, H>(p, o, m, l, 2 * job, z, h, lane);
      }
    }
    __syncthreads();  // stage st ^ 1 holds pair nx; stage st is free for the loader
  }
}

// ---- host-side planning (shared by attention_bf16.cu and the warp emulator test) ----------------

// The kernel parameters of bf16 attention arguments; *slices = grid.z of the tiled kernel (B, or 1
// when the queries are flattened against a memory shared across the batch).
inline TcParams make_tc_params(const AttnArgs& a, int64_t* slices) {
  TcParams p;
  p.q = static_cast<const bf16*>(a.q);
  p.k = static_cast<const bf16*>(a.k);
  p.v = static_cast<const bf16*>(a.v);
  p.out = static_cast<bf16*>(a.out);
  p.lse = a.lse;
  p.mask = a.key_mask;
  p.ldq = a.ldq, p.ldk = a.ldk, p.ldv = a.ldv, p.ldo = a.ldo;
  p.q_bs = a.q_bs, p.k_bs = a.k_bs, p.v_bs = a.v_bs, p.o_bs = a.o_bs, p.mask_bs = a.mask_bs;
  p.Tq = a.Tq, p.Tk = a.Tk, p.NH = a.NH;
  const bool shared = a.B > 1 && a.k_bs == 0 && a.v_bs == 0 && (!a.key_mask || a.mask_bs == 0);
  p.flat = shared ? 1 : 0;
  p.rows = shared ? a.B * a.Tq : a.Tq;
  *slices = shared ? 1 : a.B;
  p.scale_log2 = a.scale * 1.4426950408889634f;
  auto al = [](const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15) == 0; };
  p.aligned = al(a.q) && al(a.k) && al(a.v) && a.ldq % 8 == 0 && a.ldk % 8 == 0 &&
              a.ldv % 8 == 0 && (a.B <= 1 || (a.q_bs % 8 == 0 && a.k_bs % 8 == 0 && a.v_bs % 8 == 0));
  p.out_aligned = (reinterpret_cast<uintptr_t>(a.out) & 3) == 0 && a.ldo % 2 == 0 &&
                  (a.B <= 1 || a.o_bs % 2 == 0);
  return p;
}

// Which forward kernel: CARZERO_ATTN_KERNEL = whole (one block of 4 warps per pair: the default
// where it applies), persist (the persistent variant, Tq <= 256) or tiled (always the tiled
// kernel); read per call so the benchmark and the parity run can switch it. On an H100 at the ViT
// shape (B = 256): whole 0.288 ms, persist 0.329 ms, tiled 0.360 ms (bench/RESULTS.md).
enum class FwdKernel { Tiled, Whole4, Persist, Wide4, Wide8, Lean4, Pwide };
inline FwdKernel pick_kernel(const TcParams& p, int64_t HS, int64_t B, int64_t NH) {
  const bool whole_ok = HS == 64 && !p.flat && p.aligned && p.Tk <= kWholeMaxTk && B <= 65535 &&
                        NH <= INT32_MAX;
  if (!whole_ok) return FwdKernel::Tiled;
  const char* e = std::getenv("CARZERO_ATTN_KERNEL");
  const std::string k = e ? e : "";
  if (k == "tiled") return FwdKernel::Tiled;
  if (k == "persist" && p.Tq <= 16 * kPersistMaxWarps) return FwdKernel::Persist;
  // the 32-row kernel takes the row maximum of the raw scores: it needs scale > 0
  if (k == "wide" && p.scale_log2 > 0.0f) return FwdKernel::Wide4;
  if (k == "wide8" && p.scale_log2 > 0.0f) return FwdKernel::Wide8;
  if (k == "lean" && p.scale_log2 > 0.0f) return FwdKernel::Lean4;
  if (k == "pwide" && p.scale_log2 > 0.0f && p.Tq <= kWholeMaxTk) return FwdKernel::Pwide;
  return FwdKernel::Whole4;
}

inline bool tc_head_size(int64_t HS) { return HS == 32 || HS == 64 || HS == 128 || HS == 192; }

}  // namespace carzero::cuda::CZ_ATTN_BF16_NS
