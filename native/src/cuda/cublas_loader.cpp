// cublas_loader.cpp: see cublas_loader.h.
#include "cuda/cublas_loader.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <vector>

#include "core/cublas_paths.h"
#include "core/status.h"
#include "core/settings.h"

namespace carzero::cuda {

namespace {

template <class F>
void sym(void* lib, const char* name, F& out, bool required, std::string* missing) {
  out = reinterpret_cast<F>(dlsym(lib, name));
  if (!out && required) *missing += std::string(missing->empty() ? "" : ", ") + name;
}

struct Loaded {
  CublasApi api;
  std::string error;  // non-empty when loading failed
};

Loaded load() {
  Loaded L;
  void* lib = nullptr;
  std::string tried;
  for (const auto& c : cublas_candidates()) {
    // RTLD_GLOBAL is not needed: we only dlsym from the handles we hold.
    std::string err;
    lib = open_cublas(c, &err);
    if (lib) {
      L.api.path = c;
      break;
    }
    tried += (tried.empty() ? "" : "; ") + c + " (" + err + ")";
  }
  if (!lib) {
    L.error = "cuBLAS not found (tried " + tried + ")";
    return L;
  }
  std::string missing;
  CublasApi& a = L.api;
  sym(lib, "cublasCreate_v2", a.create, true, &missing);
  sym(lib, "cublasDestroy_v2", a.destroy, true, &missing);
  sym(lib, "cublasSetStream_v2", a.set_stream, true, &missing);
  sym(lib, "cublasSetWorkspace_v2", a.set_workspace, false, &missing);
  sym(lib, "cublasSetMathMode", a.set_math_mode, true, &missing);
  sym(lib, "cublasGetStatusString", a.status_string, false, &missing);
  sym(lib, "cublasGemmStridedBatchedEx", a.gemm_strided_batched_ex, true, &missing);
  if (!missing.empty()) {
    L.error = L.api.path + " lacks " + missing;
    return L;
  }
  // cuBLASLt: optional (GEMM falls back to cuBLAS plus our epilogue kernel). CARZERO_CUBLASLT=0
  // disables it (A/B comparisons, or a cuBLASLt regression on some version).
  if (!settings().cublaslt) return L;
  std::vector<std::string> lt_candidates;
  if (std::string p = cublaslt_sibling(a.path); !p.empty()) lt_candidates.push_back(p);
  lt_candidates.push_back("libcublasLt.so.13");
  lt_candidates.push_back("libcublasLt.so.12");
  void* lt = nullptr;
  for (const auto& c : lt_candidates)
    if ((lt = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL))) {
      a.lt_path = c;
      break;
    }
  if (!lt) return L;
  std::string lt_missing;
  sym(lt, "cublasLtCreate", a.lt_create, true, &lt_missing);
  sym(lt, "cublasLtDestroy", a.lt_destroy, true, &lt_missing);
  sym(lt, "cublasLtMatmulDescCreate", a.lt_desc_create, true, &lt_missing);
  sym(lt, "cublasLtMatmulDescDestroy", a.lt_desc_destroy, true, &lt_missing);
  sym(lt, "cublasLtMatmulDescSetAttribute", a.lt_desc_set, true, &lt_missing);
  sym(lt, "cublasLtMatrixLayoutCreate", a.lt_layout_create, true, &lt_missing);
  sym(lt, "cublasLtMatrixLayoutDestroy", a.lt_layout_destroy, true, &lt_missing);
  sym(lt, "cublasLtMatrixLayoutSetAttribute", a.lt_layout_set, true, &lt_missing);
  sym(lt, "cublasLtMatmulPreferenceCreate", a.lt_pref_create, true, &lt_missing);
  sym(lt, "cublasLtMatmulPreferenceDestroy", a.lt_pref_destroy, true, &lt_missing);
  sym(lt, "cublasLtMatmulPreferenceSetAttribute", a.lt_pref_set, true, &lt_missing);
  sym(lt, "cublasLtMatmulAlgoGetHeuristic", a.lt_heuristic, true, &lt_missing);
  sym(lt, "cublasLtMatmul", a.lt_matmul, true, &lt_missing);
  if (!lt_missing.empty()) {  // unusable: keep the plain cuBLAS path
    a.lt_create = nullptr;
    a.lt_matmul = nullptr;
    a.lt_path.clear();
  }
  return L;
}

}  // namespace

const CublasApi& cublas_api() {
  static const Loaded loaded = load();  // thread-safe one-time initialisation
  CZ_REQUIRE(loaded.error.empty(), CZ_ERR_UNSUPPORTED, "cuda: %s", loaded.error.c_str());
  return loaded.api;
}

const char* cublas_status_name(cublasStatus_t st) {
  switch (st) {
    case 0: return "CUBLAS_STATUS_SUCCESS";
    case 1: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case 3: return "CUBLAS_STATUS_ALLOC_FAILED";
    case 7: return "CUBLAS_STATUS_INVALID_VALUE";
    case 8: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case 11: return "CUBLAS_STATUS_MAPPING_ERROR";
    case 13: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case 14: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case 15: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case 16: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "CUBLAS_STATUS_UNKNOWN";
  }
}

void check_cublas(cublasStatus_t st, const char* call) {
  if (st == CUBLAS_STATUS_SUCCESS) return;
  throw_error(st == CUBLAS_STATUS_ALLOC_FAILED ? CZ_ERR_OUT_OF_MEMORY : CZ_ERR_CUDA, "%s failed: %s (%d)", call,
              cublas_status_name(st), st);
}

}  // namespace carzero::cuda
