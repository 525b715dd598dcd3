// layernorm.cu: LayerNorm over the last dimension, forward and backward side by side
// (llm.c llmc/layernorm.cuh structure; semantics of cpu/layernorm.cpp).
// Dimension letters: N rows (B*T), C channels.
//   out (N, C), inp (N, C), weight (C), bias (C), mean (N), rstd (N)
// One warp per row. Statistics are two-pass with double accumulators, as on the CPU, so
// large-offset inputs keep their precision. The residual add that precedes a LayerNorm in the
// model is the add op (activations.cu); fusing it would need a new op-table entry.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>

#include "cuda/cuda_common.h"
#include "cuda/cuda_device.cuh"
#include "cuda/cuda_ops.h"
#include "ops_check.h"

namespace carzero::cuda {

namespace {

constexpr int kWarps = 8, kThreads = kWarps * 32;

__device__ __forceinline__ void store_as(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_as(__nv_bfloat16* p, float v) { *p = __float2bfloat16(v); }

__global__ void layernorm_forward_kernel(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                                         const float* bias, int64_t N, int64_t C, float eps) {
  const int lane = threadIdx.x & 31;
  for (int64_t r = blockIdx.x * (int64_t)kWarps + (threadIdx.x >> 5); r < N; r += (int64_t)gridDim.x * kWarps) {
    const float* x = inp + r * C;
    double s = 0.0;
    for (int64_t c = lane; c < C; c += 32) s += x[c];
    const double m = warp_sum(s) / static_cast<double>(C);
    double v = 0.0;
    for (int64_t c = lane; c < C; c += 32) {
      const double d = x[c] - m;
      v += d * d;
    }
    const double var = warp_sum(v) / static_cast<double>(C);
    const float mf = static_cast<float>(m);
    const float rf = static_cast<float>(1.0 / sqrt(var + static_cast<double>(eps)));
    float* y = out + r * C;
    for (int64_t c = lane; c < C; c += 32) {
      float o = (x[c] - mf) * rf;
      if (weight) o *= weight[c];
      if (bias) o += bias[c];
      y[c] = o;
    }
    if (lane == 0) {
      if (mean) mean[r] = mf;
      if (rstd) rstd[r] = rf;
    }
  }
}

// Fused residual add + LayerNorm, one warp per row: s = a + b (stored to sum when non-null;
// sum may alias a), statistics as above, out = LN(s) as TOut (float or bf16).
template <class TOut>
__global__ void add_layernorm_kernel(float* sum, TOut* out, float* mean, float* rstd, const float* a, const float* b,
                                     const float* weight, const float* bias, int64_t N, int64_t C, float eps) {
  const int lane = threadIdx.x & 31;
  for (int64_t r = blockIdx.x * (int64_t)kWarps + (threadIdx.x >> 5); r < N; r += (int64_t)gridDim.x * kWarps) {
    const float* x = a + r * C;
    if (b) {
      const float* y = b + r * C;
      float* dst = sum ? sum + r * C : nullptr;
      double s = 0.0;
      for (int64_t c = lane; c < C; c += 32) {
        const float v = x[c] + y[c];
        if (dst) dst[c] = v;
        s += v;
      }
      __syncwarp();
      if (dst)
        x = dst;  // each lane re-reads only what it wrote
      else
        x = nullptr;
      const double m = warp_sum(s) / static_cast<double>(C);
      double v2 = 0.0;
      for (int64_t c = lane; c < C; c += 32) {
        const double d = (x ? x[c] : a[r * C + c] + y[c]) - m;
        v2 += d * d;
      }
      const double var = warp_sum(v2) / static_cast<double>(C);
      const float mf = static_cast<float>(m);
      const float rf = static_cast<float>(1.0 / sqrt(var + static_cast<double>(eps)));
      TOut* o = out + r * C;
      for (int64_t c = lane; c < C; c += 32) {
        const float xv = x ? x[c] : a[r * C + c] + y[c];
        float v = (xv - mf) * rf;
        if (weight) v *= weight[c];
        if (bias) v += bias[c];
        store_as(o + c, v);
      }
      if (lane == 0) {
        if (mean) mean[r] = mf;
        if (rstd) rstd[r] = rf;
      }
      continue;
    }
    double s = 0.0;
    for (int64_t c = lane; c < C; c += 32) s += x[c];
    const double m = warp_sum(s) / static_cast<double>(C);
    double v2 = 0.0;
    for (int64_t c = lane; c < C; c += 32) {
      const double d = x[c] - m;
      v2 += d * d;
    }
    const double var = warp_sum(v2) / static_cast<double>(C);
    const float mf = static_cast<float>(m);
    const float rf = static_cast<float>(1.0 / sqrt(var + static_cast<double>(eps)));
    TOut* o = out + r * C;
    float* so = (sum && sum != a) ? sum + r * C : nullptr;
    for (int64_t c = lane; c < C; c += 32) {
      const float xv = x[c];
      if (so) so[c] = xv;
      float v = (xv - mf) * rf;
      if (weight) v *= weight[c];
      if (bias) v += bias[c];
      store_as(o + c, v);
    }
    if (lane == 0) {
      if (mean) mean[r] = mf;
      if (rstd) rstd[r] = rf;
    }
  }
}

// dinp (=) per row; parameter partials per block into part (gridDim.x, 2C) double when non-null:
// part[b, c] = sum dout * xhat, part[b, C + c] = sum dout over the block's rows. shw/shb are
// shared float accumulators (C each) when the block has room for them, else null (then the
// kernel adds to part directly with double atomics).
__global__ void layernorm_backward_kernel(float* dinp, double* part, const float* dout, const float* inp,
                                          const float* weight, const float* mean, const float* rstd, int64_t N,
                                          int64_t C, bool use_shared) {
  extern __shared__ float sh[];  // [2C] when use_shared
  const int lane = threadIdx.x & 31;
  if (part && use_shared) {
    for (int64_t c = threadIdx.x; c < 2 * C; c += blockDim.x) sh[c] = 0.0f;
    __syncthreads();
  }
  const double inv_c = 1.0 / static_cast<double>(C);
  for (int64_t r = blockIdx.x * (int64_t)kWarps + (threadIdx.x >> 5); r < N; r += (int64_t)gridDim.x * kWarps) {
    const float* x = inp + r * C;
    const float* dy = dout + r * C;
    const float m = mean[r], rs = rstd[r];
    double gs = 0.0, gxs = 0.0;
    for (int64_t c = lane; c < C; c += 32) {
      const float xh = (x[c] - m) * rs;
      const float g = weight ? __fmul_rn(weight[c], dy[c]) : dy[c];
      gs += g;
      gxs += static_cast<double>(g) * xh;
      if (part) {
        if (use_shared) {
          atomicAdd(&sh[c], dy[c] * xh);
          atomicAdd(&sh[C + c], dy[c]);
        } else {
          atomicAdd(&part[blockIdx.x * 2 * C + c], static_cast<double>(dy[c]) * xh);
          atomicAdd(&part[blockIdx.x * 2 * C + C + c], static_cast<double>(dy[c]));
        }
      }
    }
    if (dinp) {
      const float g_mean = static_cast<float>(warp_sum(gs) * inv_c);
      const float gx_mean = static_cast<float>(warp_sum(gxs) * inv_c);
      float* dx = dinp + r * C;
      for (int64_t c = lane; c < C; c += 32) {
        const float xh = (x[c] - m) * rs;
        // __fmul_rn: the product must be rounded exactly as in the sums above; a contracted
        // fma(w, dy, -g_mean) would leave the product's rounding error (non-zero for C = 1).
        const float g = weight ? __fmul_rn(weight[c], dy[c]) : dy[c];
        dx[c] = rs * (g - g_mean - xh * gx_mean);
      }
    }
  }
  if (part && use_shared) {
    __syncthreads();
    for (int64_t c = threadIdx.x; c < 2 * C; c += blockDim.x) part[blockIdx.x * 2 * C + c] = sh[c];
  }
}

// dweight[c] += sum_b part[b, c]; dbias[c] += sum_b part[b, C + c]
__global__ void layernorm_param_reduce_kernel(float* dweight, float* dbias, const double* part, int blocks, int64_t C) {
  for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < C; c += (int64_t)gridDim.x * blockDim.x) {
    double sw = 0.0, sb = 0.0;
    for (int b = 0; b < blocks; ++b) {
      sw += part[b * 2 * C + c];
      sb += part[b * 2 * C + C + c];
    }
    if (dweight) dweight[c] += static_cast<float>(sw);
    if (dbias) dbias[c] += static_cast<float>(sb);
  }
}

}  // namespace

void layernorm_forward(Exec& ex, float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t N, int64_t C, float eps) {
  const char* op = "layernorm_forward";
  require_size(op, "N", N);
  require_size(op, "C", C);
  CZ_ARG(std::isfinite(eps) && eps >= 0.0f, "%s: eps = %g must be finite and >= 0", op, eps);
  if (N == 0) return;
  CZ_ARG(C > 0, "%s: C = %lld must be > 0 when N > 0", op, static_cast<long long>(C));
  require_ptr(op, "out", out, true);
  require_ptr(op, "inp", inp, true);
  CudaState& s = state(ex);
  const unsigned blocks = grid_for((N + kWarps - 1) / kWarps, 1, s);
  layernorm_forward_kernel<<<blocks, kThreads, 0, s.stream>>>(out, mean, rstd, inp, weight, bias, N, C, eps);
  check_launch("layernorm_forward_kernel");
}

void add_layernorm_forward(Exec& ex, float* sum_out, void* out, DType out_type, float* mean, float* rstd,
                           const float* a, const float* b, const float* weight, const float* bias, int64_t N, int64_t C,
                           float eps) {
  if (!check_add_layernorm_args("add_layernorm_forward", sum_out, out, out_type, a, b, N, C, eps)) return;
  CudaState& s = state(ex);
  const unsigned blocks = grid_for((N + kWarps - 1) / kWarps, 1, s);
  if (out_type == DType::BF16)
    add_layernorm_kernel<__nv_bfloat16><<<blocks, kThreads, 0, s.stream>>>(sum_out, static_cast<__nv_bfloat16*>(out),
                                                                           mean, rstd, a, b, weight, bias, N, C, eps);
  else
    add_layernorm_kernel<float><<<blocks, kThreads, 0, s.stream>>>(sum_out, static_cast<float*>(out), mean, rstd, a, b,
                                                                   weight, bias, N, C, eps);
  check_launch("add_layernorm_kernel");
}

void layernorm_backward(Exec& ex, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C) {
  const char* op = "layernorm_backward";
  require_size(op, "N", N);
  require_size(op, "C", C);
  if (N == 0 || C == 0) return;
  require_ptr(op, "dout", dout, true);
  require_ptr(op, "inp", inp, true);
  require_ptr(op, "mean", mean, true);
  require_ptr(op, "rstd", rstd, true);
  CudaState& s = state(ex);
  const bool want_params = dweight || dbias;
  // Enough blocks to fill the device, each covering many rows so the partials stay small.
  const int64_t row_blocks = (N + kWarps - 1) / kWarps;
  const int blocks = static_cast<int>(std::min<int64_t>(row_blocks, 2LL * std::max(s.sm_count, 1)));
  const size_t shared = static_cast<size_t>(2 * C) * sizeof(float);
  const bool use_shared = want_params && shared <= 48 * 1024;
  Scratch part(s, want_params ? static_cast<size_t>(blocks) * 2 * C * sizeof(double) : 0);
  if (want_params && !use_shared)
    CZ_CUDA(cudaMemsetAsync(part.get(), 0, static_cast<size_t>(blocks) * 2 * C * sizeof(double), s.stream));
  layernorm_backward_kernel<<<blocks, kThreads, use_shared ? shared : 0, s.stream>>>(
      dinp, part.as<double>(), dout, inp, weight, mean, rstd, N, C, use_shared);
  check_launch("layernorm_backward_kernel");
  if (want_params) {
    layernorm_param_reduce_kernel<<<grid_for(C, 256, s), 256, 0, s.stream>>>(dweight, dbias, part.as<double>(), blocks,
                                                                             C);
    check_launch("layernorm_param_reduce_kernel");
  }
}

}  // namespace carzero::cuda
