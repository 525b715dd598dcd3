// harness.h: the op-parity harness (modelled on ggml's tests/test-backend-ops.cpp).
//
// A Case is one (op, parameters) combination with the parameters in its name. It runs against a
// Backend (an op table plus device memory functions), so the same cases serve the CPU today and
// the CUDA backend later. Every case:
//   - draws its inputs from an Rng seeded by the case name (reproducible, independent of order),
//   - uploads them into guarded device buffers (a canary pattern before and after each buffer,
//     checked after every op; inputs are also checked to be left unmodified),
//   - compares outputs with a float64 reference (reference.h) by normalised squared error
//     NMSE = sum (out - ref)^2 / sum ref^2, and fails on any NaN/Inf in an output,
//   - checks every backward against central finite differences of the float64 reference forward
//     (loss = sum(out * R) for a random upstream gradient R), on sampled coordinates plus random
//     directional derivatives, and checks the += / = contract of each gradient buffer.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "cpu/cpu_ops.h"
#include "ops.h"

namespace cztest {

using carzero::Act;
using carzero::AdamArgs;
using carzero::AttnArgs;
using carzero::AttnGrads;
using carzero::DType;
using carzero::Exec;
using carzero::GemmArgs;
using carzero::OpTable;

// ---- backend ------------------------------------------------------------------------------------
// Everything a case needs from a backend. Device pointers are opaque to the harness: it only
// moves bytes with upload/download. gemm_isa runs the GEMM at a named ISA level ("generic",
// "avx2", "avx512"); it returns false and sets *why when the level is unavailable, and is null
// on backends without ISA levels (those cases are skipped there).
struct Backend {
  std::string name;
  const OpTable* ops = nullptr;
  Exec exec;
  void* ctx = nullptr;
  void* (*alloc)(void* ctx, size_t bytes) = nullptr;
  void (*free)(void* ctx, void* p) = nullptr;
  void (*upload)(void* ctx, void* dst, const void* src, size_t bytes) = nullptr;
  void (*download)(void* ctx, void* dst, const void* src, size_t bytes) = nullptr;
  std::function<bool(Exec&, const GemmArgs&, const std::string& isa, std::string* why)> gemm_isa;
};

// ---- random numbers (splitmix64; seeded per case) ----------------------------------------------
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  double normal() {
    double u1 = uniform(), u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  int64_t below(int64_t n) { return static_cast<int64_t>(next() % static_cast<uint64_t>(n)); }
  std::vector<float> uniform_vec(int64_t n, double lo, double hi) {
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = static_cast<float>(uniform(lo, hi));
    return v;
  }
  std::vector<float> normal_vec(int64_t n, double sd = 1.0, double mean = 0.0) {
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = static_cast<float>(mean + sd * normal());
    return v;
  }

 private:
  uint64_t s_;
};

uint64_t hash_name(const std::string& s);
std::vector<double> to_f64(const std::vector<float>& v);
std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));

// ---- guarded device buffers -----------------------------------------------------------------------
constexpr size_t kGuardBytes = 64;

struct DevBuf {
  std::string name;
  size_t bytes = 0;
  void* base = nullptr;            // device allocation: guard | payload | guard
  void* ptr = nullptr;             // payload
  bool is_input = false;           // inputs must come back unmodified
  std::vector<uint8_t> host_copy;  // the uploaded payload of an input
};

// ---- one case run -----------------------------------------------------------------------------
class Ctx {
 public:
  Ctx(Backend& be, const std::string& case_name, bool verbose);
  ~Ctx();
  Ctx(const Ctx&) = delete;
  Ctx& operator=(const Ctx&) = delete;

  Backend& be;
  Exec& ex() { return be.exec; }
  const OpTable& ops() { return *be.ops; }
  Rng rng;
  bool verbose;

  // Device buffers (freed when the case ends). `input` buffers are checked unmodified by check().
  DevBuf* input(const std::string& name, const void* data, size_t bytes);
  DevBuf* output(const std::string& name, const void* init, size_t bytes);  // init may be null
  template <class T>
  T* in(const std::string& name, const std::vector<T>& v) {
    return static_cast<T*>(input(name, v.data(), v.size() * sizeof(T))->ptr);
  }
  template <class T>
  T* out(const std::string& name, const std::vector<T>& init) {
    return static_cast<T*>(output(name, init.data(), init.size() * sizeof(T))->ptr);
  }
  float* out_nan(const std::string& name, int64_t n);  // written outputs: pre-filled with NaN
  template <class T>
  std::vector<T> get(const T* dev, int64_t n) {
    std::vector<T> v(static_cast<size_t>(n));
    if (n > 0) be.download(be.ctx, v.data(), dev, static_cast<size_t>(n) * sizeof(T));
    return v;
  }

  // Guard bytes of every buffer and immutability of every input; records failures.
  void check(const char* after_what);
  // NMSE of out against ref (plus NaN/Inf check), fails above tol. Returns the NMSE.
  double expect_close(const std::string& what, const std::vector<float>& out, const std::vector<double>& ref,
                      double tol);
  void expect(bool cond, const std::string& why);
  void fail(const std::string& why);
  void skip(const std::string& why);
  // Run fn and expect a carzero::Error whose message contains `substr`.
  void expect_throw(const std::string& what, const std::function<void()>& fn, const std::string& substr);

  // Finite-difference check. loss() evaluates the float64 reference loss from the current values
  // of the GradInput::x vectors, which the checker perturbs in place (and restores).
  struct GradInput {
    std::string name;
    std::vector<double>* x;
    std::vector<double> analytic;  // the backend's gradient (after removing any prefill)
    int samples;                   // sampled coordinates (all when x->size() <= samples)
  };
  void check_grads(const std::function<double()>& loss, std::vector<GradInput> inputs, double tol = 1e-6,
                   int directions = 2);

  // Outcome
  bool failed = false, skipped = false;
  std::string why;
  double max_nmse = 0.0;

 private:
  std::vector<std::unique_ptr<DevBuf>> bufs_;
};

// ---- case registry --------------------------------------------------------------------------------
struct Case {
  std::string name;
  std::function<void(Ctx&)> run;
};
using Registry = std::vector<Case>;

void add_case(Registry& r, std::string name, std::function<void(Ctx&)> run);

// Case groups (one per test file).
void register_gemm_cases(Registry& r);
void register_nn_cases(Registry& r);  // layernorm, gelu, relu, add, softmax
void register_attention_cases(Registry& r);
void register_data_cases(Registry& r);  // embedding, patch_embed, softmax_xent
void register_misc_cases(Registry& r);  // adam, sum_squares, scale, dropout, convert
void register_error_cases(Registry& r);
void register_warp_emu_cases(Registry& r);  // the warp emulator's own checks (warp_emu/)

// The CUDA backend (backend_cuda.cpp): fills *out and returns true when this build has CUDA and
// a usable device; otherwise returns false with the reason in *why.
bool make_cuda_backend(Backend* out, std::string* why);
// The warp-emulator backend (warp_emu/emu_attention.cpp): the CPU backend, except that attention
// with bf16 storage runs the CUDA tensor-core kernels on a lane-by-lane CPU emulation.
void make_emu_backend(Backend* out, const Backend& cpu);

// Upstream gradient helper: loss = sum(out * R) in double.
double dot(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace cztest
