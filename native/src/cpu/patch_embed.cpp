// patch_embed.cpp: ViT patch embedding (Conv2d kernel ps, stride ps, no padding) as
// im2col + GEMM, forward and backward side by side.
// Dimension letters: B batch, Cin input channels, H/W image size, ps patch size,
//   Hp = H/ps, Wp = W/ps, P = Hp*Wp patches (row-major: p = py*Wp + px), OC output channels,
//   KK = Cin*ps*ps (the flattened PyTorch conv weight row: index c*ps*ps + ky*ps + kx).
//   img (B, Cin, H, W), weight (OC, KK), bias (OC), out (B, P, OC)
// Patches do not overlap, so col2im in the backward is a plain scatter (no sums).
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/threadpool.h"
#include "cpu/cpu_ops.h"
#include "cpu/cpu_util.h"

namespace carzero::cpu {

namespace {

// Rows per im2col chunk: bounds the scratch to ~ kChunkRows x KK floats (4.8 MB at KK = 768)
// while keeping GEMMs large enough to run at full speed.
constexpr int64_t kChunkRows = 1568;  // 8 images of 196 patches

// cols (rows, KK) for global patch rows [r0, r0 + rows): row r = b*P + p.
void im2col(ThreadPool& pool, float* cols, const float* img, int64_t r0, int64_t rows, int64_t Cin, int64_t H,
            int64_t W, int64_t ps) {
  const int64_t Wp = W / ps, P = (H / ps) * Wp, KK = Cin * ps * ps;
  pool.parallel_for(rows, 8, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t r = r0 + i, b = r / P, p = r % P, py = p / Wp, px = p % Wp;
      float* dst = cols + i * KK;
      for (int64_t c = 0; c < Cin; ++c)
        for (int64_t ky = 0; ky < ps; ++ky) {
          const float* src = img + ((b * Cin + c) * H + py * ps + ky) * W + px * ps;
          std::memcpy(dst + (c * ps + ky) * ps, src, ps * sizeof(float));
        }
    }
  });
}

// dimg rows of patch rows [r0, r0 + rows) = dcols (rows, KK): the inverse scatter of im2col.
void col2im(ThreadPool& pool, float* dimg, const float* dcols, int64_t r0, int64_t rows, int64_t Cin, int64_t H,
            int64_t W, int64_t ps) {
  const int64_t Wp = W / ps, P = (H / ps) * Wp, KK = Cin * ps * ps;
  pool.parallel_for(rows, 8, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t r = r0 + i, b = r / P, p = r % P, py = p / Wp, px = p % Wp;
      const float* src = dcols + i * KK;
      for (int64_t c = 0; c < Cin; ++c)
        for (int64_t ky = 0; ky < ps; ++ky) {
          float* dst = dimg + ((b * Cin + c) * H + py * ps + ky) * W + px * ps;
          std::memcpy(dst, src + (c * ps + ky) * ps, ps * sizeof(float));
        }
    }
  });
}

}  // namespace

// out (rows, OC) = cols (rows, KK) @ weight^T (KK, OC) + bias
void patch_embed_forward(Exec& ex, float* out, const float* img, const float* weight, const float* bias, int64_t B,
                         int64_t Cin, int64_t H, int64_t W, int64_t OC, int64_t ps) {
  const char* op = "patch_embed_forward";
  check_patch_args(op, B, Cin, H, W, OC, ps);
  const int64_t P = (H / ps) * (W / ps), KK = Cin * ps * ps, R = B * P;
  if (R == 0 || OC == 0) return;
  require_ptr(op, "out", out, true);
  require_ptr(op, "img", img, KK > 0);
  require_ptr(op, "weight", weight, KK > 0);
  const int64_t chunk = std::min(R, kChunkRows);
  std::vector<float> cols(static_cast<size_t>(chunk * KK));
  for (int64_t r0 = 0; r0 < R; r0 += chunk) {
    const int64_t rows = std::min(chunk, R - r0);
    im2col(*ex.pool, cols.data(), img, r0, rows, Cin, H, W, ps);
    GemmArgs g;
    g.trans_b = true;  // weight (OC, KK) is the nn.Linear layout
    g.m = rows;
    g.n = OC;
    g.k = KK;
    g.a = cols.data();
    g.lda = std::max<int64_t>(KK, 1);
    g.b = weight;
    g.ldb = std::max<int64_t>(KK, 1);
    g.c = out + r0 * OC;
    g.ldc = OC;
    g.bias = bias;
    gemm(ex, g);
  }
}

// dweight (OC, KK) += dout^T (OC, rows) @ cols (rows, KK)
// dbias (OC)       += column sums of dout
// dimg             =  col2im(dout (rows, OC) @ weight (OC, KK))
void patch_embed_backward(Exec& ex, float* dimg, float* dweight, float* dbias, const float* dout, const float* img,
                          const float* weight, int64_t B, int64_t Cin, int64_t H, int64_t W, int64_t OC, int64_t ps) {
  const char* op = "patch_embed_backward";
  check_patch_args(op, B, Cin, H, W, OC, ps);
  const int64_t P = (H / ps) * (W / ps), KK = Cin * ps * ps, R = B * P;
  if (R == 0) return;
  if (OC == 0) {  // out is empty: dimg is exactly zero, parameters get nothing
    if (dimg) std::memset(dimg, 0, static_cast<size_t>(B * Cin * H * W) * sizeof(float));
    return;
  }
  require_ptr(op, "dout", dout, true);
  if (dbias) {
    ex.pool->parallel_for(OC, 64, [&](int64_t c0, int64_t c1) {
      std::vector<double> acc(static_cast<size_t>(c1 - c0), 0.0);
      for (int64_t r = 0; r < R; ++r)
        for (int64_t c = c0; c < c1; ++c) acc[c - c0] += dout[r * OC + c];
      for (int64_t c = c0; c < c1; ++c) dbias[c] += static_cast<float>(acc[c - c0]);
    });
  }
  if (KK == 0 || (!dimg && !dweight)) return;
  require_ptr(op, "img", img, dweight != nullptr);
  require_ptr(op, "weight", weight, dimg != nullptr);
  const int64_t chunk = std::min(R, kChunkRows);
  std::vector<float> cols(static_cast<size_t>(chunk * KK));
  for (int64_t r0 = 0; r0 < R; r0 += chunk) {
    const int64_t rows = std::min(chunk, R - r0);
    if (dweight) {
      im2col(*ex.pool, cols.data(), img, r0, rows, Cin, H, W, ps);
      GemmArgs g;
      g.trans_a = true;  // A = dout chunk stored (rows, OC): op(A) = dout^T (OC, rows)
      g.m = OC;
      g.n = KK;
      g.k = rows;
      g.a = dout + r0 * OC;
      g.lda = OC;
      g.b = cols.data();
      g.ldb = KK;
      g.c = dweight;
      g.ldc = KK;
      g.beta = 1.0f;  // accumulate into dweight
      gemm(ex, g);
    }
    if (dimg) {
      GemmArgs g;  // dcols (rows, KK) = dout (rows, OC) @ weight (OC, KK)
      g.m = rows;
      g.n = KK;
      g.k = OC;
      g.a = dout + r0 * OC;
      g.lda = OC;
      g.b = weight;
      g.ldb = KK;
      g.c = cols.data();
      g.ldc = KK;
      gemm(ex, g);
      col2im(*ex.pool, dimg, cols.data(), r0, rows, Cin, H, W, ps);
    }
  }
}

}  // namespace carzero::cpu
