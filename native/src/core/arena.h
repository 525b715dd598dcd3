// arena.h: a bump allocator for activations and scratch. One big 64-byte-aligned block per
// arena; alloc() hands out aligned slices, mark()/release_to() rewind, reset() frees everything
// at once. Model graphs size an arena from their plan once, so a forward pass does no malloc.
#pragma once
#include <cstddef>
#include <cstdint>

namespace carzero {

class Arena {
 public:
  Arena() = default;
  explicit Arena(size_t capacity) { reserve(capacity); }
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // Ensures capacity >= bytes. Only allowed while nothing is allocated (used() == 0).
  void reserve(size_t bytes);
  // An aligned slice of `bytes`; throws Error(CZ_ERR_OUT_OF_MEMORY) when the arena is full.
  void* alloc(size_t bytes, size_t align = 64);
  template <typename T>
  T* alloc_n(size_t n) {
    return static_cast<T*>(alloc(n * sizeof(T)));
  }
  size_t mark() const { return used_; }
  void release_to(size_t mark) { used_ = mark < used_ ? mark : used_; }
  void reset() { used_ = 0; }
  size_t used() const { return used_; }
  size_t capacity() const { return capacity_; }
  size_t peak() const { return peak_; }

 private:
  char* base_ = nullptr;
  size_t capacity_ = 0;
  size_t used_ = 0;
  size_t peak_ = 0;
};

}  // namespace carzero
