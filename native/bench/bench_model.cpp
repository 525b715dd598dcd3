// bench_model.cpp: the CARZero graphs at full size (ViT-B/16, BERT-base, the 4-layer head) with
// random weights built in memory: embed_images at each batch size, embed_texts at Q texts
// (L = 97), score pairs/s at the largest batch x Q, and classify images/s (embed_images + score
// against Q prepared prompt embeddings), fp32 and bf16, on the CPU or a CUDA device.
//
//   bench_model [fp32|bf16|both] [reps] [--device cpu|cuda] [--batch 1,8] [--texts 14]
//               [--max-images N] [--warmup N] [--json FILE]
//
// Defaults: cpu, batches 1 and 8, 14 texts, 3 reps, 1 warm-up. Each timing is reported as the
// minimum and the median of the reps; on CUDA every timed call ends with a device synchronize.
// --max-images sets the model's ViT chunk (LoadOptions::max_images, default 32). CARZERO_NUM_THREADS
// sets the CPU threads. The JSON (--json) holds every row with machine, device and options.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
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

void add(MemorySource& s, const std::string& n, std::vector<int64_t> shape, float scale, float offset = 0) {
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

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

struct Timing {
  double min = 0, median = 0;
  int reps = 0;
};

// warmup untimed calls (workspace growth, page faults, lazy CUDA init), then reps timed ones.
template <typename F>
Timing time_it(int warmup, int reps, Context& ctx, F&& f) {
  for (int i = 0; i < warmup; ++i) {
    f();
    ctx.synchronize();
  }
  std::vector<double> ts;
  for (int i = 0; i < reps; ++i) {
    double t0 = now();
    f();
    ctx.synchronize();
    ts.push_back(now() - t0);
  }
  std::sort(ts.begin(), ts.end());
  Timing t;
  t.reps = reps;
  t.min = ts.front();
  t.median = ts.size() % 2 ? ts[ts.size() / 2] : 0.5 * (ts[ts.size() / 2 - 1] + ts[ts.size() / 2]);
  return t;
}

Tensor host_f32(std::vector<int64_t> shape) {
  Tensor t = Tensor::empty_host(DType::F32, shape, false);
  float* p = t.ptr<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = frand();
  return t;
}

// A host tensor on the context's device (the same tensor on the CPU).
Tensor on_device(Context& ctx, const Tensor& host) {
  if (ctx.device() == DeviceType::CPU) return host;
  Tensor d = ctx.alloc(host.dtype(), host.shape(), false);
  ctx.upload(d, host.data(), host.nbytes());
  return d;
}

struct Row {
  std::string precision, what, unit;
  int64_t batch = 0, texts = 0;
  Timing t;
  double per_s = 0;  // items per second at the median
};

std::vector<int64_t> parse_list(const std::string& s) {
  std::vector<int64_t> v;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    long long x = std::atoll(s.substr(i, j - i).c_str());
    if (x < 1) throw std::runtime_error("--batch: sizes must be positive integers, got '" + s + "'");
    v.push_back(x);
    i = j + 1;
  }
  if (v.empty()) throw std::runtime_error("--batch: empty list");
  return v;
}

std::string json_str(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    o += c;
  }
  return o + "\"";
}

void usage() {
  std::fprintf(stderr,
               "usage: bench_model [fp32|bf16|both] [reps] [--device cpu|cuda] [--batch 1,8] "
               "[--texts 14] [--max-images N] [--warmup N] [--json FILE]\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string which = "both", device = "cpu", json_path;
  int reps = 3, warmup = 1;
  int64_t Q = 14, max_images = 0;
  std::vector<int64_t> batches = {1, 8};
  int positional = 0;
  try {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto val = [&]() -> std::string {
        if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
        return argv[++i];
      };
      if (a == "--device")
        device = val();
      else if (a == "--batch")
        batches = parse_list(val());
      else if (a == "--texts")
        Q = std::atoll(val().c_str());
      else if (a == "--max-images")
        max_images = std::atoll(val().c_str());
      else if (a == "--warmup")
        warmup = std::atoi(val().c_str());
      else if (a == "--reps")
        reps = std::atoi(val().c_str());
      else if (a == "--json")
        json_path = val();
      else if (a == "-h" || a == "--help") {
        usage();
        return 0;
      } else if (a.rfind("--", 0) == 0)
        throw std::runtime_error("unknown option " + a);
      else if (positional == 0) {
        which = a;
        ++positional;
      } else if (positional == 1) {
        reps = std::atoi(a.c_str());
        ++positional;
      } else
        throw std::runtime_error("unexpected argument " + a);
    }
    if (which != "both" && which != "fp32" && which != "bf16")
      throw std::runtime_error("precision must be fp32, bf16 or both");
    if (device != "cpu" && device != "cuda") throw std::runtime_error("--device must be cpu or cuda");
    if (reps < 1 || warmup < 0 || Q < 1 || max_images < 0)
      throw std::runtime_error("reps, texts must be >= 1; warmup, max-images >= 0");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_model: %s\n", e.what());
    usage();
    return 2;
  }
  std::vector<Row> rows;
  std::vector<std::string> notes;
  try {
    const DeviceType dt = device == "cuda" ? DeviceType::CUDA : DeviceType::CPU;
    std::shared_ptr<Context> ctx(Context::create(dt, 0, 0).release());
    Context& C = *ctx;
    std::printf("bench_model: device %s, %d threads, cpu isa %s, bf16 dot %s\n", device.c_str(), ctx->num_threads(),
                cpu_isa_name(cpu_isa()), cpu_has_bf16_dot() ? "yes" : "no");
    if (dt == DeviceType::CUDA) {
      const CudaStatus& cs = cuda_status();
      std::printf("bench_model: CUDA driver %d, %d device(s), cuBLAS %s\n", cs.driver_version, cs.device_count,
                  cs.cublas_path.c_str());
      notes.push_back("cuBLAS: " + cs.cublas_path);
    }
    double t0 = now();
    auto src = full_size_model();
    std::printf("random full-size weights built in %.1f s\n", now() - t0);
    ModelConfig cfg = ModelConfig::parse("{\"format\":\"carzero-model\",\"format_version\":1}", "<bench config>");
    const size_t kmax = static_cast<size_t>(std::max_element(batches.begin(), batches.end()) - batches.begin());
    const int64_t Bmax = batches[kmax];
    // Inputs (host, then on the device).
    std::vector<Tensor> px;
    for (int64_t B : batches) px.push_back(on_device(C, host_f32({B, 3, 224, 224})));
    Tensor gx = on_device(C, host_f32({Bmax, 1, 224, 224}));
    const int64_t L = 97;
    Tensor ids = Tensor::empty_host(DType::I32, {Q, L}), mask = Tensor::empty_host(DType::U8, {Q, L}),
           kinds = Tensor::empty_host(DType::U8, {Q, L});
    for (int64_t q = 0; q < Q; ++q) {
      const int64_t n = 8 + (q * 3) % 40;  // 8..47 tokens
      for (int64_t i = 0; i < n; ++i) {
        ids.ptr<int32_t>()[q * L + i] = static_cast<int32_t>(1000 + (q * 131 + i * 17) % 27000);
        mask.ptr<uint8_t>()[q * L + i] = 1;
        kinds.ptr<uint8_t>()[q * L + i] = i == n - 1 ? 2 : (i > 1 && i % 4 == 0 ? 1 : 0);
      }
      for (int64_t i = n; i < L; ++i) kinds.ptr<uint8_t>()[q * L + i] = 3;
    }
    Tensor ids_d = on_device(C, ids), mask_d = on_device(C, mask), kinds_d = on_device(C, kinds);
    auto add_row = [&](Precision p, const char* what, int64_t B, int64_t nq, const Timing& t, double items,
                       const char* unit) {
      Row r;
      r.precision = precision_name(p);
      r.what = what;
      r.batch = B;
      r.texts = nq;
      r.t = t;
      r.unit = unit;
      r.per_s = items / t.median;
      rows.push_back(r);
      std::printf("[%s] %-34s B=%-4lld Q=%-3lld median %9.2f ms  min %9.2f ms  (%.1f %s)\n", r.precision.c_str(), what,
                  (long long)B, (long long)nq, t.median * 1e3, t.min * 1e3, r.per_s, unit);
      std::fflush(stdout);
    };
    for (Precision p : {Precision::FP32, Precision::BF16}) {
      if (which != "both" && which != precision_name(p)) continue;
      LoadOptions o;
      o.precision = p;
      if (max_images > 0) o.max_images = max_images;
      t0 = now();
      auto m = CarzeroModel::from_source(ctx, cfg, src, o);
      C.synchronize();
      std::printf("[%s] model ready in %.2f s (param arena %.0f MiB, %lld parameters, ViT chunk %lld)\n",
                  precision_name(p), now() - t0, m->params().arena_bytes() / 1048576.0,
                  (long long)m->params().total_numel(), (long long)m->options().max_images);
      for (size_t k = 0; k < batches.size(); ++k) {
        const int64_t B = batches[k];
        Timing t = time_it(warmup, reps, C, [&] { m->embed_images(px[k]); });
        add_row(p, "embed_images", B, 0, t, double(B), "images/s");
      }
      Timing tg = time_it(warmup, reps, C, [&] { m->embed_images(gx); });
      add_row(p, "embed_images (1-channel input)", Bmax, 0, tg, double(Bmax), "images/s");
      TextEmbeddings te;
      Timing tt = time_it(warmup, reps, C, [&] { te = m->embed_texts(ids_d, mask_d, kinds_d); });
      add_row(p, "embed_texts (L=97)", 0, Q, tt, double(Q), "texts/s");
      ImageEmbeddings ie = m->embed_images(px[kmax]);
      C.synchronize();
      Timing ts = time_it(warmup, reps, C, [&] { m->score(ie.global, ie.local, te.sentence, te.words, false); });
      add_row(p, "score (both directions)", Bmax, Q, ts, double(Bmax * Q), "pairs/s");
      Timing tm = time_it(warmup, reps, C, [&] { m->score(ie.global, ie.local, te.sentence, te.words, true); });
      add_row(p, "score with grounding maps", Bmax, Q, tm, double(Bmax * Q), "pairs/s");
      const Tensor& pxm = px[kmax];
      Timing tc = time_it(warmup, reps, C, [&] {
        ImageEmbeddings e = m->embed_images(pxm);
        m->score(e.global, e.local, te.sentence, te.words, false);
      });
      add_row(p, "classify (embed_images + score)", Bmax, Q, tc, double(Bmax), "images/s");
      std::printf("[%s] activation workspace: %.0f MiB\n", precision_name(p), m->workspace_bytes() / 1048576.0);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_model: %s\n", e.what());
    notes.push_back(std::string("ERROR: ") + e.what());
    if (json_path.empty()) return 1;
    rows.push_back(Row{});
    rows.back().what = "error";
  }
  bool failed = !rows.empty() && rows.back().what == "error";
  if (failed) rows.pop_back();
  if (!json_path.empty()) {
    FILE* f = std::fopen(json_path.c_str(), "w");
    if (!f) {
      std::fprintf(stderr, "bench_model: cannot write %s\n", json_path.c_str());
      return 1;
    }
    std::fprintf(f,
                 "{\n \"tool\": \"bench_model\",\n \"device\": %s,\n \"cpu_isa\": %s,\n \"reps\": %d,\n \"warmup\": "
                 "%d,\n \"max_images\": %lld,\n \"ok\": %s,\n \"notes\": [",
                 json_str(device).c_str(), json_str(cpu_isa_name(cpu_isa())).c_str(), reps, warmup,
                 (long long)max_images, failed ? "false" : "true");
    for (size_t i = 0; i < notes.size(); ++i) std::fprintf(f, "%s%s", i ? ", " : "", json_str(notes[i]).c_str());
    std::fprintf(f, "],\n \"results\": [\n");
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      std::fprintf(f,
                   "  {\"precision\": %s, \"what\": %s, \"batch\": %lld, \"texts\": %lld, \"ms_median\": %.4f, "
                   "\"ms_min\": %.4f, \"reps\": %d, \"per_s\": %.3f, \"unit\": %s}%s\n",
                   json_str(r.precision).c_str(), json_str(r.what).c_str(), (long long)r.batch, (long long)r.texts,
                   r.t.median * 1e3, r.t.min * 1e3, r.t.reps, r.per_s, json_str(r.unit).c_str(),
                   i + 1 < rows.size() ? "," : "");
    }
    std::fprintf(f, " ]\n}\n");
    std::fclose(f);
  }
  return failed ? 1 : 0;
}
