// attention_bf16_tiled.cuh: the tiled 16-bit attention forward kernel, the one that takes every
// shape (any head size of tc_head_size, any Tk, flattened queries, unaligned rows). Launched by
// attention_bf16.cu; see attention_bf16_common.cuh for the shared parts.
#pragma once
#include "cuda/attention_bf16_common.cuh"

namespace carzero::cuda::CZ_ATTN_BF16_NS {

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
  CZ_DYN_SMEM(smraw);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t h = blockIdx.y, z = blockIdx.z;
  const int64_t wr0 = static_cast<int64_t>(blockIdx.x) * BQ + warp * 16;  // the warp's first row
  const uint8_t* mb = p.mask ? p.mask + z * p.mask_bs : nullptr;

  uint32_t qf[KD][4];
  float o[ND][4];
  float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.0f, 0.0f};  // rows g and g + 8
#pragma unroll
  for (int n = 0; n < ND; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  tiled_key_loop<D, BQ, BK, SD>(
      p, smraw, [](int, bf16*, bf16*, bf16*) {},
      [&](int it, const bf16* Qs, const bf16* ks, const bf16* vs, int64_t kbase, int rem) {
        if (it == 0) {
#pragma unroll
          for (int kk = 0; kk < KD; ++kk) {
            const int i = lane >> 3;
            const bf16* a = Qs + (warp * 16 + (i & 1) * 8 + (lane & 7)) * SD + kk * 16 + (i >> 1) * 8;
            ldsm_x4(qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], a);
          }
        }
        attend_tile<D, BK, H>(
            qf, o, mrow, lrow, rem, mb ? mb + kbase : nullptr, p.scale_log2, lane,
            [&](int r, int c) { return ks + r * SD + c * 8; }, [&](int r, int c) { return vs + r * SD + c * 8; });
      });
  if (wr0 < p.rows) finish_rows<D, H>(p, o, mrow, lrow, wr0, z, h, lane);
}

}  // namespace carzero::cuda::CZ_ATTN_BF16_NS
