// test_core.cpp: unit tests of the core (thread pool, arena, tensors, dtype conversions, the op
// registry's validation, the C ABI's error reporting). Prints one line per check that fails and
// a closing "N passed, N failed" line; exits 1 on any failure.
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "carzero.h"
#include "core/arena.h"
#include "core/context.h"
#include "core/dtype.h"
#include "core/settings.h"
#include "core/status.h"
#include "core/tensor.h"
#include "core/threadpool.h"
#include "opsapi.h"

using namespace carzero;

static int g_pass = 0, g_fail = 0;
#define CHECK(cond)                                                 \
  do {                                                              \
    if (cond) {                                                     \
      ++g_pass;                                                     \
    } else {                                                        \
      ++g_fail;                                                     \
      std::printf("  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
    }                                                               \
  } while (0)

template <typename F>
static std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

static void test_threadpool() {
  ThreadPool pool(3);
  CHECK(pool.size() == 3);
  std::vector<int> hit(1000, 0);
  pool.run(1000, [&](int64_t i) { hit[i]++; });
  bool all_once = true;
  for (int h : hit) all_once = all_once && h == 1;
  CHECK(all_once);

  // parallel_for covers [0, n) exactly once
  std::vector<std::atomic<int>> cover(12345);
  pool.parallel_for(12345, 100, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) cover[i]++;
  });
  bool covered = true;
  for (auto& c : cover) covered = covered && c.load() == 1;
  CHECK(covered);

  // an exception in a task reaches the caller, and the pool keeps working afterwards
  std::string msg = error_of([&] {
    pool.run(64, [&](int64_t i) {
      if (i == 17) throw_error(CZ_ERR_INVALID_ARGUMENT, "task %lld failed", static_cast<long long>(i));
    });
  });
  CHECK(msg == "task 17 failed");
  std::atomic<int> n{0};
  pool.run(50, [&](int64_t) { n++; });
  CHECK(n.load() == 50);

  // nested parallel calls run serially instead of deadlocking
  std::atomic<int> inner{0};
  pool.run(4, [&](int64_t) { pool.run(10, [&](int64_t) { inner++; }); });
  CHECK(inner.load() == 40);

  // concurrent callers from two threads are serialised, both complete
  std::atomic<int> a{0}, b{0};
  std::thread t1([&] {
    for (int r = 0; r < 200; ++r) pool.run(8, [&](int64_t) { a++; });
  });
  std::thread t2([&] {
    for (int r = 0; r < 200; ++r) pool.run(8, [&](int64_t) { b++; });
  });
  t1.join();
  t2.join();
  CHECK(a.load() == 1600 && b.load() == 1600);

  ThreadPool single(1);
  std::atomic<int> s{0};
  single.run(5, [&](int64_t) { s++; });
  CHECK(s.load() == 5);
}

static void test_arena() {
  Arena arena(1024);
  void* p = arena.alloc(10);
  void* q = arena.alloc(10);
  CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0 && reinterpret_cast<uintptr_t>(q) % 64 == 0);
  CHECK(static_cast<char*>(q) - static_cast<char*>(p) == 64);
  size_t m = arena.mark();
  arena.alloc(500);
  CHECK(arena.used() > m);
  arena.release_to(m);
  CHECK(arena.used() == m);
  CHECK(error_of([&] { arena.alloc(5000); }).find("5000 bytes requested") != std::string::npos);
  CHECK(error_of([&] { arena.reserve(4096); }).find("in use") != std::string::npos);
  arena.reset();
  arena.reserve(4096);
  CHECK(arena.capacity() == 4096);
  CHECK(arena.peak() >= 64 + 500);
}

static void test_dtype() {
  CHECK(bf16_to_f32(f32_to_bf16(1.0f)) == 1.0f);
  CHECK(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);      // tie to even (down)
  CHECK(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);  // tie to even (up)
  CHECK(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
  CHECK(f16_to_f32(f32_to_f16(65504.0f)) == 65504.0f);
  CHECK(std::isinf(f16_to_f32(f32_to_f16(65520.0f))));  // rounds to inf
  CHECK(f32_to_f16(std::ldexp(1.0f, -24)) == 0x0001);   // smallest subnormal
  CHECK(f16_to_f32(0x0001) == std::ldexp(1.0f, -24));
  CHECK(f32_to_f16(-0.0f) == 0x8000);
  bool all = true;  // every finite f16 survives f16 -> f32 -> f16
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00) continue;
    all = all && f32_to_f16(f16_to_f32(static_cast<uint16_t>(h))) == h;
  }
  CHECK(all);
  DType d;
  CHECK(dtype_from_name("bf16", &d) && d == DType::BF16);
  CHECK(!dtype_from_name("f64", &d));
}

static void test_tensor() {
  Tensor t = Tensor::empty_host(DType::F32, {2, 3});
  CHECK(t.numel() == 6 && t.nbytes() == 24);
  CHECK(reinterpret_cast<uintptr_t>(t.data()) % 64 == 0);
  CHECK(t.ptr<float>()[5] == 0.0f);
  Tensor r = t.reshape({3, 2});
  CHECK(r.data() == t.data() && r.size(-1) == 2);
  CHECK(error_of([&] { t.reshape({4, 2}); }).find("cannot view") != std::string::npos);
  CHECK(error_of([&] { Tensor::empty_host(DType::F32, {2, -1}); }).find("negative") != std::string::npos);
  CHECK(error_of([&] { Tensor::empty_host(DType::F32, {1 << 30, 1 << 30}); }).find("too large") != std::string::npos);
}

static void test_registry() {
  auto ctx = Context::create(DeviceType::CPU, 0, 2);
  Tensor a = ctx->alloc(DType::F32, {2, 3}), b = ctx->alloc(DType::F32, {3, 4});
  Tensor c = ctx->alloc(DType::F32, {2, 4}), bad = ctx->alloc(DType::F32, {2, 5});
  Tensor ids = ctx->alloc(DType::I32, {2});
  auto run = [&](const char* op, std::vector<const Tensor*> ts, std::vector<double> ps = {}) {
    return error_of([&] { run_op(*ctx, op, ts, ps, nullptr); });
  };
  CHECK(run("gemm", {&a, &b, &c}).empty());
  CHECK(run("gemm", {&a, &b, &bad}).find("argument 'c' must be (2, 4)") != std::string::npos);
  CHECK(run("gemm", {&a, &b}).find("argument 'c' is required") != std::string::npos);
  CHECK(run("gemm", {&ids, &b, &c}).find("argument 'a' must be f32|bf16, got i32") != std::string::npos);
  CHECK(run("gemm", {&a, &b, &c}, {2}).find("parameter 'trans_a' must be an integer in [0, 1]") != std::string::npos);
  CHECK(run("gemm", {&a, &b, &c}, {0, 0, 1, 0, 0, 0, 9}).find("takes 6 parameters, got 7") != std::string::npos);
  CHECK(run("gemm", {&a, &b, &c}, {0, 0, NAN}).find("'alpha' must be a finite number") != std::string::npos);
  CHECK(run("frob", {}).find("unknown op 'frob'") != std::string::npos);
  CHECK(run("clip_grad_norm", {}).find("at least one 'grads'") != std::string::npos);
  CHECK(run("attention_forward", {&a, &a, &a, &a}, {4}).find("must be (B, Tq, C)") != std::string::npos);
  Tensor q = ctx->alloc(DType::F32, {1, 2, 6});
  CHECK(run("attention_forward", {&q, &q, &q, &q}, {4}).find("'num_heads' (4) must divide") != std::string::npos);
  CHECK(error_of([&] { Context::create(DeviceType::CUDA, 0, 0); }).find("cuda") != std::string::npos ||
        cuda_status().available);
  // every registered op has a unique name and a run function
  const auto& reg = op_registry();
  bool ok = reg.size() >= 27;
  for (size_t i = 0; i < reg.size(); ++i)
    for (size_t j = i + 1; j < reg.size(); ++j) ok = ok && reg[i].name != reg[j].name;
  CHECK(ok);
}

static void test_capi() {
  cz_context* ctx = nullptr;
  CHECK(cz_context_create(CZ_DEVICE_CPU, 0, 0, &ctx) == CZ_OK && ctx);
  int64_t shape[2] = {2, 2};
  float data[4] = {1, 2, 3, 4};
  cz_tensor *a = nullptr, *c = nullptr;
  CHECK(cz_tensor_from_host(ctx, CZ_F32, shape, 2, data, sizeof data, &a) == CZ_OK);
  CHECK(cz_tensor_create(ctx, CZ_F32, shape, 2, &c) == CZ_OK);
  cz_tensor* args[3] = {a, a, c};
  CHECK(cz_op_run(ctx, "gemm", args, 3, nullptr, 0, nullptr, 0) == CZ_OK);
  float out[4];
  CHECK(cz_tensor_to_host(c, out, sizeof out) == CZ_OK);
  CHECK(out[0] == 7 && out[1] == 10 && out[2] == 15 && out[3] == 22);
  CHECK(cz_tensor_to_host(c, out, 3) == CZ_ERR_INVALID_ARGUMENT);
  CHECK(std::strstr(cz_last_error(), "buffer of 3 bytes") != nullptr);
  CHECK(cz_context_create(CZ_DEVICE_CPU, 0, 0, nullptr) == CZ_ERR_INVALID_ARGUMENT);
  CHECK(std::string(cz_last_error()) == "out is NULL");
  size_t need = 0;
  CHECK(cz_op_list_json(nullptr, 0, &need) == CZ_OK && need > 100);
  char small[8];
  CHECK(cz_info_json(small, sizeof small, &need) == CZ_ERR_INVALID_ARGUMENT && std::strlen(small) == 7);
  cz_tensor_free(a);
  cz_tensor_free(c);
  cz_context_free(ctx);
}

// Settings: read from the environment once; reload_settings() reads it again.
static void test_settings() {
  const Settings before = settings();
  setenv("CARZERO_GEMM_NARROW", "vec", 1);
  setenv("CARZERO_CUBLASLT", "0", 1);
  setenv("CARZERO_NUM_THREADS", "5", 1);
  setenv("CARZERO_MIXED_ATTENTION", "0", 1);
  setenv("CARZERO_ATTN_KERNEL", "tiled", 1);
  setenv("CARZERO_GEMM_BF16_C", "dense", 1);
  CHECK(settings().gemm_narrow_vec == before.gemm_narrow_vec);  // not re-read until asked
  reload_settings();
  CHECK(settings().gemm_narrow_vec);
  CHECK(!settings().cublaslt);
  CHECK(settings().num_threads == 5);
  CHECK(ThreadPool::default_threads() == 5);
  CHECK(settings().mixed_attention == 0);
  CHECK(settings().attn_kernel == "tiled");
  CHECK(settings().gemm_bf16_c_dense);
  setenv("CARZERO_NUM_THREADS", "100000", 1);  // out of range: ignored
  setenv("CARZERO_MIXED_ATTENTION", "1", 1);
  for (const char* v : {"CARZERO_GEMM_NARROW", "CARZERO_CUBLASLT", "CARZERO_ATTN_KERNEL", "CARZERO_GEMM_BF16_C"})
    unsetenv(v);
  reload_settings();
  CHECK(!settings().gemm_narrow_vec);
  CHECK(settings().cublaslt);
  CHECK(settings().num_threads == 0);
  CHECK(settings().mixed_attention == 1);
  CHECK(settings().attn_kernel.empty());
  CHECK(!settings().gemm_bf16_c_dense);
  unsetenv("CARZERO_NUM_THREADS");
  unsetenv("CARZERO_MIXED_ATTENTION");
  reload_settings();
}

int main() {
  test_threadpool();
  test_arena();
  test_dtype();
  test_tensor();
  test_registry();
  test_capi();
  test_settings();
  std::printf("%d passed, %d failed\n", g_pass, g_fail);
  return g_fail ? 1 : 0;
}
