// attention_bf16_whole.cuh: the whole-sequence 16-bit attention forward kernel (head size 64,
// the ViT's and BERT's self-attention shapes): the default where it applies. Launched by
// attention_bf16.cu; its K/V loaders and Q fragment reader are also used by the experimental
// variants in native/dev/cuda/attention_bf16_variants.cuh.
#pragma once
#include "cuda/attention_bf16_common.cuh"

namespace carzero::cuda::CZ_ATTN_BF16_NS {

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
__device__ __forceinline__ void load_rows64(bf16* dst, const bf16* src, int64_t ld, int64_t valid, int rows, int t,
                                            int n) {
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
__device__ __forceinline__ void attend_rows64(const TcParams& p, const uint32_t (&qf)[4][4], const bf16* Ks,
                                              const bf16* Vs, const uint8_t* mb, int mt, int64_t z, int64_t h,
                                              int lane) {
  float o[8][4];
  float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.0f, 0.0f};
#pragma unroll
  for (int n = 0; n < 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  for (int k0 = 0; k0 < p.Tk; k0 += 64) {
    const int rem = static_cast<int>(p.Tk - k0 < 64 ? p.Tk - k0 : 64);
    attend_tile<64, 64, H>(
        qf, o, mrow, lrow, rem, mb ? mb + k0 : nullptr, p.scale_log2, lane,
        [&](int r, int c) { return swz64(Ks, k0 + r, c); }, [&](int r, int c) { return swz64(Vs, k0 + r, c); });
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

}  // namespace carzero::cuda::CZ_ATTN_BF16_NS
