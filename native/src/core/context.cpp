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
    CZ_ARG(device_index < cs.device_count, "cuda device_index %d: only %d device(s)", device_index, cs.device_count);
    std::unique_ptr<Context> ctx(new Context());
    ctx->device_ = device;
    ctx->device_index_ = device_index;
    ctx->backend_ = create_cuda_backend(device_index);
    ctx->ops_ = &ctx->backend_->ops();
    ctx->exec_ = ctx->backend_->exec();
    // Host-side helpers of device ops (reductions of small results) use the default pool.
    ctx->exec_.pool = &default_pool();
    return ctx;
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
  if (!backend_) return Tensor::empty_host(dtype, std::move(shape), zero);
  int64_t n = checked_numel(shape, "shape");
  size_t nbytes = static_cast<size_t>(n) * dtype_size(dtype);
  auto s = std::make_shared<Storage>();
  s->data = backend_->alloc(nbytes);
  s->nbytes = nbytes;
  s->device = device_;
  s->device_index = device_index_;
  std::shared_ptr<DeviceBackend> be = backend_;  // the storage keeps its backend alive
  s->release = [be](void* p) { be->free(p); };
  if (zero && nbytes) backend_->zero(s->data, nbytes);
  return Tensor::wrap(std::move(s), 0, dtype, std::move(shape));
}

void Context::synchronize() {
  if (backend_) backend_->synchronize();
}

void Context::release_cached() noexcept {
  if (backend_) backend_->release_cached();
}

void Context::upload(const Tensor& dst, const void* src, size_t nbytes) {
  CZ_ARG(nbytes == dst.nbytes(), "upload: %zu bytes given for a tensor of %zu bytes", nbytes, dst.nbytes());
  if (!nbytes) return;
  if (backend_)
    backend_->upload(dst.data(), src, nbytes);
  else
    std::memcpy(dst.data(), src, nbytes);
}

void Context::download(const Tensor& src, void* dst, size_t nbytes) {
  CZ_ARG(nbytes == src.nbytes(), "download: buffer of %zu bytes for a tensor of %zu bytes", nbytes, src.nbytes());
  if (!nbytes) return;
  if (backend_)
    backend_->download(dst, src.data(), nbytes);
  else
    std::memcpy(dst, src.data(), nbytes);
}

}  // namespace carzero

namespace carzero {
void DeviceBackend::collective_init(const std::vector<uint8_t>&, int, int) {
  throw_error(CZ_ERR_UNSUPPORTED, "collectives: the %s backend has none", name());
}
void DeviceBackend::all_reduce_sum(float*, size_t) {
  throw_error(CZ_ERR_UNSUPPORTED, "collectives: the %s backend has none", name());
}
}  // namespace carzero

#ifndef CARZERO_WITH_CUDA
namespace carzero {
std::shared_ptr<DeviceBackend> create_cuda_backend(int) {
  throw_error(CZ_ERR_UNSUPPORTED, "cuda: this build has no CUDA backend");
}
std::vector<uint8_t> collective_unique_id() {
  throw_error(CZ_ERR_UNSUPPORTED,
              "collectives: this build has no CUDA backend (multi-GPU training needs CUDA and NCCL)");
}
}  // namespace carzero
#endif
