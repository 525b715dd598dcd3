// tensor.cpp: see tensor.h.
#include "tensor.h"

#include <cstdlib>
#include <cstring>

#include "status.h"

namespace carzero {

void* host_alloc(size_t nbytes) {
  size_t n = (nbytes + 63) & ~static_cast<size_t>(63);
  if (n == 0) n = 64;
  void* p = std::aligned_alloc(64, n);
  CZ_REQUIRE(p != nullptr, CZ_ERR_OUT_OF_MEMORY, "host allocation of %zu bytes failed", nbytes);
  return p;
}

void host_free(void* p) { std::free(p); }

int64_t checked_numel(const std::vector<int64_t>& shape, const char* what) {
  CZ_ARG(shape.size() <= CZ_MAX_DIMS, "%s: at most %d dimensions, got %zu", what, CZ_MAX_DIMS, shape.size());
  int64_t n = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    CZ_ARG(shape[i] >= 0, "%s: dimension %zu is negative (%lld)", what, i, static_cast<long long>(shape[i]));
    if (shape[i] != 0 && n > (int64_t{1} << 40) / shape[i])
      throw_error(CZ_ERR_INVALID_ARGUMENT, "%s: shape %s is too large", what, shape_to_string(shape).c_str());
    n *= shape[i];
  }
  return n;
}

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

Tensor Tensor::wrap(std::shared_ptr<Storage> s, size_t offset, DType dtype, std::vector<int64_t> shape) {
  Tensor t;
  t.storage_ = std::move(s);
  t.offset_ = offset;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::empty_host(DType dtype, std::vector<int64_t> shape, bool zero) {
  int64_t n = checked_numel(shape, "shape");
  size_t nbytes = static_cast<size_t>(n) * dtype_size(dtype);
  auto s = std::make_shared<Storage>();
  s->data = host_alloc(nbytes);
  s->nbytes = nbytes;
  s->device = DeviceType::CPU;
  s->release = host_free;
  if (zero) std::memset(s->data, 0, nbytes);
  return wrap(std::move(s), 0, dtype, std::move(shape));
}

Tensor Tensor::reshape(std::vector<int64_t> shape) const {
  int64_t n = checked_numel(shape, "reshape");
  CZ_ARG(n == numel(), "reshape: %s has %lld elements, cannot view as %s", shape_str().c_str(),
         static_cast<long long>(numel()), shape_to_string(shape).c_str());
  return wrap(storage_, offset_, dtype_, std::move(shape));
}

std::string Tensor::shape_str() const { return shape_to_string(shape_); }

}  // namespace carzero
