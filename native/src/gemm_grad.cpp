// gemm_grad.cpp: see gemm_grad.h. M, N, K, B letters as in ops.h GemmArgs.
#include "gemm_grad.h"

namespace carzero {

// Runs g over the batch: one strided call when the output has its own slice per item, else one
// call per item accumulating into the shared output (beta = 0 for the first when `first_zero`).
static void run_batched(Exec& ex, GemmFn gemm, GemmArgs g, int64_t B, int64_t out_stride, bool first_zero) {
  if (out_stride == 0 && B > 1) {
    for (int64_t b = 0; b < B; ++b) {
      GemmArgs gb = g;
      gb.a = static_cast<const float*>(g.a) + b * g.stride_a;
      gb.b = static_cast<const float*>(g.b) + b * g.stride_b;
      gb.stride_a = gb.stride_b = 0;
      gb.batch = 1;
      if (first_zero) gb.beta = b == 0 ? 0.0f : 1.0f;
      gemm(ex, gb);
    }
  } else {
    g.batch = B;
    g.stride_c = out_stride;
    gemm(ex, g);
  }
}

void gemm_backward_products(Exec& ex, GemmFn gemm, const GemmArgs& f, const float* dz, int64_t ld_dz, int64_t stride_dz,
                            float* da, float* db) {
  const int64_t M = f.m, N = f.n, K = f.k, B = f.batch;
  if (K == 0) return;
  if (da) {
    GemmArgs g;
    g.compute = f.compute;
    g.alpha = f.alpha;
    g.c = da;
    g.ldc = f.lda;
    if (!f.trans_a) {  // dA (M, K) = alpha dZ (M, N) @ op(B)^T (N, K)
      g.m = M;
      g.n = K;
      g.k = N;
      g.a = dz;
      g.lda = ld_dz;
      g.stride_a = stride_dz;
      g.trans_a = false;
      g.b = f.b;
      g.ldb = f.ldb;
      g.stride_b = f.stride_b;
      g.trans_b = !f.trans_b;
    } else {  // dA (K, M) = alpha op(B) (K, N) @ dZ^T (N, M)
      g.m = K;
      g.n = M;
      g.k = N;
      g.a = f.b;
      g.lda = f.ldb;
      g.stride_a = f.stride_b;
      g.trans_a = f.trans_b;
      g.b = dz;
      g.ldb = ld_dz;
      g.stride_b = stride_dz;
      g.trans_b = true;
    }
    run_batched(ex, gemm, g, B, f.stride_a, /*first_zero=*/true);  // dA is written
  }
  if (db) {
    GemmArgs g;
    g.compute = f.compute;
    g.alpha = f.alpha;
    g.beta = 1.0f;  // dB accumulates
    g.c = db;
    g.ldc = f.ldb;
    if (!f.trans_b) {  // dB (K, N) += alpha op(A)^T (K, M) @ dZ (M, N)
      g.m = K;
      g.n = N;
      g.k = M;
      g.a = f.a;
      g.lda = f.lda;
      g.stride_a = f.stride_a;
      g.trans_a = !f.trans_a;
      g.b = dz;
      g.ldb = ld_dz;
      g.stride_b = stride_dz;
      g.trans_b = false;
    } else {  // dB (N, K) += alpha dZ^T (N, M) @ op(A) (M, K)
      g.m = N;
      g.n = K;
      g.k = M;
      g.a = dz;
      g.lda = ld_dz;
      g.stride_a = stride_dz;
      g.trans_a = true;
      g.b = f.a;
      g.ldb = f.lda;
      g.stride_b = f.stride_a;
      g.trans_b = f.trans_a;
    }
    run_batched(ex, gemm, g, B, f.stride_b, /*first_zero=*/false);
  }
}

}  // namespace carzero
