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
          [&](int r, int c) { return ks + r * SD + c * 8; }, [&](int r, int c) { return vs + r * SD + c * 8; });
    }
    __syncthreads();  // this stage is refilled by the next iteration's prefetch
  }
  if (warp_active) finish_rows<D, H>(p, o, mrow, lrow, wr0, z, h, lane);
}

}  // namespace carzero::cuda::CZ_ATTN_BF16_NS
