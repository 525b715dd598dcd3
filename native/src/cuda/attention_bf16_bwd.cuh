// attention_bf16_bwd.cuh: the device code of the bf16 tensor-core attention backward (head size
// 64) and its host-side planning, launched by attention_bf16.cu; compiled on the host by the warp
// emulator test like attention_bf16_kernels.cuh, whose primitives it uses.
#pragma once
#include "cuda/attention_bf16_kernels.cuh"
#include "core/settings.h"

namespace carzero::cuda::CZ_ATTN_BF16_NS {

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
  TcParams f;           // q, k, v, out (bf16), strides, mask, Tq, Tk, scale_log2
  const float* lse;     // (B, NH, Tq), natural log
  const float* dout;    // fp32, laid out like out
  float *dq, *dk, *dv;  // fp32, laid out like q, k, v; null = skip
  float scale;
};

template <int NW, bool H>
__global__ void __launch_bounds__(NW * 32, 2) attention_bwd_whole64_kernel(BwdTcParams p) {
  constexpr int D = 64, KD = 4, ND = 8;
  CZ_DYN_SMEM(smraw);
  const TcParams& f = p.f;
  const int tqp = static_cast<int>((f.Tq + 15) & ~int64_t{15});
  const int tkp = static_cast<int>((f.Tk + 15) & ~int64_t{15});
  bf16* Qs = reinterpret_cast<bf16*>(smraw);  // (tqp, 64) each, swizzled
  bf16* dOs = Qs + tqp * 64;
  bf16* Ks = dOs + tqp * 64;
  bf16* Vs = Ks + tkp * 64;
  float* lse2 = reinterpret_cast<float*>(Vs + tkp * 64);  // (tqp)
  float* Dv = lse2 + tqp;                                 // (tqp)
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
      for (int e = 0; e < 4; ++e) w[e] = pack2<H>(src[2 * e], src[2 * e + 1]);
    }
    *reinterpret_cast<uint4*>(const_cast<bf16*>(swz64(dOs, rr, c))) = make_uint4(w[0], w[1], w[2], w[3]);
  }
  for (int rr = warp; rr < tqp; rr += NW) {
    float d = 0.0f, l2 = -INFINITY;
    if (rr < f.Tq) {
      const float* grow = gb + rr * f.ldo;
      const bf16* orow = ob + rr * f.ldo;
      d = grow[lane] * to_f32<H>(orow[lane]) + grow[lane + 32] * to_f32<H>(orow[lane + 32]);
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
          mma16816<H>(sv[j], xf[kk], b0, b1);
          mma16816<H>(sv[j], xf[kk + 1], b2, b3);
          ldsm_x4(b0, b1, b2, b3, swz64(Es, row, ch));
          mma16816<H>(dp[j], yf[kk], b0, b1);
          mma16816<H>(dp[j], yf[kk + 1], b2, b3);
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
        pa[2 * j] = pack2<H>(pv[0], pv[1]);
        pa[2 * j + 1] = pack2<H>(pv[2], pv[3]);
        sa[2 * j] = pack2<H>(ds[0], ds[1]);
        sa[2 * j + 1] = pack2<H>(ds[2], ds[3]);
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
          mma16816<H>(acc0[n], sA, b0, b1);
          mma16816<H>(acc0[n + 1], sA, b2, b3);
        } else {  // dV += P^T dO, dK += dS^T Q
          ldsm_x4_t(b0, b1, b2, b3, swz64(dOs, row, ch));
          mma16816<H>(acc0[n], pA, b0, b1);
          mma16816<H>(acc0[n + 1], pA, b2, b3);
          ldsm_x4_t(b0, b1, b2, b3, swz64(Qs, row, ch));
          mma16816<H>(acc1[n], sA, b0, b1);
          mma16816<H>(acc1[n + 1], sA, b2, b3);
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

// ---- host-side planning -------------------------------------------------------------------------

inline size_t bwd_whole64_smem(int64_t Tq, int64_t Tk) {
  const size_t tqp = static_cast<size_t>((Tq + 15) & ~int64_t{15});
  const size_t tkp = static_cast<size_t>((Tk + 15) & ~int64_t{15});
  return (2 * tqp + 2 * tkp) * 64 * sizeof(bf16) + 2 * tqp * sizeof(float);
}

// Whether attention_backward with bf16 storage runs the tensor-core backward (head size 64, Tq
// and Tk <= 256, per-item K/V, 16-byte aligned rows, shared memory within max_smem), rather than
// widening to fp32. CARZERO_ATTN_KERNEL=tiled also sends it to the widening path.
inline bool bwd_tc_eligible(const AttnArgs& a, size_t max_smem) {
  auto al = [](const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15) == 0; };
  const bool per_item = a.B <= 1 || (a.k_bs != 0 && a.v_bs != 0);
  return a.HS == 64 && per_item && a.Tq <= kBwdMaxT && a.Tk <= kBwdMaxT && al(a.q) && al(a.k) && al(a.v) && al(a.out) &&
         a.ldq % 8 == 0 && a.ldk % 8 == 0 && a.ldv % 8 == 0 && a.ldo % 8 == 0 &&
         (a.B <= 1 || (a.q_bs % 8 == 0 && a.k_bs % 8 == 0 && a.v_bs % 8 == 0 && a.o_bs % 8 == 0)) && a.B <= 65535 &&
         bwd_whole64_smem(a.Tq, a.Tk) <= max_smem && settings().attn_kernel != "tiled";
}

inline BwdTcParams make_bwd_params(const AttnArgs& a, const AttnGrads& g) {
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
  return p;
}

}  // namespace carzero::cuda::CZ_ATTN_BF16_NS
