// bench_gemm.cpp: CPU GEMM benchmark, ours against OpenBLAS sgemm in the same process.
//
// Shapes: "vit" = ViT-B/16 linear layers at batch 8 (M = 197 x 8 = 1576 tokens, y = x @ W^T, so
// trans_b with W stored (N, K)); "square" = 2048^3 without transposes. For each shape: ours fp32,
// OpenBLAS fp32, ours bf16 with f32 activations rounded while packing, ours bf16 with bf16
// activations (weights bf16 in both). Warm-up, then the variants interleaved rep by rep (the
// machine is shared and noisy, so each variant sees the same conditions), medians reported.
// Results are checked against OpenBLAS (or a float64 spot check) so a fast wrong kernel shows.
//
// OpenBLAS is a benchmark-only dependency: opened with dlopen, called through our own prototype.
// Run it with OPENBLAS_NUM_THREADS equal to --threads and OPENBLAS_CORETYPE unset.
//
// Usage: bench_gemm [--shapes vit|square|all] [--reps N] [--threads N] [--json FILE] [--gap-ms N]
// (--gap-ms: pause before each timed call, default 0. Back to back is how a model runs its
// GEMMs; after a pause of ~100 ms+ this VM is slow to wake the idle second vCPU for our pool,
// while OpenBLAS's workers spin and stay awake, so gaps mostly measure wake-up latency.)
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/status.h"
#include "core/threadpool.h"
#include "cpu/cpu_ops.h"

using namespace carzero;

namespace {

// cblas_sgemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
using SetThreadsFn = void (*)(int);
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

struct OpenBlas {
  SgemmFn sgemm = nullptr;
  std::string why;  // reason it is unavailable
  std::string path;
};

OpenBlas open_openblas(int threads) {
  OpenBlas ob;
  void* h = nullptr;
  for (const char* name : {"libopenblas.so.0", "libopenblas.so"}) {
    h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (h) {
      ob.path = name;
      break;
    }
    const char* e = dlerror();
    ob.why = e ? e : "dlopen failed";
  }
  if (!h) return ob;
  ob.sgemm = reinterpret_cast<SgemmFn>(dlsym(h, "cblas_sgemm"));
  if (!ob.sgemm) {
    ob.why = "cblas_sgemm not found in " + ob.path;
    return ob;
  }
  if (auto set = reinterpret_cast<SetThreadsFn>(dlsym(h, "openblas_set_num_threads"))) set(threads);
  return ob;
}

struct Shape {
  const char* name;
  int64_t m, n, k;
  bool trans_b;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// max |x - ref| / max |ref|: one number per result, independent of the output scale.
double rel_err(const std::vector<float>& x, const std::vector<float>& ref) {
  double d = 0, r = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double e = std::fabs(static_cast<double>(x[i]) - ref[i]);
    d = std::isnan(e) ? INFINITY : std::max(d, e);
    r = std::max(r, std::fabs(static_cast<double>(ref[i])));
  }
  return d / (r > 0 ? r : 1);
}

struct Row {
  std::string shape, variant;
  double ms = 0, gflops = 0, ratio_openblas = 0, speedup_vs_f32 = 0, err = 0;
  bool ok = true;
};

}  // namespace

int main(int argc, char** argv) {
  std::string shapes = "all", json;
  int reps = 11, threads = 2, gap_ms = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_gemm: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--shapes")
      shapes = next();
    else if (a == "--reps")
      reps = std::max(1, std::atoi(next()));
    else if (a == "--threads")
      threads = std::max(1, std::atoi(next()));
    else if (a == "--json")
      json = next();
    else if (a == "--gap-ms")
      gap_ms = std::max(0, std::atoi(next()));
    else {
      std::fprintf(stderr,
                   "usage: bench_gemm [--shapes vit|square|all] [--reps N] [--threads N] [--json FILE] [--gap-ms N]\n");
      return 2;
    }
  }
  std::vector<Shape> list;
  if (shapes == "vit" || shapes == "all") {
    list.push_back({"vit qkv  1576x2304x768 tB", 1576, 2304, 768, true});
    list.push_back({"vit proj 1576x768x768 tB", 1576, 768, 768, true});
    list.push_back({"vit fc1  1576x3072x768 tB", 1576, 3072, 768, true});
    list.push_back({"vit fc2  1576x768x3072 tB", 1576, 768, 3072, true});
  }
  if (shapes == "square" || shapes == "all") list.push_back({"square 2048^3 nn", 2048, 2048, 2048, false});
  if (list.empty()) {
    std::fprintf(stderr, "bench_gemm: unknown --shapes %s\n", shapes.c_str());
    return 2;
  }

  ThreadPool pool(threads);
  Exec ex;
  ex.pool = &pool;
  const OpenBlas ob = open_openblas(threads);
  const char* obt = std::getenv("OPENBLAS_NUM_THREADS");
  std::printf("cpu: %s | isa %s | bf16 dot %s | threads %d | reps %d | gap %d ms\n", cpu_features().brand.c_str(),
              cpu_isa_name(cpu_isa()), cpu_has_bf16_dot() ? "yes" : "no", threads, reps, gap_ms);
  if (ob.sgemm)
    std::printf("openblas: %s (OPENBLAS_NUM_THREADS=%s)\n", ob.path.c_str(), obt ? obt : "unset");
  else
    std::printf("openblas: unavailable (%s)\n", ob.why.c_str());
  std::printf("%-28s %-18s %9s %9s %10s %9s %9s\n", "shape", "variant", "ms", "GFLOP/s", "vs OpenBLAS", "vs f32",
              "rel err");

  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<Row> rows;
  bool all_ok = true;
  for (const Shape& s : list) {
    const int64_t M = s.m, N = s.n, K = s.k;
    const double flop = 2.0 * M * N * K;
    std::vector<float> a(M * K), b(K * N), c_ours(M * N), c_ob(M * N), c_bf(M * N), c_bb(M * N);
    for (auto& x : a) x = dist(rng);
    for (auto& x : b) x = dist(rng);
    std::vector<uint16_t> a16(a.size()), b16(b.size());
    for (size_t i = 0; i < a.size(); ++i) a16[i] = f32_to_bf16(a[i]);
    for (size_t i = 0; i < b.size(); ++i) b16[i] = f32_to_bf16(b[i]);

    GemmArgs g;
    g.m = M;
    g.n = N;
    g.k = K;
    g.trans_b = s.trans_b;
    g.lda = K;
    g.ldb = s.trans_b ? K : N;
    g.ldc = N;
    g.a = a.data();
    g.b = b.data();
    g.c = c_ours.data();
    GemmArgs gbf = g;  // bf16 weights, f32 activations rounded while packing
    gbf.b_type = DType::BF16;
    gbf.b = b16.data();
    gbf.compute = DType::BF16;
    gbf.c = c_bf.data();
    GemmArgs gbb = gbf;  // bf16 weights and activations
    gbb.a_type = DType::BF16;
    gbb.a = a16.data();
    gbb.c = c_bb.data();

    auto run_ob = [&] {
      ob.sgemm(kRowMajor, kNoTrans, s.trans_b ? kTrans : kNoTrans, (int)M, (int)N, (int)K, 1.0f, a.data(), (int)K,
               b.data(), (int)g.ldb, 0.0f, c_ob.data(), (int)N);
    };
    struct Variant {
      const char* name;
      std::function<void()> fn;
      std::vector<double> ms;
    };
    std::vector<Variant> vars;
    vars.push_back({"ours f32", [&] { cpu::gemm(ex, g); }, {}});
    if (ob.sgemm) vars.push_back({"openblas f32", run_ob, {}});
    vars.push_back({"ours bf16 (A f32)", [&] { cpu::gemm(ex, gbf); }, {}});
    vars.push_back({"ours bf16 (A bf16)", [&] { cpu::gemm(ex, gbb); }, {}});
    for (int w = 0; w < 2; ++w)
      for (auto& v : vars) v.fn();
    // The order rotates every rep: OpenBLAS's worker threads busy-wait for a while after a call
    // and slow whatever runs next on a 2-core machine (our pool spins briefly too), so no
    // variant may always follow the same one. --gap-ms adds a pause before each timed call.
    for (int r = 0; r < reps; ++r)
      for (size_t x = 0; x < vars.size(); ++x) {
        auto& v = vars[(x + r) % vars.size()];
        if (gap_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(gap_ms));
        const double t0 = now_ms();
        v.fn();
        v.ms.push_back(now_ms() - t0);
      }

    // Correctness: fp32 against OpenBLAS; bf16 against the fp32 result of the rounded inputs'
    // product (OpenBLAS on bf16-rounded copies), so the check is tight, not "close to fp32".
    std::vector<float> ref_f32 = ob.sgemm ? c_ob : std::vector<float>();
    std::vector<float> ref_bf;
    if (ob.sgemm) {
      std::vector<float> ar(a.size()), br(b.size());
      for (size_t i = 0; i < a.size(); ++i) ar[i] = bf16_to_f32(a16[i]);
      for (size_t i = 0; i < b.size(); ++i) br[i] = bf16_to_f32(b16[i]);
      ref_bf.resize(M * N);
      ob.sgemm(kRowMajor, kNoTrans, s.trans_b ? kTrans : kNoTrans, (int)M, (int)N, (int)K, 1.0f, ar.data(), (int)K,
               br.data(), (int)g.ldb, 0.0f, ref_bf.data(), (int)N);
    } else {
      // No OpenBLAS: float64 spot check of a few rows for ours f32.
      ref_f32.assign(c_ours.begin(), c_ours.end());
      for (int64_t i = 0; i < M; i += std::max<int64_t>(1, M / 7))
        for (int64_t j = 0; j < N; ++j) {
          double acc = 0;
          for (int64_t p = 0; p < K; ++p) acc += (double)a[i * K + p] * b[s.trans_b ? j * K + p : p * N + j];
          ref_f32[i * N + j] = (float)acc;
        }
    }
    const double t_f32 = median(vars[0].ms);
    const double t_ob = ob.sgemm ? median(vars[1].ms) : 0;
    for (auto& v : vars) {
      Row row;
      row.shape = s.name;
      row.variant = v.name;
      row.ms = median(v.ms);
      row.gflops = flop / (row.ms * 1e6);
      row.ratio_openblas = t_ob > 0 ? t_ob / row.ms : 0;
      row.speedup_vs_f32 = t_f32 / row.ms;
      const std::string name = v.name;
      if (name == "ours f32")
        row.err = rel_err(c_ours, ref_f32), row.ok = row.err < 1e-5;
      else if (name == "openblas f32")
        row.err = 0;
      else if (!ref_bf.empty()) {
        row.err = rel_err(name.find("A f32") != std::string::npos ? c_bf : c_bb, ref_bf);
        row.ok = row.err < 1e-5;
      }
      all_ok = all_ok && row.ok;
      std::printf("%-28s %-18s %9.2f %9.1f %10.3f %9.2f %9.1e%s\n", row.shape.c_str(), row.variant.c_str(), row.ms,
                  row.gflops, row.ratio_openblas, row.speedup_vs_f32, row.err, row.ok ? "" : "  MISMATCH");
      rows.push_back(row);
    }
    std::fflush(stdout);
  }

  if (!json.empty()) {
    FILE* f = std::fopen(json.c_str(), "w");
    if (!f) {
      std::fprintf(stderr, "bench_gemm: cannot write %s\n", json.c_str());
      return 1;
    }
    std::fprintf(f, "{\n  \"cpu\": \"%s\", \"isa\": \"%s\", \"bf16_dot\": %s, \"threads\": %d, \"reps\": %d,\n",
                 cpu_features().brand.c_str(), cpu_isa_name(cpu_isa()), cpu_has_bf16_dot() ? "true" : "false", threads,
                 reps);
    std::fprintf(f, "  \"openblas\": \"%s\",\n  \"results\": [\n",
                 ob.sgemm ? ob.path.c_str() : ("unavailable: " + ob.why).c_str());
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      std::fprintf(f,
                   "    {\"shape\": \"%s\", \"variant\": \"%s\", \"ms\": %.4f, \"gflops\": %.2f, "
                   "\"ratio_vs_openblas\": %.4f, \"speedup_vs_ours_f32\": %.4f, \"rel_err\": %.3g, "
                   "\"ok\": %s}%s\n",
                   r.shape.c_str(), r.variant.c_str(), r.ms, r.gflops, r.ratio_openblas, r.speedup_vs_f32, r.err,
                   r.ok ? "true" : "false", i + 1 < rows.size() ? "," : "");
    }
    std::fprintf(f, "  ]\n}\n");
    std::fclose(f);
  }
  return all_ok ? 0 : 1;
}
