// attention_bf16.cu: attention with 16-bit storage (AttnArgs::dtype BF16 or F16).
//
// Every kernel below is instantiated for bf16 and for fp16 storage (template flag H: the mma.sync
// .bf16 or .f16 variant, and P and the output rounded to that type); the text says bf16 for both.
// The device code is in attention_bf16_{common,tiled,whole}.cuh (planning: attention_bf16_kernels.cuh)
// and attention_bf16_bwd.cuh, which the warp emulator test also compiles on the host
// (native/tests/warp_emu).
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
//   tiles in turn, one block of 4 warps per pair (attention_bf16_whole.cuh);
// - tiled (everything else): a block of 4 warps owns 64 query rows and streams K/V tiles through
//   double-buffered cp.async stages (attention_bf16_tiled.cuh).
// Experiments at head size 64 (bf16) live in native/dev/cuda/ and are built only with
// -DCARZERO_DEV_KERNELS=ON: a persistent whole-sequence kernel (measured slower on an H100), the
// 32-row kernel (wide, wide8: two mma tiles per warp share each K/V fragment), its 16-row form
// (lean) and its persistent form with a loader warp (pwide), the last three not yet timed.
// When K, V and the key mask are shared across the batch (k_bs = v_bs = mask_bs = 0, the
// alignment head's many queries against one memory), the (item, query) pairs are flattened into
// one long query axis, so a block of 64 rows is full even when Tq = 1.
//
// Backward, head size 64 with Tq, Tk <= 256 and per-item K/V: a tensor-core kernel (below) that
// recomputes P from lse. Everything else with bf16 storage (other head sizes, probs requested,
// that backward's other cases) widens: q/k/v (and out for the backward) are converted to fp32
// scratch over their strided spans, the fp32 kernels of attention.cu run, and the output rows are
// rounded back to bf16. Correct, but not tensor-core speed. Gradients are fp32 (AttnGrads).
//
// fp32 storage at precision 'tf32' (AttnArgs::tf32): the forward of the same head sizes runs
// attention_tf32.cuh (the tiled plan with mma.sync.m16n8k8.tf32); the backward is fp32.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "cuda/attention_bf16_bwd.cuh"
#include "cuda/attention_bf16_kernels.cuh"
#include "cuda/cuda_common.h"
#include "cuda/cuda_device.cuh"
#include "cuda/cuda_ops.h"
#include "cuda/smem_opt_in.cuh"
#include "ops_check.h"
#ifdef CZ_DEV_KERNELS
#include "dev/cuda/attention_bf16_variants.h"
#endif

namespace carzero::cuda {

namespace {

using namespace attn_bf16;

#ifndef CZ_DEV_KERNELS
// CARZERO_ATTN_KERNEL named neither "whole" nor "tiled" in a build without native/dev's kernels.
[[noreturn]] void dev_kernels_missing() {
  throw_error(CZ_ERR_UNSUPPORTED,
              "CARZERO_ATTN_KERNEL=%s: this build has the 'whole' (default) and 'tiled' attention kernels; "
              "the experiments (persist, wide, wide8, lean, pwide) need a build configured with "
              "-DCARZERO_DEV_KERNELS=ON",
              settings().attn_kernel.c_str());
}
#endif

// A tiled forward kernel (4 warps, bq query rows a block) over (row blocks, NH, slices).
template <class P>
void launch_tiled(CudaState& s, void (*kernel)(P), const P& p, size_t smem, int64_t bq, int64_t slices, int64_t NH,
                  const char* what, int64_t HS) {
  CZ_REQUIRE(smem <= s.max_smem_optin, CZ_ERR_UNSUPPORTED,
             "attention_forward(%s, HS=%lld): needs %zu bytes of shared memory, the device allows %zu", what,
             static_cast<long long>(HS), smem, s.max_smem_optin);
  smem_opt_in(kernel, smem);
  const int64_t row_blocks = (p.rows + bq - 1) / bq;
  CZ_REQUIRE(row_blocks <= INT32_MAX && NH <= 65535 && slices <= 65535, CZ_ERR_UNSUPPORTED,
             "attention_forward(%s): grid too large (%lld x %lld x %lld)", what, static_cast<long long>(row_blocks),
             static_cast<long long>(NH), static_cast<long long>(slices));
  const dim3 grid(static_cast<unsigned>(row_blocks), static_cast<unsigned>(NH), static_cast<unsigned>(slices));
  kernel<<<grid, kThreadsTC, smem, s.stream>>>(p);
  check_launch("attention forward (tiled kernel)");
}

template <int D, bool H>
void launch_tc(CudaState& s, const TcParams& p, int64_t slices, int64_t NH) {
  launch_tiled(s, attention_fwd_tc_kernel<D, H>, p, TcCfg<D>::smem_bytes(), TcCfg<D>::BQ, slices, NH,
               H ? "fp16" : "bf16", D);
}

template <int NW, bool H>
void launch_whole64(CudaState& s, const TcParams& p, int64_t B, int64_t NH) {
  const size_t smem = whole_kv_smem(p.Tk);
  CZ_REQUIRE(smem <= s.max_smem_optin, CZ_ERR_UNSUPPORTED,
             "attention_forward(bf16, whole K/V): needs %zu bytes of shared memory, the device allows %zu", smem,
             s.max_smem_optin);
  smem_opt_in(attention_fwd_whole64_kernel<NW, H>, smem);
  const dim3 grid(static_cast<unsigned>(NH), static_cast<unsigned>(B));
  attention_fwd_whole64_kernel<NW, H><<<grid, NW * 32, smem, s.stream>>>(p);
  check_launch("attention_fwd_whole64_kernel");
}

// dst rows (bf16, or fp16 when H) = src rows (fp32), (items, rows) rows of C columns, same
// strides; the padding between rows is not touched.
template <bool H>
__global__ void narrow_rows_kernel(bf16* dst, const float* src, int64_t items, int64_t rows, int64_t bs, int64_t ld,
                                   int64_t C) {
  const int64_t n = items * rows * C;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c = i % C, rr = i / C, t = rr % rows, b = rr / rows;
    const int64_t off = b * bs + t * ld + c;
    dst[off] = from_f32<H>(src[off]);
  }
}

// fp32 copies of q, k, v (and out when with_out; bf16 or fp16) over their spans, for the widening
// fallbacks.
struct Widened {
  Widened(CudaState& s, Exec& ex, const AttnArgs& a, bool with_out)
      : C(a.NH * a.HS),
        nq(strided_span(a.B, a.q_bs, a.Tq, a.ldq, C)),
        nk(a.k ? strided_span(a.B, a.k_bs, a.Tk, a.ldk, C) : 0),
        nv(a.v ? strided_span(a.B, a.v_bs, a.Tk, a.ldv, C) : 0),
        no(strided_span(a.B, a.o_bs, a.Tq, a.ldo, C)),
        q(s, nq * 4),
        k(s, nk * 4),
        v(s, nv * 4),
        o(s, no * 4) {
    args = a;
    args.dtype = DType::F32;
    if (nq) convert(ex, q.get(), DType::F32, a.q, a.dtype, nq);
    if (nk) convert(ex, k.get(), DType::F32, a.k, a.dtype, nk);
    if (nv) convert(ex, v.get(), DType::F32, a.v, a.dtype, nv);
    if (no && with_out) convert(ex, o.get(), DType::F32, a.out, a.dtype, no);
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

// Which kernel attention_forward_bf16 runs for these arguments, with its occupancy (bench notes;
// the fp16 instances use the same registers and shared memory as the bf16 ones queried here).
std::string attention_forward_bf16_plan(Exec& ex, const AttnArgs& a) {
  CudaState& s = state(ex);
  if (!(tc_head_size(a.HS) && !a.probs && a.Tk > 0)) return "widened to the fp32 kernel";
  int64_t slices = 0;
  const TcParams p = make_tc_params(a, &slices);
  int per_sm = 0;
  char buf[160];
  switch (pick_kernel(p, a.HS, slices, a.NH)) {
    case FwdKernel::Dev:
#ifdef CZ_DEV_KERNELS
      if (std::string plan = attention_forward_dev_plan(p); !plan.empty()) return plan;
      [[fallthrough]];  // the experiment does not apply here: the default kernel runs
#else
      dev_kernels_missing();
#endif
    case FwdKernel::Whole4: {
      const size_t smem = whole_kv_smem(p.Tk);
      smem_opt_in(attention_fwd_whole64_kernel<4, false>, smem);
      CZ_CUDA(
          cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, attention_fwd_whole64_kernel<4, false>, 128, smem));
      std::snprintf(buf, sizeof buf, "whole-sequence kernel, 4 warps a block, %d blocks per SM", per_sm);
      return buf;
    }
    case FwdKernel::Tiled: break;
  }
  auto tiled = [&](auto kernel, size_t smem) {
    smem_opt_in(kernel, smem);
    CZ_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreadsTC, smem));
    std::snprintf(buf, sizeof buf, "tiled kernel, HS %lld, %d blocks of 4 warps per SM", static_cast<long long>(a.HS),
                  per_sm);
    return std::string(buf);
  };
  switch (a.HS) {
    case 32: return tiled(attention_fwd_tc_kernel<32, false>, TcCfg<32>::smem_bytes());
    case 64: return tiled(attention_fwd_tc_kernel<64, false>, TcCfg<64>::smem_bytes());
    case 128: return tiled(attention_fwd_tc_kernel<128, false>, TcCfg<128>::smem_bytes());
    default: return tiled(attention_fwd_tc_kernel<192, false>, TcCfg<192>::smem_bytes());
  }
}

namespace {

// The tensor-core forward for one storage type (H: fp16, else bf16). The experiments of native/dev
// (CARZERO_ATTN_KERNEL=persist, wide, wide8, lean, pwide; builds with CARZERO_DEV_KERNELS) are
// bf16 only: at fp16 they run the default whole-sequence kernel.
template <bool H>
void forward_tc(CudaState& s, const TcParams& p, int64_t HS, int64_t slices, int64_t NH) {
  switch (pick_kernel(p, HS, slices, NH)) {
    case FwdKernel::Whole4: return launch_whole64<4, H>(s, p, slices, NH);
    case FwdKernel::Dev:
#ifdef CZ_DEV_KERNELS
      if (attention_forward_dev(s, p, slices, NH, H)) return;
      return launch_whole64<4, H>(s, p, slices, NH);
#else
      dev_kernels_missing();
#endif
    case FwdKernel::Tiled: break;
  }
  switch (HS) {
    case 32: return launch_tc<32, H>(s, p, slices, NH);
    case 64: return launch_tc<64, H>(s, p, slices, NH);
    case 128: return launch_tc<128, H>(s, p, slices, NH);
    default: return launch_tc<192, H>(s, p, slices, NH);
  }
}

}  // namespace

// Called by attention_forward (attention.cu) for dtype BF16 or F16, after validation.
void attention_forward_bf16(Exec& ex, const AttnArgs& a) {
  CudaState& s = state(ex);
  if (a.B == 0 || a.NH == 0 || a.Tq == 0) return;
  const int64_t C = a.NH * a.HS;
  const bool h = a.dtype == DType::F16;
  if (tc_head_size(a.HS) && !a.probs && a.Tk > 0) {
    int64_t slices = 0;
    const TcParams p = make_tc_params(a, &slices);
    if (h)
      forward_tc<true>(s, p, a.HS, slices, a.NH);
    else
      forward_tc<false>(s, p, a.HS, slices, a.NH);
    return;
  }
  // Widening fallback: fp32 kernel on converted inputs, output rows rounded back to bf16/fp16.
  Widened w(s, ex, a, false);
  attention_forward(ex, w.args);
  if (w.no) {
    const unsigned blocks = grid_for(a.B * a.Tq * C, 256, s);
    if (h)
      narrow_rows_kernel<true>
          <<<blocks, 256, 0, s.stream>>>(static_cast<bf16*>(a.out), w.o.as<float>(), a.B, a.Tq, a.o_bs, a.ldo, C);
    else
      narrow_rows_kernel<false>
          <<<blocks, 256, 0, s.stream>>>(static_cast<bf16*>(a.out), w.o.as<float>(), a.B, a.Tq, a.o_bs, a.ldo, C);
    check_launch("narrow_rows_kernel");
  }
}

namespace {

template <int D>
void launch_tf32(CudaState& s, const TfParams& p, int64_t slices, int64_t NH) {
  launch_tiled(s, attention_fwd_tf32_kernel<D>, p, Tf32Cfg<D>::smem_bytes(), Tf32Cfg<D>::BQ, slices, NH, "tf32", D);
}

}  // namespace

// Called by attention_forward (attention.cu) for fp32 storage, after validation.
bool attention_forward_tf32(Exec& ex, const AttnArgs& a) {
  if (!tf32_forward_applies(a)) return false;
  CudaState& s = state(ex);
  int64_t slices = 0;
  const TfParams p = make_attn_params<float>(a, &slices);
  switch (a.HS) {
    case 32: launch_tf32<32>(s, p, slices, a.NH); break;
    case 64: launch_tf32<64>(s, p, slices, a.NH); break;
    case 128: launch_tf32<128>(s, p, slices, a.NH); break;
    default: launch_tf32<192>(s, p, slices, a.NH); break;
  }
  return true;
}

// Called by attention_backward (attention.cu) for dtype BF16 or F16, after validation.
void attention_backward_bf16(Exec& ex, const AttnArgs& a, const AttnGrads& g) {
  CudaState& s = state(ex);
  if (bwd_tc_eligible(a, s.max_smem_optin)) {
    const BwdTcParams p = make_bwd_params(a, g);
    const size_t smem = bwd_whole64_smem(a.Tq, a.Tk);
    const dim3 grid(static_cast<unsigned>(a.NH), static_cast<unsigned>(a.B));
    if (a.dtype == DType::F16) {
      smem_opt_in(attention_bwd_whole64_kernel<4, true>, smem);
      attention_bwd_whole64_kernel<4, true><<<grid, 128, smem, s.stream>>>(p);
    } else {
      smem_opt_in(attention_bwd_whole64_kernel<4, false>, smem);
      attention_bwd_whole64_kernel<4, false><<<grid, 128, smem, s.stream>>>(p);
    }
    check_launch("attention_bwd_whole64_kernel");
    return;
  }
  Widened w(s, ex, a, true);
  attention_backward(ex, w.args, g);
}

}  // namespace carzero::cuda
