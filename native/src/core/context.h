// context.h: a device and its execution state. No process-global device state: each Context
// owns its thread pool (or shares the default one), and later its CUDA streams/handles/allocator,
// so one process can hold several models on different devices.
#pragma once
#include <memory>
#include <string>

#include "device_backend.h"
#include "exec.h"
#include "tensor.h"
#include "threadpool.h"

namespace carzero {

class Context {
 public:
  // device CUDA throws Error(CZ_ERR_UNSUPPORTED, "<why>") when CUDA is unavailable.
  // num_threads <= 0 uses the shared default pool.
  static std::unique_ptr<Context> create(DeviceType device, int device_index, int num_threads);

  DeviceType device() const { return device_; }
  int device_index() const { return device_index_; }
  const OpTable& ops() const { return *ops_; }
  Exec& exec() { return exec_; }
  int num_threads() const { return exec_.pool ? exec_.pool->size() : 0; }
  // The device backend (null on CPU).
  DeviceBackend* backend() const { return backend_.get(); }
  // Waits for all queued device work (no-op on CPU).
  void synchronize();
  // Device contexts: give the allocator's cached blocks back to the device (DeviceBackend).
  void release_cached() noexcept;

  // A new tensor on this context's device (zero-filled when zero).
  Tensor alloc(DType dtype, std::vector<int64_t> shape, bool zero = true);
  void upload(const Tensor& dst, const void* src, size_t nbytes);
  void download(const Tensor& src, void* dst, size_t nbytes);

 private:
  Context() = default;
  DeviceType device_ = DeviceType::CPU;
  int device_index_ = 0;
  const OpTable* ops_ = nullptr;
  std::unique_ptr<ThreadPool> own_pool_;
  std::shared_ptr<DeviceBackend> backend_;  // shared with the storages it allocated
  Exec exec_;
};

// Why CUDA can or cannot be used on this machine, probed once: the build, the driver
// (libcuda.so.1 opened at run time), the devices, and cuBLAS (libcublas opened at run time).
struct CudaStatus {
  bool compiled = false;        // this binary contains the CUDA backend
  bool driver = false;          // libcuda.so.1 loaded and cuInit succeeded
  int driver_version = 0;       // cuDriverGetVersion: the newest CUDA the driver supports (13000 = 13.0)
  int runtime_version = 0;      // the CUDA runtime this binary was built with (0: no CUDA backend)
  bool driver_too_old = false;  // the driver predates the runtime: the CPU is used, reason says why
  std::string driver_release;   // the kernel module's version (/proc/driver/nvidia/version), if known
  int device_count = 0;
  std::string cublas_path;  // the cuBLAS library that opened, or empty
  bool available = false;
  std::string reason;  // why not available (empty when available)
};
const CudaStatus& cuda_status();

// Build, CPU and CUDA capabilities as a JSON object (cz_info_json, `carzero info`).
std::string info_json();

}  // namespace carzero
