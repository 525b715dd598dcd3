// device_backend.h: what a non-CPU device provides to a Context: memory (allocate, free, copy,
// zero), an execution state for its op table, and synchronisation. The CUDA backend implements
// it in native/src/cuda/; builds without CUDA get a factory that explains why there is none.
#pragma once
#include <cstddef>
#include <memory>
#include <vector>

#include "exec.h"

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
  // Data-parallel collectives across processes (CUDA: NCCL opened at run time). collective_init
  // joins the group `id` (from collective_unique_id() in rank 0, passed to every rank) as `rank`
  // of `world`; all_reduce_sum sums n floats in place over the ranks, ordered on the device's
  // stream. Backends without collectives throw CZ_ERR_UNSUPPORTED.
  virtual void collective_init(const std::vector<uint8_t>& id, int rank, int world);
  virtual void all_reduce_sum(float* p, size_t n);
  // Device memory of this backend's allocator: bytes held by live allocations, bytes cached for
  // reuse, and the most bytes live at once since the last reset (reset_peak: start anew at the
  // current live bytes, after reading). Backends without an allocator of their own report zeros.
  struct MemoryStats {
    size_t in_use = 0, cached = 0, peak_in_use = 0;
  };
  virtual MemoryStats memory_stats(bool reset_peak) {
    (void)reset_peak;
    return {};
  }
  // Returns the allocator's cached (freed, kept for reuse) blocks to the device; waits for the
  // device's queued work first. No-op without a cache.
  virtual void release_cached() noexcept {}
};

// A new unique id for collective_init (CUDA builds: ncclGetUniqueId; NCCL must be loadable).
std::vector<uint8_t> collective_unique_id();

// The CUDA backend for device `index`. Throws Error(CZ_ERR_UNSUPPORTED, why) when the build has
// no CUDA or the machine cannot run it, Error(CZ_ERR_CUDA, ...) when initialisation fails.
std::shared_ptr<DeviceBackend> create_cuda_backend(int index);

}  // namespace carzero
