// cublas_loader.h: cuBLAS and cuBLASLt opened at run time with dlopen (the first of
// core/cublas_paths.h's candidates that opens; cuBLASLt from the same directory), declared by our own
// prototypes so no cuBLAS header or library is needed at build time. The loaded library is
// process-wide (loaded once, thread-safe); handles are per backend (CublasHandles).
// Enum values and signatures follow the cuBLAS 12/13 API reference (cublas_api.h, cublasLt.h).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace carzero::cuda {

// ---- our own declarations of the cuBLAS types we use ------------------------------------------
using cublasStatus_t = int;
using cublasHandle_t = void*;
using cublasLtHandle_t = void*;
using cublasLtMatmulDesc_t = void*;
using cublasLtMatrixLayout_t = void*;
using cublasLtMatmulPreference_t = void*;
struct cublasLtMatmulAlgo_t {
  uint64_t data[8];
};
struct cublasLtMatmulHeuristicResult_t {
  cublasLtMatmulAlgo_t algo;
  size_t workspaceSize;
  cublasStatus_t state;
  float wavesCount;
  int reserved[4];
};
static_assert(sizeof(cublasLtMatmulHeuristicResult_t) == 96, "cuBLASLt heuristic result ABI");

constexpr cublasStatus_t CUBLAS_STATUS_SUCCESS = 0;
constexpr cublasStatus_t CUBLAS_STATUS_ALLOC_FAILED = 3;
constexpr cublasStatus_t CUBLAS_STATUS_NOT_SUPPORTED = 15;
constexpr int CUBLAS_OP_N = 0, CUBLAS_OP_T = 1;
// cudaDataType_t
constexpr int CUDA_R_32F_ = 0, CUDA_R_16F_ = 2, CUDA_R_16BF_ = 14;
// cublasComputeType_t
constexpr int CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_PEDANTIC = 69, CUBLAS_COMPUTE_32F_FAST_TF32 = 77;
// cublasGemmAlgo_t
constexpr int CUBLAS_GEMM_DEFAULT = -1;
// cublasMath_t
constexpr int CUBLAS_DEFAULT_MATH = 0, CUBLAS_PEDANTIC_MATH = 2;
// cublasLtMatmulDescAttributes_t
constexpr int CUBLASLT_MATMUL_DESC_TRANSA = 3, CUBLASLT_MATMUL_DESC_TRANSB = 4, CUBLASLT_MATMUL_DESC_EPILOGUE = 7,
              CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE = 26;
// cublasLtMatrixLayoutAttribute_t
constexpr int CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT = 5, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET = 6;
// cublasLtMatmulPreferenceAttributes_t
constexpr int CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5,
              CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7,
              CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8;
// cublasLtEpilogue_t
constexpr uint32_t CUBLASLT_EPILOGUE_DEFAULT = 1, CUBLASLT_EPILOGUE_RELU = 2, CUBLASLT_EPILOGUE_BIAS = 4,
                   CUBLASLT_EPILOGUE_RELU_BIAS = 6;

// ---- the entry points ------------------------------------------------------------------------------
struct CublasApi {
  std::string path, lt_path;
  cublasStatus_t (*create)(cublasHandle_t*) = nullptr;
  cublasStatus_t (*destroy)(cublasHandle_t) = nullptr;
  cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t) = nullptr;
  cublasStatus_t (*set_workspace)(cublasHandle_t, void*, size_t) = nullptr;  // optional
  cublasStatus_t (*set_math_mode)(cublasHandle_t, int) = nullptr;
  const char* (*status_string)(cublasStatus_t) = nullptr;  // optional
  cublasStatus_t (*gemm_strided_batched_ex)(cublasHandle_t, int transa, int transb, int m, int n, int k,
                                            const void* alpha, const void* A, int Atype, int lda, long long strideA,
                                            const void* B, int Btype, int ldb, long long strideB, const void* beta,
                                            void* C, int Ctype, int ldc, long long strideC, int batchCount,
                                            int computeType, int algo) = nullptr;
  // cuBLASLt (all null when libcublasLt did not open: GEMMs then go through cuBLAS + our epilogue)
  cublasStatus_t (*lt_create)(cublasLtHandle_t*) = nullptr;
  cublasStatus_t (*lt_destroy)(cublasLtHandle_t) = nullptr;
  cublasStatus_t (*lt_desc_create)(cublasLtMatmulDesc_t*, int computeType, int scaleType) = nullptr;
  cublasStatus_t (*lt_desc_destroy)(cublasLtMatmulDesc_t) = nullptr;
  cublasStatus_t (*lt_desc_set)(cublasLtMatmulDesc_t, int attr, const void* buf, size_t) = nullptr;
  cublasStatus_t (*lt_layout_create)(cublasLtMatrixLayout_t*, int type, uint64_t rows, uint64_t cols,
                                     int64_t ld) = nullptr;
  cublasStatus_t (*lt_layout_destroy)(cublasLtMatrixLayout_t) = nullptr;
  cublasStatus_t (*lt_layout_set)(cublasLtMatrixLayout_t, int attr, const void* buf, size_t) = nullptr;
  cublasStatus_t (*lt_pref_create)(cublasLtMatmulPreference_t*) = nullptr;
  cublasStatus_t (*lt_pref_destroy)(cublasLtMatmulPreference_t) = nullptr;
  cublasStatus_t (*lt_pref_set)(cublasLtMatmulPreference_t, int attr, const void* buf, size_t) = nullptr;
  cublasStatus_t (*lt_heuristic)(cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                                 cublasLtMatrixLayout_t, cublasLtMatrixLayout_t, cublasLtMatmulPreference_t,
                                 int requested, cublasLtMatmulHeuristicResult_t* results, int* returned) = nullptr;
  cublasStatus_t (*lt_matmul)(cublasLtHandle_t, cublasLtMatmulDesc_t, const void* alpha, const void* A,
                              cublasLtMatrixLayout_t, const void* B, cublasLtMatrixLayout_t, const void* beta,
                              const void* C, cublasLtMatrixLayout_t, void* D, cublasLtMatrixLayout_t,
                              const cublasLtMatmulAlgo_t* algo, void* workspace, size_t workspaceSize,
                              cudaStream_t stream) = nullptr;
  bool has_lt() const { return lt_matmul != nullptr; }
};

// The process-wide API, loaded on first use; throws Error(CZ_ERR_UNSUPPORTED) naming every path
// tried when cuBLAS cannot be opened.
const CublasApi& cublas_api();

// "cublasXxx failed: CUBLAS_STATUS_... (n)": throws Error (CZ_ERR_OUT_OF_MEMORY for
// CUBLAS_STATUS_ALLOC_FAILED, CZ_ERR_CUDA otherwise).
void check_cublas(cublasStatus_t st, const char* call);
const char* cublas_status_name(cublasStatus_t st);

// Per-backend handles (created on the backend's device, bound to its stream).
struct CublasHandles {
  cublasHandle_t blas = nullptr;
  cublasLtHandle_t lt = nullptr;
};

}  // namespace carzero::cuda
