// embedding.cu: embedding gather, forward and backward side by side (cpu/embedding.cpp).
// Dimension letters: N lookups, V vocabulary rows, C channels.
//   out (N, C), ids (N) int32, table (V, C), dtable (V, C)
// Ids are checked on the device before anything is written (one small read-back), so a bad id
// throws the CPU backend's message and leaves out/dtable untouched.
#include <climits>
#include <cstring>

#include "cuda/cuda_common.h"
#include "cuda/cuda_ops.h"

namespace carzero::cuda {

namespace {

constexpr int kThreads = 256;

// first[0] = min { i : ids[i] outside [0, limit) } (stays ULLONG_MAX when none).
__global__ void find_bad_id_kernel(unsigned long long* first, const int32_t* ids, int64_t n, int64_t limit) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int32_t id = ids[i];
    if (id < 0 || id >= limit) atomicMin(first, static_cast<unsigned long long>(i));
  }
}

// out[r, c] = table[ids[r], c]; a row whose id is out of range (possible only when the host check
// was skipped during graph capture) is written as zeros instead of reading out of bounds.
__global__ void embedding_forward_kernel(float* out, const int32_t* ids, const float* table, int64_t N, int64_t V,
                                         int64_t C) {
  const int64_t total = N * C;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / C, c = i - r * C;
    const int32_t id = ids[r];
    out[i] = (id >= 0 && id < V) ? table[static_cast<int64_t>(id) * C + c] : 0.0f;
  }
}

// dtable[ids[r], c] += dout[r, c]; repeated ids meet in atomicAdd (fp32, order-dependent at the
// last bit; the CPU sums in row order).
__global__ void embedding_backward_kernel(float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t V,
                                          int64_t C) {
  const int64_t total = N * C;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / C, c = i - r * C;
    const int32_t id = ids[r];
    if (id >= 0 && id < V) atomicAdd(dtable + static_cast<int64_t>(id) * C + c, dout[i]);
  }
}

void check_ids(CudaState& s, const char* op, const int32_t* ids, int64_t N, int64_t V) {
  int32_t bad = 0;
  const int64_t i = first_id_out_of_range(s, ids, N, V, &bad);
  CZ_ARG(i < 0, "%s: ids[%lld] = %d is outside [0, %lld)", op, static_cast<long long>(i), bad,
         static_cast<long long>(V));
}

}  // namespace

int64_t first_id_out_of_range(CudaState& s, const int32_t* ids, int64_t n, int64_t limit, int32_t* value) {
  if (n <= 0 || s.capturing) return -1;
  Scratch flag(s, sizeof(unsigned long long));
  auto* first = flag.as<unsigned long long>();
  CZ_CUDA(cudaMemsetAsync(first, 0xff, sizeof(unsigned long long), s.stream));
  find_bad_id_kernel<<<grid_for(n, kThreads, s), kThreads, 0, s.stream>>>(first, ids, n, limit);
  check_launch("find_bad_id_kernel");
  unsigned long long idx;
  std::memcpy(&idx, read_back(s, first, sizeof idx, "id check"), sizeof idx);
  if (idx == ULLONG_MAX) return -1;
  std::memcpy(value, read_back(s, ids + idx, sizeof(int32_t), "id check"), sizeof(int32_t));
  return static_cast<int64_t>(idx);
}

void embedding_forward(Exec& ex, float* out, const int32_t* ids, const float* table, int64_t N, int64_t V, int64_t C) {
  const char* op = "embedding";
  require_size(op, "N", N);
  require_size(op, "V", V);
  require_size(op, "C", C);
  if (N == 0) return;
  require_ptr(op, "ids", ids, true);
  CudaState& s = state(ex);
  check_ids(s, op, ids, N, V);
  if (C == 0) return;
  require_ptr(op, "out", out, true);
  require_ptr(op, "table", table, true);
  embedding_forward_kernel<<<grid_for(N * C, kThreads, s), kThreads, 0, s.stream>>>(out, ids, table, N, V, C);
  check_launch("embedding_forward_kernel");
}

void embedding_backward(Exec& ex, float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t V,
                        int64_t C) {
  const char* op = "embedding_backward";
  require_size(op, "N", N);
  require_size(op, "V", V);
  require_size(op, "C", C);
  if (N == 0) return;
  require_ptr(op, "ids", ids, true);
  CudaState& s = state(ex);
  check_ids(s, op, ids, N, V);
  if (C == 0) return;
  require_ptr(op, "dtable", dtable, true);
  require_ptr(op, "dout", dout, true);
  embedding_backward_kernel<<<grid_for(N * C, kThreads, s), kThreads, 0, s.stream>>>(dtable, dout, ids, N, V, C);
  check_launch("embedding_backward_kernel");
}

}  // namespace carzero::cuda
