// gemm_check.cpp: scratch correctness check of the CPU GEMM (not part of the build; the official
// parity cases live in native/tests/). Compares cpu::gemm_with_isa at every ISA level against a
// float64 reference over transposes, dtypes, compute types, activations, bias, alpha/beta,
// batches with shared (stride 0) operands, padded leading dimensions and awkward sizes, with
// guard values around and between the rows of C; then gemm_backward against float64 gradients.
// Build and run (from the repository root, after a CMake build in build-gemm):
//   g++ -std=c++17 -O2 -Inative/src -Inative/include native/dev/gemm_check.cpp \
//       build-gemm/libcarzero_core.a -lpthread -ldl -o /tmp/gemm_check && /tmp/gemm_check 400
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "core/status.h"
#include "core/threadpool.h"
#include "cpu/cpu_ops.h"
#include "cpu/gemm_internal.h"

using namespace carzero;

static std::mt19937_64 rng(12345);
static float urand() { return std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng); }
static int64_t irand(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }

static const float kGuard = 12345.678f;
static int failures = 0, cases = 0;

struct Operand {
  std::vector<float> f;
  std::vector<uint16_t> h;
  DType t;
  const void* ptr() const { return t == DType::F32 ? (const void*)f.data() : (const void*)h.data(); }
  double at(int64_t i, bool round) const {
    float v = t == DType::F32 ? f[i] : bf16_to_f32(h[i]);
    if (round) v = bf16_to_f32(f32_to_bf16(v));
    return v;
  }
};

static Operand make(DType t, int64_t n) {
  Operand o;
  o.t = t;
  o.f.resize(std::max<int64_t>(n, 1));
  for (auto& x : o.f) x = urand();
  if (t == DType::BF16) {
    o.h.resize(o.f.size());
    for (size_t i = 0; i < o.f.size(); ++i) o.h[i] = f32_to_bf16(o.f[i]);
  }
  return o;
}

static double act_ref(double z, Act a) {
  if (a == Act::Relu) return z > 0 ? z : 0;
  if (a == Act::Gelu) return 0.5 * z * (1 + std::erf(z / std::sqrt(2.0)));
  return z;
}

static void check_forward(ThreadPool& pool, CpuIsa isa, int64_t M, int64_t N, int64_t K, int64_t batch, bool ta,
                          bool tb, DType at, DType bt, DType ct, Act act, bool bias, float alpha, float beta,
                          bool share_a, bool share_b, int pad, bool want_pre) {
  ++cases;
  GemmArgs g;
  g.a_type = at;
  g.b_type = bt;
  g.compute = ct;
  g.trans_a = ta;
  g.trans_b = tb;
  g.m = M;
  g.n = N;
  g.k = K;
  g.batch = batch;
  g.alpha = alpha;
  g.beta = beta;
  g.act = act;
  g.lda = (ta ? M : K) + pad;
  g.ldb = (tb ? K : N) + pad;
  g.ldc = N + pad;
  int64_t a_item = (ta ? K : M) * g.lda, b_item = (tb ? N : K) * g.ldb, c_item = M * g.ldc;
  g.stride_a = share_a ? 0 : a_item + 3;
  g.stride_b = share_b ? 0 : b_item + 5;
  g.stride_c = c_item + 7;
  Operand A = make(at, share_a ? a_item : g.stride_a * batch);
  Operand B = make(bt, share_b ? b_item : g.stride_b * batch);
  const int64_t guard = 64, c_len = g.stride_c * batch;
  std::vector<float> cbuf(c_len + 2 * guard, kGuard), pbuf(c_len + 2 * guard, kGuard);
  std::vector<float> c0(c_len);
  std::vector<float> biasv(N + 1);
  for (auto& x : biasv) x = urand();
  // C: real values where the GEMM reads them (beta != 0), NaN garbage otherwise (must not be read).
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        int64_t idx = b * g.stride_c + i * g.ldc + j;
        c0[idx] = beta != 0 ? urand() : NAN;
        cbuf[guard + idx] = c0[idx];
      }
  g.a = A.ptr();
  g.b = B.ptr();
  g.c = cbuf.data() + guard;
  g.bias = bias ? biasv.data() : nullptr;
  g.preact = want_pre ? pbuf.data() + guard : nullptr;
  Exec ex;
  ex.pool = &pool;
  try {
    cpu::gemm_with_isa(ex, g, isa);
  } catch (const std::exception& e) {
    printf("FAIL exception %s\n", e.what());
    ++failures;
    return;
  }
  const bool rnd = ct == DType::BF16;
  double max_err = 0;
  bool bad_guard = false;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double s = 0, sa = 0;
        for (int64_t p = 0; p < K; ++p) {
          double av = A.at(b * g.stride_a + (ta ? p * g.lda + i : i * g.lda + p), rnd);
          double bv = B.at(b * g.stride_b + (tb ? j * g.ldb + p : p * g.ldb + j), rnd);
          s += av * bv;
          sa += std::fabs(av * bv);
        }
        int64_t idx = b * g.stride_c + i * g.ldc + j;
        double z = alpha * s + (beta != 0 ? beta * (double)c0[idx] : 0) + (bias ? biasv[j] : 0);
        double scale = std::fabs(alpha) * sa + (beta != 0 ? std::fabs(beta * c0[idx]) : 0) +
                       (bias ? std::fabs(biasv[j]) : 0) + 1e-3;
        double got = cbuf[guard + idx];
        double err = std::fabs(got - act_ref(z, act)) / scale;
        if (!(err <= 2e-5)) max_err = std::max(max_err, std::isnan(err) ? 1e30 : err);
        max_err = std::max(max_err, err);
        if (want_pre && act != Act::None) {
          double e2 = std::fabs(pbuf[guard + idx] - z) / scale;
          max_err = std::max(max_err, std::isnan(e2) ? 1e30 : e2);
        }
      }
  // Guards: everything of C outside the M x N items must be untouched.
  std::vector<char> inside(c_len, 0);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) inside[b * g.stride_c + i * g.ldc + j] = 1;
  for (int64_t x = 0; x < c_len + 2 * guard; ++x) {
    bool in = x >= guard && x < guard + c_len && inside[x - guard];
    if (!in && cbuf[x] != kGuard) bad_guard = true;
    if ((!in || !want_pre || act == Act::None) && pbuf[x] != kGuard) bad_guard = true;
  }
  if (max_err > 2e-5 || bad_guard) {
    ++failures;
    printf(
        "FAIL isa=%s M=%lld N=%lld K=%lld batch=%lld ta=%d tb=%d a=%s b=%s c=%s act=%d bias=%d "
        "alpha=%g beta=%g shareA=%d shareB=%d pad=%d pre=%d: max_err=%g guard=%s\n",
        cpu_isa_name(isa), (long long)M, (long long)N, (long long)K, (long long)batch, ta, tb, dtype_name(at),
        dtype_name(bt), dtype_name(ct), (int)act, bias, alpha, beta, share_a, share_b, pad, want_pre, max_err,
        bad_guard ? "CLOBBERED" : "ok");
  }
}

// gemm_backward vs float64 gradients.
static void check_backward(ThreadPool& pool, int64_t M, int64_t N, int64_t K, int64_t batch, bool ta, bool tb, Act act,
                           float alpha, bool share_a, bool share_b) {
  ++cases;
  GemmArgs g;
  g.trans_a = ta;
  g.trans_b = tb;
  g.m = M;
  g.n = N;
  g.k = K;
  g.batch = batch;
  g.alpha = alpha;
  g.act = act;
  g.lda = (ta ? M : K) + 1;
  g.ldb = (tb ? K : N) + 2;
  g.ldc = N + 3;
  int64_t a_item = (ta ? K : M) * g.lda, b_item = (tb ? N : K) * g.ldb;
  g.stride_a = share_a ? 0 : a_item;
  g.stride_b = share_b ? 0 : b_item;
  g.stride_c = M * g.ldc;
  std::vector<float> A(std::max<int64_t>(1, share_a ? a_item : a_item * batch)),
      B(std::max<int64_t>(1, share_b ? b_item : b_item * batch));
  for (auto& x : A) x = urand();
  for (auto& x : B) x = urand();
  std::vector<float> C(g.stride_c * batch + 1), P(g.stride_c * batch + 1), dC(g.stride_c * batch + 1), bias(N);
  for (auto& x : dC) x = urand();
  for (auto& x : bias) x = urand();
  g.a = A.data();
  g.b = B.data();
  g.c = C.data();
  g.bias = bias.data();
  g.preact = P.data();
  Exec ex;
  ex.pool = &pool;
  cpu::gemm(ex, g);
  std::vector<float> dA(A.size(), kGuard), dB(B.size()), dbias(N);
  for (auto& x : dB) x = urand();
  for (auto& x : dbias) x = urand();
  std::vector<float> dB0 = dB, dbias0 = dbias;
  cpu::gemm_backward(ex, g, dC.data(), dA.data(), dB.data(), dbias.data());
  // Reference.
  std::vector<double> rA(A.size(), 0), rB(B.size(), 0), rbias(N, 0), sA(A.size(), 0), sB(B.size(), 0);
  std::vector<char> touchedA(A.size(), 0);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double z = 0;
        for (int64_t p = 0; p < K; ++p)
          z += (double)A[b * g.stride_a + (ta ? p * g.lda + i : i * g.lda + p)] *
               B[b * g.stride_b + (tb ? j * g.ldb + p : p * g.ldb + j)];
        z = alpha * z + bias[j];
        double d = dC[b * g.stride_c + i * g.ldc + j];
        if (act == Act::Relu) d = z > 0 ? d : 0;
        if (act == Act::Gelu)
          d *= 0.5 * (1 + std::erf(z / std::sqrt(2.0))) + z * std::exp(-0.5 * z * z) / std::sqrt(2 * M_PI);
        rbias[j] += d;
        for (int64_t p = 0; p < K; ++p) {
          int64_t ia = b * g.stride_a + (ta ? p * g.lda + i : i * g.lda + p);
          int64_t ib = b * g.stride_b + (tb ? j * g.ldb + p : p * g.ldb + j);
          rA[ia] += alpha * d * B[ib];
          sA[ia] += std::fabs(alpha * d * B[ib]);
          rB[ib] += alpha * d * A[ia];
          sB[ib] += std::fabs(alpha * d * A[ia]);
          touchedA[ia] = 1;
        }
      }
  double err = 0;
  for (size_t x = 0; x < A.size(); ++x) {
    if (!touchedA[x]) {
      if (dA[x] != kGuard) err = 1e30;
      continue;
    }
    err = std::max(err, std::fabs(dA[x] - rA[x]) / (sA[x] + 1e-3));
  }
  for (size_t x = 0; x < B.size(); ++x) err = std::max(err, std::fabs(dB[x] - dB0[x] - rB[x]) / (sB[x] + 1e-3));
  for (int64_t j = 0; j < N; ++j)
    err = std::max(err, std::fabs(dbias[j] - dbias0[j] - rbias[j]) / (1.0 + std::fabs(rbias[j])));
  if (!(err < 1e-4)) {
    ++failures;
    printf("FAIL backward M=%lld N=%lld K=%lld batch=%lld ta=%d tb=%d act=%d shareA=%d shareB=%d err=%g\n",
           (long long)M, (long long)N, (long long)K, (long long)batch, ta, tb, (int)act, share_a, share_b, err);
  }
}

static void expect_throw(ThreadPool& pool, GemmArgs g, const char* what) {
  ++cases;
  Exec ex;
  ex.pool = &pool;
  try {
    cpu::gemm(ex, g);
    printf("FAIL no exception for %s\n", what);
    ++failures;
  } catch (const Error& e) {
    printf("  ok: %s -> %s\n", what, e.what());
  }
}

// Every ISA packer must produce exactly the bytes of the portable one (including NaN, infinities,
// denormals and ties in the bf16 rounding).
static void check_packers() {
  using namespace cpu::gemm_detail;
  std::vector<KernelSet> sets = {generic_kernels_f32()};
  if (cpu_isa_detected() >= CpuIsa::Avx2) sets.push_back(avx2_kernels_f32());
  if (cpu_isa_detected() >= CpuIsa::Avx512) sets.push_back(avx512_kernels_f32());
  const float specials[] = {
      NAN,        -NAN, INFINITY, -INFINITY, 1e-40f, -3e-39f, 0.0f, -0.0f, 1.00390625f /* bf16 tie, even */,
      1.01171875f /* tie, odd */};
  for (const auto& ks : sets)
    for (int w : {4, 6, 8, 16, 32, 48})
      for (int fmt = 0; fmt < 3; ++fmt)
        for (int trans = 0; trans < 2; ++trans)
          for (int type = 0; type < 2; ++type)
            for (int rep = 0; rep < 6; ++rep) {
              ++cases;
              int64_t rows = irand(1, 3 * w), kc = irand(1, 70), r0 = irand(0, 5), p0 = 2 * irand(0, 3);
              int64_t nr = r0 + rows, nk = p0 + kc;
              PackSrc s;
              s.trans = trans;
              s.ld = (trans ? nr : nk) + irand(0, 3);
              s.type = type ? DType::BF16 : DType::F32;
              int64_t len = (trans ? nk : nr) * s.ld;
              std::vector<float> f(len);
              std::vector<uint16_t> h(len);
              for (int64_t i = 0; i < len; ++i) {
                f[i] = irand(0, 9) == 0 ? specials[irand(0, 9)] : urand();
                h[i] = f32_to_bf16(f[i]);
              }
              s.data = type ? (const void*)h.data() : (const void*)f.data();
              PackFmt pf = (PackFmt)fmt;
              size_t bytes = ((rows + w - 1) / w) * panel_bytes(kc, w, pf);
              std::vector<char> x(bytes + 64, 0x5a), y(bytes + 64, 0x5a);
              pack_generic(s, r0, rows, p0, kc, w, pf, x.data());
              ks.pack(s, r0, rows, p0, kc, w, pf, y.data());
              if (x != y) {
                ++failures;
                printf("FAIL packer %s w=%d fmt=%d trans=%d type=%d rows=%lld kc=%lld\n", ks.name, w, fmt, trans, type,
                       (long long)rows, (long long)kc);
              }
            }
}

int main(int argc, char** argv) {
  ThreadPool pool(2);
  int random_cases = argc > 1 ? atoi(argv[1]) : 400;
  std::vector<CpuIsa> isas;
  for (int i = 0; i <= (int)cpu_isa_detected(); ++i) isas.push_back((CpuIsa)i);
  printf("detected %s, bf16 dot %d\n", cpu_isa_name(cpu_isa_detected()), (int)cpu_features().avx512_bf16);
  check_packers();
  printf("packers: %d failures\n", failures);
  const int64_t sizes[] = {0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 97, 197};
  for (CpuIsa isa : isas) {
    int before = failures;
    // Structured sweep: every flag combination at a few awkward sizes.
    for (int combo = 0; combo < 256; ++combo) {
      bool ta = combo & 1, tb = combo & 2;
      DType at = (combo & 4) ? DType::BF16 : DType::F32, bt = (combo & 8) ? DType::BF16 : DType::F32;
      DType ct = (combo & 16) ? DType::BF16 : DType::F32;
      Act act = (Act)((combo >> 5) % 3);
      bool bias = combo & 64, beta = combo & 128;
      int64_t M = sizes[irand(1, 14)], N = sizes[irand(1, 14)], K = sizes[irand(1, 14)];
      check_forward(pool, isa, M, N, K, 1, ta, tb, at, bt, ct, act, bias, 1.0f, beta ? 0.5f : 0.0f, false, false,
                    (int)irand(0, 3), true);
    }
    // Random: sizes including zero, batches with shared operands, alpha/beta.
    for (int t = 0; t < random_cases; ++t) {
      int64_t M = sizes[irand(0, 14)], N = sizes[irand(0, 14)], K = sizes[irand(0, 14)];
      if (irand(0, 3) == 0) {
        M = irand(1, 300);
        N = irand(1, 300);
        K = irand(1, 900);
      }
      int64_t batch = irand(0, 5) == 0 ? 0 : irand(1, 3);
      check_forward(pool, isa, M, N, K, batch, irand(0, 1), irand(0, 1), irand(0, 1) ? DType::BF16 : DType::F32,
                    irand(0, 1) ? DType::BF16 : DType::F32, irand(0, 1) ? DType::BF16 : DType::F32, (Act)irand(0, 2),
                    irand(0, 1), irand(0, 1) ? 1.0f : -0.75f, irand(0, 1) ? 0.0f : 1.5f, irand(0, 2) == 0,
                    irand(0, 2) == 0, (int)irand(0, 2), irand(0, 1));
    }
    // Larger ones that cross every cache block (K > KC, N > NC, several row chunks).
    check_forward(pool, isa, 1576, 200, 800, 1, false, true, DType::F32, DType::F32, DType::F32, Act::Gelu, true, 1.0f,
                  0.0f, false, false, 0, true);
    check_forward(pool, isa, 300, 700, 1600, 1, true, false, DType::F32, DType::BF16, DType::BF16, Act::Relu, true,
                  1.0f, 1.0f, false, false, 1, true);
    check_forward(pool, isa, 197, 600, 1537, 2, false, true, DType::BF16, DType::BF16, DType::BF16, Act::None, false,
                  2.0f, 0.0f, false, true, 0, false);
    check_forward(pool, isa, 1, 1000, 333, 1, false, false, DType::F32, DType::F32, DType::F32, Act::None, true, 1.0f,
                  0.0f, false, false, 0, false);
    printf("isa %s: %d failures\n", cpu_isa_name(isa), failures - before);
  }
  // Backward.
  for (int t = 0; t < 60; ++t) {
    check_backward(pool, irand(1, 40), irand(1, 40), irand(1, 40), irand(1, 3), irand(0, 1), irand(0, 1),
                   (Act)irand(0, 2), irand(0, 1) ? 1.0f : 0.5f, irand(0, 2) == 0, irand(0, 2) == 0);
  }
  check_backward(pool, 197, 300, 500, 1, false, true, Act::Gelu, 1.0f, false, false);
  // Argument errors.
  GemmArgs g;
  g.m = 3;
  g.n = 4;
  g.k = 7;
  g.lda = 5;
  g.ldb = 4;
  g.ldc = 4;
  std::vector<float> buf(100);
  g.a = buf.data();
  g.b = buf.data();
  g.c = buf.data();
  expect_throw(pool, g, "lda < k");
  g.lda = 7;
  g.m = -1;
  expect_throw(pool, g, "negative m");
  g.m = 3;
  g.a = nullptr;
  expect_throw(pool, g, "null a");
  g.a = buf.data();
  g.a_type = DType::I32;
  expect_throw(pool, g, "I32 a");
  g.a_type = DType::F32;
  g.ldc = 2;
  expect_throw(pool, g, "ldc < n");
  printf("%d cases, %d failures\n", cases, failures);
  return failures ? 1 : 0;
}
