// bench_attention.cpp: CPU attention forward and backward (cpu_ops().attention_forward/backward)
// on the three product shapes, with the strides the model really uses:
//   vit     ViT-B/16 self-attention, B=8, T=197, 12 heads x 64, q/k/v read from the packed
//           (B, T, 3C) qkv buffer (ld 3C), out (B, T, C)                       (vit.cpp attn_args)
//   bert    BERT-base self-attention, B=14 prompts, T=97, 12 x 64, packed qkv, key-padding mask
//           (prompt lengths 9..38 tokens, the rest padding)                   (bert.cpp attn_args)
//   head    the alignment head's cross-attention, 4 heads x 192 (C = 768), packed kv (ld 2C),
//           one query set shared by every memory (q batch stride 0)     (align_head.cpp attn_args)
//           i2t: B=8 image memories of S=197, Q=14 text queries each;
//           t2i: 14 text memories of S=98, 8 image queries each.
// Forward stores lse (what training needs; inference leaves it null, same kernel otherwise).
// Backward recomputes the probabilities from lse and accumulates dq, dk, dv.
// FLOPs: forward 4 B NH Tq Tk HS (QK^T and PV), backward 10 B NH Tq Tk HS (QK^T recomputed, dV,
// dP, dQ, dK), counted over all Tk keys even where the mask removes some.
// Warm-up, then forward and backward interleaved rep by rep; medians (and minima) reported.
// Each shape is checked once against a float64 reference on a few (b, h, query) rows.
//
// Usage: bench_attention [--reps N] [--warmup N] [--threads N] [--shapes vit,bert,i2t,t2i]
//                        [--json FILE]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/threadpool.h"
#include "ops.h"

using namespace carzero;

namespace {

struct Shape {
  std::string name, what;
  int64_t B, NH, Tq, Tk, HS;
  bool self;      // q, k, v packed in one (B, T, 3C) buffer
  bool mask;      // key-padding mask
  bool shared_q;  // cross: q (Tq, C) shared by every batch item
};

struct Row {
  std::string shape, what, pass;
  int64_t B, NH, Tq, Tk, HS;
  double ms, ms_min, gflops;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 9, warmup = 2, threads = ThreadPool::default_threads();
  std::string shapes = "vit,bert,i2t,t2i", json;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_attention: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--reps")
      reps = std::max(1, std::atoi(next()));
    else if (a == "--warmup")
      warmup = std::max(0, std::atoi(next()));
    else if (a == "--threads")
      threads = std::max(1, std::atoi(next()));
    else if (a == "--shapes")
      shapes = next();
    else if (a == "--json")
      json = next();
    else {
      std::fprintf(
          stderr,
          "usage: bench_attention [--reps N] [--warmup N] [--threads N] [--shapes vit,bert,i2t,t2i] [--json FILE]\n");
      return 2;
    }
  }
  std::vector<Shape> all = {
      {"vit", "ViT-B/16 self-attention, packed qkv", 8, 12, 197, 197, 64, true, false, false},
      {"bert", "BERT-base self-attention, packed qkv, key-padding mask", 14, 12, 97, 97, 64, true, true, false},
      {"i2t", "head cross-attention i2t: 8 image memories (S=197) x 14 text queries, packed kv", 8, 4, 14, 197, 192,
       false, false, true},
      {"t2i", "head cross-attention t2i: 14 text memories (S=98) x 8 image queries, packed kv", 14, 4, 8, 98, 192,
       false, false, true},
  };
  std::vector<Shape> list;
  for (const auto& s : all)
    if (("," + shapes + ",").find("," + s.name + ",") != std::string::npos) list.push_back(s);
  if (list.empty()) {
    std::fprintf(stderr, "bench_attention: no shapes in '%s'\n", shapes.c_str());
    return 2;
  }

  ThreadPool pool(threads);
  Exec ex;
  ex.pool = &pool;
  const OpTable& ops = cpu_ops();
  std::printf("cpu: %s | isa %s | threads %d | reps %d | warm-up %d\n", cpu_features().brand.c_str(),
              cpu_isa_name(cpu_isa()), threads, reps, warmup);
  std::printf("%-5s %-8s %4s %3s %4s %4s %4s %10s %10s %9s\n", "shape", "pass", "B", "NH", "Tq", "Tk", "HS", "ms(med)",
              "ms(min)", "GFLOP/s");

  std::mt19937 rng(11);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<Row> rows;
  std::vector<double> rels;  // forward max rel err vs float64, per shape
  bool all_ok = true;
  for (const Shape& s : list) {
    const int64_t B = s.B, NH = s.NH, Tq = s.Tq, Tk = s.Tk, HS = s.HS, C = NH * HS;
    std::vector<float> qbuf, kvbuf;
    AttnArgs at;
    at.B = B;
    at.NH = NH;
    at.Tq = Tq;
    at.Tk = Tk;
    at.HS = HS;
    at.scale = 1.0f / std::sqrt(static_cast<float>(HS));
    if (s.self) {
      kvbuf.resize(static_cast<size_t>(B * Tq * 3 * C));
      for (auto& x : kvbuf) x = dist(rng);
      at.q = kvbuf.data();
      at.k = kvbuf.data() + C;
      at.v = kvbuf.data() + 2 * C;
      at.ldq = at.ldk = at.ldv = 3 * C;
      at.q_bs = at.k_bs = at.v_bs = Tq * 3 * C;
    } else {
      qbuf.resize(static_cast<size_t>((s.shared_q ? 1 : B) * Tq * C));
      kvbuf.resize(static_cast<size_t>(B * Tk * 2 * C));
      for (auto& x : qbuf) x = dist(rng);
      for (auto& x : kvbuf) x = dist(rng);
      at.q = qbuf.data();
      at.ldq = C;
      at.q_bs = s.shared_q ? 0 : Tq * C;
      at.k = kvbuf.data();
      at.v = kvbuf.data() + C;
      at.ldk = at.ldv = 2 * C;
      at.k_bs = at.v_bs = Tk * 2 * C;
    }
    std::vector<float> out(static_cast<size_t>(B * Tq * C)), lse(static_cast<size_t>(B * NH * Tq));
    std::vector<float> dout(out.size());
    for (auto& x : dout) x = dist(rng);
    at.out = out.data();
    at.ldo = C;
    at.o_bs = Tq * C;
    at.lse = lse.data();
    std::vector<uint8_t> mask;
    if (s.mask) {
      mask.assign(static_cast<size_t>(B * Tk), 0);
      for (int64_t b = 0; b < B; ++b) {
        const int64_t len = std::min<int64_t>(Tk, 9 + (b * 7) % 30);  // 9..38 real tokens
        for (int64_t t = 0; t < len; ++t) mask[b * Tk + t] = 1;
      }
      at.key_mask = mask.data();
      at.mask_bs = Tk;
    }
    // Gradients: same layout as q, k, v (packed buffers of the same size).
    std::vector<float> dqbuf(qbuf.size()), dkvbuf(kvbuf.size());
    AttnGrads g;
    g.dout = dout.data();
    if (s.self) {
      g.dq = dkvbuf.data();
      g.dk = dkvbuf.data() + C;
      g.dv = dkvbuf.data() + 2 * C;
    } else {
      g.dq = dqbuf.data();
      g.dk = dkvbuf.data();
      g.dv = dkvbuf.data() + C;
    }

    // float64 spot check of the forward on a few rows.
    ops.attention_forward(ex, at);
    double max_err = 0, max_ref = 0;
    for (int64_t b : {int64_t(0), B - 1})
      for (int64_t h : {int64_t(0), NH - 1})
        for (int64_t i : {int64_t(0), Tq / 2, Tq - 1}) {
          const float* q = static_cast<const float*>(at.q) + b * at.q_bs + i * at.ldq + h * HS;
          std::vector<double> sc(static_cast<size_t>(Tk));
          double mx = -1e300;
          for (int64_t j = 0; j < Tk; ++j) {
            if (s.mask && !mask[b * Tk + j]) {
              sc[j] = -1e300;
              continue;
            }
            const float* k = static_cast<const float*>(at.k) + b * at.k_bs + j * at.ldk + h * HS;
            double d = 0;
            for (int64_t c = 0; c < HS; ++c) d += double(q[c]) * k[c];
            sc[j] = d * at.scale;
            mx = std::max(mx, sc[j]);
          }
          double den = 0;
          for (int64_t j = 0; j < Tk; ++j) den += sc[j] <= -1e299 ? 0 : std::exp(sc[j] - mx);
          for (int64_t c = 0; c < HS; ++c) {
            double o = 0;
            for (int64_t j = 0; j < Tk; ++j)
              if (sc[j] > -1e299)
                o +=
                    std::exp(sc[j] - mx) / den * static_cast<const float*>(at.v)[b * at.v_bs + j * at.ldv + h * HS + c];
            const double got = out[b * at.o_bs + i * at.ldo + h * HS + c];
            max_err = std::max(max_err, std::fabs(got - o));
            max_ref = std::max(max_ref, std::fabs(o));
          }
        }
    const double rel = max_err / std::max(max_ref, 1e-30);
    const bool ok = rel <= 1e-4;
    all_ok = all_ok && ok;
    if (!ok) std::printf("%s: MISMATCH vs float64, max rel err %.2e\n", s.name.c_str(), rel);

    auto fwd = [&] { ops.attention_forward(ex, at); };
    auto bwd = [&] { ops.attention_backward(ex, at, g); };
    for (int w = 0; w < warmup; ++w) {
      fwd();
      bwd();
    }
    std::vector<double> tf, tb;
    for (int r = 0; r < reps; ++r) {
      double t0 = now_ms();
      fwd();
      tf.push_back(now_ms() - t0);
      t0 = now_ms();
      bwd();
      tb.push_back(now_ms() - t0);
    }
    const double f1 = 4.0 * B * NH * Tq * Tk * HS;
    for (int p = 0; p < 2; ++p) {
      Row row;
      row.shape = s.name;
      row.what = s.what;
      row.pass = p == 0 ? "forward" : "backward";
      row.B = B;
      row.NH = NH;
      row.Tq = Tq;
      row.Tk = Tk;
      row.HS = HS;
      const auto& t = p == 0 ? tf : tb;
      row.ms = median(t);
      row.ms_min = *std::min_element(t.begin(), t.end());
      row.gflops = (p == 0 ? f1 : 2.5 * f1) / (row.ms * 1e6);
      std::printf("%-5s %-8s %4lld %3lld %4lld %4lld %4lld %10.3f %10.3f %9.1f%s\n", row.shape.c_str(),
                  row.pass.c_str(), (long long)B, (long long)NH, (long long)Tq, (long long)Tk, (long long)HS, row.ms,
                  row.ms_min, row.gflops, ok ? "" : "  MISMATCH");
      rows.push_back(row);
    }
    rels.push_back(rel);
  }
  if (!json.empty()) {
    FILE* f = std::fopen(json.c_str(), "w");
    if (!f) {
      std::fprintf(stderr, "bench_attention: cannot write %s\n", json.c_str());
      return 1;
    }
    std::fprintf(
        f, "{\n  \"cpu\": \"%s\", \"isa\": \"%s\", \"threads\": %d, \"reps\": %d, \"warmup\": %d,\n  \"results\": [\n",
        cpu_features().brand.c_str(), cpu_isa_name(cpu_isa()), threads, reps, warmup);
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& x = rows[i];
      std::fprintf(
          f,
          "    {\"shape\": \"%s\", \"what\": \"%s\", \"pass\": \"%s\", \"B\": %lld, \"NH\": %lld, \"Tq\": %lld, "
          "\"Tk\": %lld, \"HS\": %lld, \"ms\": %.4f, \"ms_min\": %.4f, \"gflops\": %.3f, \"rel_err\": %.3e}%s\n",
          x.shape.c_str(), x.what.c_str(), x.pass.c_str(), (long long)x.B, (long long)x.NH, (long long)x.Tq,
          (long long)x.Tk, (long long)x.HS, x.ms, x.ms_min, x.gflops, rels[i / 2], i + 1 < rows.size() ? "," : "");
    }
    std::fprintf(f, "  ],\n  \"ok\": %s\n}\n", all_ok ? "true" : "false");
    std::fclose(f);
  }
  return all_ok ? 0 : 1;
}
