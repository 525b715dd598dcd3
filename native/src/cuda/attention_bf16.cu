// attention_bf16.cu: attention with bf16 storage (AttnArgs::dtype == BF16).
//
// Forward, head sizes 32, 64, 128, 192: a tensor-core kernel in the FlashAttention-2 layout
// (Dao, 2023): a block of 4 warps owns 64 query rows of one (batch item, head), each warp 16 rows;
// the warp keeps its Q fragments, the output accumulator (16 x HS, fp32) and the running row max
// and sum in registers and walks the keys in tiles of BK. Per tile: S = Q K^T with
// mma.sync.m16n8k16 (bf16 inputs, fp32 accumulation), masking, the online-softmax update in the
// exp2 domain (scale * log2 e folded into one multiply), then O += P V with P rounded to bf16 and
// fed straight from the S accumulators (the m16n8 accumulator layout is the m16n8k16 A layout
// for consecutive column pairs). K and V tiles go through shared memory, double-buffered with
// cp.async; fragments are loaded with ldmatrix (.trans for V). Rows of shared tiles are padded by
// 16 bytes so the 8 row addresses of an ldmatrix hit distinct banks.
//
// When K, V and the key mask are shared across the batch (k_bs = v_bs = mask_bs = 0, the
// alignment head's many queries against one memory), the (item, query) pairs are flattened into
// one long query axis, so a block of 64 rows is full even when Tq = 1.
//
// Everything else with bf16 storage (other head sizes, probs requested, the backward) widens:
// q/k/v (and out for the backward) are converted to fp32 scratch over their strided spans, the
// fp32 kernels of attention.cu run, and the output rows are rounded back to bf16. Correct, but
// not tensor-core speed; the backward's gradients are fp32 (AttnGrads).
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

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

// Start of query row r (of the block's slice z) for head h.
__device__ __forceinline__ int64_t q_item(const TcParams& p, int64_t r, int64_t z) {
  return p.flat ? r / p.Tq : z;
}

// D head size, MI 16-row m-tiles per warp (a block = 4 warps = 64 * MI query rows). MI = 2 is
// FlashAttention-2's layout for head size 64 (each K/V fragment read from shared memory feeds two
// row tiles); MI = 1 halves the registers (needed at head size 128 and 192).
template <int D, int MI>
struct TcCfg {
  static constexpr int BQ = 64 * MI;             // query rows per block
  static constexpr int BK = D <= 128 ? 64 : 32;  // keys per tile
  static constexpr int SD = D + 8;               // shared row stride (elements): +16 bytes
  static constexpr size_t smem_bytes() {
    return static_cast<size_t>(BQ + 4 * BK) * SD * sizeof(bf16);  // Q + 2 stages of K and V
  }
};

template <int D, int MI>
__global__ void __launch_bounds__(kThreadsTC) attention_fwd_tc_kernel(TcParams p) {
  using Cfg = TcCfg<D, MI>;
  constexpr int BQ = Cfg::BQ, BK = Cfg::BK, SD = Cfg::SD;
  constexpr int KD = D / 16;   // k-steps over the head dim (S = Q K^T)
  constexpr int NT = BK / 8;   // 8-key column tiles of S
  constexpr int ND = D / 8;    // 8-dim column tiles of O
  constexpr int CH = D / 8;    // 16-byte chunks per row
  static_assert(KD % 2 == 0 && ND % 2 == 0 && BK % 16 == 0, "tile shapes");
  extern __shared__ __align__(16) unsigned char smraw[];
  bf16* Qs = reinterpret_cast<bf16*>(smraw);  // (BQ, SD)
  bf16* Ks = Qs + BQ * SD;                    // 2 x (BK, SD)
  bf16* Vs = Ks + 2 * BK * SD;                // 2 x (BK, SD)

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
  const int64_t h = blockIdx.y, z = blockIdx.z, r0 = static_cast<int64_t>(blockIdx.x) * BQ;
  const int64_t wr0 = r0 + warp * 16 * MI;  // the warp's first row
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

  uint32_t qf[MI][KD][4];
  float o[MI][ND][4];
  float mrow[MI][2], lrow[MI][2];  // per m-tile: rows g and g + 8
#pragma unroll
  for (int mi = 0; mi < MI; ++mi) {
    mrow[mi][0] = mrow[mi][1] = -INFINITY;
    lrow[mi][0] = lrow[mi][1] = 0.0f;
#pragma unroll
    for (int n = 0; n < ND; ++n) o[mi][n][0] = o[mi][n][1] = o[mi][n][2] = o[mi][n][3] = 0.0f;
  }

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
      for (int mi = 0; mi < MI; ++mi)
#pragma unroll
        for (int kk = 0; kk < KD; ++kk) {
          const int i = lane >> 3;
          const bf16* a = Qs + (warp * 16 * MI + mi * 16 + (i & 1) * 8 + (lane & 7)) * SD + kk * 16 + (i >> 1) * 8;
          ldsm_x4(qf[mi][kk][0], qf[mi][kk][1], qf[mi][kk][2], qf[mi][kk][3], a);
        }
    }
    const bf16* ks = Ks + (it & 1) * BK * SD;
    const bf16* vs = Vs + (it & 1) * BK * SD;
    // A warp whose rows are all past the end only helps load tiles; keys past Tk in the last
    // tile are skipped in 8-key (S) and 16-key (PV) steps (warp-uniform branches).
    const int64_t kbase = static_cast<int64_t>(it) * BK;
    const int rem = static_cast<int>(p.Tk - kbase < BK ? p.Tk - kbase : BK);
    if (!warp_active) {
      __syncthreads();
      continue;
    }
    // S = Q K^T (16 MI x BK per warp): each K fragment feeds the MI row tiles
    float s[MI][NT][4];
#pragma unroll
    for (int j = 0; j < NT; ++j) {
#pragma unroll
      for (int mi = 0; mi < MI; ++mi) s[mi][j][0] = s[mi][j][1] = s[mi][j][2] = s[mi][j][3] = 0.0f;
      if (j * 8 >= rem) continue;
#pragma unroll
      for (int kk = 0; kk < KD; kk += 2) {
        uint32_t b0, b1, b2, b3;
        ldsm_x4(b0, b1, b2, b3, ks + (j * 8 + (lane & 7)) * SD + kk * 16 + (lane >> 3) * 8);
#pragma unroll
        for (int mi = 0; mi < MI; ++mi) {
          mma16816(s[mi][j], qf[mi][kk], b0, b1);
          mma16816(s[mi][j], qf[mi][kk + 1], b2, b3);
        }
      }
    }
    // key validity of this thread's columns (same for every row)
    bool kok[NT][2];
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int kl = j * 8 + 2 * t4 + e;
        kok[j][e] = kl < rem && (!mb || mb[kbase + kl] != 0);
      }
#pragma unroll
    for (int mi = 0; mi < MI; ++mi) {
      // scale into the log2 domain, mask, row max
      float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
      for (int j = 0; j < NT; ++j) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          s[mi][j][e] = kok[j][e] ? s[mi][j][e] * p.scale_log2 : -INFINITY;
          s[mi][j][e + 2] = kok[j][e] ? s[mi][j][e + 2] * p.scale_log2 : -INFINITY;
          mx0 = fmaxf(mx0, s[mi][j][e]);
          mx1 = fmaxf(mx1, s[mi][j][e + 2]);
        }
      }
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
      const float mn0 = fmaxf(mrow[mi][0], mx0), mn1 = fmaxf(mrow[mi][1], mx1);
      // A row with no attended key so far keeps m = -inf: use 0 as the base (every p is 0 then).
      const float base0 = mn0 == -INFINITY ? 0.0f : mn0;
      const float base1 = mn1 == -INFINITY ? 0.0f : mn1;
      const float c0 = fast_exp2(mrow[mi][0] - base0), c1 = fast_exp2(mrow[mi][1] - base1);
      float ls0 = 0.0f, ls1 = 0.0f;
#pragma unroll
      for (int j = 0; j < NT; ++j) {
        s[mi][j][0] = fast_exp2(s[mi][j][0] - base0);
        s[mi][j][1] = fast_exp2(s[mi][j][1] - base0);
        s[mi][j][2] = fast_exp2(s[mi][j][2] - base1);
        s[mi][j][3] = fast_exp2(s[mi][j][3] - base1);
        ls0 += s[mi][j][0] + s[mi][j][1];
        ls1 += s[mi][j][2] + s[mi][j][3];
      }
      lrow[mi][0] = lrow[mi][0] * c0 + ls0;  // per-thread partial sums; quad-reduced at the end
      lrow[mi][1] = lrow[mi][1] * c1 + ls1;
      mrow[mi][0] = mn0, mrow[mi][1] = mn1;
#pragma unroll
      for (int n = 0; n < ND; ++n) {
        o[mi][n][0] *= c0, o[mi][n][1] *= c0;
        o[mi][n][2] *= c1, o[mi][n][3] *= c1;
      }
    }
    // O += P V: each V fragment feeds the MI row tiles
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) {
      if (kk * 16 >= rem) break;
      uint32_t a[MI][4];
#pragma unroll
      for (int mi = 0; mi < MI; ++mi) {
        a[mi][0] = pack_bf16(s[mi][2 * kk][0], s[mi][2 * kk][1]);
        a[mi][1] = pack_bf16(s[mi][2 * kk][2], s[mi][2 * kk][3]);
        a[mi][2] = pack_bf16(s[mi][2 * kk + 1][0], s[mi][2 * kk + 1][1]);
        a[mi][3] = pack_bf16(s[mi][2 * kk + 1][2], s[mi][2 * kk + 1][3]);
      }
#pragma unroll
      for (int n = 0; n < ND; n += 2) {
        uint32_t b0, b1, b2, b3;
        const int i = lane >> 3;
        ldsm_x4_t(b0, b1, b2, b3, vs + (kk * 16 + (i & 1) * 8 + (lane & 7)) * SD + (n + (i >> 1)) * 8);
#pragma unroll
        for (int mi = 0; mi < MI; ++mi) {
          mma16816(o[mi][n], a[mi], b0, b1);
          mma16816(o[mi][n + 1], a[mi], b2, b3);
        }
      }
    }
    __syncthreads();  // this stage is refilled by the next iteration's prefetch
  }

  // finish: row sums over the quad, normalise, store
#pragma unroll
  for (int mi = 0; mi < MI; ++mi) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      float l = lrow[mi][half];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const int64_t r = wr0 + mi * 16 + g + half * 8;
      if (r >= p.rows) continue;
      const float m = mrow[mi][half];
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;
      const int64_t itm = q_item(p, r, z), t = p.flat ? r - itm * p.Tq : r;
      bf16* orow = p.out + itm * p.o_bs + t * p.ldo + h * D;
#pragma unroll
      for (int n = 0; n < ND; ++n) {
        const float x0 = o[mi][n][half * 2] * inv, x1 = o[mi][n][half * 2 + 1] * inv;
        if (p.out_aligned) {
          *reinterpret_cast<__nv_bfloat162*>(orow + n * 8 + 2 * t4) = __floats2bfloat162_rn(x0, x1);
        } else {
          orow[n * 8 + 2 * t4] = __float2bfloat16(x0);
          orow[n * 8 + 2 * t4 + 1] = __float2bfloat16(x1);
        }
      }
      if (p.lse && t4 == 0)
        p.lse[(itm * p.NH + h) * p.Tq + t] = l > 0.0f ? (m + log2f(l)) * 0.69314718055994531f : -INFINITY;
    }
  }
}

template <int D, int MI>
void launch_tc(CudaState& s, const TcParams& p, int64_t slices, int64_t NH) {
  using Cfg = TcCfg<D, MI>;
  const size_t smem = Cfg::smem_bytes();
  CZ_REQUIRE(smem <= s.max_smem_optin, CZ_ERR_UNSUPPORTED,
             "attention_forward(bf16, HS=%d): needs %zu bytes of shared memory, the device allows %zu",
             D, smem, s.max_smem_optin);
  CZ_CUDA(cudaFuncSetAttribute(attention_fwd_tc_kernel<D, MI>,
                               cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  const int64_t row_blocks = (p.rows + Cfg::BQ - 1) / Cfg::BQ;
  CZ_REQUIRE(row_blocks <= INT32_MAX && NH <= 65535 && slices <= 65535, CZ_ERR_UNSUPPORTED,
             "attention_forward(bf16): grid too large (%lld x %lld x %lld)",
             static_cast<long long>(row_blocks), static_cast<long long>(NH),
             static_cast<long long>(slices));
  const dim3 grid(static_cast<unsigned>(row_blocks), static_cast<unsigned>(NH),
                  static_cast<unsigned>(slices));
  attention_fwd_tc_kernel<D, MI><<<grid, kThreadsTC, smem, s.stream>>>(p);
  check_launch("attention_fwd_tc_kernel");
}

// Rows per warp: 16 (MI = 1). The FA-2 tiling with 32 rows per warp at head size <= 64 (MI = 2,
// CARZERO_ATTN_MI=2) measured slower on an H100 (ViT B=256: 0.387 vs 0.360 ms; BERT 0.141 vs
// 0.122 ms), so it is opt-in; the benchmark times both.
int tc_mi(int64_t D) {
  const char* e = std::getenv("CARZERO_ATTN_MI");  // read per call: the benchmark switches it
  const int forced = e ? std::atoi(e) : 0;
  return (D <= 64 && forced == 2) ? 2 : 1;
}

bool tc_head_size(int64_t HS) { return HS == 32 || HS == 64 || HS == 128 || HS == 192; }


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

}  // namespace

bool attention_bf16_supported(int64_t HS) { return tc_head_size(HS); }

// Called by attention_forward (attention.cu) for dtype == BF16, after validation.
void attention_forward_bf16(Exec& ex, const AttnArgs& a) {
  CudaState& s = state(ex);
  if (a.B == 0 || a.NH == 0 || a.Tq == 0) return;
  const int64_t C = a.NH * a.HS;
  if (tc_head_size(a.HS) && !a.probs && a.Tk > 0) {
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
    const int64_t slices = shared ? 1 : a.B;
    p.scale_log2 = a.scale * 1.4426950408889634f;
    auto al = [](const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15) == 0; };
    p.aligned = al(a.q) && al(a.k) && al(a.v) && a.ldq % 8 == 0 && a.ldk % 8 == 0 &&
                a.ldv % 8 == 0 && (a.B <= 1 || (a.q_bs % 8 == 0 && a.k_bs % 8 == 0 && a.v_bs % 8 == 0));
    p.out_aligned = (reinterpret_cast<uintptr_t>(a.out) & 3) == 0 && a.ldo % 2 == 0 &&
                    (a.B <= 1 || a.o_bs % 2 == 0);
    const bool two = tc_mi(a.HS) == 2;
    switch (a.HS) {
      case 32: two ? launch_tc<32, 2>(s, p, slices, a.NH) : launch_tc<32, 1>(s, p, slices, a.NH); break;
      case 64: two ? launch_tc<64, 2>(s, p, slices, a.NH) : launch_tc<64, 1>(s, p, slices, a.NH); break;
      case 128: launch_tc<128, 1>(s, p, slices, a.NH); break;
      default: launch_tc<192, 1>(s, p, slices, a.NH); break;
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
  Widened w(s, ex, a, true);
  attention_backward(ex, w.args, g);
}

}  // namespace carzero::cuda
