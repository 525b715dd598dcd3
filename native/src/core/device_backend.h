// device_backend.h: what a non-CPU device provides to a Context: memory (allocate, free, copy,
// zero), an execution state for its op table, and synchronisation. The CUDA backend implements
// it in native/src/cuda/; builds without CUDA get a factory that explains why there is none.
#pragma once
#include <cstddef>
#include <memory>

#include "ops.h"

namespace carzero {

class DeviceBackend {
 public:
  virtual ~DeviceBackend() = default;
  virtual const char* name() const = 0;  // "cuda"
  // Device allocations; errors (out of memory included) throw carzero::Error naming the call.
  virtual void* alloc(size_t nbytes) = 0;
  virtual void free(void* p) noexcept = 0;
  virtual void upload(void* dst, const void* src, size_t nbytes) = 0;
  virtual void download(void* dst, const void* src, size_t nbytes) = 0;
  virtual void zero(void* dst, size_t nbytes) = 0;
  virtual void synchronize() = 0;
  virtual const OpTable& ops() const = 0;
  virtual Exec& exec() = 0;
};

// The CUDA backend for device `index`. Throws Error(CZ_ERR_UNSUPPORTED, why) when the build has
// no CUDA or the machine cannot run it, Error(CZ_ERR_CUDA, ...) when initialisation fails.
std::shared_ptr<DeviceBackend> create_cuda_backend(int index);

}  // namespace carzero
