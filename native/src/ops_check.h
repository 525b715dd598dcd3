// ops_check.h: argument validation shared by every backend, so the CPU and CUDA ops accept and
// refuse exactly the same calls with the same messages (the op-parity harness checks them).
#pragma once
#include <cstdint>

#include "core/status.h"
#include "ops.h"

namespace carzero {

inline void require_size(const char* op, const char* name, int64_t v) {
  CZ_ARG(v >= 0, "%s: %s = %lld must be >= 0", op, name, static_cast<long long>(v));
}
inline void require_ptr(const char* op, const char* name, const void* p, bool needed) {
  CZ_ARG(!needed || p != nullptr, "%s: %s is null", op, name);
}

// Sizes, dtypes, leading dimensions, strides and pointers of a GEMM (`who` names the op).
void check_gemm_args(const GemmArgs& g, const char* who);
// Sizes, leading dimensions, batch strides, scale and pointers of an attention call.
void check_attn_args(const char* op, const AttnArgs& a);
// Elements from a strided tensor's base to one past its last element: `items` items (item stride
// bs; 0 = one shared item) of `rows` rows (row stride ld) of C columns; 0 when empty.
inline int64_t strided_span(int64_t items, int64_t bs, int64_t rows, int64_t ld, int64_t C) {
  if (items <= 0 || rows <= 0 || C <= 0) return 0;
  return (bs > 0 ? (items - 1) * bs : 0) + (rows - 1) * ld + C;
}

// copy2d's arguments; false when there is nothing to do.
bool check_copy2d_args(const float* dst, int64_t dpitch, const float* src, int64_t spitch, const float* add,
                       int64_t apitch, int64_t width, int64_t height);
// add_layernorm_forward's arguments; false when there is nothing to do (N == 0).
bool check_add_layernorm_args(const char* op, const float* sum_out, const void* out, DType out_type, const float* a,
                              const float* b, int64_t N, int64_t C, float eps);
// Patch-embedding geometry: non-negative sizes, ps > 0 dividing H and W.
void check_patch_args(const char* op, int64_t B, int64_t Cin, int64_t H, int64_t W, int64_t OC, int64_t ps);
// Adam/AdamW hyperparameters and buffers; false when there is nothing to do (n == 0).
bool check_adam_args(const char* op, const float* param, const float* grad, const float* m, const float* v, int64_t n,
                     const AdamArgs& a);

}  // namespace carzero
