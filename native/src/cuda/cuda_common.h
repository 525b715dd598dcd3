// cuda_common.h: what every CUDA op file shares: the per-context execution state (CudaState,
// reached through Exec::cuda), error checking that turns every CUDA failure into a carzero::Error
// naming the failing call, argument checks with the same messages as the CPU backend, and launch
// helpers. Included by .cu files (nvcc) and by host .cpp files of the backend.
#pragma once
#include "ops_check.h"
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/status.h"
#include "ops.h"

namespace carzero::cuda {

class CachingAllocator;
struct CublasHandles;

// Per-context state (one per CudaBackend, never process-global): the device, its stream, the
// cuBLAS handles and workspace, the caching allocator, and a pinned host scratch used to read
// back small results (error flags, reductions).
struct CudaState {
  int device = 0;
  int sm_count = 0;
  int cc_major = 0, cc_minor = 0;
  size_t max_smem_optin = 0;  // bytes of shared memory one block may opt into
  cudaStream_t stream = nullptr;
  CachingAllocator* alloc = nullptr;
  CublasHandles* blas = nullptr;   // null until first GEMM (opened lazily)
  void* blas_workspace = nullptr;  // cuBLAS(Lt) workspace (device)
  size_t blas_workspace_bytes = 0;
  void* host_scratch = nullptr;  // pinned, kHostScratchBytes
  bool capturing = false;        // a CUDA graph is being captured: no host syncs allowed
};
constexpr size_t kHostScratchBytes = 4096;

// ---- errors -------------------------------------------------------------------------------------
// Throws Error(CZ_ERR_OUT_OF_MEMORY) for allocation failures, Error(CZ_ERR_CUDA) otherwise; the
// message names the call: "<call> failed: <cuda error string> (<error name>)".
[[noreturn]] void throw_cuda(cudaError_t e, const char* call);
inline void check_cuda(cudaError_t e, const char* call) {
  if (e != cudaSuccess) throw_cuda(e, call);
}
// After a kernel launch: launch-configuration errors surface here (asynchronous faults surface at
// the next synchronising call, which names itself).
void check_launch(const char* kernel);

#define CZ_CUDA(call) ::carzero::cuda::check_cuda((call), #call)

// The state of an Exec, checked, with the context's device made current on this thread (ops may
// run on any thread: N-API async workers).
CudaState& state(Exec& ex);

// Raw blocks from the context's caching allocator (throw on failure).
void* device_alloc(CudaState& s, size_t bytes);
void device_free(CudaState& s, void* p) noexcept;

// Device scratch from the context's caching allocator, released at scope exit (the memory goes
// back to the cache; later work on the same stream is ordered after its last use).
class Scratch {
 public:
  Scratch(CudaState& s, size_t bytes);
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void* get() const { return p_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(p_);
  }

 private:
  CudaState& s_;
  void* p_ = nullptr;
};

// Copies n bytes from device to the pinned scratch and waits for the stream (small read-backs).
const void* read_back(CudaState& s, const void* dev, size_t n, const char* what);

// ---- argument checks (messages identical to the CPU backend's) ---------------------------------
using carzero::require_ptr;
using carzero::require_size;

// ---- launch helpers ------------------------------------------------------------------------------
inline unsigned grid_for(int64_t n, int threads, const CudaState& s) {
  // Grid-stride loops cover any n; cap the grid at a few waves of the device.
  int64_t blocks = (n + threads - 1) / threads;
  const int64_t cap = static_cast<int64_t>(s.sm_count > 0 ? s.sm_count : 80) * 32;
  if (blocks > cap) blocks = cap;
  if (blocks < 1) blocks = 1;
  return static_cast<unsigned>(blocks);
}

// Index checks of int32 ids against [0, limit) on the device (embedding ids, xent targets):
// returns the first index i with ids[i] outside the range and stores ids[i] in *value, or -1.
// Synchronises with the host; while a graph is captured it returns -1 without checking (the
// kernels then guard every id themselves).
int64_t first_id_out_of_range(CudaState& s, const int32_t* ids, int64_t n, int64_t limit, int32_t* value);

// GEMM entry for the other op files (patch_embed): same contract as the op table's gemm.
void gemm(Exec& ex, const GemmArgs& g);

}  // namespace carzero::cuda
