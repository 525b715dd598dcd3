// backend_cuda.cpp: the CUDA backend of the op-parity harness. Compiled in every build: without
// CARZERO_WITH_CUDA, or on a machine without a usable GPU/driver/cuBLAS, make_cuda_backend says
// why and the CUDA cases are skipped.
#include <memory>

#include "core/context.h"
#include "core/device_backend.h"
#include "harness.h"

namespace cztest {

namespace {

carzero::DeviceBackend* dev(void* ctx) { return static_cast<carzero::DeviceBackend*>(ctx); }

void* cuda_alloc(void* ctx, size_t bytes) { return dev(ctx)->alloc(bytes); }
void cuda_free(void* ctx, void* p) { dev(ctx)->free(p); }
void cuda_upload(void* ctx, void* dst, const void* src, size_t bytes) { dev(ctx)->upload(dst, src, bytes); }
void cuda_download(void* ctx, void* dst, const void* src, size_t bytes) { dev(ctx)->download(dst, src, bytes); }

}  // namespace

bool make_cuda_backend(Backend* out, std::string* why) {
#ifndef CARZERO_WITH_CUDA
  *why = "this build has no CUDA backend (configure with -DCARZERO_CUDA=ON or AUTO with nvcc)";
  (void)out;
  return false;
#else
  const carzero::CudaStatus& cs = carzero::cuda_status();
  if (!cs.available) {
    *why = cs.reason;
    return false;
  }
  static std::shared_ptr<carzero::DeviceBackend> be;  // lives for the whole test run
  try {
    if (!be) be = carzero::create_cuda_backend(0);
  } catch (const carzero::Error& e) {
    *why = e.what();
    return false;
  }
  out->name = "cuda";
  out->ops = &be->ops();
  out->exec = be->exec();
  out->ctx = be.get();
  out->alloc = cuda_alloc;
  out->free = cuda_free;
  out->upload = cuda_upload;
  out->download = cuda_download;
  out->gemm_isa = nullptr;  // no ISA levels: those cases are skipped
  return true;
#endif
}

}  // namespace cztest
