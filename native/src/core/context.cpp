// context.cpp: see context.h.
#include "context.h"

#include <cstring>

#include "status.h"

namespace carzero {

std::unique_ptr<Context> Context::create(DeviceType device, int device_index, int num_threads) {
  CZ_ARG(device_index >= 0, "device_index must be >= 0, got %d", device_index);
  if (device == DeviceType::CUDA) {
    const CudaStatus& cs = cuda_status();
    CZ_REQUIRE(cs.available, CZ_ERR_UNSUPPORTED, "cuda: unavailable (%s)", cs.reason.c_str());
    CZ_REQUIRE(false, CZ_ERR_UNSUPPORTED, "cuda: backend not implemented in this build");
  }
  CZ_ARG(device == DeviceType::CPU, "unknown device %d", static_cast<int>(device));
  CZ_ARG(device_index == 0, "cpu device_index must be 0, got %d", device_index);
  std::unique_ptr<Context> ctx(new Context());
  ctx->device_ = device;
  ctx->device_index_ = device_index;
  ctx->ops_ = &cpu_ops();
  if (num_threads > 0) {
    ctx->own_pool_ = std::make_unique<ThreadPool>(num_threads);
    ctx->exec_.pool = ctx->own_pool_.get();
  } else {
    ctx->exec_.pool = &default_pool();
  }
  return ctx;
}

Tensor Context::alloc(DType dtype, std::vector<int64_t> shape, bool zero) {
  return Tensor::empty_host(dtype, std::move(shape), zero);
}

void Context::upload(const Tensor& dst, const void* src, size_t nbytes) {
  CZ_ARG(nbytes == dst.nbytes(), "upload: %zu bytes given for a tensor of %zu bytes", nbytes,
         dst.nbytes());
  if (nbytes) std::memcpy(dst.data(), src, nbytes);
}

void Context::download(const Tensor& src, void* dst, size_t nbytes) {
  CZ_ARG(nbytes == src.nbytes(), "download: buffer of %zu bytes for a tensor of %zu bytes",
         nbytes, src.nbytes());
  if (nbytes) std::memcpy(dst, src.data(), nbytes);
}

}  // namespace carzero
