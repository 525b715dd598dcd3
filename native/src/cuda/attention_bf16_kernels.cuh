// attention_bf16_kernels.cuh: the production forward kernels of tensor-core attention (16-bit:
// tiled and whole-sequence; fp32 storage at TF32: attention_tf32.cuh) and their host-side
// planning: the kernel parameters of an AttnArgs and which kernel runs. Shared by
// attention_bf16.cu and the warp emulator test (native/tests/warp_emu); the backward is in
// attention_bf16_bwd.cuh, the experiments in native/dev/cuda/.
#pragma once
#include <cstdint>
#include <string>

#include "core/settings.h"
#include "cuda/attention_bf16_tiled.cuh"
#include "cuda/attention_tf32.cuh"
#include "cuda/attention_bf16_whole.cuh"
#include "ops.h"

namespace carzero::cuda::CZ_ATTN_BF16_NS {

// ---- host-side planning (shared by attention_bf16.cu and the warp emulator test) ----------------

// The kernel parameters of attention arguments for storage type T (bf16 for the 16-bit kernels,
// float for the TF32 one); *slices = grid.z of the tiled kernels (B, or 1 when the queries are
// flattened against a memory shared across the batch).
template <class T>
inline AttnTcParams<T> make_attn_params(const AttnArgs& a, int64_t* slices) {
  AttnTcParams<T> p;
  p.q = static_cast<const T*>(a.q);
  p.k = static_cast<const T*>(a.k);
  p.v = static_cast<const T*>(a.v);
  p.out = static_cast<T*>(a.out);
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
  constexpr int64_t per16 = 16 / sizeof(T);  // elements per 16-byte chunk
  auto al = [](const void* ptr, uintptr_t bytes) { return (reinterpret_cast<uintptr_t>(ptr) & (bytes - 1)) == 0; };
  p.aligned = al(a.q, 16) && al(a.k, 16) && al(a.v, 16) && a.ldq % per16 == 0 && a.ldk % per16 == 0 &&
              a.ldv % per16 == 0 && (a.B <= 1 || (a.q_bs % per16 == 0 && a.k_bs % per16 == 0 && a.v_bs % per16 == 0));
  p.out_aligned = al(a.out, 2 * sizeof(T)) && a.ldo % 2 == 0 && (a.B <= 1 || a.o_bs % 2 == 0);
  return p;
}
inline TcParams make_tc_params(const AttnArgs& a, int64_t* slices) { return make_attn_params<bf16>(a, slices); }

// Which forward kernel, by CARZERO_ATTN_KERNEL (settings().attn_kernel): "" or "whole" the
// whole-sequence kernel (one block of 4 warps per pair) where it applies, else the tiled one;
// "tiled" always the tiled kernel; any other name is an experiment of native/dev (Dev: resolved
// by pick_dev_kernel, in builds with CARZERO_DEV_KERNELS) where the whole-sequence kernel's
// preconditions hold. On an H100 at the ViT shape (B = 256): whole 0.288 ms, persist 0.329 ms,
// tiled 0.360 ms (bench/RESULTS.md).
enum class FwdKernel { Tiled, Whole4, Dev };
inline FwdKernel pick_kernel(const TcParams& p, int64_t HS, int64_t B, int64_t NH) {
  const bool whole_ok = HS == 64 && !p.flat && p.aligned && p.Tk <= kWholeMaxTk && B <= 65535 && NH <= INT32_MAX;
  if (!whole_ok) return FwdKernel::Tiled;
  const std::string& k = settings().attn_kernel;
  if (k == "tiled") return FwdKernel::Tiled;
  if (k.empty() || k == "whole") return FwdKernel::Whole4;
  return FwdKernel::Dev;
}

inline bool tc_head_size(int64_t HS) { return HS == 32 || HS == 64 || HS == 128 || HS == 192; }

// Whether fp32 attention arguments run the TF32 forward (attention_tf32.cuh): asked for
// (AttnArgs::tf32), a head size of the tensor-core kernels, keys, and no probabilities (those come
// from the fp32 kernel). Else the exact fp32 kernel runs.
inline bool tf32_forward_applies(const AttnArgs& a) {
  return a.tf32 && a.dtype == DType::F32 && tc_head_size(a.HS) && !a.probs && a.Tk > 0;
}

}  // namespace carzero::cuda::CZ_ATTN_BF16_NS
