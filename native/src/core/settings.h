// settings.h: every environment variable the native code reads, parsed in one place (settings.cpp)
// into one struct. Kernels, backends and model code ask settings() instead of calling getenv, so
// a newcomer finds each switch here and in docs/ARCHITECTURE.md's table ("Environment variables").
//
// The variables are read once, on the first call of settings() in a process. Harnesses that
// change a variable inside one process (native/bench: a kernel choice per timing row) call
// reload_settings() afterwards, while no other thread runs native work.
#pragma once
#include <string>

namespace carzero {

struct Settings {
  // ---- CPU ----
  std::string cpu;           // CARZERO_CPU: "generic", "avx2" or "avx512" caps the kernel level ("": none)
  int num_threads = 0;       // CARZERO_NUM_THREADS: default pool size, 1..1024 (0: the online CPUs)
  bool gemm_prepack = true;  // CARZERO_GEMM_PREPACK=0: inference GEMMs pack weight panels per call
  // ---- model paths ----
  int mixed_attention = -1;    // CARZERO_MIXED_ATTENTION: -1 unset (GPU only), 0 off, 1 on the CPU too
  bool vit_bf16_acts = false;  // CARZERO_VIT_BF16_ACTS=1: the ViT's bf16-activation path on the CPU too
  // ---- CUDA libraries, opened at run time ----
  std::string cublas_path;  // CARZERO_CUBLAS_PATH: a libcublas file, or a folder holding one
  bool cublaslt = true;     // CARZERO_CUBLASLT=0: no cuBLASLt (cuBLAS plus our epilogue kernel)
  std::string nccl_path;    // CARZERO_NCCL_PATH: the NCCL library for data-parallel training
  // Where a CUDA toolkit, conda or pip environment may hold cuBLAS (core/cublas_paths.cpp).
  std::string cuda_home;     // CUDA_HOME
  std::string cuda_path;     // CUDA_PATH
  std::string conda_prefix;  // CONDA_PREFIX
  std::string virtual_env;   // VIRTUAL_ENV
  std::string home;          // HOME (~/.local pip installs)
  // ---- CUDA kernel choices ----
  std::string attn_kernel;       // CARZERO_ATTN_KERNEL: 16-bit attention forward ("": the default)
  bool gemm_narrow_vec = false;  // CARZERO_GEMM_NARROW=vec: the 8-column bf16 rounding kernel
  // CARZERO_GEMM_BF16_C=dense: a bf16-C GEMM with a bias or an activation goes through an fp32
  // product and one rounding kernel (one rounding) instead of cuBLASLt's bf16 D with the bias in
  // its epilogue and GELU on the bf16 value (autocast's rounding points, the default)
  bool gemm_bf16_c_dense = false;
};

// The settings of this process, read from the environment on first use.
const Settings& settings();

// Reads the environment again (single-threaded harnesses only; see the top of this file).
void reload_settings();

}  // namespace carzero
