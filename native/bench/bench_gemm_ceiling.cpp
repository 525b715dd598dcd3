// bench_gemm_ceiling.cpp: how close the CPU fp32 GEMM runs to what this machine allows, on the
// workload of the ViT-B/16 batch-1 forward (the issue-14 bar against onnxruntime).
//
// Three measurements, each on 1 thread and then on --threads threads at once:
//  1. kernel, L2: the fp32 micro-kernel alone over one packed block the size the GEMM driver uses
//     (the 197 rows of a batch-1 GEMM as A panels x 8 B panels, B block KC x NC), the same block again and again: the
//     ceiling of the register tile with its operands in cache. With several threads each runs its own copy (own
//     buffers, own std::thread): what the cores reach side by side.
//  2. kernel, B from DRAM: the same loop, each B block fresh from a pool far larger than the
//     caches, as the prepacked weights of a forward arrive (read once per call).
//  3. ViT batch 1: the 48 GEMMs of the 12 encoder blocks (M = 197; qkv, proj, fc1 with GELU,
//     fc2; 12 distinct prepacked weight sets, as in the model) through cpu::gemm_prepacked on a
//     pool of the given size: the real driver (packing A, epilogues, task grid, pool).
// Reported: GFLOP/s per thread (1, 2) and in all (3), and (3) as a share of threads x (2).
//
// Usage: bench_gemm_ceiling [--threads N] [--reps N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/cpu_features.h"
#include "core/threadpool.h"
#include "cpu/cpu_ops.h"
#include "cpu/gemm_internal.h"

using namespace carzero;
using namespace carzero::cpu::gemm_detail;

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

KernelSet f32_kernels() {
  switch (cpu_isa()) {
    case CpuIsa::Avx512: return avx512_kernels_f32();
    case CpuIsa::Avx2: return avx2_kernels_f32();
    default: return generic_kernels_f32();
  }
}

// One thread's kernel loop: `blocks` B blocks of 8 panels (KC x NR each) against the A panels of 197 rows, C
// rows of the ViT's widest stride. fresh: each block from its own memory (a pool of `pool_blocks`
// blocks, > 64 MB); else the same block each time. Returns GFLOP/s of the best of `reps` passes.
double kernel_loop(const KernelSet& ks, bool fresh, int reps) {
  const int64_t kc = ks.kc, nbp = 8, na = (197 + ks.mr - 1) / ks.mr, ldc = 3072;
  const int64_t bblock = nbp * kc * ks.nr;
  const int64_t pool_blocks = fresh ? std::max<int64_t>(64, (int64_t(80) << 20) / (bblock * 4)) : 1;
  const int64_t blocks = 96;
  std::vector<float> A(size_t(na * kc * ks.mr), 0.001f), B(size_t(pool_blocks * bblock), 0.002f),
      C(size_t(na * ks.mr * ldc), 0.0f);
  TileEpilogue ep;
  double best = 0;
  int64_t next = 0;
  for (int r = 0; r < reps + 1; ++r) {  // the first pass warms up
    const double t0 = now_s();
    for (int64_t bl = 0; bl < blocks; ++bl) {
      const float* bb = B.data() + (next++ % pool_blocks) * bblock;
      const int64_t col = (bl % 12) * nbp * ks.nr;
      for (int64_t i = 0; i < na; ++i)
        for (int64_t j = 0; j < nbp; ++j)
          ks.kernel(kc, A.data() + i * kc * ks.mr, bb + j * kc * ks.nr, C.data() + i * ks.mr * ldc + col + j * ks.nr,
                    ldc, ks.mr, ks.nr, ep);
    }
    const double s = now_s() - t0;
    if (r > 0) best = std::max(best, 2.0 * blocks * na * nbp * ks.mr * ks.nr * double(kc) / s / 1e9);
  }
  return best;
}

// kernel_loop on n threads at once; the per-thread GFLOP/s (mean over threads).
double kernel_side_by_side(const KernelSet& ks, bool fresh, int reps, int n) {
  std::vector<double> g(size_t(n), 0.0);
  std::vector<std::thread> th;
  for (int t = 0; t < n; ++t) th.emplace_back([&, t] { g[size_t(t)] = kernel_loop(ks, fresh, reps); });
  for (auto& x : th) x.join();
  double s = 0;
  for (double x : g) s += x;
  return s / n;
}

struct VitGemms {
  static constexpr int kLayers = 12;
  struct Shape {
    int64_t n, k;
    Act act;
  };
  const Shape shapes[4] = {
      {2304, 768, Act::None}, {768, 768, Act::None}, {3072, 768, Act::Gelu}, {768, 3072, Act::None}};
  std::vector<std::vector<float>> w;
  std::vector<std::unique_ptr<cpu::PackedWeight>> pw;
  std::vector<float> a, c, bias;
  const int64_t m = 197;

  VitGemms() : a(size_t(197 * 3072)), c(size_t(197 * 3072)), bias(3072, 0.01f) {
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-0.05f, 0.05f);
    for (auto& x : a) x = u(rng);
    for (int l = 0; l < kLayers; ++l)
      for (const Shape& s : shapes) {
        w.emplace_back(size_t(s.n * s.k));
        for (auto& x : w.back()) x = u(rng);
        pw.push_back(std::make_unique<cpu::PackedWeight>(w.back().data(), DType::F32, s.n, s.k));
      }
  }
  double flops() const { return 2.0 * m * 768 * (2304 + 768 + 3072 + 3072) * kLayers; }
  void run(Exec& ex) {
    for (int l = 0; l < kLayers; ++l)
      for (int s = 0; s < 4; ++s) {
        const size_t i = size_t(l * 4 + s);
        GemmArgs g;
        g.trans_b = true;
        g.m = m;
        g.n = shapes[s].n;
        g.k = shapes[s].k;
        g.a = a.data();
        g.lda = g.k;
        g.b = w[i].data();
        g.ldb = g.k;
        g.c = c.data();
        g.ldc = g.n;
        g.bias = bias.data();
        g.act = shapes[s].act;
        cpu::gemm_prepacked(ex, g, *pw[i]);
      }
  }
};

}  // namespace

int main(int argc, char** argv) {
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int reps = 9;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--threads" || a == "--reps") && i + 1 < argc) {
      const int v = std::atoi(argv[++i]);
      if (v < 1) {
        std::fprintf(stderr, "bench_gemm_ceiling: %s must be a positive integer\n", a.c_str());
        return 2;
      }
      (a == "--threads" ? threads : reps) = v;
    } else {
      std::fprintf(stderr, "usage: bench_gemm_ceiling [--threads N] [--reps N]\n");
      return 2;
    }
  }
  const KernelSet ks = f32_kernels();
  std::printf("bench_gemm_ceiling: isa %s, kernel %s (%d x %d, KC %lld), threads 1 and %d, reps %d\n",
              cpu_isa_name(cpu_isa()), ks.name, ks.mr, ks.nr, (long long)ks.kc, threads, reps);
  const double l2_1 = kernel_loop(ks, false, reps), dram_1 = kernel_loop(ks, true, reps);
  const double l2_n = kernel_side_by_side(ks, false, reps, threads);
  const double dram_n = kernel_side_by_side(ks, true, reps, threads);
  std::printf("kernel, L2-resident panels        : %7.1f GFLOP/s per thread alone, %7.1f each with %d at once\n", l2_1,
              l2_n, threads);
  std::printf("kernel, B blocks fresh from DRAM  : %7.1f GFLOP/s per thread alone, %7.1f each with %d at once\n",
              dram_1, dram_n, threads);
  VitGemms v;
  std::vector<int> counts{1};
  if (threads > 1) counts.push_back(threads);
  for (int n : counts) {
    ThreadPool pool(n);
    Exec ex;
    ex.pool = &pool;
    v.run(ex);  // packs the weights, warms up
    std::vector<double> t;
    for (int r = 0; r < reps; ++r) {
      const double t0 = now_s();
      v.run(ex);
      t.push_back(now_s() - t0);
    }
    const double ms = median(t) * 1e3, gf = v.flops() / (ms * 1e6);
    const double ceiling = n == 1 ? dram_1 : dram_n * n;
    std::printf(
        "ViT batch-1 GEMMs (48, prepacked) : %7.2f ms on %d thread(s), %7.1f GFLOP/s = %4.1f %% of %d x the DRAM-B "
        "kernel\n",
        ms, n, gf, 100.0 * gf / ceiling, n);
  }
  return 0;
}
