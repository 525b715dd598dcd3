// gemm_grad.h: the matrix products of a GEMM's backward pass, shared by every backend.
// Given the forward's GemmArgs and dZ (the gradient at the pre-activation, laid out with row
// stride ld_dz and batch stride stride_dz), computes with the backend's own gemm:
//   dA (=, layout of A)  = alpha dZ op(B)^T  (transposed back when trans_a)
//   dB (+=, layout of B) = alpha op(A)^T dZ  (transposed back when trans_b)
// An operand shared by the batch (stride 0) receives the sum over the batch items.
#pragma once
#include "ops.h"

namespace carzero {

using GemmFn = void (*)(Exec&, const GemmArgs&);

void gemm_backward_products(Exec& ex, GemmFn gemm, const GemmArgs& fwd, const float* dz, int64_t ld_dz,
                            int64_t stride_dz, float* da, float* db);

}  // namespace carzero
