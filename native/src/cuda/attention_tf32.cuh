// attention_tf32.cuh: attention forward with fp32 storage on the TF32 tensor cores, for
// precision 'tf32' (AttnArgs::tf32; PyTorch's allow_tf32). Launched by attention_bf16.cu; the
// warp emulator test (native/tests/warp_emu) runs it on the host.
//
// The tiled 16-bit kernel's plan (attention_bf16_tiled.cuh) with fp32 tiles: a block of 4 warps
// owns 64 query rows of one (item, head) (or of the flattened (item, query) axis against a memory
// shared across the batch), each warp 16; K and V stream through double-buffered cp.async
// stages. The products are mma.sync.m16n8k8 with TF32 operands and fp32 accumulation:
// - Q, K and V are rounded to TF32 (cvt.rna) once, in shared memory, by the thread that copied
//   them, after its copies land;
// - S = Q K^T, then the online softmax of the 16-bit kernels (softmax_tile, same accumulator
//   layout), then O += P V with P rounded to TF32 from the S accumulators. The m16n8k8 A layout
//   takes columns t4 and t4 + 4 where the accumulator holds 2 t4 and 2 t4 + 1, so each 8-key step
//   numbers its keys in that order (key 2 t4 is k index t4, key 2 t4 + 1 is t4 + 4) and reads
//   the V rows to match: a sum over keys does not depend on their order, and no shuffles are
//   needed.
// Fragments are read from shared memory with 32-bit loads. Rows are padded to D + 4 floats: the
// K reads (8 rows g x 4 columns t4) and the V reads (rows 2 t4 or 2 t4 + 1, 8 columns g) then
// fall in 32 distinct banks.
// The backward of precision 'tf32' is the fp32 one (attention.cu).
#pragma once
#include "cuda/attention_bf16_common.cuh"

namespace carzero::cuda::CZ_ATTN_BF16_NS {

template <int D>
struct Tf32Cfg {
  static constexpr int BQ = 64;                 // query rows per block
  static constexpr int BK = D <= 32 ? 64 : 32;  // keys per tile
  static constexpr int SD = D + 4;              // shared row stride (floats)
  static constexpr size_t smem_bytes() {
    return static_cast<size_t>(BQ + 4 * BK) * SD * sizeof(float);  // Q + 2 stages of K and V
  }
};

// Rounds to TF32, in place, the 16-byte chunks of a (rows, SD) tile that thread t of n copied
// (the loaders' index order); the thread's copies must have landed (cp_wait).
template <int D>
__device__ __forceinline__ void round_own_chunks(float* tile, int rows, int t, int n) {
  constexpr int CH = D / 4, SD = Tf32Cfg<D>::SD;
  for (int idx = t; idx < rows * CH; idx += n) {
    float* c = tile + (idx / CH) * SD + (idx % CH) * 4;
#pragma unroll
    for (int i = 0; i < 4; ++i) c[i] = round_tf32(c[i]);
  }
}

template <int D>
__global__ void __launch_bounds__(kThreadsTC) attention_fwd_tf32_kernel(TfParams p) {
  using Cfg = Tf32Cfg<D>;
  constexpr int BQ = Cfg::BQ, BK = Cfg::BK, SD = Cfg::SD;
  constexpr int KD = D / 8;   // k-steps over the head dim (S = Q K^T)
  constexpr int NT = BK / 8;  // 8-key tiles of S; also the k-steps of O += P V
  constexpr int ND = D / 8;   // 8-dim column tiles of O
  CZ_DYN_SMEM(smraw);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
  const int64_t h = blockIdx.y, z = blockIdx.z;
  const int64_t wr0 = static_cast<int64_t>(blockIdx.x) * BQ + warp * 16;  // the warp's first row
  const uint8_t* mb = p.mask ? p.mask + z * p.mask_bs : nullptr;

  float o[ND][4];
  float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.0f, 0.0f};  // rows g and g + 8
#pragma unroll
  for (int n = 0; n < ND; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  tiled_key_loop<D, BQ, BK, SD>(
      p, smraw,
      [](int it, float* Qs, float* ks, float* vs) {  // round the thread's own landed chunks to TF32
        if (it == 0) round_own_chunks<D>(Qs, BQ, threadIdx.x, kThreadsTC);
        round_own_chunks<D>(ks, BK, threadIdx.x, kThreadsTC);
        round_own_chunks<D>(vs, BK, threadIdx.x, kThreadsTC);
      },
      [&](int, const float* Qs, const float* ks, const float* vs, int64_t kbase, int rem) {
        float s[NT][4];
#pragma unroll
        for (int j = 0; j < NT; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
        const float* qa = Qs + (warp * 16 + g) * SD + t4;  // rows g and g + 8 of the warp
#pragma unroll
        for (int kk = 0; kk < KD; ++kk) {
          const uint32_t a[4] = {f32_bits(qa[kk * 8]), f32_bits(qa[8 * SD + kk * 8]), f32_bits(qa[kk * 8 + 4]),
                                 f32_bits(qa[8 * SD + kk * 8 + 4])};
#pragma unroll
          for (int j = 0; j < NT; ++j) {
            if (j * 8 >= rem) continue;
            const float* kr = ks + (j * 8 + g) * SD + kk * 8 + t4;
            mma1688_tf32(s[j], a, f32_bits(kr[0]), f32_bits(kr[4]));
          }
        }
        softmax_tile(s, o, mrow, lrow, rem, mb ? mb + kbase : nullptr, p.scale_log2, t4);
    // O += P V; value rows past rem are zero (the loader fills them), P there is 0
#pragma unroll
        for (int j = 0; j < NT; ++j) {
          if (j * 8 >= rem) break;
          const uint32_t a[4] = {f32_bits(round_tf32(s[j][0])), f32_bits(round_tf32(s[j][2])),
                                 f32_bits(round_tf32(s[j][1])), f32_bits(round_tf32(s[j][3]))};
          const float* vr = vs + (j * 8 + 2 * t4) * SD + g;  // keys 2 t4 (k index t4) and 2 t4 + 1 (t4 + 4)
#pragma unroll
          for (int n = 0; n < ND; ++n) mma1688_tf32(o[n], a, f32_bits(vr[n * 8]), f32_bits(vr[SD + n * 8]));
        }
      });
  if (wr0 < p.rows) finish_rows<D, false>(p, o, mrow, lrow, wr0, z, h, lane);
}

}  // namespace carzero::cuda::CZ_ATTN_BF16_NS
