// patch_embed.cu: ViT patch embedding (Conv2d kernel ps, stride ps, no padding) as im2col + GEMM,
// forward and backward (cpu/patch_embed.cpp).
// Dimension letters: B batch, Cin channels, H/W image size, ps patch size, Hp = H/ps, Wp = W/ps,
//   P = Hp*Wp patches (p = py*Wp + px), OC output channels, KK = Cin*ps*ps (PyTorch weight row:
//   c*ps*ps + ky*ps + kx), R = B*P patch rows.
//   img (B, Cin, H, W), weight (OC, KK), bias (OC), out (B, P, OC)
#include <algorithm>

#include "cuda/cuda_common.h"
#include "cuda/cuda_ops.h"

namespace carzero::cuda {

namespace {

constexpr int64_t kChunkFloats = int64_t(16) << 20;  // im2col scratch bound: 64 MiB

// cols (rows, KK) for patch rows [r0, r0 + rows); to_img = true scatters back (col2im).
__global__ void im2col_kernel(float* cols, float* img, int64_t r0, int64_t rows, int64_t Cin, int64_t H, int64_t W,
                              int64_t ps, bool to_img) {
  const int64_t Wp = W / ps, P = (H / ps) * Wp, KK = Cin * ps * ps, total = rows * KK;
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total; t += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i = t / KK, kk = t % KK;
    const int64_t r = r0 + i, b = r / P, p = r % P, py = p / Wp, px = p % Wp;
    const int64_t c = kk / (ps * ps), ky = (kk / ps) % ps, kx = kk % ps;
    const int64_t src = ((b * Cin + c) * H + py * ps + ky) * W + px * ps + kx;
    if (to_img)
      img[src] = cols[t];
    else
      cols[t] = img[src];
  }
}

// dbias[c] += sum_r dout[r, c] (double per column; R rows)
__global__ void bias_grad_kernel(float* dbias, const float* dout, int64_t R, int64_t OC) {
  for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < OC; c += (int64_t)gridDim.x * blockDim.x) {
    double s = 0.0;
    for (int64_t r = 0; r < R; ++r) s += dout[r * OC + c];
    dbias[c] += static_cast<float>(s);
  }
}

}  // namespace

void patch_embed_forward(Exec& ex, float* out, const float* img, const float* weight, const float* bias, int64_t B,
                         int64_t Cin, int64_t H, int64_t W, int64_t OC, int64_t ps) {
  const char* op = "patch_embed_forward";
  check_patch_args(op, B, Cin, H, W, OC, ps);
  const int64_t P = (H / ps) * (W / ps), KK = Cin * ps * ps, R = B * P;
  if (R == 0 || OC == 0) return;
  require_ptr(op, "out", out, true);
  require_ptr(op, "img", img, KK > 0);
  require_ptr(op, "weight", weight, KK > 0);
  CudaState& s = state(ex);
  const int64_t chunk = std::min(R, std::max<int64_t>(1, kChunkFloats / std::max<int64_t>(KK, 1)));
  Scratch cols(s, static_cast<size_t>(chunk * std::max<int64_t>(KK, 1)) * sizeof(float));
  for (int64_t r0 = 0; r0 < R; r0 += chunk) {
    const int64_t rows = std::min(chunk, R - r0);
    if (KK > 0) {
      im2col_kernel<<<grid_for(rows * KK, 256, s), 256, 0, s.stream>>>(cols.as<float>(), const_cast<float*>(img), r0,
                                                                       rows, Cin, H, W, ps, false);
      check_launch("im2col_kernel");
    }
    GemmArgs g;  // out rows (rows, OC) = cols (rows, KK) @ weight^T (KK, OC) + bias
    g.trans_b = true;
    g.m = rows, g.n = OC, g.k = KK;
    g.a = cols.get(), g.lda = std::max<int64_t>(KK, 1);
    g.b = weight, g.ldb = std::max<int64_t>(KK, 1);
    g.c = out + r0 * OC, g.ldc = OC;
    g.bias = bias;
    gemm(ex, g);
  }
}

void patch_embed_backward(Exec& ex, float* dimg, float* dweight, float* dbias, const float* dout, const float* img,
                          const float* weight, int64_t B, int64_t Cin, int64_t H, int64_t W, int64_t OC, int64_t ps) {
  const char* op = "patch_embed_backward";
  check_patch_args(op, B, Cin, H, W, OC, ps);
  const int64_t P = (H / ps) * (W / ps), KK = Cin * ps * ps, R = B * P;
  if (R == 0) return;
  CudaState& s = state(ex);
  if (OC == 0) {
    if (dimg) CZ_CUDA(cudaMemsetAsync(dimg, 0, static_cast<size_t>(B * Cin * H * W) * sizeof(float), s.stream));
    return;
  }
  require_ptr(op, "dout", dout, true);
  if (dbias) {
    bias_grad_kernel<<<grid_for(OC, 128, s), 128, 0, s.stream>>>(dbias, dout, R, OC);
    check_launch("bias_grad_kernel");
  }
  if (KK == 0 || (!dimg && !dweight)) return;
  require_ptr(op, "img", img, dweight != nullptr);
  require_ptr(op, "weight", weight, dimg != nullptr);
  const int64_t chunk = std::min(R, std::max<int64_t>(1, kChunkFloats / KK));
  Scratch cols(s, static_cast<size_t>(chunk * KK) * sizeof(float));
  for (int64_t r0 = 0; r0 < R; r0 += chunk) {
    const int64_t rows = std::min(chunk, R - r0);
    if (dweight) {
      im2col_kernel<<<grid_for(rows * KK, 256, s), 256, 0, s.stream>>>(cols.as<float>(), const_cast<float*>(img), r0,
                                                                       rows, Cin, H, W, ps, false);
      check_launch("im2col_kernel");
      GemmArgs g;  // dweight (OC, KK) += dout^T (OC, rows) @ cols (rows, KK)
      g.trans_a = true;
      g.m = OC, g.n = KK, g.k = rows;
      g.a = dout + r0 * OC, g.lda = OC;
      g.b = cols.get(), g.ldb = KK;
      g.c = dweight, g.ldc = KK;
      g.beta = 1.0f;
      gemm(ex, g);
    }
    if (dimg) {
      GemmArgs g;  // dcols (rows, KK) = dout (rows, OC) @ weight (OC, KK)
      g.m = rows, g.n = KK, g.k = OC;
      g.a = dout + r0 * OC, g.lda = OC;
      g.b = weight, g.ldb = KK;
      g.c = cols.as<float>(), g.ldc = KK;
      gemm(ex, g);
      im2col_kernel<<<grid_for(rows * KK, 256, s), 256, 0, s.stream>>>(cols.as<float>(), dimg, r0, rows, Cin, H, W, ps,
                                                                       true);
      check_launch("col2im_kernel");
    }
  }
}

}  // namespace carzero::cuda
