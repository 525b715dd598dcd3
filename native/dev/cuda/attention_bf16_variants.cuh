// attention_bf16_variants.cuh: experimental forward kernels of 16-bit attention at head size 64,
// kept out of the production tree (native/src) until a GPU timing makes one the default: the
// persistent whole-sequence kernel (persist), the 32-row kernel (wide, wide8), its 16-row form
// (lean) and its persistent form with a loader warp (pwide). bf16 only. Built into the library
// only with -DCARZERO_DEV_KERNELS=ON (the GPU kit's builds), launched by attention_bf16_variants.cu
// when CARZERO_ATTN_KERNEL names one; the warp emulator test (native/tests/warp_emu) always
// compiles them, so ctest's attention_emu_<name> cases check each on every machine.
#pragma once
#include <string>

#include "cuda/attention_bf16_whole.cuh"

namespace carzero::cuda::CZ_ATTN_BF16_NS {

// The persistent whole-sequence kernel (opt-in, CARZERO_ATTN_KERNEL=persist; Tq <= 256): as many blocks as fit on the
// device at once, each looping over (item, head) pairs it, it + gridDim.x, ... with two shared-memory stages, so the
// K/V of the next pair load (cp.async) while the current one is computed. A block has one warp per 16-row query tile
// (13 at T = 197), so every warp has the same work per pair; each warp loads the Q fragments of
// its next tile (of this pair or the next) from global memory right after storing its output,
// so they are in flight across the block barrier.
constexpr int kPersistMaxWarps = 16;

template <bool H>
__global__ void __launch_bounds__(kPersistMaxWarps * 32, 1) attention_fwd_persist64_kernel(TcParams p, int64_t items) {
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
    cp_commit();   // (an empty group when there is no next pair)
    cp_wait<1>();  // this pair's group has landed
    __syncthreads();
    const bf16* Ks = stages + st * stage_elems;
    const bf16* Vs = Ks + tkp * 64;
    const int64_t h = it % p.NH, z = it / p.NH;
    const uint8_t* mb = p.mask ? p.mask + z * p.mask_bs : nullptr;
    for (int mt = warp; mt < mtiles; mt += nw) {
      attend_rows64<H>(p, qf, Ks, Vs, mb, mt, z, h, lane);
      // the Q fragments of this warp's next tile: of this pair, else of its next pair
      if (mt + nw < mtiles)
        load_q(it, mt + nw);
      else if (nx < items)
        load_q(nx, warp);
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
__device__ __forceinline__ void wide_tile_init(float (&o)[MT][8][4], float (&m)[MT][2], float (&l)[MT][2]) {
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
__device__ __forceinline__ void wide_tile(const uint32_t (&qf)[MT][4][4], float (&o)[MT][8][4], float (&m)[MT][2],
                                          float (&l)[MT][2], int rem, const uint8_t* mask, float sl2, const bf16* Kt,
                                          const bf16* Vt, const int (&kofs)[2], const int (&vofs)[4], int lane) {
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
  for (int np = 0; np < 4; ++np) vofs[np] = ((i4 & 1) * 8 + l7) * 64 + (((2 * np + (i4 >> 1)) ^ l7) << 3);
}

// Key tile kt (64 keys from Ks / Vs, swizzled) for the job's MT query tiles: the unmasked form
// when the tile is full and there is no key mask.
template <int MT, bool H>
__device__ __forceinline__ void wide_key_tile(const TcParams& p, const uint32_t (&qf)[MT][4][4], float (&o)[MT][8][4],
                                              float (&m)[MT][2], float (&l)[MT][2], int kt, const bf16* Ks,
                                              const bf16* Vs, const uint8_t* mb, const int (&kofs)[2],
                                              const int (&vofs)[4], int lane, bool single = false) {
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
__device__ __forceinline__ void wide_store(const TcParams& p, const float (&o)[MT][8][4], const float (&m)[MT][2],
                                           const float (&l)[MT][2], int t0, int64_t z, int64_t h, int lane) {
#pragma unroll
  for (int t = 0; t < MT; ++t) {
    // finish_rows takes the maxima in the scaled log2 domain (for lse)
    const float ms[2] = {m[t][0] * p.scale_log2, m[t][1] * p.scale_log2};
    finish_rows<64, H>(p, o[t], ms, l[t], static_cast<int64_t>(t0 + t) * 16, z, h, lane);
  }
}

template <int NW, int MT, bool H>
__global__ void __launch_bounds__(NW * 32, MT == 1   ? 4
                                           : NW <= 4 ? 2
                                                     : 1) attention_fwd_wide64_kernel(TcParams p) {
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
      if (active) wide_key_tile<MT, H>(p, qf, o, m, l, kt, Ks, Vs, mb, kofs, vofs, lane, MT * job + 1 >= mtiles);
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

// Which experiment CARZERO_ATTN_KERNEL names, where its preconditions hold (TcParams already
// passed the whole-sequence kernel's: head size 64, per-item K/V, aligned rows, Tk <= 256).
// Returns false for a name that is not an experiment (*known = false) or whose preconditions fail
// (*known = true: the default kernel runs, as it always did).
enum class DevKernel { Persist, Wide4, Wide8, Lean4, Pwide };
inline bool pick_dev_kernel(const TcParams& p, const std::string& k, DevKernel* out, bool* known) {
  *known = k == "persist" || k == "wide" || k == "wide8" || k == "lean" || k == "pwide";
  if (k == "persist" && p.Tq <= 16 * kPersistMaxWarps) return *out = DevKernel::Persist, true;
  // the 32-row kernels take the row maximum of the raw scores: they need scale > 0
  if (p.scale_log2 <= 0.0f) return false;
  if (k == "wide") return *out = DevKernel::Wide4, true;
  if (k == "wide8") return *out = DevKernel::Wide8, true;
  if (k == "lean") return *out = DevKernel::Lean4, true;
  if (k == "pwide" && p.Tq <= kWholeMaxTk) return *out = DevKernel::Pwide, true;
  return false;
}

}  // namespace carzero::cuda::CZ_ATTN_BF16_NS
