// gemm.cu: C[b] = act(alpha op(A[b]) op(B[b]) + beta C[b] + bias) through cuBLASLt (bias and ReLU
// epilogues fused) or cuBLAS (GemmStridedBatchedEx) plus our epilogue kernel, and its backward.
// Same contract as cpu/gemm.cpp (GemmArgs in ops.h).
// Dimension letters: M, N, K of C (M, N) = op(A) (M, K) @ op(B) (K, N); b batch items.
//
// Row-major to column-major: cuBLAS is column-major, and a row-major (r, c) matrix with row
// stride ld is the column-major (c, r) matrix with the same ld. So C (M, N) row-major is computed
// as C^T (N, M) = op(B)^T op(A)^T column-major: cuBLAS m = N, n = M, k = K, "A" = our B
// (transposed iff trans_b), "B" = our A (transposed iff trans_a).
//
// Types: compute F32 runs fp32 GEMM (CUBLAS_COMPUTE_32F; CUBLAS_COMPUTE_32F_FAST_TF32 when
// GemmArgs::tf32 allows TF32 tensor cores, as PyTorch's allow_tf32), widening a bf16 operand
// exactly into scratch first; compute BF16 rounds fp32 operands to bf16 in scratch (RNE, the
// CPU's rounding) and runs bf16 tensor-core GEMM with fp32 accumulation. C is always fp32.
// Exact GELU has no cuBLASLt epilogue (cuBLASLt's GELU is the tanh approximation), so GELU and any
// stored pre-activation run in our epilogue kernel.
#include <cuda_bf16.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "core/dtype.h"
#include "cuda/cublas_loader.h"
#include "gemm_grad.h"
#include "ops_check.h"
#include "cuda/cuda_common.h"
#include "cuda/cuda_ops.h"
#include "cuda/gemm_epilogue.cuh"
#ifdef CZ_DEV_KERNELS
#include "dev/cuda/gemm_narrow8.h"
#endif
#include "core/settings.h"

namespace carzero::cuda {

namespace {

constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr size_t kWorkspaceBytes = size_t(32) << 20;  // cuBLAS recommends 32 MiB on Hopper

// For every (b, i, j) of C (batch, M, N) with row stride ld and batch stride sb:
//   z = (src_zero ? 0 : src_scale * src) + bias[j];  preact = z (when non-null);  c = act(z)
// src is C itself or preact (same layout). Used after a GEMM whose epilogue could not do the work
// and for K = 0 (where C = act(beta C + bias)).
__global__ void gemm_epilogue_kernel(float* c, float* preact, const float* src, const float* bias, float src_scale,
                                     bool src_zero, int act, int64_t batch, int64_t M, int64_t N, int64_t ld,
                                     int64_t sb) {
  // rows over blockIdx.y (one division per row), columns over x (launch with rows_grid)
  const int64_t rows = batch * M;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const int64_t b = r / M, i = r - b * M, base = b * sb + i * ld;
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < N; j += (int64_t)gridDim.x * blockDim.x) {
      const int64_t idx = base + j;
      float z = src_zero ? 0.0f : src_scale * src[idx];
      if (bias) z += bias[j];
      if (preact) preact[idx] = z;
      c[idx] = apply_act(z, act);
    }
  }
}

// Between a strided bf16 C and a dense fp32 copy (batch, M, N): to_dense widens; else narrows,
// c = bf16(act(dense)). Rows go over blockIdx.y (one division per row, not per element).
__global__ void bf16_dense_kernel(__nv_bfloat16* c, float* dense, bool to_dense, int act, int64_t batch, int64_t M,
                                  int64_t N, int64_t ld, int64_t sb) {
  const int64_t rows = batch * M;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const int64_t b = r / M, i = r - b * M;
    __nv_bfloat16* crow = c + b * sb + i * ld;
    float* drow = dense + r * N;
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < N; j += (int64_t)gridDim.x * blockDim.x) {
      if (to_dense)
        drow[j] = __bfloat162float(crow[j]);
      else
        crow[j] = __float2bfloat16(apply_act(drow[j], act));
    }
  }
}

// dst = src over (batch, M, N) with row stride ld and batch stride sb (both buffers alike).
__global__ void strided_copy_kernel(float* dst, const float* src, int64_t batch, int64_t M, int64_t N, int64_t ld,
                                    int64_t sb) {
  const int64_t total = batch * M * N;
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total; t += (int64_t)gridDim.x * blockDim.x) {
    const int64_t j = t % N, r = t / N, i = r % M, b = r / M;
    const int64_t idx = b * sb + i * ld + j;
    dst[idx] = src[idx];
  }
}

// dz (B*M, N) dense = dc * act'(preact) (strided like C)
__global__ void act_grad_kernel(float* dz, const float* dc, const float* preact, int act, int64_t batch, int64_t M,
                                int64_t N, int64_t ld, int64_t sb) {
  const int64_t total = batch * M * N;
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total; t += (int64_t)gridDim.x * blockDim.x) {
    const int64_t j = t % N, r = t / N, i = r % M, b = r / M;
    const int64_t idx = b * sb + i * ld + j;
    const float x = preact[idx];
    float g;
    if (act == 1) {
      g = x > 0.0f ? 1.0f : 0.0f;
    } else {
      const float cdf = 0.5f * (1.0f + erff(x * kInvSqrt2));
      const float pdf = 0.39894228040143267794f * expf(-0.5f * x * x);
      g = cdf + x * pdf;
    }
    dz[t] = dc[idx] * g;
  }
}

// part[chunk, j] = sum over rows r in the chunk of dz[row r, j]; rows = batch * M, row r of item
// b = r / M lives at b * sb + (r % M) * ld.
__global__ void colsum_partial_kernel(double* part, const float* dz, int64_t rows, int64_t M, int64_t N, int64_t ld,
                                      int64_t sb, int64_t rows_per_chunk) {
  const int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (j >= N) return;
  const int64_t r0 = blockIdx.y * rows_per_chunk;
  const int64_t r1 = r0 + rows_per_chunk < rows ? r0 + rows_per_chunk : rows;
  double s = 0.0;
  for (int64_t r = r0; r < r1; ++r) s += dz[(r / M) * sb + (r % M) * ld + j];
  part[blockIdx.y * N + j] = s;
}

__global__ void colsum_finish_kernel(float* dbias, const double* part, int chunks, int64_t N) {
  for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < N; j += (int64_t)gridDim.x * blockDim.x) {
    double s = 0.0;
    for (int c = 0; c < chunks; ++c) s += part[c * N + j];
    dbias[j] += static_cast<float>(s);
  }
}

// ---- handles ---------------------------------------------------------------------------------------
CublasHandles& handles(CudaState& s) {
  if (s.blas) return *s.blas;
  const CublasApi& api = cublas_api();
  auto* h = new CublasHandles();
  try {
    check_cublas(api.create(&h->blas), "cublasCreate");
    check_cublas(api.set_stream(h->blas, s.stream), "cublasSetStream");
    check_cublas(api.set_math_mode(h->blas, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
    s.blas_workspace = device_alloc(s, kWorkspaceBytes);
    s.blas_workspace_bytes = kWorkspaceBytes;
    if (api.set_workspace)
      check_cublas(api.set_workspace(h->blas, s.blas_workspace, s.blas_workspace_bytes), "cublasSetWorkspace");
    if (api.has_lt()) check_cublas(api.lt_create(&h->lt), "cublasLtCreate");
  } catch (...) {
    if (h->blas) api.destroy(h->blas);
    if (s.blas_workspace) device_free(s, s.blas_workspace), s.blas_workspace = nullptr;
    delete h;
    throw;
  }
  s.blas = h;
  return *h;
}

// Largest power of two (<= 256) dividing the address and, for batched operands, the batch stride.
uint32_t alignment_of(const void* p, int64_t stride_elems, size_t elem, int64_t batch) {
  uint64_t v = reinterpret_cast<uint64_t>(p) | 256u;
  if (batch > 1 && stride_elems > 0) v |= static_cast<uint64_t>(stride_elems) * elem;
  return static_cast<uint32_t>(v & (~v + 1));
}

// One column-major GEMM as cuBLAS sees it.
struct ColMajorGemm {
  int transa, transb;
  int64_t m, n, k;
  const void* A;
  int a_type;
  int64_t lda, stride_a;
  const void* B;
  int b_type;
  int64_t ldb, stride_b;
  void* C;
  int c_type = CUDA_R_32F_;
  int64_t ldc, stride_c;  // also D
  int64_t batch;
  float alpha, beta;
  int compute = CUBLAS_COMPUTE_32F;  // or CUBLAS_COMPUTE_32F_FAST_TF32 (fp32 operands only)
  const void* bias;                  // fused bias (cuBLASLt only), length m
  int bias_type = -1;                // its cudaDataType when not D's (BIAS_DATA_TYPE)
  bool relu;                         // fused ReLU (cuBLASLt only)
};

// Returns false when cuBLASLt cannot run this problem (no library, no algorithm): the caller then
// uses cuBLAS and does the epilogue itself.
bool run_lt(CudaState& s, const ColMajorGemm& p) {
  const CublasApi& api = cublas_api();
  CublasHandles& h = handles(s);
  if (!api.has_lt() || !h.lt) return false;
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  struct Cleanup {
    const CublasApi& api;
    cublasLtMatmulDesc_t& d;
    cublasLtMatrixLayout_t &a, &b, &c;
    cublasLtMatmulPreference_t& p;
    ~Cleanup() {
      if (p) api.lt_pref_destroy(p);
      if (c) api.lt_layout_destroy(c);
      if (b) api.lt_layout_destroy(b);
      if (a) api.lt_layout_destroy(a);
      if (d) api.lt_desc_destroy(d);
    }
  } cleanup{api, desc, la, lb, lc, pref};
  check_cublas(api.lt_desc_create(&desc, p.compute, CUDA_R_32F_), "cublasLtMatmulDescCreate");
  const int32_t ta = p.transa, tb = p.transb;
  check_cublas(api.lt_desc_set(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta),
               "cublasLtMatmulDescSetAttribute(TRANSA)");
  check_cublas(api.lt_desc_set(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb),
               "cublasLtMatmulDescSetAttribute(TRANSB)");
  uint32_t epi = p.bias ? (p.relu ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS)
                        : (p.relu ? CUBLASLT_EPILOGUE_RELU : CUBLASLT_EPILOGUE_DEFAULT);
  check_cublas(api.lt_desc_set(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi),
               "cublasLtMatmulDescSetAttribute(EPILOGUE)");
  if (p.bias) {
    const void* bp = p.bias;
    check_cublas(api.lt_desc_set(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof bp),
                 "cublasLtMatmulDescSetAttribute(BIAS_POINTER)");
    if (p.bias_type >= 0) {
      const int32_t bt = p.bias_type;
      // an older cuBLASLt may not know the attribute: then this combination is not offered
      if (api.lt_desc_set(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt) != CUBLAS_STATUS_SUCCESS)
        return false;
    }
  }
  // Stored shapes (column-major): op = N means stored (rows = m, cols = k) for A.
  const uint64_t a_rows = p.transa == CUBLAS_OP_N ? p.m : p.k, a_cols = p.transa == CUBLAS_OP_N ? p.k : p.m;
  const uint64_t b_rows = p.transb == CUBLAS_OP_N ? p.k : p.n, b_cols = p.transb == CUBLAS_OP_N ? p.n : p.k;
  check_cublas(api.lt_layout_create(&la, p.a_type, a_rows, a_cols, p.lda), "cublasLtMatrixLayoutCreate(A)");
  check_cublas(api.lt_layout_create(&lb, p.b_type, b_rows, b_cols, p.ldb), "cublasLtMatrixLayoutCreate(B)");
  check_cublas(api.lt_layout_create(&lc, p.c_type, p.m, p.n, p.ldc), "cublasLtMatrixLayoutCreate(C)");
  if (p.batch > 1) {
    const int32_t bc = static_cast<int32_t>(p.batch);
    const int64_t sa = p.stride_a, sb = p.stride_b, sc = p.stride_c;
    check_cublas(api.lt_layout_set(la, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc),
                 "cublasLtMatrixLayoutSetAttribute(A batch)");
    check_cublas(api.lt_layout_set(la, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sa, sizeof sa),
                 "cublasLtMatrixLayoutSetAttribute(A stride)");
    check_cublas(api.lt_layout_set(lb, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc),
                 "cublasLtMatrixLayoutSetAttribute(B batch)");
    check_cublas(api.lt_layout_set(lb, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sb, sizeof sb),
                 "cublasLtMatrixLayoutSetAttribute(B stride)");
    check_cublas(api.lt_layout_set(lc, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc),
                 "cublasLtMatrixLayoutSetAttribute(C batch)");
    check_cublas(api.lt_layout_set(lc, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sc, sizeof sc),
                 "cublasLtMatrixLayoutSetAttribute(C stride)");
  }
  check_cublas(api.lt_pref_create(&pref), "cublasLtMatmulPreferenceCreate");
  const uint64_t ws = s.blas_workspace_bytes;
  check_cublas(api.lt_pref_set(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws),
               "cublasLtMatmulPreferenceSetAttribute(workspace)");
  const size_t ea = p.a_type == CUDA_R_32F_ ? 4 : 2, eb = p.b_type == CUDA_R_32F_ ? 4 : 2;
  const uint32_t al_a = alignment_of(p.A, p.stride_a, ea, p.batch);
  const uint32_t al_b = alignment_of(p.B, p.stride_b, eb, p.batch);
  const uint32_t al_c = alignment_of(p.C, p.stride_c, p.c_type == CUDA_R_32F_ ? 4 : 2, p.batch);
  check_cublas(api.lt_pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a),
               "cublasLtMatmulPreferenceSetAttribute(align A)");
  check_cublas(api.lt_pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b),
               "cublasLtMatmulPreferenceSetAttribute(align B)");
  check_cublas(api.lt_pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof al_c),
               "cublasLtMatmulPreferenceSetAttribute(align C)");
  check_cublas(api.lt_pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof al_c),
               "cublasLtMatmulPreferenceSetAttribute(align D)");
  cublasLtMatmulHeuristicResult_t res[1];
  std::memset(res, 0, sizeof res);
  int found = 0;
  const cublasStatus_t hs = api.lt_heuristic(h.lt, desc, la, lb, lc, lc, pref, 1, res, &found);
  if (hs != CUBLAS_STATUS_SUCCESS || found < 1) return false;  // not supported: use cuBLAS
  check_cublas(api.lt_matmul(h.lt, desc, &p.alpha, p.A, la, p.B, lb, &p.beta, p.C, lc, p.C, lc, &res[0].algo,
                             s.blas_workspace, s.blas_workspace_bytes, s.stream),
               "cublasLtMatmul");
  return true;
}

void run_cublas(CudaState& s, const ColMajorGemm& p) {
  const CublasApi& api = cublas_api();
  CublasHandles& h = handles(s);
  CZ_REQUIRE(p.m <= INT_MAX && p.n <= INT_MAX && p.k <= INT_MAX && p.lda <= INT_MAX && p.ldb <= INT_MAX &&
                 p.ldc <= INT_MAX && p.batch <= INT_MAX,
             CZ_ERR_UNSUPPORTED, "gemm: sizes beyond 2^31 are not supported by the cuBLAS path");
  check_cublas(api.gemm_strided_batched_ex(h.blas, p.transa, p.transb, static_cast<int>(p.m), static_cast<int>(p.n),
                                           static_cast<int>(p.k), &p.alpha, p.A, p.a_type, static_cast<int>(p.lda),
                                           p.stride_a, p.B, p.b_type, static_cast<int>(p.ldb), p.stride_b, &p.beta, p.C,
                                           p.c_type, static_cast<int>(p.ldc), p.stride_c, static_cast<int>(p.batch),
                                           p.compute, CUBLAS_GEMM_DEFAULT),
               "cublasGemmStridedBatchedEx");
}

bool lt_disabled() { return !settings().cublaslt; }

// A stored operand in the type the GEMM runs in: the original pointer, or a converted copy in
// scratch (same ld and batch stride, the whole strided span converted; padding included).
struct Operand {
  const void* ptr;
  int type;
};
Operand prepare(Exec& ex, CudaState& s, std::optional<Scratch>& buf, const void* p, DType have, DType want,
                int64_t rows, int64_t cols, int64_t ld, int64_t stride, int64_t batch) {
  const int ct = want == DType::F32 ? CUDA_R_32F_ : want == DType::F16 ? CUDA_R_16F_ : CUDA_R_16BF_;
  if (have == want) return {p, ct};
  const int64_t items = stride > 0 ? batch : 1;
  const int64_t span = (items - 1) * stride + (rows - 1) * ld + cols;
  buf.emplace(s, static_cast<size_t>(span) * dtype_size(want));
  convert(ex, buf->get(), want, p, have, span);
  return {buf->get(), ct};
}

// g's A and B in the type the GEMM multiplies (`want`), converted into abuf / bbuf when stored
// otherwise (the scratch lives until the GEMM is queued).
struct Operands {
  Operand a, b;
};
Operands prepare_operands(Exec& ex, CudaState& s, const GemmArgs& g, DType want, std::optional<Scratch>& abuf,
                          std::optional<Scratch>& bbuf) {
  const int64_t a_rows = g.trans_a ? g.k : g.m, a_cols = g.trans_a ? g.m : g.k;
  const int64_t b_rows = g.trans_b ? g.n : g.k, b_cols = g.trans_b ? g.k : g.n;
  return {prepare(ex, s, abuf, g.a, g.a_type, want, a_rows, a_cols, g.lda, g.stride_a, g.batch),
          prepare(ex, s, bbuf, g.b, g.b_type, want, b_rows, b_cols, g.ldb, g.stride_b, g.batch)};
}

// The column-major GEMM cuBLAS sees for g (operands already in the type it multiplies), writing dst.
ColMajorGemm col_major(const GemmArgs& g, const Operand& A, const Operand& B, void* dst) {
  ColMajorGemm p;
  p.transa = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  p.transb = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  p.m = g.n, p.n = g.m, p.k = g.k;
  p.A = B.ptr, p.a_type = B.type, p.lda = g.ldb, p.stride_a = g.stride_b;
  p.B = A.ptr, p.b_type = A.type, p.ldb = g.lda, p.stride_b = g.stride_a;
  p.C = dst, p.c_type = g.c_type == DType::BF16 ? CUDA_R_16BF_ : CUDA_R_32F_, p.ldc = g.ldc, p.stride_c = g.stride_c;
  p.batch = g.batch, p.alpha = g.alpha, p.beta = g.beta;
  p.compute = g.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;  // (tf32: compute F32, checked)
  p.bias = nullptr, p.relu = false;
  return p;
}

// c = bf16(act(float(c))) in place over (batch, M, N), row stride ld, batch stride sb.
__global__ void bf16_act_kernel(__nv_bfloat16* c, int act, int64_t batch, int64_t M, int64_t N, int64_t ld,
                                int64_t sb) {
  const int64_t rows = batch * M;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const int64_t b = r / M, i = r - b * M;
    __nv_bfloat16* crow = c + b * sb + i * ld;
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < N; j += (int64_t)gridDim.x * blockDim.x)
      crow[j] = __float2bfloat16(apply_act(__bfloat162float(crow[j]), act));
  }
}

// A bf16 C with a bias and/or an activation at bf16 compute, at PyTorch autocast's rounding points
// (issue 15; docs/PRECISION.md): one cuBLASLt GEMM writing bf16 D with the fp32 bias in its
// epilogue (CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE) and ReLU fused; GELU then runs on the bf16 value
// (exact erf GELU, rounded again). Autocast also rounds the bias to bf16; we do not: in a float64
// emulation of the ViT (tools/reference/vit_rounding_emulation.py) that rounding took the tiny
// fixture's image error above autocast's (1.03x), the fp32 bias did not (0.99x; full-size model
// 0.91x). False when cuBLASLt offers no algorithm for it (nothing was written): the caller then
// takes the fp32-product path.
bool gemm_bf16_direct(Exec& ex, CudaState& s, const GemmArgs& g) {
  // (a bf16 C never has a stored pre-activation: check_gemm_args refuses it)
  if (lt_disabled() || settings().gemm_bf16_c_dense) return false;
  if (g.bias && reinterpret_cast<uintptr_t>(g.bias) % 16 != 0) return false;
  std::optional<Scratch> abuf, bbuf;
  const Operands ab = prepare_operands(ex, s, g, DType::BF16, abuf, bbuf);
  ColMajorGemm p = col_major(g, ab.a, ab.b, g.c);
  p.relu = g.act == Act::Relu;
  if (g.bias) p.bias = g.bias, p.bias_type = CUDA_R_32F_;
  if (!run_lt(s, p)) return false;
  if (g.act == Act::Gelu) {
    bf16_act_kernel<<<rows_grid(g.batch * g.m, g.n, 256), 256, 0, s.stream>>>(
        static_cast<__nv_bfloat16*>(g.c), static_cast<int>(g.act), g.batch, g.m, g.n, g.ldc, g.stride_c);
    check_launch("bf16_act_kernel");
  }
  return true;
}

}  // namespace

void gemm(Exec& ex, const GemmArgs& g) {
  check_gemm_args(g, "gemm");
  if (g.batch == 0 || g.m == 0 || g.n == 0) return;
  CudaState& s = state(ex);
  const int act = static_cast<int>(g.act);
  const int64_t total = g.batch * g.m * g.n;
  const bool c16 = g.c_type == DType::BF16;
  if (c16 && g.compute == DType::BF16 && g.k > 0 && (g.bias || g.act != Act::None) && gemm_bf16_direct(ex, s, g))
    return;
  if (c16 && (g.compute != DType::BF16 || g.k == 0 || g.bias || g.act != Act::None)) {
    // (compute F16 with a bf16 C lands here too: fp16 operands, fp32 product, one rounding)
    // A bf16 C that needs more than the bare product (a bias, an activation) and that the direct
    // path above did not take (CARZERO_GEMM_BF16_C=dense, cuBLASLt missing or without an
    // algorithm, a bias not 16-byte aligned), or fp32 compute, or nothing to multiply: the fp32 GEMM (bias fused in
    // fp32) into a dense fp32 copy of C (widened first when beta reads it), then c = bf16(act(.)): one rounding, as on
    // the CPU.
    Scratch dense(s, static_cast<size_t>(total) * sizeof(float));
    auto* c = static_cast<__nv_bfloat16*>(g.c);
    const dim3 grid = rows_grid(g.batch * g.m, g.n, 256);
    if (g.beta != 0.0f) {
      bf16_dense_kernel<<<grid, 256, 0, s.stream>>>(c, dense.as<float>(), true, 0, g.batch, g.m, g.n, g.ldc,
                                                    g.stride_c);
      check_launch("bf16_dense_kernel");
    }
    GemmArgs f = g;
    f.c = dense.get(), f.c_type = DType::F32, f.ldc = g.n, f.stride_c = g.m * g.n;
    f.act = Act::None, f.preact = nullptr;
    gemm(ex, f);
#ifdef CZ_DEV_KERNELS
    if (settings().gemm_narrow_vec && gemm_narrow8_dev(s, c, dense.as<float>(), act, g)) return;
#else
    CZ_REQUIRE(!settings().gemm_narrow_vec, CZ_ERR_UNSUPPORTED,
               "CARZERO_GEMM_NARROW=vec: the 8-column rounding kernel is an experiment of native/dev, in builds "
               "configured with -DCARZERO_DEV_KERNELS=ON only");
#endif
    bf16_dense_kernel<<<grid, 256, 0, s.stream>>>(c, dense.as<float>(), false, act, g.batch, g.m, g.n, g.ldc,
                                                  g.stride_c);
    check_launch("bf16_dense_kernel");
    return;
  }
  if (g.k == 0) {  // C = act(beta C + bias): alpha A B is an empty sum
    float* c = static_cast<float*>(g.c);
    gemm_epilogue_kernel<<<rows_grid(g.batch * g.m, g.n, 256), 256, 0, s.stream>>>(
        c, g.preact, c, g.bias, g.beta, g.beta == 0.0f, act, g.batch, g.m, g.n, g.ldc, g.stride_c);
    check_launch("gemm_epilogue_kernel");
    return;
  }
  // Operands in the GEMM's type (scratch conversions live until the GEMM is queued).
  const DType want = g.compute;  // F32, BF16 or F16: the type cuBLAS multiplies
  std::optional<Scratch> abuf, bbuf;
  const Operands ab = prepare_operands(ex, s, g, want, abuf, bbuf);

  // Where the GEMM writes: C, or preact when the pre-activation must be kept (then C = act(preact)).
  void* dst = g.c;
  if (g.act != Act::None && g.preact) {  // (F32 C only: check_gemm_args)
    dst = g.preact;
    if (g.beta != 0.0f) {  // beta C must enter the product: start preact from C
      strided_copy_kernel<<<grid_for(total, 256, s), 256, 0, s.stream>>>(g.preact, static_cast<const float*>(g.c),
                                                                         g.batch, g.m, g.n, g.ldc, g.stride_c);
      check_launch("strided_copy_kernel");
    }
  }
  ColMajorGemm p = col_major(g, ab.a, ab.b, dst);
  // Fuse what cuBLASLt can: the bias (16-byte aligned), and ReLU when C is the destination.
  const bool bias_ok = g.bias && (reinterpret_cast<uintptr_t>(g.bias) % 16 == 0);
  p.bias = bias_ok ? g.bias : nullptr;
  p.relu = g.act == Act::Relu && dst == g.c;
  bool fused = !lt_disabled() && run_lt(s, p);
  if (!fused) {
    p.bias = nullptr, p.relu = false;
    run_cublas(s, p);
  }
  // What is left for our epilogue: the bias (if not fused), the activation (unless fused ReLU).
  const float* bias_left = (fused && p.bias) ? nullptr : g.bias;
  const bool act_left = g.act != Act::None && !(fused && p.relu);
  if (bias_left || act_left) {  // (an F32 C: a bf16 C with work left went the dense way)
    gemm_epilogue_kernel<<<rows_grid(g.batch * g.m, g.n, 256), 256, 0, s.stream>>>(
        static_cast<float*>(g.c), (dst == g.preact && bias_left) ? g.preact : nullptr, static_cast<const float*>(dst),
        bias_left, 1.0f, false, act_left ? act : 0, g.batch, g.m, g.n, g.ldc, g.stride_c);
    check_launch("gemm_epilogue_kernel");
  }
}

void gemm_backward(Exec& ex, const GemmArgs& f, const float* dc, float* da, float* db, float* dbias) {
  check_gemm_args(f, "gemm_backward");
  CZ_ARG(f.a_type == DType::F32 && f.b_type == DType::F32,
         "gemm_backward: only F32 operands are supported (a_type %s, b_type %s)", dtype_name(f.a_type),
         dtype_name(f.b_type));
  CZ_ARG(f.c_type == DType::F32, "gemm_backward: c_type %s: only an F32 C is supported", dtype_name(f.c_type));
  CZ_ARG(f.beta == 0.0f, "gemm_backward: beta (%g) must have been 0 in the forward", static_cast<double>(f.beta));
  const int64_t M = f.m, N = f.n, B = f.batch;
  if (B == 0 || M == 0 || N == 0) return;
  CZ_ARG(dc, "gemm_backward: dc is null with m (%lld) x n (%lld) > 0", (long long)M, (long long)N);
  CZ_ARG(f.act == Act::None || f.preact, "gemm_backward: preact is null but act is %d (the forward must store it)",
         static_cast<int>(f.act));
  CudaState& s = state(ex);

  // dZ (B, M, N): dC itself without activation, else dC * act'(preact), dense in scratch.
  const float* dz = dc;
  int64_t ld_dz = f.ldc, stride_dz = f.stride_c;
  Scratch dzbuf(s, f.act != Act::None ? static_cast<size_t>(B * M * N) * sizeof(float) : 0);
  if (f.act != Act::None) {
    act_grad_kernel<<<grid_for(B * M * N, 256, s), 256, 0, s.stream>>>(
        dzbuf.as<float>(), dc, f.preact, static_cast<int>(f.act), B, M, N, f.ldc, f.stride_c);
    check_launch("act_grad_kernel");
    dz = dzbuf.as<float>();
    ld_dz = N;
    stride_dz = M * N;
  }
  if (dbias) {
    const int64_t rows = B * M;
    const int64_t chunks = std::min<int64_t>(std::max<int64_t>(1, rows / 64), 256);
    const int64_t per = (rows + chunks - 1) / chunks;
    Scratch part(s, static_cast<size_t>(chunks * N) * sizeof(double));
    dim3 grid(static_cast<unsigned>((N + 127) / 128), static_cast<unsigned>(chunks));
    colsum_partial_kernel<<<grid, 128, 0, s.stream>>>(part.as<double>(), dz, rows, M, N, ld_dz, stride_dz, per);
    check_launch("colsum_partial_kernel");
    colsum_finish_kernel<<<grid_for(N, 256, s), 256, 0, s.stream>>>(dbias, part.as<double>(), static_cast<int>(chunks),
                                                                    N);
    check_launch("colsum_finish_kernel");
  }
  gemm_backward_products(ex, gemm, f, dz, ld_dz, stride_dz, da, db);
}

}  // namespace carzero::cuda
