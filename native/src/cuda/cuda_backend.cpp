// cuda_backend.cpp: see cuda_backend.h. Also the shared error/state helpers of cuda_common.h and
// create_cuda_backend (core/device_backend.h).
#include "cuda/cuda_backend.h"

#include <algorithm>
#include <cstring>

#include "core/context.h"
#include "cuda/cublas_loader.h"
#include "cuda/cuda_ops.h"

namespace carzero {

namespace cuda {

// ---- errors and state -----------------------------------------------------------------------------
void throw_cuda(cudaError_t e, const char* call) {
  const bool oom = e == cudaErrorMemoryAllocation;
  // Clear a non-sticky error so the next call does not report it again (sticky errors, such as
  // an illegal address, stay: the context is unusable and every later call says so).
  cudaGetLastError();
  throw_error(oom ? CZ_ERR_OUT_OF_MEMORY : CZ_ERR_CUDA, "%s failed: %s (%s)", call, cudaGetErrorString(e),
              cudaGetErrorName(e));
}

void check_launch(const char* kernel) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) {
    const std::string call = std::string("launch of ") + kernel;
    throw_cuda(e, call.c_str());
  }
}

CudaState& state(Exec& ex) {
  CZ_REQUIRE(ex.cuda != nullptr, CZ_ERR_INVALID_ARGUMENT,
             "cuda op called with an execution state that has no CUDA context");
  CudaState& s = *static_cast<CudaState*>(ex.cuda);
  int cur = -1;
  CZ_CUDA(cudaGetDevice(&cur));
  if (cur != s.device) CZ_CUDA(cudaSetDevice(s.device));
  return s;
}

void* device_alloc(CudaState& s, size_t bytes) { return s.alloc->alloc(bytes); }
void device_free(CudaState& s, void* p) noexcept { s.alloc->free(p); }

Scratch::Scratch(CudaState& s, size_t bytes) : s_(s) { p_ = bytes ? s.alloc->alloc(bytes) : nullptr; }
Scratch::~Scratch() {
  if (p_) s_.alloc->free(p_);
}

const void* read_back(CudaState& s, const void* dev, size_t n, const char* what) {
  CZ_REQUIRE(!s.capturing, CZ_ERR_UNSUPPORTED,
             "%s: needs a device-to-host read, which cannot run inside CUDA-graph capture", what);
  CZ_REQUIRE(n <= kHostScratchBytes, CZ_ERR_INTERNAL, "read_back of %zu bytes", n);
  CZ_CUDA(cudaMemcpyAsync(s.host_scratch, dev, n, cudaMemcpyDeviceToHost, s.stream));
  CZ_CUDA(cudaStreamSynchronize(s.stream));
  return s.host_scratch;
}

// ---- caching allocator --------------------------------------------------------------------------------
size_t CachingAllocator::round(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes < (size_t(1) << 20)) return (bytes + 511) & ~size_t(511);  // 512 B granules
  return (bytes + (size_t(2) << 20) - 1) & ~((size_t(2) << 20) - 1);   // 2 MiB granules
}

CachingAllocator::~CachingAllocator() {
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& kv : free_) cudaFree(kv.second);
  for (auto& kv : live_) cudaFree(kv.first);  // leaked by a caller: still return it
  for (void* p : parked_) cudaFree(p);
}

void* CachingAllocator::alloc(size_t bytes) {
  const size_t want = round(bytes);
  {
    std::lock_guard<std::mutex> lk(mu_);
    // Best fit among cached blocks that waste at most half of themselves.
    auto it = free_.lower_bound(want);
    if (it != free_.end() && it->first <= 2 * want) {
      void* p = it->second;
      const size_t sz = it->first;
      free_.erase(it);
      cached_bytes_ -= sz;
      live_[p] = sz;
      live_bytes_ += sz;
      peak_live_bytes_ = std::max(peak_live_bytes_, live_bytes_);
      return p;
    }
  }
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, want);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    release_cache();
    e = cudaMalloc(&p, want);
  }
  if (e != cudaSuccess) {
    const std::string call = strfmt("cudaMalloc(%zu bytes)", want);
    throw_cuda(e, call.c_str());
  }
  std::lock_guard<std::mutex> lk(mu_);
  live_[p] = want;
  live_bytes_ += want;
  peak_live_bytes_ = std::max(peak_live_bytes_, live_bytes_);
  return p;
}

void CachingAllocator::free(void* p) noexcept {
  if (!p) return;
  std::lock_guard<std::mutex> lk(mu_);
  auto it = live_.find(p);
  if (it == live_.end()) return;  // not ours: ignore rather than crash
  const size_t sz = it->second;
  live_.erase(it);
  live_bytes_ -= sz;
  if (parking_) {
    parked_.push_back(p);
    return;
  }
  free_.emplace(sz, p);
  cached_bytes_ += sz;
}

void CachingAllocator::release_cache() noexcept {
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& kv : free_) cudaFree(kv.second);
  free_.clear();
  cached_bytes_ = 0;
}

void CachingAllocator::begin_park() {
  std::lock_guard<std::mutex> lk(mu_);
  parking_ = true;
}

std::vector<void*> CachingAllocator::end_park() {
  std::lock_guard<std::mutex> lk(mu_);
  parking_ = false;
  std::vector<void*> out;
  out.swap(parked_);
  return out;
}

void CachingAllocator::free_parked(const std::vector<void*>& blocks) noexcept {
  for (void* p : blocks) cudaFree(p);
}

size_t CachingAllocator::bytes_in_use() const {
  std::lock_guard<std::mutex> lk(mu_);
  return live_bytes_;
}
size_t CachingAllocator::bytes_cached() const {
  std::lock_guard<std::mutex> lk(mu_);
  return cached_bytes_;
}
size_t CachingAllocator::peak_bytes_in_use(bool reset) {
  std::lock_guard<std::mutex> lk(mu_);
  const size_t p = peak_live_bytes_;
  if (reset) peak_live_bytes_ = live_bytes_;
  return p;
}

// ---- backend ------------------------------------------------------------------------------------------
DeviceBackend::MemoryStats CudaBackend::memory_stats(bool reset_peak) {
  MemoryStats m;
  m.in_use = alloc_.bytes_in_use();
  m.cached = alloc_.bytes_cached();
  m.peak_in_use = alloc_.peak_bytes_in_use(reset_peak);
  return m;
}

CudaBackend::CudaBackend(int device) : alloc_(device) {
  state_.device = device;
  CZ_CUDA(cudaSetDevice(device));
  CZ_CUDA(cudaDeviceGetAttribute(&state_.sm_count, cudaDevAttrMultiProcessorCount, device));
  CZ_CUDA(cudaDeviceGetAttribute(&state_.cc_major, cudaDevAttrComputeCapabilityMajor, device));
  CZ_CUDA(cudaDeviceGetAttribute(&state_.cc_minor, cudaDevAttrComputeCapabilityMinor, device));
  int smem = 0;
  CZ_CUDA(cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  state_.max_smem_optin = static_cast<size_t>(smem);
  CZ_REQUIRE(state_.cc_major >= 8, CZ_ERR_UNSUPPORTED,
             "cuda: device %d has compute capability %d.%d; this build needs 8.0 or newer", device, state_.cc_major,
             state_.cc_minor);
  CZ_CUDA(cudaStreamCreateWithFlags(&state_.stream, cudaStreamNonBlocking));
  cudaError_t e = cudaMallocHost(&state_.host_scratch, kHostScratchBytes);
  if (e != cudaSuccess) {
    cudaStreamDestroy(state_.stream);
    throw_cuda(e, "cudaMallocHost(host scratch)");
  }
  state_.alloc = &alloc_;
  exec_.cuda = &state_;
}

CudaBackend::~CudaBackend() {
  cudaSetDevice(state_.device);
  if (state_.stream) cudaStreamSynchronize(state_.stream);
  collective_destroy();
  if (state_.blas) {
    const CublasApi& api = cublas_api();
    if (state_.blas->blas) api.destroy(state_.blas->blas);
    if (state_.blas->lt && api.lt_destroy) api.lt_destroy(state_.blas->lt);
    delete state_.blas;
  }
  if (state_.blas_workspace) alloc_.free(state_.blas_workspace);
  if (state_.host_scratch) cudaFreeHost(state_.host_scratch);
  if (state_.stream) cudaStreamDestroy(state_.stream);
}

void* CudaBackend::alloc(size_t nbytes) {
  cuda::state(exec_);
  return alloc_.alloc(nbytes);
}
void CudaBackend::free(void* p) noexcept { alloc_.free(p); }

void CudaBackend::upload(void* dst, const void* src, size_t nbytes) {
  if (!nbytes) return;
  cuda::state(exec_);
  // Synchronous for the caller: src is pageable host memory the caller may release at once.
  CZ_CUDA(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, state_.stream));
  CZ_CUDA(cudaStreamSynchronize(state_.stream));
}
void CudaBackend::download(void* dst, const void* src, size_t nbytes) {
  if (!nbytes) return;
  cuda::state(exec_);
  CZ_CUDA(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, state_.stream));
  CZ_CUDA(cudaStreamSynchronize(state_.stream));
}
void CudaBackend::zero(void* dst, size_t nbytes) {
  if (!nbytes) return;
  cuda::state(exec_);
  CZ_CUDA(cudaMemsetAsync(dst, 0, nbytes, state_.stream));
}
void CudaBackend::synchronize() {
  cuda::state(exec_);
  CZ_CUDA(cudaStreamSynchronize(state_.stream));
}
const OpTable& CudaBackend::ops() const { return cuda_op_table(); }

// ---- graphs ---------------------------------------------------------------------------------------------
CudaGraph::~CudaGraph() {
  if (exec_) cudaGraphExecDestroy(exec_);
  if (graph_) cudaGraphDestroy(graph_);
  if (!parked_.empty()) {
    CudaState& s = *static_cast<CudaState*>(ex_.cuda);
    cudaStreamSynchronize(s.stream);
    alloc_.free_parked(parked_);
  }
}

void CudaGraph::capture(const std::function<void()>& fn) {
  CudaState& s = state(ex_);
  CZ_REQUIRE(!s.capturing, CZ_ERR_INVALID_ARGUMENT, "CudaGraph::capture: already capturing");
  CZ_REQUIRE(!graph_, CZ_ERR_INVALID_ARGUMENT, "CudaGraph::capture: graph already captured");
  // Relaxed: the caching allocator may cudaMalloc while capturing (blocks stay parked).
  CZ_CUDA(cudaStreamBeginCapture(s.stream, cudaStreamCaptureModeRelaxed));
  s.capturing = true;
  alloc_.begin_park();
  try {
    fn();
  } catch (...) {
    s.capturing = false;
    cudaGraph_t g = nullptr;
    cudaStreamEndCapture(s.stream, &g);
    if (g) cudaGraphDestroy(g);
    cudaGetLastError();
    for (void* p : alloc_.end_park()) parked_.push_back(p);
    throw;
  }
  s.capturing = false;
  for (void* p : alloc_.end_park()) parked_.push_back(p);
  CZ_CUDA(cudaStreamEndCapture(s.stream, &graph_));
  CZ_CUDA(cudaGraphInstantiate(&exec_, graph_, 0));
}

void CudaGraph::replay() {
  CudaState& s = state(ex_);
  CZ_REQUIRE(exec_ != nullptr, CZ_ERR_INVALID_ARGUMENT, "CudaGraph::replay: nothing captured");
  CZ_CUDA(cudaGraphLaunch(exec_, s.stream));
}

}  // namespace cuda

std::shared_ptr<DeviceBackend> create_cuda_backend(int index) {
  const CudaStatus& cs = cuda_status();
  CZ_REQUIRE(cs.compiled && cs.driver && cs.device_count > 0, CZ_ERR_UNSUPPORTED, "cuda: unavailable (%s)",
             cs.reason.c_str());
  CZ_ARG(index >= 0 && index < cs.device_count, "cuda device_index %d: only %d device(s)", index, cs.device_count);
  return std::make_shared<cuda::CudaBackend>(index);
}

}  // namespace carzero
