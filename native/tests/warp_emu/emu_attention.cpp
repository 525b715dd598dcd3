// emu_attention.cpp: the "cuda-emu" backend of test_ops. It is the CPU backend except for
// attention with bf16 or fp16 storage, and the TF32 forward (fp32 storage with AttnArgs::tf32),
// which run the CUDA tensor-core kernels themselves
// (native/src/cuda/attention_bf16_*.cuh, and the experiments of native/dev/cuda) on the warp emulator (warp_emu.h),
// chosen by the same planning code as attention_bf16.cu (pick_kernel, CARZERO_ATTN_KERNEL, bwd_tc_eligible). The shapes
// the CUDA code widens to fp32 go to the CPU kernel, which computes the same thing. So the harness's float64 references
// check the kernels' fragment layouts, swizzles, masking, barriers and cp.async waits on machines without a GPU; speed
// is measured only on a GPU.
#define CZ_WARP_EMU 1
#include "cuda/attention_bf16_bwd.cuh"
#include "cuda/attention_bf16_kernels.cuh"
#include "dev/cuda/attention_bf16_variants.cuh"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "harness.h"

namespace cztest {
namespace {

using namespace carzero;
using namespace carzero::cuda::attn_bf16_emu;
using cz_emu::Dim3;

constexpr size_t kEmuMaxSmem = 227 * 1024;  // the opt-in shared memory of an H100 block

unsigned u(int64_t v) { return static_cast<unsigned>(v); }

template <bool H>
void emu_forward_tc(const AttnArgs& a) {
  int64_t slices = 0;
  const TcParams p = make_tc_params(a, &slices);
  const size_t whole_smem = whole_kv_smem(p.Tk);
  const Dim3 pairs{u(a.NH), u(slices), 1};
  FwdKernel k = pick_kernel(p, a.HS, slices, a.NH);
  DevKernel d = DevKernel::Persist;
  if (k == FwdKernel::Dev) {  // as attention_bf16_variants.cu: bf16 only, else the default kernel
    bool known = false;
    const bool applies = pick_dev_kernel(p, settings().attn_kernel, &d, &known);
    if (!known) throw std::runtime_error("CARZERO_ATTN_KERNEL=" + settings().attn_kernel + ": unknown kernel");
    if (H || !applies) k = FwdKernel::Whole4;
  }
  switch (k) {
    case FwdKernel::Whole4:
      return cz_emu::launch(pairs, {128, 1, 1}, whole_smem, [&] { attention_fwd_whole64_kernel<4, H>(p); });
    case FwdKernel::Dev:
      switch (d) {
        case DevKernel::Wide4:
          return cz_emu::launch(pairs, {128, 1, 1}, whole_smem, [&] { attention_fwd_wide64_kernel<4, 2, false>(p); });
        case DevKernel::Wide8:
          return cz_emu::launch(pairs, {256, 1, 1}, whole_smem, [&] { attention_fwd_wide64_kernel<8, 2, false>(p); });
        case DevKernel::Lean4:
          return cz_emu::launch(pairs, {128, 1, 1}, whole_smem, [&] { attention_fwd_wide64_kernel<4, 1, false>(p); });
        case DevKernel::Persist: {
          // fewer blocks than pairs, so every block loops over pairs and double-buffers
          const int64_t items = slices * a.NH;
          const unsigned blocks = u(std::min<int64_t>(items, 3));
          const unsigned threads = u((p.Tq + 15) / 16 * 32);
          return cz_emu::launch({blocks, 1, 1}, {threads, 1, 1}, whole_smem * 2,
                                [&] { attention_fwd_persist64_kernel<false>(p, items); });
        }
        case DevKernel::Pwide: {  // three blocks: each loops over pairs through both stages
          const int64_t items = slices * a.NH;
          const unsigned blocks = u(std::min<int64_t>(items, 3));
          return cz_emu::launch({blocks, 1, 1}, {kPwideWarps * 32, 1, 1},
                                2 * pwide_stage_elems(p.Tq, p.Tk) * sizeof(bf16),
                                [&] { attention_fwd_pwide64_kernel<false>(p, items); });
        }
      }
      break;
    case FwdKernel::Tiled: break;
  }
  auto tiled = [&](auto kernel, size_t smem, int64_t bq) {
    const Dim3 grid{u((p.rows + bq - 1) / bq), u(a.NH), u(slices)};
    cz_emu::launch(grid, {128, 1, 1}, smem, [&] { kernel(p); });
  };
  switch (a.HS) {
    case 32: return tiled(attention_fwd_tc_kernel<32, H>, TcCfg<32>::smem_bytes(), TcCfg<32>::BQ);
    case 64: return tiled(attention_fwd_tc_kernel<64, H>, TcCfg<64>::smem_bytes(), TcCfg<64>::BQ);
    case 128: return tiled(attention_fwd_tc_kernel<128, H>, TcCfg<128>::smem_bytes(), TcCfg<128>::BQ);
    default: return tiled(attention_fwd_tc_kernel<192, H>, TcCfg<192>::smem_bytes(), TcCfg<192>::BQ);
  }
}

// Runs one emulated attention call. The kernels' shared-memory layouts (XOR swizzles, padded
// rows) are meant to make every ldmatrix conflict-free, so a bank conflict is an error here: it
// would cost speed on the GPU without changing a result. CZ_EMU_STATS=1 prints the call's
// warp-level work (mma.sync, ldmatrix, ex2 per lane, global bytes read, bank conflicts): a
// count of what each kernel asks of the GPU, not a timing.
template <class F>
void counted(const char* what, F&& f) {
  const uint64_t x0 = cz_emu::ldmatrix_extra_wavefronts(), n0 = cz_emu::ldmatrix_count();
  const cz_emu::Work w0 = cz_emu::work();
  f();
  const uint64_t n = cz_emu::ldmatrix_count() - n0, extra = cz_emu::ldmatrix_extra_wavefronts() - x0;
  const cz_emu::Work& w = cz_emu::work();
  if (std::getenv("CZ_EMU_STATS"))
    std::printf("      [%s] mma %llu, ldmatrix %llu, ex2 %llu, global read %llu bytes, bank conflicts %llu\n", what,
                static_cast<unsigned long long>(w.mma - w0.mma), static_cast<unsigned long long>(n),
                static_cast<unsigned long long>(w.ex2 - w0.ex2),
                static_cast<unsigned long long>(w.global_read_bytes - w0.global_read_bytes),
                static_cast<unsigned long long>(extra));
  if (extra)
    throw std::runtime_error("warp_emu: " + std::string(what) + ": " + std::to_string(extra) +
                             " extra shared-memory wavefronts from ldmatrix bank conflicts in " + std::to_string(n) +
                             " ldmatrix");
}

// The TF32 forward (fp32 storage, AttnArgs::tf32), planned as attention_forward_tf32 does.
void emu_forward_tf32(const AttnArgs& a) {
  int64_t slices = 0;
  const TfParams p = make_attn_params<float>(a, &slices);
  auto run = [&](auto kernel, size_t smem, int64_t bq) {
    const Dim3 grid{u((p.rows + bq - 1) / bq), u(a.NH), u(slices)};
    cz_emu::launch(grid, {128, 1, 1}, smem, [&] { kernel(p); });
  };
  switch (a.HS) {
    case 32: return run(attention_fwd_tf32_kernel<32>, Tf32Cfg<32>::smem_bytes(), Tf32Cfg<32>::BQ);
    case 64: return run(attention_fwd_tf32_kernel<64>, Tf32Cfg<64>::smem_bytes(), Tf32Cfg<64>::BQ);
    case 128: return run(attention_fwd_tf32_kernel<128>, Tf32Cfg<128>::smem_bytes(), Tf32Cfg<128>::BQ);
    default: return run(attention_fwd_tf32_kernel<192>, Tf32Cfg<192>::smem_bytes(), Tf32Cfg<192>::BQ);
  }
}

void emu_forward(Exec& ex, const AttnArgs& a) {
  if (a.B > 0 && a.NH > 0 && a.Tq > 0 && tf32_forward_applies(a))
    return counted("forward(tf32)", [&] { emu_forward_tf32(a); });
  if (a.dtype == DType::F32 || a.B == 0 || a.NH == 0 || a.Tq == 0 || !(tc_head_size(a.HS) && !a.probs && a.Tk > 0))
    return cpu_ops().attention_forward(ex, a);
  counted("forward", [&] {
    if (a.dtype == DType::F16)
      emu_forward_tc<true>(a);
    else
      emu_forward_tc<false>(a);
  });
}

void emu_backward(Exec& ex, const AttnArgs& a, const AttnGrads& g) {
  if (a.dtype != DType::F32 && a.B > 0 && a.NH > 0 && a.Tq > 0 && a.Tk > 0 && a.lse && g.dout &&
      (g.dq || g.dk || g.dv) && bwd_tc_eligible(a, kEmuMaxSmem)) {
    const BwdTcParams p = make_bwd_params(a, g);
    const size_t smem = bwd_whole64_smem(a.Tq, a.Tk);
    return counted("backward", [&] {
      if (a.dtype == DType::F16)
        cz_emu::launch({u(a.NH), u(a.B), 1}, {128, 1, 1}, smem, [&] { attention_bwd_whole64_kernel<4, true>(p); });
      else
        cz_emu::launch({u(a.NH), u(a.B), 1}, {128, 1, 1}, smem, [&] { attention_bwd_whole64_kernel<4, false>(p); });
    });
  }
  cpu_ops().attention_backward(ex, a, g);
}

// Host memory like the CPU backend's, with each allocation's exact extent registered with the
// emulator, so the kernels' global reads are bounds-checked.
void* emu_alloc(void*, size_t bytes) {
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
  if (p) cz_emu::track_global(p, bytes);
  return p;
}
void emu_free(void*, void* p) {
  cz_emu::untrack_global(p);
  std::free(p);
}

}  // namespace

void make_emu_backend(Backend* out, const Backend& cpu) {
  static OpTable table = [] {
    OpTable t = cpu_ops();
    t.backend = "cuda-emu";
    t.attention_forward = emu_forward;
    t.attention_backward = emu_backward;
    return t;
  }();
  *out = cpu;
  out->name = "cuda-emu";
  out->ops = &table;
  out->alloc = emu_alloc;
  out->free = emu_free;
  out->gemm_isa = nullptr;
}

}  // namespace cztest
