// arena.cpp: see arena.h.
#include "arena.h"

#include "status.h"
#include "tensor.h"

namespace carzero {

Arena::~Arena() { host_free(base_); }

void Arena::reserve(size_t bytes) {
  if (bytes <= capacity_) return;
  CZ_REQUIRE(used_ == 0, CZ_ERR_INTERNAL, "arena: reserve(%zu) while %zu bytes are in use", bytes, used_);
  char* p = static_cast<char*>(host_alloc(bytes));
  host_free(base_);
  base_ = p;
  capacity_ = bytes;
}

void* Arena::alloc(size_t bytes, size_t align) {
  CZ_ARG(align && (align & (align - 1)) == 0, "arena: alignment %zu is not a power of two", align);
  size_t start = (used_ + align - 1) & ~(align - 1);
  CZ_REQUIRE(start + bytes <= capacity_, CZ_ERR_OUT_OF_MEMORY, "arena: %zu bytes requested, %zu of %zu in use", bytes,
             used_, capacity_);
  used_ = start + bytes;
  if (used_ > peak_) peak_ = used_;
  return base_ + start;
}

}  // namespace carzero
