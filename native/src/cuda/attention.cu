// attention.cu: fused multi-head attention, forward and backward, FlashAttention-style (online
// softmax over key tiles; the Tq x Tk score matrix never goes to global memory unless probs is
// requested for grounding maps). fp32 storage and math; the op-table path (AttnArgs in ops.h).
// bf16 storage (AttnArgs::dtype) goes to attention_bf16.cu, and so does the TF32 forward
// (AttnArgs::tf32, attention_tf32.cuh) where it applies.
// Dimension letters: B batch, NH heads, HS head size, Tq queries, Tk keys; head h uses columns
// [h*HS, (h+1)*HS) of q/k/v/out rows. Tiles: BQ = 32 queries x BK = 32 keys per step, 4 warps.
//
// Forward (Dao et al., FlashAttention-2, Alg. 1): block = (query tile, h, b); each warp owns 8
// query rows, lane j scores key j of the tile, the row max/sum come from warp shuffles, and
// lane l accumulates output dims l, l+32, ... (DCH = ceil(HS/32) registers per row).
// Backward (FA-2 Alg. 2): block = (key tile, h, b) keeps dK, dV of its 32 keys in registers,
// walks all query tiles recomputing P = exp(S - lse), and adds dQ with atomics. Every gradient
// is accumulated (+=) with atomicAdd, so a K/V memory shared across the batch (k_bs = 0) and a
// packed qkv buffer need no special casing.
#include <algorithm>
#include <cmath>

#include "cuda/cuda_common.h"
#include "cuda/cuda_device.cuh"
#include "cuda/cuda_ops.h"

namespace carzero::cuda {

namespace {

constexpr int BQ = 32, BK = 32, kWarps = 4, kThreads = kWarps * 32, kRowsPerWarp = BQ / kWarps;
static_assert(BQ == kWarps * kRowsPerWarp && BK == 32, "one lane per key of a tile");

// Odd row stride for tiles read column-wise by lanes (bank-conflict free).
__host__ __device__ inline int64_t odd_stride(int64_t hs) { return hs % 2 == 0 ? hs + 1 : hs; }

struct FwdParams {
  AttnArgs a;
  int64_t st;  // smem row stride
};

// Loads rows [r0, r0 + 32) of one head of a (B, T, ld) tensor into smem tile (32, st); rows past
// T are zero.
__device__ __forceinline__ void load_tile(float* tile, int64_t st, const float* base, int64_t ld, int64_t r0, int64_t T,
                                          int64_t HS) {
  for (int64_t idx = threadIdx.x; idx < 32 * HS; idx += blockDim.x) {
    const int64_t r = idx / HS, d = idx - r * HS;
    tile[r * st + d] = (r0 + r < T) ? base[(r0 + r) * ld + d] : 0.0f;
  }
}

template <int DCH>
__global__ void __launch_bounds__(kThreads) attention_forward_kernel(FwdParams P) {
  const AttnArgs& a = P.a;
  extern __shared__ float sm[];
  const int64_t st = P.st, HS = a.HS;
  float* Qs = sm;               // (BQ, st)
  float* Ks = Qs + BQ * st;     // (BK, st)
  float* Vs = Ks + BK * st;     // (BK, st)
  float* valid = Vs + BK * st;  // (BK) 1 = attend
  const int64_t b = blockIdx.z, h = blockIdx.y, q0 = (int64_t)blockIdx.x * BQ;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const float* qb = static_cast<const float*>(a.q) + b * a.q_bs + h * HS;
  const float* kb = a.k ? static_cast<const float*>(a.k) + b * a.k_bs + h * HS : nullptr;
  const float* vb = a.v ? static_cast<const float*>(a.v) + b * a.v_bs + h * HS : nullptr;
  load_tile(Qs, st, qb, a.ldq, q0, a.Tq, HS);

  float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][DCH];
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    m[rr] = -INFINITY, l[rr] = 0.0f;
#pragma unroll
    for (int c = 0; c < DCH; ++c) acc[rr][c] = 0.0f;
  }
  for (int64_t k0 = 0; k0 < a.Tk; k0 += BK) {
    __syncthreads();  // previous tile fully consumed (and Qs loaded, first time)
    load_tile(Ks, st, kb, a.ldk, k0, a.Tk, HS);
    load_tile(Vs, st, vb, a.ldv, k0, a.Tk, HS);
    if (threadIdx.x < BK) {
      const int64_t key = k0 + threadIdx.x;
      bool ok = key < a.Tk;
      if (ok && a.key_mask) ok = a.key_mask[b * a.mask_bs + key] != 0;
      valid[threadIdx.x] = ok ? 1.0f : 0.0f;
    }
    __syncthreads();
    const bool my_valid = valid[lane] != 0.0f;
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      const float* qr = Qs + (warp * kRowsPerWarp + rr) * st;
      const float* kr = Ks + lane * st;
      float s = 0.0f;
      for (int64_t d = 0; d < HS; ++d) s += qr[d] * kr[d];
      s = my_valid ? s * a.scale : -INFINITY;
      const float m_new = fmaxf(m[rr], warp_max(s));
      float p = 0.0f, corr = 1.0f;
      if (m_new != -INFINITY) {
        p = __expf(s - m_new);
        corr = __expf(m[rr] - m_new);  // m = -inf -> 0 (acc and l are 0 then anyway)
      }
      l[rr] = l[rr] * corr + warp_sum(p);
      m[rr] = m_new;
#pragma unroll
      for (int c = 0; c < DCH; ++c) acc[rr][c] *= corr;
      for (int j = 0; j < BK; ++j) {
        const float pj = __shfl_sync(kFullMask, p, j);
        const float* vr = Vs + j * st;
#pragma unroll
        for (int c = 0; c < DCH; ++c) {
          const int d = lane + 32 * c;
          if (d < HS) acc[rr][c] += pj * vr[d];
        }
      }
    }
  }
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int64_t i = q0 + warp * kRowsPerWarp + rr;
    if (i >= a.Tq) continue;
    const float inv = l[rr] > 0.0f ? 1.0f / l[rr] : 0.0f;
    float* orow = static_cast<float*>(a.out) + b * a.o_bs + i * a.ldo + h * HS;
#pragma unroll
    for (int c = 0; c < DCH; ++c) {
      const int d = lane + 32 * c;
      if (d < HS) orow[d] = acc[rr][c] * inv;
    }
    if (a.lse && lane == 0) a.lse[(b * a.NH + h) * a.Tq + i] = l[rr] > 0.0f ? m[rr] + logf(l[rr]) : -INFINITY;
  }
}

// probs (B, NH, Tq, Tk) = exp(scale q.k - lse) (0 for masked keys and fully masked rows).
// One warp per (b, h, i); lanes stride over keys.
__global__ void attention_probs_kernel(AttnArgs a, const float* lse) {
  const int64_t rows = a.B * a.NH * a.Tq;
  const int lane = threadIdx.x & 31;
  for (int64_t r = blockIdx.x * (int64_t)(blockDim.x / 32) + (threadIdx.x >> 5); r < rows;
       r += (int64_t)gridDim.x * (blockDim.x / 32)) {
    const int64_t i = r % a.Tq, bh = r / a.Tq, h = bh % a.NH, b = bh / a.NH;
    const float* q = static_cast<const float*>(a.q) + b * a.q_bs + i * a.ldq + h * a.HS;
    const float L = lse[r];
    float* pr = a.probs + r * a.Tk;
    for (int64_t j = lane; j < a.Tk; j += 32) {
      const float* k = static_cast<const float*>(a.k) + b * a.k_bs + j * a.ldk + h * a.HS;
      float s = 0.0f;
      for (int64_t d = 0; d < a.HS; ++d) s += q[d] * k[d];
      const bool ok = L != -INFINITY && (!a.key_mask || a.key_mask[b * a.mask_bs + j] != 0);
      pr[j] = ok ? expf(s * a.scale - L) : 0.0f;
    }
  }
}

// Dvec (B, NH, Tq) = sum_d dout . out over each head's columns (FA-2's D_i = rowsum(dO o O)).
__global__ void attention_dot_kernel(float* Dvec, AttnArgs a, const float* dout) {
  const int64_t rows = a.B * a.NH * a.Tq;
  const int lane = threadIdx.x & 31;
  for (int64_t r = blockIdx.x * (int64_t)(blockDim.x / 32) + (threadIdx.x >> 5); r < rows;
       r += (int64_t)gridDim.x * (blockDim.x / 32)) {
    const int64_t i = r % a.Tq, bh = r / a.Tq, h = bh % a.NH, b = bh / a.NH;
    const int64_t off = b * a.o_bs + i * a.ldo + h * a.HS;
    float s = 0.0f;
    for (int64_t d = lane; d < a.HS; d += 32) s += dout[off + d] * static_cast<const float*>(a.out)[off + d];
    s = warp_sum(s);
    if (lane == 0) Dvec[r] = s;
  }
}

struct BwdParams {
  AttnArgs a;
  AttnGrads g;
  const float* Dvec;
  int64_t st;
};

// D4 = registers per thread for its key's dK and dV: dims warp, warp+4, ... (D4 >= ceil(HS/4)).
template <int D4>
__global__ void __launch_bounds__(kThreads) attention_backward_kernel(BwdParams P) {
  const AttnArgs& a = P.a;
  const AttnGrads& g = P.g;
  extern __shared__ float sm[];
  const int64_t st = P.st, HS = a.HS;
  float* Ks = sm;                      // (BK, st)
  float* Vs = Ks + BK * st;            // (BK, st)
  float* Qs = Vs + BK * st;            // (BQ, st)
  float* dOs = Qs + BQ * st;           // (BQ, st)
  float* Ps = dOs + BQ * st;           // (BQ, BK + 1)
  float* dSs = Ps + BQ * (BK + 1);     // (BQ, BK + 1)
  float* lse_s = dSs + BQ * (BK + 1);  // (BQ)
  float* D_s = lse_s + BQ;             // (BQ)
  float* valid = D_s + BQ;             // (BK)
  const int64_t b = blockIdx.z, h = blockIdx.y, k0 = (int64_t)blockIdx.x * BK;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const float* kb = static_cast<const float*>(a.k) + b * a.k_bs + h * HS;
  const float* vb = static_cast<const float*>(a.v) + b * a.v_bs + h * HS;
  const float* qb = static_cast<const float*>(a.q) + b * a.q_bs + h * HS;
  const float* dob = g.dout + b * a.o_bs + h * HS;
  load_tile(Ks, st, kb, a.ldk, k0, a.Tk, HS);
  load_tile(Vs, st, vb, a.ldv, k0, a.Tk, HS);
  if (threadIdx.x < BK) {
    const int64_t key = k0 + threadIdx.x;
    bool ok = key < a.Tk;
    if (ok && a.key_mask) ok = a.key_mask[b * a.mask_bs + key] != 0;
    valid[threadIdx.x] = ok ? 1.0f : 0.0f;
  }
  float dk[D4], dv[D4];
#pragma unroll
  for (int c = 0; c < D4; ++c) dk[c] = dv[c] = 0.0f;
  const int64_t lse_base = (b * a.NH + h) * a.Tq;
  for (int64_t q0 = 0; q0 < a.Tq; q0 += BQ) {
    __syncthreads();  // K/V loaded (first time) or the previous query tile consumed
    load_tile(Qs, st, qb, a.ldq, q0, a.Tq, HS);
    load_tile(dOs, st, dob, a.ldo, q0, a.Tq, HS);
    if (threadIdx.x < BQ) {
      const int64_t i = q0 + threadIdx.x;
      lse_s[threadIdx.x] = i < a.Tq ? a.lse[lse_base + i] : -INFINITY;
      D_s[threadIdx.x] = i < a.Tq ? P.Dvec[lse_base + i] : 0.0f;
    }
    __syncthreads();
    const bool my_valid = valid[lane] != 0.0f;
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      const int r = warp * kRowsPerWarp + rr;
      const float* qr = Qs + r * st;
      const float* dor = dOs + r * st;
      const float* kr = Ks + lane * st;
      const float* vr = Vs + lane * st;
      float s = 0.0f, dp = 0.0f;
      for (int64_t d = 0; d < HS; ++d) {
        s += qr[d] * kr[d];
        dp += dor[d] * vr[d];
      }
      const float L = lse_s[r];
      const float p = (my_valid && L != -INFINITY) ? __expf(s * a.scale - L) : 0.0f;
      Ps[r * (BK + 1) + lane] = p;
      dSs[r * (BK + 1) + lane] = p * (dp - D_s[r]);
    }
    __syncthreads();
    // dV[j] += sum_r P[r, j] dO[r];  dK[j] += scale sum_r dS[r, j] Q[r]   (j = lane)
#pragma unroll
    for (int c = 0; c < D4; ++c) {
      const int64_t d = warp + 4 * c;
      if (d < HS) {
        float sv = 0.0f, sk = 0.0f;
        for (int r = 0; r < BQ; ++r) {
          sv += Ps[r * (BK + 1) + lane] * dOs[r * st + d];
          sk += dSs[r * (BK + 1) + lane] * Qs[r * st + d];
        }
        dv[c] += sv;
        dk[c] += sk;
      }
    }
    // dQ[r] += scale sum_j dS[r, j] K[j]   (rows of this warp, dims lane, lane + 32, ...)
    if (g.dq) {
      for (int rr = 0; rr < kRowsPerWarp; ++rr) {
        const int r = warp * kRowsPerWarp + rr;
        const int64_t i = q0 + r;
        if (i >= a.Tq) break;
        float* dqr = g.dq + b * a.q_bs + i * a.ldq + h * HS;
        for (int64_t d = lane; d < HS; d += 32) {
          float sq = 0.0f;
          for (int j = 0; j < BK; ++j) sq += dSs[r * (BK + 1) + j] * Ks[j * st + d];
          atomicAdd(dqr + d, sq * a.scale);
        }
      }
    }
  }
  const int64_t key = k0 + lane;
  if (key < a.Tk) {
#pragma unroll
    for (int c = 0; c < D4; ++c) {
      const int64_t d = warp + 4 * c;
      if (d < HS) {
        if (g.dv) atomicAdd(g.dv + b * a.v_bs + key * a.ldv + h * HS + d, dv[c]);
        if (g.dk) atomicAdd(g.dk + b * a.k_bs + key * a.ldk + h * HS + d, dk[c] * a.scale);
      }
    }
  }
}

void validate(const char* op, const AttnArgs& a) {
  check_attn_args(op, a);
  CZ_REQUIRE(a.B <= 65535 && a.NH <= 65535, CZ_ERR_UNSUPPORTED, "%s: B = %lld and NH = %lld must be <= 65535 on CUDA",
             op, (long long)a.B, (long long)a.NH);
}

template <class K>
void launch_with_smem(K kernel, dim3 grid, size_t smem, CudaState& s, const char* name, const void* params_dummy) {
  (void)params_dummy;
  CZ_REQUIRE(smem <= s.max_smem_optin, CZ_ERR_UNSUPPORTED,
             "%s: needs %zu bytes of shared memory, the device allows %zu", name, smem, s.max_smem_optin);
  if (smem > 48 * 1024)
    CZ_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  (void)grid;
}

template <int DCH>
void forward_launch(CudaState& s, const FwdParams& p, dim3 grid, size_t smem) {
  launch_with_smem(attention_forward_kernel<DCH>, grid, smem, s, "attention_forward", nullptr);
  attention_forward_kernel<DCH><<<grid, kThreads, smem, s.stream>>>(p);
  check_launch("attention_forward_kernel");
}

template <int D4>
void backward_launch(CudaState& s, const BwdParams& p, dim3 grid, size_t smem) {
  launch_with_smem(attention_backward_kernel<D4>, grid, smem, s, "attention_backward", nullptr);
  attention_backward_kernel<D4><<<grid, kThreads, smem, s.stream>>>(p);
  check_launch("attention_backward_kernel");
}

}  // namespace

void attention_forward(Exec& ex, const AttnArgs& a) {
  const char* op = "attention_forward";
  validate(op, a);
  if (a.dtype != DType::F32) return attention_forward_bf16(ex, a);  // bf16 or fp16 storage
  if (a.B == 0 || a.NH == 0 || a.Tq == 0) return;
  if (attention_forward_tf32(ex, a)) return;  // precision 'tf32' on the tensor cores
  CZ_REQUIRE(a.HS <= 256, CZ_ERR_UNSUPPORTED, "%s: HS = %lld > 256 is not supported on CUDA", op,
             static_cast<long long>(a.HS));
  CudaState& s = state(ex);
  // lse is needed for probs; use scratch when the caller did not ask for it.
  const int64_t nlse = a.B * a.NH * a.Tq;
  Scratch lse_tmp(s, (a.probs && !a.lse) ? static_cast<size_t>(nlse) * sizeof(float) : 0);
  FwdParams p;
  p.a = a;
  if (!p.a.lse && a.probs) p.a.lse = lse_tmp.as<float>();
  p.st = odd_stride(a.HS);
  const size_t smem = static_cast<size_t>((BQ + 2 * BK) * p.st + BK) * sizeof(float);
  const dim3 grid(static_cast<unsigned>((a.Tq + BQ - 1) / BQ), static_cast<unsigned>(a.NH), static_cast<unsigned>(a.B));
  CZ_REQUIRE((a.Tq + BQ - 1) / BQ <= INT32_MAX, CZ_ERR_UNSUPPORTED, "%s: Tq too large", op);
  const int dch = static_cast<int>((a.HS + 31) / 32);
  switch (dch <= 1 ? 1 : dch <= 2 ? 2 : dch <= 4 ? 4 : dch <= 6 ? 6 : 8) {
    case 1: forward_launch<1>(s, p, grid, smem); break;
    case 2: forward_launch<2>(s, p, grid, smem); break;
    case 4: forward_launch<4>(s, p, grid, smem); break;
    case 6: forward_launch<6>(s, p, grid, smem); break;
    default: forward_launch<8>(s, p, grid, smem); break;
  }
  if (a.probs) {
    const int64_t warps = nlse;
    attention_probs_kernel<<<grid_for(warps * 32, 256, s), 256, 0, s.stream>>>(p.a, p.a.lse);
    check_launch("attention_probs_kernel");
  }
}

void attention_backward(Exec& ex, const AttnArgs& a, const AttnGrads& g) {
  const char* op = "attention_backward";
  validate(op, a);
  if (a.dtype != DType::F32) {  // bf16 or fp16 storage
    if (a.B == 0 || a.NH == 0 || a.Tq == 0 || a.HS == 0 || a.Tk == 0) return;
    if (!g.dq && !g.dk && !g.dv) return;
    require_ptr(op, "grads.dout", g.dout, true);
    CZ_ARG(a.lse != nullptr, "%s: args.lse is null (store it in the forward)", op);
    return attention_backward_bf16(ex, a, g);
  }
  if (a.B == 0 || a.NH == 0 || a.Tq == 0 || a.HS == 0) return;
  if (!g.dq && !g.dk && !g.dv) return;
  require_ptr(op, "grads.dout", g.dout, true);
  CZ_ARG(a.lse != nullptr, "%s: args.lse is null (store it in the forward)", op);
  if (a.Tk == 0) return;
  CZ_REQUIRE(a.HS <= 192, CZ_ERR_UNSUPPORTED, "%s: HS = %lld > 192 is not supported on CUDA", op,
             static_cast<long long>(a.HS));
  CudaState& s = state(ex);
  const int64_t nrows = a.B * a.NH * a.Tq;
  Scratch dvec(s, static_cast<size_t>(nrows) * sizeof(float));
  attention_dot_kernel<<<grid_for(nrows * 32, 256, s), 256, 0, s.stream>>>(dvec.as<float>(), a, g.dout);
  check_launch("attention_dot_kernel");
  BwdParams p;
  p.a = a;
  p.g = g;
  p.Dvec = dvec.as<float>();
  p.st = odd_stride(a.HS);
  const size_t smem =
      static_cast<size_t>(2 * BK * p.st + 2 * BQ * p.st + 2 * BQ * (BK + 1) + 2 * BQ + BK) * sizeof(float);
  const dim3 grid(static_cast<unsigned>((a.Tk + BK - 1) / BK), static_cast<unsigned>(a.NH), static_cast<unsigned>(a.B));
  const int d4 = static_cast<int>((a.HS + 3) / 4);
  switch (d4 <= 2 ? 2 : d4 <= 4 ? 4 : d4 <= 8 ? 8 : d4 <= 16 ? 16 : d4 <= 32 ? 32 : 48) {
    case 2: backward_launch<2>(s, p, grid, smem); break;
    case 4: backward_launch<4>(s, p, grid, smem); break;
    case 8: backward_launch<8>(s, p, grid, smem); break;
    case 16: backward_launch<16>(s, p, grid, smem); break;
    case 32: backward_launch<32>(s, p, grid, smem); break;
    default: backward_launch<48>(s, p, grid, smem); break;
  }
}

}  // namespace carzero::cuda
