// cuda_backend.h: the CUDA device backend (DeviceBackend for a Context): the per-context state
// (stream, cuBLAS handles and workspace, caching allocator, pinned scratch) and a CUDA-graph
// helper for fixed-shape inference. Nothing here is process-global except the dlopen'ed cuBLAS.
#pragma once
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/device_backend.h"
#include "cuda/cuda_common.h"

namespace carzero::cuda {

// A caching device allocator (no cudaMalloc per op): freed blocks are kept in size-ordered free
// lists and handed out again; all work of a backend is ordered on its one stream, so a block
// freed on the host may be reused by later work at once. On out-of-memory the cache is released
// and the allocation retried once before an Error(CZ_ERR_OUT_OF_MEMORY) naming cudaMalloc.
// While a CUDA graph is captured, freed blocks are parked with the graph (its replays still use
// them) instead of returning to the cache.
class CachingAllocator {
 public:
  explicit CachingAllocator(int device) : device_(device) {}
  ~CachingAllocator();
  void* alloc(size_t bytes);
  void free(void* p) noexcept;
  void release_cache() noexcept;  // cudaFree every cached block (synchronises the device)
  // Graph capture: blocks freed between begin_park and end_park are returned by end_park.
  void begin_park();
  std::vector<void*> end_park();
  void free_parked(const std::vector<void*>& blocks) noexcept;
  size_t bytes_in_use() const;
  size_t bytes_cached() const;
  size_t peak_bytes_in_use(bool reset);  // reset: the peak starts anew at the live bytes

 private:
  static size_t round(size_t bytes);
  int device_;
  mutable std::mutex mu_;
  std::multimap<size_t, void*> free_;       // size -> block
  std::unordered_map<void*, size_t> live_;  // block -> size
  size_t cached_bytes_ = 0, live_bytes_ = 0, peak_live_bytes_ = 0;
  bool parking_ = false;
  std::vector<void*> parked_;
};

class CudaBackend final : public DeviceBackend {
 public:
  explicit CudaBackend(int device);
  ~CudaBackend() override;
  const char* name() const override { return "cuda"; }
  void* alloc(size_t nbytes) override;
  void free(void* p) noexcept override;
  void upload(void* dst, const void* src, size_t nbytes) override;
  void download(void* dst, const void* src, size_t nbytes) override;
  void zero(void* dst, size_t nbytes) override;
  void synchronize() override;
  const OpTable& ops() const override;
  Exec& exec() override { return exec_; }
  CudaState& state() { return state_; }
  CachingAllocator& allocator() { return alloc_; }
  // NCCL collectives (nccl.cpp)
  void collective_init(const std::vector<uint8_t>& id, int rank, int world) override;
  void all_reduce_sum(float* p, size_t n) override;
  MemoryStats memory_stats(bool reset_peak) override;
  // Not while a CUDA graph is captured (cudaFree would break the capture; the blocks stay cached).
  void release_cached() noexcept override {
    if (!state_.capturing) alloc_.release_cache();
  }

 private:
  void collective_destroy() noexcept;
  CachingAllocator alloc_;
  CudaState state_;
  Exec exec_;
  void* comm_ = nullptr;  // ncclComm_t
  int world_ = 1;
};

// Captures the ops that `fn` issues on the backend of `ex` into a CUDA graph, replayed with
// replay() (same pointers, same shapes: fixed-shape inference). Ops that would synchronise with
// the host (id checks, sum_squares) skip their host checks or refuse while capturing.
class CudaGraph {
 public:
  CudaGraph(Exec& ex, CachingAllocator& alloc) : ex_(ex), alloc_(alloc) {}
  ~CudaGraph();
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;
  void capture(const std::function<void()>& fn);
  void replay();

 private:
  Exec& ex_;
  CachingAllocator& alloc_;
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
  std::vector<void*> parked_;
};

}  // namespace carzero::cuda
