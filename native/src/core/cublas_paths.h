// cublas_paths.h: where cuBLAS is looked for, in order, and how one candidate is opened. Shared by
// the availability probe (core/info.cpp) and the CUDA backend's loader (cuda/cublas_loader.cpp),
// so `carzero info` reports the library the backend will use.
//
// Order: CARZERO_CUBLAS_PATH (a libcublas file, or a folder holding one); libcublas.so.13 and .12
// through the dynamic loader's own search (LD_LIBRARY_PATH, the ldconfig cache); the CUDA toolkit
// ($CUDA_HOME/lib64, $CUDA_PATH/lib64, /usr/local/cuda/lib64, /usr/local/cuda-*/lib64); conda's
// $CONDA_PREFIX/lib; the pip wheels PyTorch installs (nvidia-cublas: site-packages/nvidia/cu13/lib,
// nvidia-cublas-cu12: site-packages/nvidia/cublas/lib) under $VIRTUAL_ENV, $CONDA_PREFIX,
// ~/.local, /usr/local, /usr and /opt/conda. Folder candidates are listed only when the file exists.
#pragma once
#include <string>
#include <vector>

namespace carzero {

std::vector<std::string> cublas_candidates();

// dlopen(RTLD_NOW | RTLD_LOCAL) of one candidate. For a path, libcublasLt from the same folder is
// opened first, so libcublas's own dependency on it resolves there even when that folder is not
// on the loader's path (the pip wheels and toolkit folders). Returns nullptr and sets *error.
void* open_cublas(const std::string& candidate, std::string* error);

// "libcublasLt.so.13" beside "/x/libcublas.so.13" ("" when the name has no "libcublas.").
std::string cublaslt_sibling(const std::string& cublas);

}  // namespace carzero
