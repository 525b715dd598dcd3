// bench_model.cpp: the CARZero graphs at full size (ViT-B/16, BERT-base, the 4-layer head) with
// random weights built in memory: embed_images at B = 1 and 8, embed_texts at Q = 14 (L = 97),
// score pairs/s at B = 8 x Q = 14, fp32 and bf16. Usage: bench_model [fp32|bf16|both] [reps]
// (CARZERO_NUM_THREADS sets the threads). Numbers for bench/RESULTS.md with machine and date.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/cpu_features.h"
#include "model/carzero.h"

using namespace carzero;
using namespace carzero::model;

namespace {

uint64_t g_rng = 0x9E3779B97F4A7C15ull;
inline float frand() {  // uniform in [-1, 1): xorshift64
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return static_cast<float>((g_rng >> 40) * (1.0 / 8388608.0) - 1.0);
}

void add(MemorySource& s, const std::string& n, std::vector<int64_t> shape, float scale,
         float offset = 0) {
  int64_t k = 1;
  for (auto x : shape) k *= x;
  std::vector<float> v(static_cast<size_t>(k));
  for (auto& x : v) x = offset + scale * frand();
  s.add_f32(n, std::move(shape), std::move(v));
}

std::shared_ptr<MemorySource> full_size_model() {
  auto s = std::make_shared<MemorySource>();
  const int64_t C = 768, P = 196;
  auto lin = [&](const std::string& n, int64_t out, int64_t in) {
    add(*s, n + ".weight", {out, in}, 1.7f / std::sqrt(float(in)));
    add(*s, n + ".bias", {out}, 0.02f);
  };
  auto ln = [&](const std::string& n) {
    add(*s, n + ".weight", {C}, 0.1f, 1.0f);
    add(*s, n + ".bias", {C}, 0.1f);
  };
  const std::string v = "img_encoder.model.";
  add(*s, v + "cls_token", {1, 1, C}, 0.02f);
  add(*s, v + "pos_embed", {1, 1 + P, C}, 0.02f);
  add(*s, v + "patch_embed.proj.weight", {C, 3, 16, 16}, 0.03f);
  add(*s, v + "patch_embed.proj.bias", {C}, 0.02f);
  for (int l = 0; l < 12; ++l) {
    const std::string b = v + "blocks." + std::to_string(l) + ".";
    ln(b + "norm1");
    lin(b + "attn.qkv", 3 * C, C);
    lin(b + "attn.proj", C, C);
    ln(b + "norm2");
    lin(b + "mlp.fc1", 3072, C);
    lin(b + "mlp.fc2", C, 3072);
  }
  ln(v + "norm");
  const std::string t = "text_encoder.model.";
  add(*s, t + "embeddings.word_embeddings.weight", {28996, C}, 0.05f);
  add(*s, t + "embeddings.position_embeddings.weight", {512, C}, 0.05f);
  add(*s, t + "embeddings.token_type_embeddings.weight", {2, C}, 0.05f);
  ln(t + "embeddings.LayerNorm");
  for (int l = 0; l < 12; ++l) {
    const std::string b = t + "encoder.layer." + std::to_string(l) + ".";
    lin(b + "attention.self.query", C, C);
    lin(b + "attention.self.key", C, C);
    lin(b + "attention.self.value", C, C);
    lin(b + "attention.output.dense", C, C);
    ln(b + "attention.output.LayerNorm");
    lin(b + "intermediate.dense", 3072, C);
    lin(b + "output.dense", C, 3072);
    ln(b + "output.LayerNorm");
  }
  const std::string h = "fusion_module.";
  ln(h + "decoder_norm");
  for (int l = 0; l < 4; ++l) {
    const std::string b = h + "decoder.layers." + std::to_string(l) + ".";
    ln(b + "norm2");
    add(*s, b + "multihead_attn.in_proj_weight", {3 * C, C}, 1.7f / std::sqrt(float(C)));
    add(*s, b + "multihead_attn.in_proj_bias", {3 * C}, 0.02f);
    lin(b + "multihead_attn.out_proj", C, C);
    ln(b + "norm3");
    lin(b + "linear1", 1024, C);
    lin(b + "linear2", C, 1024);
  }
  const int64_t mlp[] = {1024, 512, 256, 1};
  int64_t in = C;
  for (int k = 0; k < 4; ++k) {
    lin(h + "mlp_head." + std::to_string(3 * k), mlp[k], in);
    in = mlp[k];
  }
  return s;
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <typename F>
double best_of(int reps, F&& f) {
  f();  // warm-up (workspace growth, page faults)
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    double t0 = now();
    f();
    best = std::min(best, now() - t0);
  }
  return best;
}

Tensor host_f32(std::vector<int64_t> shape) {
  Tensor t = Tensor::empty_host(DType::F32, shape, false);
  float* p = t.ptr<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = frand();
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string which = argc > 1 ? argv[1] : "both";
  const int reps = argc > 2 ? std::atoi(argv[2]) : 3;
  try {
    std::shared_ptr<Context> ctx(Context::create(DeviceType::CPU, 0, 0).release());
    std::printf("bench_model: %d threads, cpu isa %s, bf16 dot %s\n", ctx->num_threads(),
                cpu_isa_name(cpu_isa()), cpu_has_bf16_dot() ? "yes" : "no");
    double t0 = now();
    auto src = full_size_model();
    std::printf("random full-size weights built in %.1f s\n", now() - t0);
    ModelConfig cfg = ModelConfig::parse(
        "{\"format\":\"carzero-model\",\"format_version\":1}", "<bench config>");
    // Inputs.
    Tensor px1 = host_f32({1, 3, 224, 224}), px8 = host_f32({8, 3, 224, 224});
    Tensor gx8 = host_f32({8, 1, 224, 224});
    const int64_t Q = 14, L = 97;
    Tensor ids = Tensor::empty_host(DType::I32, {Q, L}), mask = Tensor::empty_host(DType::U8, {Q, L}),
           kinds = Tensor::empty_host(DType::U8, {Q, L});
    for (int64_t q = 0; q < Q; ++q) {
      const int64_t n = 8 + q * 3;  // 8..47 tokens
      for (int64_t i = 0; i < n; ++i) {
        ids.ptr<int32_t>()[q * L + i] = static_cast<int32_t>(1000 + (q * 131 + i * 17) % 27000);
        mask.ptr<uint8_t>()[q * L + i] = 1;
        kinds.ptr<uint8_t>()[q * L + i] = i == n - 1 ? 2 : (i > 1 && i % 4 == 0 ? 1 : 0);
      }
      for (int64_t i = n; i < L; ++i) kinds.ptr<uint8_t>()[q * L + i] = 3;
    }
    for (Precision p : {Precision::FP32, Precision::BF16}) {
      if (which != "both" && which != precision_name(p)) continue;
      LoadOptions o;
      o.precision = p;
      t0 = now();
      auto m = CarzeroModel::from_source(ctx, cfg, src, o);
      std::printf("[%s] model ready in %.2f s (param arena %.0f MiB, %lld parameters)\n",
                  precision_name(p), now() - t0, m->params().arena_bytes() / 1048576.0,
                  (long long)m->params().total_numel());
      double a = best_of(reps, [&] { m->embed_images(px1); });
      std::printf("[%s] embed_images B=1:  %8.1f ms  (%.2f img/s)\n", precision_name(p), a * 1e3, 1 / a);
      double b = best_of(reps, [&] { m->embed_images(px8); });
      std::printf("[%s] embed_images B=8:  %8.1f ms  (%.2f img/s)\n", precision_name(p), b * 1e3, 8 / b);
      double b1 = best_of(reps, [&] { m->embed_images(gx8); });
      std::printf("[%s] embed_images B=8 (1-channel input): %8.1f ms  (%.2f img/s)\n", precision_name(p),
                  b1 * 1e3, 8 / b1);
      TextEmbeddings te;
      double c = best_of(reps, [&] { te = m->embed_texts(ids, mask, kinds); });
      std::printf("[%s] embed_texts Q=14, L=97: %8.1f ms\n", precision_name(p), c * 1e3);
      ImageEmbeddings ie = m->embed_images(px8);
      double d = best_of(reps, [&] { m->score(ie.global, ie.local, te.sentence, te.words, false); });
      std::printf("[%s] score B=8 x Q=14:  %8.1f ms  (%.0f pairs/s)\n", precision_name(p), d * 1e3,
                  8 * 14 / d);
      double e = best_of(reps, [&] { m->score(ie.global, ie.local, te.sentence, te.words, true); });
      std::printf("[%s] score B=8 x Q=14 with maps: %8.1f ms  (%.0f pairs/s)\n", precision_name(p),
                  e * 1e3, 8 * 14 / e);
      std::printf("[%s] activation workspace: %.0f MiB\n", precision_name(p), m->workspace_bytes() / 1048576.0);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_model: %s\n", e.what());
    return 1;
  }
  return 0;
}
