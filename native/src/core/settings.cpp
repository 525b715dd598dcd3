// settings.cpp: see settings.h. The only file of native/src that calls getenv.
#include "core/settings.h"

#include <cstdlib>
#include <cstring>
#include <mutex>

namespace carzero {

namespace {

std::string str(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

bool is(const char* name, const char* value) {
  const char* v = std::getenv(name);
  return v && std::strcmp(v, value) == 0;
}

Settings read_environment() {
  Settings s;
  s.cpu = str("CARZERO_CPU");
  if (const std::string n = str("CARZERO_NUM_THREADS"); !n.empty()) {
    const long v = std::strtol(n.c_str(), nullptr, 10);
    if (v > 0 && v <= 1024) s.num_threads = static_cast<int>(v);
  }
  s.gemm_prepack = !is("CARZERO_GEMM_PREPACK", "0");
  if (const std::string m = str("CARZERO_MIXED_ATTENTION"); !m.empty()) s.mixed_attention = m == "0" ? 0 : 1;
  s.vit_bf16_acts = is("CARZERO_VIT_BF16_ACTS", "1");
  s.cublas_path = str("CARZERO_CUBLAS_PATH");
  s.cublaslt = !is("CARZERO_CUBLASLT", "0");
  s.nccl_path = str("CARZERO_NCCL_PATH");
  s.cuda_home = str("CUDA_HOME");
  s.cuda_path = str("CUDA_PATH");
  s.conda_prefix = str("CONDA_PREFIX");
  s.virtual_env = str("VIRTUAL_ENV");
  s.home = str("HOME");
  s.attn_kernel = str("CARZERO_ATTN_KERNEL");
  s.gemm_narrow_vec = is("CARZERO_GEMM_NARROW", "vec");
  s.gemm_bf16_c_dense = is("CARZERO_GEMM_BF16_C", "dense");
  return s;
}

Settings g_settings;
std::once_flag g_once;

}  // namespace

const Settings& settings() {
  std::call_once(g_once, [] { g_settings = read_environment(); });
  return g_settings;
}

void reload_settings() {
  settings();  // the first read, if it has not happened
  g_settings = read_environment();
}

}  // namespace carzero
