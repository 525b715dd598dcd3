// attention_bf16.cu: attention with bf16 storage (AttnArgs::dtype == BF16).
//
// Forward, head sizes 32, 64, 128, 192, on the tensor cores in the FlashAttention-2 layout
// (Dao, 2023): each warp owns 16 query rows of one (batch item, head), keeps its Q fragments, the
// output accumulator (16 x HS, fp32) and the running row max and sum in registers, and walks the
// keys in tiles of 64 (32 at HS 192) held in shared memory. Per tile (attend_tile): S = Q K^T with
// mma.sync.m16n8k16 (bf16 inputs, fp32 accumulation), masking, the online-softmax update in the
// exp2 domain (scale * log2 e folded into one multiply), then O += P V with P rounded to bf16 and
// fed straight from the S accumulators (the m16n8 accumulator layout is the m16n8k16 A layout
// for consecutive column pairs); fragments are loaded with ldmatrix (.trans for V). Two kernels
// share that step:
// - whole-sequence (HS 64, Tk <= 256, per-item K/V, aligned rows: the ViT and BERT shapes): K and
//   V of an (item, head) pair are loaded into shared memory once and the warps take its query
//   tiles in turn, one block of 4 warps per pair. A persistent variant (a block per SM slot
//   looping over pairs, double-buffering the next pair's K/V, one warp per query tile) is
//   opt-in: it measured slower on an H100;
// - tiled (everything else): a block of 4 warps owns 64 query rows and streams K/V tiles through
//   double-buffered cp.async stages.
// When K, V and the key mask are shared across the batch (k_bs = v_bs = mask_bs = 0, the
// alignment head's many queries against one memory), the (item, query) pairs are flattened into
// one long query axis, so a block of 64 rows is full even when Tq = 1.
//
// Backward, head size 64 with Tq, Tk <= 256 and per-item K/V: a tensor-core kernel (below) that
// recomputes P from lse. Everything else with bf16 storage (other head sizes, probs requested,
// that backward's other cases) widens: q/k/v (and out for the backward) are converted to fp32
// scratch over their strided spans, the fp32 kernels of attention.cu run, and the output rows are
// rounded back to bf16. Correct, but not tensor-core speed. Gradients are fp32 (AttnGrads).
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <string>

#include "cuda/cuda_common.h"
#include "cuda/cuda_device.cuh"
#include "cuda/cuda_ops.h"
#include "ops_check.h"

namespace carzero::cuda {

namespace {

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
// d (16x8, fp32) += a (16x16, bf16, row) * b (16x8, bf16, col)
__device__ __forceinline__ void mma16816(float* d, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// 2^x on the SFU (ex2.approx, relative error ~2^-22; 2^-inf = 0): the probabilities are rounded
// to bf16 right after, and exp is the throughput limit of attention at head size 64.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (low half) = lo
  return *reinterpret_cast<uint32_t*>(&v);
}

// Opts a kernel into `smem` bytes of dynamic shared memory and asks for the largest shared-memory
// carveout of the SM's L1 (the default carveout may leave room for fewer blocks than the
// registers and shared memory would allow).
template <class Kernel>
void smem_opt_in(Kernel kernel, size_t smem) {
  CZ_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  CZ_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                               static_cast<int>(cudaSharedmemCarveoutMaxShared)));
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
template <int D, int BK, class KAt, class VAt>
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
      mma16816(s[j], qf[kk], b0, b1);
      mma16816(s[j], qf[kk + 1], b2, b3);
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
    a[0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
    a[1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
    a[2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
    a[3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
    for (int n = 0; n < ND; n += 2) {
      uint32_t b0, b1, b2, b3;
      const int i = lane >> 3;
      ldsm_x4_t(b0, b1, b2, b3, vat(kk * 16 + (i & 1) * 8 + (lane & 7), n + (i >> 1)));
      mma16816(o[n], a, b0, b1);
      mma16816(o[n + 1], a, b2, b3);
    }
  }
}

// The end of a warp's 16 rows (first row wr0 of slice z): row sums over the quad, normalise,
// store bf16 (and lse when asked).
template <int D>
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
        *reinterpret_cast<__nv_bfloat162*>(orow + n * 8 + 2 * t4) = __floats2bfloat162_rn(x0, x1);
      } else {
        orow[n * 8 + 2 * t4] = __float2bfloat16(x0);
        orow[n * 8 + 2 * t4 + 1] = __float2bfloat16(x1);
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

template <int D>
__global__ void __launch_bounds__(kThreadsTC) attention_fwd_tc_kernel(TcParams p) {
  using Cfg = TcCfg<D>;
  constexpr int BQ = Cfg::BQ, BK = Cfg::BK, SD = Cfg::SD;
  constexpr int KD = D / 16;  // k-steps over the head dim (S = Q K^T)
  constexpr int ND = D / 8;   // 8-dim column tiles of O
  constexpr int CH = D / 8;   // 16-byte chunks per row
  extern __shared__ __align__(16) unsigned char smraw[];
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
      attend_tile<D, BK>(
          qf, o, mrow, lrow, rem, mb ? mb + kbase : nullptr, p.scale_log2, lane,
          [&](int r, int c) { return ks + r * SD + c * 8; },
          [&](int r, int c) { return vs + r * SD + c * 8; });
    }
    __syncthreads();  // this stage is refilled by the next iteration's prefetch
  }
  if (warp_active) finish_rows<D>(p, o, mrow, lrow, wr0, z, h, lane);
}

template <int D>
void launch_tc(CudaState& s, const TcParams& p, int64_t slices, int64_t NH) {
  using Cfg = TcCfg<D>;
  const size_t smem = Cfg::smem_bytes();
  CZ_REQUIRE(smem <= s.max_smem_optin, CZ_ERR_UNSUPPORTED,
             "attention_forward(bf16, HS=%d): needs %zu bytes of shared memory, the device allows %zu",
             D, smem, s.max_smem_optin);
  smem_opt_in(attention_fwd_tc_kernel<D>, smem);
  const int64_t row_blocks = (p.rows + Cfg::BQ - 1) / Cfg::BQ;
  CZ_REQUIRE(row_blocks <= INT32_MAX && NH <= 65535 && slices <= 65535, CZ_ERR_UNSUPPORTED,
             "attention_forward(bf16): grid too large (%lld x %lld x %lld)",
             static_cast<long long>(row_blocks), static_cast<long long>(NH),
             static_cast<long long>(slices));
  const dim3 grid(static_cast<unsigned>(row_blocks), static_cast<unsigned>(NH),
                  static_cast<unsigned>(slices));
  attention_fwd_tc_kernel<D><<<grid, kThreadsTC, smem, s.stream>>>(p);
  check_launch("attention_fwd_tc_kernel");
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
__device__ __forceinline__ void attend_rows64(const TcParams& p, const uint32_t (&qf)[4][4],
                                              const bf16* Ks, const bf16* Vs, const uint8_t* mb,
                                              int mt, int64_t z, int64_t h, int lane) {
  float o[8][4];
  float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.0f, 0.0f};
#pragma unroll
  for (int n = 0; n < 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  for (int k0 = 0; k0 < p.Tk; k0 += 64) {
    const int rem = static_cast<int>(p.Tk - k0 < 64 ? p.Tk - k0 : 64);
    attend_tile<64, 64>(
        qf, o, mrow, lrow, rem, mb ? mb + k0 : nullptr, p.scale_log2, lane,
        [&](int r, int c) { return swz64(Ks, k0 + r, c); },
        [&](int r, int c) { return swz64(Vs, k0 + r, c); });
  }
  finish_rows<64>(p, o, mrow, lrow, static_cast<int64_t>(mt) * 16, z, h, lane);
}

template <int NW>
__global__ void __launch_bounds__(NW * 32, NW == 4 ? 4 : 2) attention_fwd_whole64_kernel(TcParams p) {
  constexpr int D = 64;
  extern __shared__ __align__(16) unsigned char smraw[];
  const int tkp = static_cast<int>((p.Tk + 15) & ~int64_t{15});
  bf16* Ks = reinterpret_cast<bf16*>(smraw);  // (tkp, 64), swizzled
  bf16* Vs = Ks + tkp * 64;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t h = blockIdx.x, z = blockIdx.y;
  const bf16* kb = p.k + z * p.k_bs + h * D;
  const bf16* vb = p.v + z * p.v_bs + h * D;
  const uint8_t* mb = p.mask ? p.mask + z * p.mask_bs : nullptr;
  load_rows64(Ks, kb, p.ldk, p.Tk, tkp, threadIdx.x, NW * 32);
  load_rows64(Vs, vb, p.ldv, p.Tk, tkp, threadIdx.x, NW * 32);
  cp_commit();
  const int mtiles = static_cast<int>((p.Tq + 15) / 16);
  uint32_t qf[4][4];
  if (warp < mtiles) load_q64(p, z, h, warp, lane, qf);  // in flight while K and V land
  cp_wait<0>();
  __syncthreads();
  for (int mt = warp; mt < mtiles; mt += NW) {
    attend_rows64(p, qf, Ks, Vs, mb, mt, z, h, lane);
    if (mt + NW < mtiles) load_q64(p, z, h, mt + NW, lane, qf);
  }
}

template <int NW>
void launch_whole64(CudaState& s, const TcParams& p, int64_t B, int64_t NH) {
  const size_t smem = static_cast<size_t>((p.Tk + 15) & ~int64_t{15}) * 64 * sizeof(bf16) * 2;
  CZ_REQUIRE(smem <= s.max_smem_optin, CZ_ERR_UNSUPPORTED,
             "attention_forward(bf16, whole K/V): needs %zu bytes of shared memory, the device allows %zu",
             smem, s.max_smem_optin);
  smem_opt_in(attention_fwd_whole64_kernel<NW>, smem);
  const dim3 grid(static_cast<unsigned>(NH), static_cast<unsigned>(B));
  attention_fwd_whole64_kernel<NW><<<grid, NW * 32, smem, s.stream>>>(p);
  check_launch("attention_fwd_whole64_kernel");
}

// The persistent whole-sequence kernel (opt-in, CARZERO_ATTN_KERNEL=persist; Tq <= 256): as many blocks as fit on the device at once, each looping over (item, head) pairs
// it, it + gridDim.x, ... with two shared-memory stages, so the K/V of the next pair load
// (cp.async) while the current one is computed. A block has one warp per 16-row query tile
// (13 at T = 197), so every warp has the same work per pair; each warp loads the Q fragments of
// its next tile (of this pair or the next) from global memory right after storing its output,
// so they are in flight across the block barrier.
constexpr int kPersistMaxWarps = 16;

__global__ void __launch_bounds__(kPersistMaxWarps * 32, 1)
    attention_fwd_persist64_kernel(TcParams p, int64_t items) {
  constexpr int D = 64;
  extern __shared__ __align__(16) unsigned char smraw[];
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
      attend_rows64(p, qf, Ks, Vs, mb, mt, z, h, lane);
      // the Q fragments of this warp's next tile: of this pair, else of its next pair
      if (mt + nw < mtiles) load_q(it, mt + nw);
      else if (nx < items) load_q(nx, warp);
    }
    __syncthreads();  // every warp is done with this stage before it is refilled
  }
}

void launch_persist64(CudaState& s, const TcParams& p, int64_t B, int64_t NH) {
  const int64_t tkp = (p.Tk + 15) & ~int64_t{15};
  const size_t smem = static_cast<size_t>(tkp) * 64 * sizeof(bf16) * 4;  // 2 stages of K and V
  CZ_REQUIRE(smem <= s.max_smem_optin, CZ_ERR_UNSUPPORTED,
             "attention_forward(bf16, persistent): needs %zu bytes of shared memory, the device allows %zu",
             smem, s.max_smem_optin);
  smem_opt_in(attention_fwd_persist64_kernel, smem);
  const int threads = static_cast<int>((p.Tq + 15) / 16) * 32;
  int per_sm = 0;
  CZ_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, attention_fwd_persist64_kernel,
                                                        threads, smem));
  const int64_t items = B * NH;
  const int64_t blocks = std::min<int64_t>(items, static_cast<int64_t>(std::max(per_sm, 1)) *
                                                      std::max(s.sm_count, 1));
  attention_fwd_persist64_kernel<<<static_cast<unsigned>(blocks), threads, smem, s.stream>>>(p, items);
  check_launch("attention_fwd_persist64_kernel");
}

// The 32-row whole-sequence kernel (opt-in, CARZERO_ATTN_KERNEL=wide / wide8; head size 64,
// Tk <= 256, per-item K/V, aligned rows, scale > 0), written after the H100 counts of run 6
// showed the 16-row kernel above to be issue-bound (about 650 instructions per warp and 16 x 64
// tile, most of them not tensor-core work). It follows FlashAttention-2 more closely:
// - a warp's job is 32 query rows (two 16-row mma tiles), so every K and V fragment read from
//   shared memory feeds two tiles: half the ldmatrix of the 16-row kernel per row;
// - the ldmatrix addresses are per-lane offsets computed once (the swizzle of a row depends only
//   on the row mod 8, and every key tile starts at a multiple of 64);
// - the row maximum is taken over the raw scores and the exponent is one fma into ex2
//   (2^(s * scale log2 e - max * scale log2 e)); full key tiles without a mask skip the masking;
// - K and V arrive in four cp.async groups of 64 keys, and every warp's first job waits for them
//   one at a time, so the first tiles are computed while the later ones are still loading.
// Rows past Tq are zero queries (their outputs are not stored); with an odd number of 16-row tiles
// the last job computes one empty tile (at T = 197 on the warp that has one job fewer).
__device__ __forceinline__ void wide_tile_init(float (&o)[2][8][4], float (&m)[2][2],
                                               float (&l)[2][2]) {
#pragma unroll
  for (int t = 0; t < 2; ++t) {
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
template <bool MASKED>
__device__ __forceinline__ void wide_tile(const uint32_t (&qf)[2][4][4], float (&o)[2][8][4],
                                          float (&m)[2][2], float (&l)[2][2], int rem,
                                          const uint8_t* mask, float sl2, const bf16* Kt,
                                          const bf16* Vt, const int (&kofs)[2],
                                          const int (&vofs)[4], int lane) {
  float s[2][8][4];
#pragma unroll
  for (int j = 0; j < 8; ++j) {
#pragma unroll
    for (int t = 0; t < 2; ++t) s[t][j][0] = s[t][j][1] = s[t][j][2] = s[t][j][3] = 0.0f;
    if (MASKED && j * 8 >= rem) continue;
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      uint32_t b0, b1, b2, b3;
      ldsm_x4(b0, b1, b2, b3, Kt + j * 8 * 64 + kofs[hh]);
#pragma unroll
      for (int t = 0; t < 2; ++t) {
        mma16816(s[t][j], qf[t][2 * hh], b0, b1);
        mma16816(s[t][j], qf[t][2 * hh + 1], b2, b3);
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
          for (int t = 0; t < 2; ++t) s[t][j][e] = s[t][j][e + 2] = -INFINITY;
        }
      }
  }
  float base[2][2];
#pragma unroll
  for (int t = 0; t < 2; ++t) {
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
    uint32_t a[2][4];
#pragma unroll
    for (int t = 0; t < 2; ++t) {
      a[t][0] = pack_bf16(s[t][2 * kk][0], s[t][2 * kk][1]);
      a[t][1] = pack_bf16(s[t][2 * kk][2], s[t][2 * kk][3]);
      a[t][2] = pack_bf16(s[t][2 * kk + 1][0], s[t][2 * kk + 1][1]);
      a[t][3] = pack_bf16(s[t][2 * kk + 1][2], s[t][2 * kk + 1][3]);
    }
#pragma unroll
    for (int np = 0; np < 4; ++np) {
      uint32_t b0, b1, b2, b3;
      ldsm_x4_t(b0, b1, b2, b3, Vt + kk * 16 * 64 + vofs[np]);
#pragma unroll
      for (int t = 0; t < 2; ++t) {
        mma16816(o[t][2 * np], a[t], b0, b1);
        mma16816(o[t][2 * np + 1], a[t], b2, b3);
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

template <int NW>
__global__ void __launch_bounds__(NW * 32, NW <= 4 ? 2 : 1) attention_fwd_wide64_kernel(TcParams p) {
  constexpr int D = 64;
  extern __shared__ __align__(16) unsigned char smraw[];
  const int tkp = static_cast<int>((p.Tk + 15) & ~int64_t{15});
  bf16* Ks = reinterpret_cast<bf16*>(smraw);  // (tkp, 64), swizzled
  bf16* Vs = Ks + tkp * 64;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t h = blockIdx.x, z = blockIdx.y;
  const bf16* kb = p.k + z * p.k_bs + h * D;
  const bf16* vb = p.v + z * p.v_bs + h * D;
  const uint8_t* mb = p.mask ? p.mask + z * p.mask_bs : nullptr;
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
  const int l7 = lane & 7, i4 = lane >> 3;
  int kofs[2], vofs[4];
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) kofs[hh] = l7 * 64 + (((4 * hh + i4) ^ l7) << 3);
#pragma unroll
  for (int np = 0; np < 4; ++np)
    vofs[np] = ((i4 & 1) * 8 + l7) * 64 + (((2 * np + (i4 >> 1)) ^ l7) << 3);
  const int mtiles = static_cast<int>((p.Tq + 15) / 16), njobs = (mtiles + 1) / 2;
  const float sl2 = p.scale_log2;
  uint32_t qf[2][4][4];
  if (warp < njobs) load_q64(p, z, h, 2 * warp, lane, qf[0]), load_q64(p, z, h, 2 * warp + 1, lane, qf[1]);
  for (int it = 0;; ++it) {
    const int job = warp + it * NW;
    const bool active = job < njobs;
    if (it > 0) {
      if (!active) break;
      load_q64(p, z, h, 2 * job, lane, qf[0]), load_q64(p, z, h, 2 * job + 1, lane, qf[1]);
    }
    float o[2][8][4], m[2][2], l[2][2];
    wide_tile_init(o, m, l);
    for (int kt = 0; kt < ntiles; ++kt) {
      if (it == 0) {  // every warp of the block runs this first pass: the barriers are uniform
        wide_wait_stage(kt);
        __syncthreads();
      }
      if (!active) continue;
      const int rem = static_cast<int>(p.Tk - kt * 64 < 64 ? p.Tk - kt * 64 : 64);
      const bf16* Kt = Ks + kt * 64 * 64;
      const bf16* Vt = Vs + kt * 64 * 64;
      if (rem == 64 && !mb)
        wide_tile<false>(qf, o, m, l, rem, nullptr, sl2, Kt, Vt, kofs, vofs, lane);
      else
        wide_tile<true>(qf, o, m, l, rem, mb ? mb + kt * 64 : nullptr, sl2, Kt, Vt, kofs, vofs, lane);
    }
    if (!active) break;
#pragma unroll
    for (int t = 0; t < 2; ++t) {
      // finish_rows takes the maxima in the scaled log2 domain (for lse)
      const float ms[2] = {m[t][0] * sl2, m[t][1] * sl2};
      finish_rows<64>(p, o[t], ms, l[t], static_cast<int64_t>(2 * job + t) * 16, z, h, lane);
    }
  }
}

template <int NW>
void launch_wide64(CudaState& s, const TcParams& p, int64_t B, int64_t NH) {
  const size_t smem = static_cast<size_t>((p.Tk + 15) & ~int64_t{15}) * 64 * sizeof(bf16) * 2;
  CZ_REQUIRE(smem <= s.max_smem_optin, CZ_ERR_UNSUPPORTED,
             "attention_forward(bf16, 32-row whole K/V): needs %zu bytes of shared memory, the device allows %zu",
             smem, s.max_smem_optin);
  smem_opt_in(attention_fwd_wide64_kernel<NW>, smem);
  const dim3 grid(static_cast<unsigned>(NH), static_cast<unsigned>(B));
  attention_fwd_wide64_kernel<NW><<<grid, NW * 32, smem, s.stream>>>(p);
  check_launch("attention_fwd_wide64_kernel");
}

// Which forward kernel: CARZERO_ATTN_KERNEL = whole (one block of 4 warps per pair: the default
// where it applies), persist (the persistent variant, Tq <= 256) or tiled (always the tiled
// kernel); read per call so the benchmark and the parity run can switch it. On an H100 at the ViT
// shape (B = 256): whole 0.288 ms, persist 0.329 ms, tiled 0.360 ms (bench/RESULTS.md).
enum class FwdKernel { Tiled, Whole4, Persist, Wide4, Wide8 };
FwdKernel pick_kernel(const TcParams& p, int64_t HS, int64_t B, int64_t NH) {
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
  return FwdKernel::Whole4;
}

bool tc_head_size(int64_t HS) { return HS == 32 || HS == 64 || HS == 128 || HS == 192; }

// ---- backward, head size 64, Tq and Tk <= 256 (the ViT's and BERT's self-attention) ----------
// One block per (item, head) holds Q, K, V and dO (rounded to bf16) in swizzled shared memory,
// with lse (log2 domain) and D = rowsum(dO o O) (fp32, from the fp32 dO and the bf16 O) per query.
// The probabilities are recomputed from lse (P = 2^(S log2e scale - lse log2e)), so nothing of the
// T x T matrices leaves registers. The work is split in 16-row tiles that need no reduction
// across warps:
//   query tiles: S = Q K^T, dP = dO V^T, dS = P o (dP - D), dQ += scale dS K;
//   key tiles:   S^T = K Q^T, dP^T = V dO^T, dV += P^T dO, dK += scale dS^T Q.
// S and dP are computed twice (once per side) instead of reducing dQ (or dK and dV) across
// blocks or warps with atomics; at T <= 256 the tensor cores have the time to spare. P and dS
// are rounded to bf16 for their products (FlashAttention-2 does the same); the gradients are fp32
// and accumulate (+=), each element owned by one thread.
constexpr int kBwdMaxT = 256;

struct BwdTcParams {
  TcParams f;          // q, k, v, out (bf16), strides, mask, Tq, Tk, scale_log2
  const float* lse;    // (B, NH, Tq), natural log
  const float* dout;   // fp32, laid out like out
  float *dq, *dk, *dv; // fp32, laid out like q, k, v; null = skip
  float scale;
};

template <int NW>
__global__ void __launch_bounds__(NW * 32, 2) attention_bwd_whole64_kernel(BwdTcParams p) {
  constexpr int D = 64, KD = 4, ND = 8;
  extern __shared__ __align__(16) unsigned char smraw[];
  const TcParams& f = p.f;
  const int tqp = static_cast<int>((f.Tq + 15) & ~int64_t{15});
  const int tkp = static_cast<int>((f.Tk + 15) & ~int64_t{15});
  bf16* Qs = reinterpret_cast<bf16*>(smraw);  // (tqp, 64) each, swizzled
  bf16* dOs = Qs + tqp * 64;
  bf16* Ks = dOs + tqp * 64;
  bf16* Vs = Ks + tkp * 64;
  float* lse2 = reinterpret_cast<float*>(Vs + tkp * 64);  // (tqp)
  float* Dv = lse2 + tqp;                                  // (tqp)
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
  const int64_t h = blockIdx.x, z = blockIdx.y;
  const bf16* qb = f.q + z * f.q_bs + h * D;
  const bf16* kb = f.k + z * f.k_bs + h * D;
  const bf16* vb = f.v + z * f.v_bs + h * D;
  const bf16* ob = f.out + z * f.o_bs + h * D;
  const float* gb = p.dout + z * f.o_bs + h * D;
  const uint8_t* mb = f.mask ? f.mask + z * f.mask_bs : nullptr;
  load_rows64(Qs, qb, f.ldq, f.Tq, tqp, threadIdx.x, NW * 32);
  load_rows64(Ks, kb, f.ldk, f.Tk, tkp, threadIdx.x, NW * 32);
  load_rows64(Vs, vb, f.ldv, f.Tk, tkp, threadIdx.x, NW * 32);
  cp_commit();
  // dO rounded to bf16 (zero rows past Tq), D = rowsum(dO o O) in fp32, lse in the log2 domain
  for (int idx = threadIdx.x; idx < tqp * 8; idx += NW * 32) {
    const int rr = idx >> 3, c = idx & 7;
    uint32_t w[4] = {0u, 0u, 0u, 0u};
    if (rr < f.Tq) {
      const float* src = gb + rr * f.ldo + c * 8;
#pragma unroll
      for (int e = 0; e < 4; ++e) w[e] = pack_bf16(src[2 * e], src[2 * e + 1]);
    }
    *reinterpret_cast<uint4*>(const_cast<bf16*>(swz64(dOs, rr, c))) = make_uint4(w[0], w[1], w[2], w[3]);
  }
  for (int rr = warp; rr < tqp; rr += NW) {
    float d = 0.0f, l2 = -INFINITY;
    if (rr < f.Tq) {
      const float* grow = gb + rr * f.ldo;
      const bf16* orow = ob + rr * f.ldo;
      d = grow[lane] * __bfloat162float(orow[lane]) + grow[lane + 32] * __bfloat162float(orow[lane + 32]);
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
      const float l = p.lse[(z * f.NH + h) * f.Tq + rr];
      l2 = l * 1.4426950408889634f;
    }
    if (lane == 0) lse2[rr] = l2, Dv[rr] = d;
  }
  cp_wait<0>();
  __syncthreads();

  const int mq = tqp / 16, mk = tkp / 16;
  for (int t = warp; t < mq + mk; t += NW) {
    const bool qside = t < mq;
    if (qside ? !p.dq : (!p.dk && !p.dv)) continue;
    const int r0 = (qside ? t : t - mq) * 16;
    // the tile's own rows (A operands): Q and dO, or K and V
    const bf16* Xs = qside ? Qs : Ks;
    const bf16* Ys = qside ? dOs : Vs;
    // the other side (B operands): K and V, or Q and dO
    const bf16* Cs = qside ? Ks : Qs;
    const bf16* Es = qside ? Vs : dOs;
    const int ncols = static_cast<int>(qside ? f.Tk : f.Tq);
    uint32_t xf[KD][4], yf[KD][4];
#pragma unroll
    for (int kk = 0; kk < KD; ++kk) {
      const int i = lane >> 3, row = r0 + (i & 1) * 8 + (lane & 7), ch = kk * 2 + (i >> 1);
      ldsm_x4(xf[kk][0], xf[kk][1], xf[kk][2], xf[kk][3], swz64(Xs, row, ch));
      ldsm_x4(yf[kk][0], yf[kk][1], yf[kk][2], yf[kk][3], swz64(Ys, row, ch));
    }
    // per-row softmax statistics (query side) or key validity (key side)
    float rl2[2], rD[2];
    bool rok[2];
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      const int r = r0 + g + hf * 8;
      if (qside) {
        rl2[hf] = lse2[r], rD[hf] = Dv[r];
        rok[hf] = r < f.Tq && rl2[hf] != -INFINITY;
      } else {
        rl2[hf] = 0.0f, rD[hf] = 0.0f;
        rok[hf] = r < f.Tk && (!mb || mb[r] != 0);
      }
    }
    float acc0[ND][4], acc1[ND][4];  // query side: dQ (acc0); key side: dV (acc0), dK (acc1)
#pragma unroll
    for (int n = 0; n < ND; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc0[n][e] = acc1[n][e] = 0.0f;
    for (int c0 = 0; c0 < ncols; c0 += 16) {
      float sv[2][4], dp[2][4];
#pragma unroll
      for (int j = 0; j < 2; ++j) {
#pragma unroll
        for (int e = 0; e < 4; ++e) sv[j][e] = dp[j][e] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < KD; kk += 2) {
          uint32_t b0, b1, b2, b3;
          const int row = c0 + j * 8 + (lane & 7), ch = kk * 2 + (lane >> 3);
          ldsm_x4(b0, b1, b2, b3, swz64(Cs, row, ch));
          mma16816(sv[j], xf[kk], b0, b1);
          mma16816(sv[j], xf[kk + 1], b2, b3);
          ldsm_x4(b0, b1, b2, b3, swz64(Es, row, ch));
          mma16816(dp[j], yf[kk], b0, b1);
          mma16816(dp[j], yf[kk + 1], b2, b3);
        }
      }
      // P and dS; element (j, e): row g + 8 (e >> 1), column c0 + j * 8 + 2 t4 + (e & 1)
      uint32_t pa[4], sa[4];
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        float pv[4], ds[4];
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int hf = e >> 1, col = c0 + j * 8 + 2 * t4 + (e & 1);
          float l2, dd;
          bool ok;
          if (qside) {
            l2 = rl2[hf], dd = rD[hf];
            ok = rok[hf] && col < f.Tk && (!mb || mb[col] != 0);
          } else {
            l2 = lse2[col], dd = Dv[col];  // col < tqp: in the table (-inf past Tq)
            ok = rok[hf] && col < f.Tq && l2 != -INFINITY;
          }
          pv[e] = ok ? fast_exp2(sv[j][e] * f.scale_log2 - l2) : 0.0f;
          ds[e] = pv[e] * (dp[j][e] - dd);
        }
        pa[2 * j] = pack_bf16(pv[0], pv[1]);
        pa[2 * j + 1] = pack_bf16(pv[2], pv[3]);
        sa[2 * j] = pack_bf16(ds[0], ds[1]);
        sa[2 * j + 1] = pack_bf16(ds[2], ds[3]);
      }
      // A layout of a 16 x 16 tile from two 16 x 8 accumulators: {j0 rows g, j0 rows g+8,
      // j1 rows g, j1 rows g+8}
      const uint32_t pA[4] = {pa[0], pa[1], pa[2], pa[3]};
      const uint32_t sA[4] = {sa[0], sa[1], sa[2], sa[3]};
#pragma unroll
      for (int n = 0; n < ND; n += 2) {
        uint32_t b0, b1, b2, b3;
        const int i = lane >> 3, row = c0 + (i & 1) * 8 + (lane & 7), ch = n + (i >> 1);
        if (qside) {  // dQ += dS K
          ldsm_x4_t(b0, b1, b2, b3, swz64(Ks, row, ch));
          mma16816(acc0[n], sA, b0, b1);
          mma16816(acc0[n + 1], sA, b2, b3);
        } else {      // dV += P^T dO, dK += dS^T Q
          ldsm_x4_t(b0, b1, b2, b3, swz64(dOs, row, ch));
          mma16816(acc0[n], pA, b0, b1);
          mma16816(acc0[n + 1], pA, b2, b3);
          ldsm_x4_t(b0, b1, b2, b3, swz64(Qs, row, ch));
          mma16816(acc1[n], sA, b0, b1);
          mma16816(acc1[n + 1], sA, b2, b3);
        }
      }
    }
    // accumulate into the fp32 gradients
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      const int64_t r = r0 + g + hf * 8;
      if (r >= (qside ? f.Tq : f.Tk)) continue;
#pragma unroll
      for (int n = 0; n < ND; ++n)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int64_t col = h * D + n * 8 + 2 * t4 + e;
          if (qside) {
            p.dq[z * f.q_bs + r * f.ldq + col] += p.scale * acc0[n][hf * 2 + e];
          } else {
            if (p.dv) p.dv[z * f.v_bs + r * f.ldv + col] += acc0[n][hf * 2 + e];
            if (p.dk) p.dk[z * f.k_bs + r * f.ldk + col] += p.scale * acc1[n][hf * 2 + e];
          }
        }
    }
  }
}

size_t bwd_whole64_smem(int64_t Tq, int64_t Tk) {
  const size_t tqp = static_cast<size_t>((Tq + 15) & ~int64_t{15});
  const size_t tkp = static_cast<size_t>((Tk + 15) & ~int64_t{15});
  return (2 * tqp + 2 * tkp) * 64 * sizeof(bf16) + 2 * tqp * sizeof(float);
}

// dst rows (bf16) = src rows (fp32), (items, rows) rows of C columns, same strides; the padding
// between rows is not touched.
__global__ void narrow_rows_kernel(bf16* dst, const float* src, int64_t items, int64_t rows,
                                   int64_t bs, int64_t ld, int64_t C) {
  const int64_t n = items * rows * C;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c = i % C, rr = i / C, t = rr % rows, b = rr / rows;
    const int64_t off = b * bs + t * ld + c;
    dst[off] = __float2bfloat16(src[off]);
  }
}

// fp32 copies of q, k, v (and out when with_out) over their spans, for the widening fallbacks.
struct Widened {
  Widened(CudaState& s, Exec& ex, const AttnArgs& a, bool with_out)
      : C(a.NH * a.HS),
        nq(strided_span(a.B, a.q_bs, a.Tq, a.ldq, C)),
        nk(a.k ? strided_span(a.B, a.k_bs, a.Tk, a.ldk, C) : 0),
        nv(a.v ? strided_span(a.B, a.v_bs, a.Tk, a.ldv, C) : 0),
        no(strided_span(a.B, a.o_bs, a.Tq, a.ldo, C)),
        q(s, nq * 4), k(s, nk * 4), v(s, nv * 4), o(s, no * 4) {
    args = a;
    args.dtype = DType::F32;
    if (nq) convert(ex, q.get(), DType::F32, a.q, DType::BF16, nq);
    if (nk) convert(ex, k.get(), DType::F32, a.k, DType::BF16, nk);
    if (nv) convert(ex, v.get(), DType::F32, a.v, DType::BF16, nv);
    if (no && with_out) convert(ex, o.get(), DType::F32, a.out, DType::BF16, no);
    args.q = nq ? q.get() : nullptr;
    args.k = nk ? k.get() : nullptr;
    args.v = nv ? v.get() : nullptr;
    args.out = no ? o.get() : nullptr;
  }
  int64_t C, nq, nk, nv, no;
  Scratch q, k, v, o;
  AttnArgs args;
};

TcParams make_tc_params(const AttnArgs& a, int64_t* slices) {
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

}  // namespace

bool attention_bf16_supported(int64_t HS) { return tc_head_size(HS); }

// Which kernel attention_forward_bf16 runs for these arguments, with its occupancy (bench notes).
std::string attention_forward_bf16_plan(Exec& ex, const AttnArgs& a) {
  CudaState& s = state(ex);
  if (!(tc_head_size(a.HS) && !a.probs && a.Tk > 0)) return "widened to the fp32 kernel";
  int64_t slices = 0;
  const TcParams p = make_tc_params(a, &slices);
  int per_sm = 0;
  char buf[160];
  switch (pick_kernel(p, a.HS, slices, a.NH)) {
    case FwdKernel::Whole4: {
      const size_t smem = static_cast<size_t>((p.Tk + 15) & ~int64_t{15}) * 64 * sizeof(bf16) * 2;
      smem_opt_in(attention_fwd_whole64_kernel<4>, smem);
      CZ_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, attention_fwd_whole64_kernel<4>, 128, smem));
      std::snprintf(buf, sizeof buf, "whole-sequence kernel, 4 warps a block, %d blocks per SM", per_sm);
      return buf;
    }
    case FwdKernel::Persist: {
      const size_t smem = static_cast<size_t>((p.Tk + 15) & ~int64_t{15}) * 64 * sizeof(bf16) * 4;
      const int threads = static_cast<int>((p.Tq + 15) / 16) * 32;
      smem_opt_in(attention_fwd_persist64_kernel, smem);
      CZ_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, attention_fwd_persist64_kernel, threads, smem));
      std::snprintf(buf, sizeof buf, "persistent whole-sequence kernel, %d warps a block, %d blocks per SM", threads / 32, per_sm);
      return buf;
    }
    case FwdKernel::Wide4:
    case FwdKernel::Wide8: {
      const bool w8 = pick_kernel(p, a.HS, slices, a.NH) == FwdKernel::Wide8;
      const size_t smem = static_cast<size_t>((p.Tk + 15) & ~int64_t{15}) * 64 * sizeof(bf16) * 2;
      if (w8) {
        smem_opt_in(attention_fwd_wide64_kernel<8>, smem);
        CZ_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, attention_fwd_wide64_kernel<8>, 256, smem));
      } else {
        smem_opt_in(attention_fwd_wide64_kernel<4>, smem);
        CZ_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, attention_fwd_wide64_kernel<4>, 128, smem));
      }
      std::snprintf(buf, sizeof buf, "32-row whole-sequence kernel, %d warps a block, %d blocks per SM",
                    w8 ? 8 : 4, per_sm);
      return buf;
    }
    case FwdKernel::Tiled: break;
  }
  auto tiled = [&](auto kernel, size_t smem) {
    smem_opt_in(kernel, smem);
    CZ_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreadsTC, smem));
    std::snprintf(buf, sizeof buf, "tiled kernel, HS %lld, %d blocks of 4 warps per SM", static_cast<long long>(a.HS), per_sm);
    return std::string(buf);
  };
  switch (a.HS) {
    case 32: return tiled(attention_fwd_tc_kernel<32>, TcCfg<32>::smem_bytes());
    case 64: return tiled(attention_fwd_tc_kernel<64>, TcCfg<64>::smem_bytes());
    case 128: return tiled(attention_fwd_tc_kernel<128>, TcCfg<128>::smem_bytes());
    default: return tiled(attention_fwd_tc_kernel<192>, TcCfg<192>::smem_bytes());
  }
}

// Called by attention_forward (attention.cu) for dtype == BF16, after validation.
void attention_forward_bf16(Exec& ex, const AttnArgs& a) {
  CudaState& s = state(ex);
  if (a.B == 0 || a.NH == 0 || a.Tq == 0) return;
  const int64_t C = a.NH * a.HS;
  if (tc_head_size(a.HS) && !a.probs && a.Tk > 0) {
    int64_t slices = 0;
    const TcParams p = make_tc_params(a, &slices);
    switch (pick_kernel(p, a.HS, slices, a.NH)) {
      case FwdKernel::Whole4: launch_whole64<4>(s, p, slices, a.NH); return;
      case FwdKernel::Persist: launch_persist64(s, p, slices, a.NH); return;
      case FwdKernel::Wide4: launch_wide64<4>(s, p, slices, a.NH); return;
      case FwdKernel::Wide8: launch_wide64<8>(s, p, slices, a.NH); return;
      case FwdKernel::Tiled: break;
    }
    switch (a.HS) {
      case 32: launch_tc<32>(s, p, slices, a.NH); break;
      case 64: launch_tc<64>(s, p, slices, a.NH); break;
      case 128: launch_tc<128>(s, p, slices, a.NH); break;
      default: launch_tc<192>(s, p, slices, a.NH); break;
    }
    return;
  }
  // Widening fallback: fp32 kernel on converted inputs, output rows rounded back to bf16.
  Widened w(s, ex, a, false);
  attention_forward(ex, w.args);
  if (w.no) {
    narrow_rows_kernel<<<grid_for(a.B * a.Tq * C, 256, s), 256, 0, s.stream>>>(
        static_cast<bf16*>(a.out), w.o.as<float>(), a.B, a.Tq, a.o_bs, a.ldo, C);
    check_launch("narrow_rows_kernel");
  }
}

// Called by attention_backward (attention.cu) for dtype == BF16, after validation.
void attention_backward_bf16(Exec& ex, const AttnArgs& a, const AttnGrads& g) {
  CudaState& s = state(ex);
  auto al = [](const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15) == 0; };
  const bool per_item = a.B <= 1 || (a.k_bs != 0 && a.v_bs != 0);
  const bool tc = a.HS == 64 && per_item && a.Tq <= kBwdMaxT && a.Tk <= kBwdMaxT &&
                  al(a.q) && al(a.k) && al(a.v) && al(a.out) && a.ldq % 8 == 0 &&
                  a.ldk % 8 == 0 && a.ldv % 8 == 0 && a.ldo % 8 == 0 &&
                  (a.B <= 1 || (a.q_bs % 8 == 0 && a.k_bs % 8 == 0 && a.v_bs % 8 == 0 &&
                                a.o_bs % 8 == 0)) &&
                  a.B <= 65535 && bwd_whole64_smem(a.Tq, a.Tk) <= s.max_smem_optin &&
                  !(std::getenv("CARZERO_ATTN_KERNEL") &&
                    std::strcmp(std::getenv("CARZERO_ATTN_KERNEL"), "tiled") == 0);
  if (tc) {
    BwdTcParams p;
    TcParams& f = p.f;
    f.q = static_cast<const bf16*>(a.q);
    f.k = static_cast<const bf16*>(a.k);
    f.v = static_cast<const bf16*>(a.v);
    f.out = static_cast<bf16*>(a.out);
    f.lse = nullptr;
    f.mask = a.key_mask;
    f.ldq = a.ldq, f.ldk = a.ldk, f.ldv = a.ldv, f.ldo = a.ldo;
    f.q_bs = a.q_bs, f.k_bs = a.k_bs, f.v_bs = a.v_bs, f.o_bs = a.o_bs, f.mask_bs = a.mask_bs;
    f.Tq = a.Tq, f.Tk = a.Tk, f.NH = a.NH, f.rows = a.Tq;
    f.flat = 0, f.aligned = 1, f.out_aligned = 1;
    f.scale_log2 = a.scale * 1.4426950408889634f;
    p.lse = a.lse, p.dout = g.dout, p.dq = g.dq, p.dk = g.dk, p.dv = g.dv, p.scale = a.scale;
    const size_t smem = bwd_whole64_smem(a.Tq, a.Tk);
    smem_opt_in(attention_bwd_whole64_kernel<4>, smem);
    const dim3 grid(static_cast<unsigned>(a.NH), static_cast<unsigned>(a.B));
    attention_bwd_whole64_kernel<4><<<grid, 128, smem, s.stream>>>(p);
    check_launch("attention_bwd_whole64_kernel");
    return;
  }
  Widened w(s, ex, a, true);
  attention_backward(ex, w.args, g);
}

}  // namespace carzero::cuda
