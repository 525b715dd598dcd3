// dropout.cpp: inverted dropout driven by a counter-based RNG (Philox4x32-10), forward and
// backward side by side. The mask is a pure function of (seed, offset + i), so the backward
// regenerates it instead of storing it, a run split at any offset equals the whole run, and the
// CUDA backend produces the same mask.
// Dimension letters: n = number of elements.
//   inp/out/dinp/dout (n)
// Philox: Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3" (SC'11);
// constants as in Random123's philox.h.
#include <cmath>

#include "core/threadpool.h"
#include "cpu/cpu_ops.h"
#include "cpu/cpu_util.h"

namespace carzero::cpu {

namespace {

constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;  // round multipliers
constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;  // Weyl key increments
constexpr int64_t kGrain = 1 << 14;

// First output word of Philox4x32-10(counter = (c0, c1, 0, 0), key = (k0, k1)).
inline uint32_t philox_word0(uint32_t c0, uint32_t c1, uint32_t k0, uint32_t k1) {
  uint32_t x0 = c0, x1 = c1, x2 = 0, x3 = 0;
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {  // key schedule: bump between rounds
      k0 += kW0;
      k1 += kW1;
    }
    const uint64_t p0 = static_cast<uint64_t>(kM0) * x0;
    const uint64_t p1 = static_cast<uint64_t>(kM1) * x2;
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    x0 = hi1 ^ x1 ^ k0;
    x1 = lo1;
    x2 = hi0 ^ x3 ^ k1;
    x3 = lo0;
  }
  return x0;
}

// 24 random bits -> [0, 1) exactly representable in float.
inline float word_to_uniform(uint32_t u) { return static_cast<float>(u >> 8) * 0x1.0p-24f; }

void validate(const char* op, int64_t n, float p) {
  require_size(op, "n", n);
  CZ_ARG(p >= 0.0f && p <= 1.0f, "%s: p = %g is outside [0, 1]", op, p);
}

// out[i] = keep(i) ? in[i] / (1 - p) : 0, keep(i) = uniform(seed, offset + i) >= p.
// p == 0 copies (every uniform is >= 0); p == 1 zeroes (scale would be inf).
void apply_mask(Exec& ex, float* out, const float* in, int64_t n, float p, uint64_t seed, uint64_t offset) {
  if (p == 0.0f) {
    if (out != in) std::memcpy(out, in, static_cast<size_t>(n) * sizeof(float));
    return;
  }
  if (p == 1.0f) {
    std::memset(out, 0, static_cast<size_t>(n) * sizeof(float));
    return;
  }
  const float inv_keep = 1.0f / (1.0f - p);
  const uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  ex.pool->parallel_for(n, kGrain, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      const uint64_t c = offset + static_cast<uint64_t>(i);
      const float u = word_to_uniform(philox_word0(static_cast<uint32_t>(c), static_cast<uint32_t>(c >> 32), k0, k1));
      out[i] = u >= p ? in[i] * inv_keep : 0.0f;
    }
  });
}

}  // namespace

float philox_uniform(uint64_t seed, uint64_t counter) {
  return word_to_uniform(philox_word0(static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32),
                                      static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)));
}

void dropout_forward(Exec& ex, float* out, const float* inp, int64_t n, float p, uint64_t seed, uint64_t offset) {
  validate("dropout_forward", n, p);
  if (n == 0) return;
  require_ptr("dropout_forward", "out", out, true);
  require_ptr("dropout_forward", "inp", inp, true);
  apply_mask(ex, out, inp, n, p, seed, offset);
}

// dinp (=) = dout masked and scaled exactly as the forward (the same (seed, offset)).
void dropout_backward(Exec& ex, float* dinp, const float* dout, int64_t n, float p, uint64_t seed, uint64_t offset) {
  validate("dropout_backward", n, p);
  if (n == 0) return;
  require_ptr("dropout_backward", "dinp", dinp, true);
  require_ptr("dropout_backward", "dout", dout, true);
  apply_mask(ex, dinp, dout, n, p, seed, offset);
}

}  // namespace carzero::cpu
