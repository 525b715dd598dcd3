// embedding.cpp: embedding gather, forward and backward side by side.
// Dimension letters: N lookups, V vocabulary rows, C channels.
//   out (N, C), ids (N) int32, table (V, C), dtable (V, C)
#include <algorithm>
#include <cstring>

#include "core/threadpool.h"
#include "cpu/cpu_ops.h"
#include "cpu/cpu_util.h"

namespace carzero::cpu {

namespace {
// Every id is checked before anything is written, so a bad id leaves out/dtable untouched.
void check_ids(const char* op, const int32_t* ids, int64_t N, int64_t V) {
  for (int64_t i = 0; i < N; ++i)
    CZ_ARG(ids[i] >= 0 && ids[i] < V, "%s: ids[%lld] = %d is outside [0, %lld)", op, static_cast<long long>(i), ids[i],
           static_cast<long long>(V));
}
}  // namespace

// out[i, :] = table[ids[i], :]
void embedding_forward(Exec& ex, float* out, const int32_t* ids, const float* table, int64_t N, int64_t V, int64_t C) {
  const char* op = "embedding";
  require_size(op, "N", N);
  require_size(op, "V", V);
  require_size(op, "C", C);
  if (N == 0) return;
  require_ptr(op, "ids", ids, true);
  check_ids(op, ids, N, V);
  if (C == 0) return;
  require_ptr(op, "out", out, true);
  require_ptr(op, "table", table, true);
  const int64_t grain = std::max<int64_t>(1, 8192 / C);
  ex.pool->parallel_for(N, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      std::memcpy(out + r * C, table + static_cast<int64_t>(ids[r]) * C, C * sizeof(float));
  });
}

// dtable[ids[i], :] += dout[i, :]   (+=, a parameter gradient)
// Repeated ids would race if rows were split across threads, so threads split the channels:
// each owns a column range of dtable and visits all N rows in order (deterministic).
void embedding_backward(Exec& ex, float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t V,
                        int64_t C) {
  const char* op = "embedding_backward";
  require_size(op, "N", N);
  require_size(op, "V", V);
  require_size(op, "C", C);
  if (N == 0) return;
  require_ptr(op, "ids", ids, true);
  check_ids(op, ids, N, V);
  if (C == 0) return;
  require_ptr(op, "dtable", dtable, true);
  require_ptr(op, "dout", dout, true);
  // Column blocks of >= 64 floats (a few cache lines) so threads do not share lines.
  const int64_t grain = std::max<int64_t>(64, (1 << 16) / std::max<int64_t>(N, 1));
  ex.pool->parallel_for(C, grain, [&](int64_t c0, int64_t c1) {
    for (int64_t r = 0; r < N; ++r) {
      float* dst = dtable + static_cast<int64_t>(ids[r]) * C;
      const float* src = dout + r * C;
      for (int64_t c = c0; c < c1; ++c) dst[c] += src[c];
    }
  });
}

}  // namespace carzero::cpu
