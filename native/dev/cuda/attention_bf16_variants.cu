// attention_bf16_variants.cu: launchers of the experimental attention forward kernels
// (attention_bf16_variants.cuh). Compiled into the library only with -DCARZERO_DEV_KERNELS=ON.
#include "dev/cuda/attention_bf16_variants.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "core/settings.h"
#include "core/status.h"
#include "cuda/smem_opt_in.cuh"
#include "dev/cuda/attention_bf16_variants.cuh"

namespace carzero::cuda {

namespace {

using namespace attn_bf16;

// The experiment settings().attn_kernel names, if it applies; throws for a name that is no kernel.
bool pick(const TcParams& p, DevKernel* k) {
  bool known = false;
  const bool ok = pick_dev_kernel(p, settings().attn_kernel, k, &known);
  CZ_ARG(known, "CARZERO_ATTN_KERNEL=%s: unknown kernel (whole, tiled, persist, wide, wide8, lean, pwide)",
         settings().attn_kernel.c_str());
  return ok;
}

// Blocks of a persistent kernel: as many as fit on the device at once, at most one per pair.
int64_t persistent_blocks(const CudaState& s, int per_sm, int64_t items) {
  return std::min<int64_t>(items, static_cast<int64_t>(std::max(per_sm, 1)) * std::max(s.sm_count, 1));
}

void launch_persist64(CudaState& s, const TcParams& p, int64_t B, int64_t NH) {
  const size_t smem = 2 * whole_kv_smem(p.Tk);  // 2 stages of K and V
  CZ_REQUIRE(smem <= s.max_smem_optin, CZ_ERR_UNSUPPORTED,
             "attention_forward(bf16, persistent): needs %zu bytes of shared memory, the device allows %zu", smem,
             s.max_smem_optin);
  smem_opt_in(attention_fwd_persist64_kernel<false>, smem);
  const int threads = static_cast<int>((p.Tq + 15) / 16) * 32;
  int per_sm = 0;
  CZ_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, attention_fwd_persist64_kernel<false>, threads, smem));
  const int64_t items = B * NH;
  const int64_t blocks = persistent_blocks(s, per_sm, items);
  attention_fwd_persist64_kernel<false><<<static_cast<unsigned>(blocks), threads, smem, s.stream>>>(p, items);
  check_launch("attention_fwd_persist64_kernel");
}

template <int NW, int MT>
void launch_wide64(CudaState& s, const TcParams& p, int64_t B, int64_t NH) {
  const size_t smem = whole_kv_smem(p.Tk);
  CZ_REQUIRE(smem <= s.max_smem_optin, CZ_ERR_UNSUPPORTED,
             "attention_forward(bf16, 32-row whole K/V): needs %zu bytes of shared memory, the device allows %zu", smem,
             s.max_smem_optin);
  smem_opt_in(attention_fwd_wide64_kernel<NW, MT, false>, smem);
  const dim3 grid(static_cast<unsigned>(NH), static_cast<unsigned>(B));
  attention_fwd_wide64_kernel<NW, MT, false><<<grid, NW * 32, smem, s.stream>>>(p);
  check_launch("attention_fwd_wide64_kernel");
}

void launch_pwide64(CudaState& s, const TcParams& p, int64_t B, int64_t NH) {
  const size_t smem = 2 * pwide_stage_elems(p.Tq, p.Tk) * sizeof(bf16);
  CZ_REQUIRE(smem <= s.max_smem_optin, CZ_ERR_UNSUPPORTED,
             "attention_forward(bf16, persistent 32-row): needs %zu bytes of shared memory, the device allows %zu",
             smem, s.max_smem_optin);
  smem_opt_in(attention_fwd_pwide64_kernel<false>, smem);
  int per_sm = 0;
  CZ_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, attention_fwd_pwide64_kernel<false>, kPwideWarps * 32,
                                                        smem));
  const int64_t items = B * NH;
  const int64_t blocks = persistent_blocks(s, per_sm, items);
  attention_fwd_pwide64_kernel<false><<<static_cast<unsigned>(blocks), kPwideWarps * 32, smem, s.stream>>>(p, items);
  check_launch("attention_fwd_pwide64_kernel");
}

}  // namespace

bool attention_forward_dev(CudaState& s, const TcParams& p, int64_t slices, int64_t NH, bool fp16) {
  DevKernel k;
  if (!pick(p, &k) || fp16) return false;
  switch (k) {
    case DevKernel::Persist: launch_persist64(s, p, slices, NH); return true;
    case DevKernel::Wide4: launch_wide64<4, 2>(s, p, slices, NH); return true;
    case DevKernel::Wide8: launch_wide64<8, 2>(s, p, slices, NH); return true;
    case DevKernel::Lean4: launch_wide64<4, 1>(s, p, slices, NH); return true;
    case DevKernel::Pwide: launch_pwide64(s, p, slices, NH); return true;
  }
  return false;
}

std::string attention_forward_dev_plan(const TcParams& p) {
  DevKernel k;
  if (!pick(p, &k)) return "";
  int per_sm = 0;
  char buf[160];
  auto occ = [&](auto kernel, int threads, size_t smem) {
    smem_opt_in(kernel, smem);
    CZ_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem));
  };
  switch (k) {
    case DevKernel::Persist: {
      const int threads = static_cast<int>((p.Tq + 15) / 16) * 32;
      occ(attention_fwd_persist64_kernel<false>, threads, 2 * whole_kv_smem(p.Tk));
      std::snprintf(buf, sizeof buf, "persistent whole-sequence kernel, %d warps a block, %d blocks per SM",
                    threads / 32, per_sm);
      return buf;
    }
    case DevKernel::Wide4:
    case DevKernel::Wide8:
    case DevKernel::Lean4: {
      const size_t smem = whole_kv_smem(p.Tk);
      if (k == DevKernel::Wide8)
        occ(attention_fwd_wide64_kernel<8, 2, false>, 256, smem);
      else if (k == DevKernel::Wide4)
        occ(attention_fwd_wide64_kernel<4, 2, false>, 128, smem);
      else
        occ(attention_fwd_wide64_kernel<4, 1, false>, 128, smem);
      std::snprintf(buf, sizeof buf,
                    "%d-row whole-sequence kernel (fma exp2, staged K/V), %d warps a block, %d blocks per SM",
                    k == DevKernel::Lean4 ? 16 : 32, k == DevKernel::Wide8 ? 8 : 4, per_sm);
      return buf;
    }
    case DevKernel::Pwide:
      occ(attention_fwd_pwide64_kernel<false>, kPwideWarps * 32, 2 * pwide_stage_elems(p.Tq, p.Tk) * sizeof(bf16));
      std::snprintf(buf, sizeof buf, "persistent 32-row kernel, 7 compute warps + 1 loader warp, %d blocks per SM",
                    per_sm);
      return buf;
  }
  return "";
}

}  // namespace carzero::cuda
