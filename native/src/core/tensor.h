// tensor.h: dense row-major tensors on a device, with shared storage.
//
// A Tensor is a (dtype, shape, device) view of a Storage. Storage owns (or borrows, with a release
// callback) one allocation; host allocations are 64-byte aligned so SIMD kernels can assume it.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dtype.h"

namespace carzero {

enum class DeviceType : int { CPU = 0, CUDA = 1 };

struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  DeviceType device = DeviceType::CPU;
  int device_index = 0;
  std::function<void(void*)> release;  // frees data; empty for borrowed memory with no owner
  Storage() = default;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() {
    if (release && data) release(data);
  }
};

// 64-byte aligned host allocation; throws Error(CZ_ERR_OUT_OF_MEMORY) naming the size on failure.
void* host_alloc(size_t nbytes);
void host_free(void* p);

class Tensor {
 public:
  Tensor() = default;
  // A new zero-filled host tensor.
  static Tensor empty_host(DType dtype, std::vector<int64_t> shape, bool zero = true);

  DType dtype() const { return dtype_; }
  DeviceType device() const { return storage_ ? storage_->device : DeviceType::CPU; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t size(int dim) const { return shape_.at(dim < 0 ? dim + ndim() : dim); }
  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  bool defined() const { return storage_ != nullptr; }
  void* data() const { return static_cast<char*>(storage_->data) + offset_; }
  template <typename T>
  T* ptr() const {
    return static_cast<T*>(data());
  }
  const std::shared_ptr<Storage>& storage() const { return storage_; }

  // Same storage, new shape with the same number of elements.
  Tensor reshape(std::vector<int64_t> shape) const;
  std::string shape_str() const;

  static Tensor wrap(std::shared_ptr<Storage> s, size_t offset, DType dtype, std::vector<int64_t> shape);

 private:
  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;
  DType dtype_ = DType::F32;
  std::vector<int64_t> shape_;
};

std::string shape_to_string(const std::vector<int64_t>& shape);
// numel with overflow and negative-size checks; `what` names the argument in errors.
int64_t checked_numel(const std::vector<int64_t>& shape, const char* what);

}  // namespace carzero
