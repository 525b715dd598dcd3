// test_model.cpp: the native CARZero graphs (native/src/model/) against a plain double-precision
// reference of the spec on a random tiny model (tiny_model.h): ViT, BERT + word aggregation, the
// alignment head per pair, scores and grounding maps, fp32 and bf16, chunked and unchunked; the
// strict JSON reader; safetensors reading/writing and the load-time errors (missing tensor, wrong
// shape/dtype, truncated file, bad config field). When the reference engineer's fixtures exist
// (test/fixtures/tiny/), fixture_test.cpp compares against PyTorch's outputs too.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/json.h"
#include "core/status.h"
#include "model/carzero.h"
#include "model/graph.h"
#include "model/safetensors.h"
#include "tiny_model.h"

using namespace carzero;
using namespace carzero::model;

static int g_failures = 0, g_checks = 0;

#define EXPECT(cond, ...)                                \
  do {                                                   \
    ++g_checks;                                          \
    if (!(cond)) {                                       \
      ++g_failures;                                      \
      std::printf("  FAIL %s:%d: ", __FILE__, __LINE__); \
      std::printf(__VA_ARGS__);                          \
      std::printf("\n");                                 \
    }                                                    \
  } while (0)

// Expects fn to throw carzero::Error with `code` and a message containing every needle.
static void expect_error(const char* what, cz_status code, std::vector<std::string> needles,
                         const std::function<void()>& fn) {
  ++g_checks;
  try {
    fn();
  } catch (const Error& e) {
    bool ok = e.code() == code;
    for (const auto& n : needles) ok = ok && std::string(e.what()).find(n) != std::string::npos;
    if (!ok) {
      ++g_failures;
      std::printf("  FAIL %s: got code %d message: %s\n", what, e.code(), e.what());
    }
    return;
  }
  ++g_failures;
  std::printf("  FAIL %s: no error thrown\n", what);
}

// |got - ref| <= atol + rtol * |ref| elementwise; reports the worst element.
static void compare(const char* what, const float* got, const std::vector<double>& ref, double atol, double rtol) {
  ++g_checks;
  double worst = 0, max_ref = 0, max_err = 0;
  size_t wi = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double e = std::fabs(got[i] - ref[i]);
    const double r = e / (atol + rtol * std::fabs(ref[i]));
    if (!(r <= worst)) {
      worst = std::isnan(r) ? 1e30 : r;
      wi = i;
    }
    max_ref = std::max(max_ref, std::fabs(ref[i]));
    max_err = std::max(max_err, e);
  }
  const bool ok = worst <= 1.0;
  if (!ok) ++g_failures;
  std::printf("  %s %-44s n=%-6zu max|err|=%.3g max|ref|=%.3g worst ratio=%.3f%s\n", ok ? "ok  " : "FAIL", what,
              ref.size(), max_err, max_ref, worst,
              ok ? "" : strfmt(" at %zu (got %g ref %g)", wi, got[wi], ref[wi]).c_str());
}

static std::vector<double> as_vec(const float* p, size_t n) { return std::vector<double>(p, p + n); }

static std::string tmpdir() {
  char tmpl[] = "/tmp/cz_model_test_XXXXXX";
  char* d = mkdtemp(tmpl);
  return d ? d : "/tmp";
}

static void write_file(const std::string& path, const std::string& s) {
  std::ofstream o(path, std::ios::binary);
  o << s;
}

static Tensor host_tensor(DType dt, std::vector<int64_t> shape, const void* data) {
  Tensor t = Tensor::empty_host(dt, shape, false);
  std::memcpy(t.data(), data, t.nbytes());
  return t;
}

// ---- JSON ---------------------------------------------------------------------------------------

static void test_json() {
  std::printf("json\n");
  json::Value v = json::parse(" {\"a\": [1, 2.5e3, -0, true, null, \"x\\u00e9\\n\"], \"b\": {}} ", "t");
  EXPECT(v.is_object() && v.obj.size() == 2, "object");
  const json::Value* a = v.find("a");
  EXPECT(a && a->arr.size() == 6 && a->arr[1].num == 2500 && a->arr[5].str == "x\xc3\xa9\n", "array");
  EXPECT(json::parse("18446744073709551615", "t").is_number(), "big");
  EXPECT(json::parse("9007199254740993", "t").as_int64("x") == 9007199254740993LL, "exact int64");
  for (const char* bad : {"{\"a\":1,}", "[1,]", "{\"a\":1,\"a\":2}", "// c\n{}", "NaN", "{} x", "\"\\x\"", "01",
                          "[1 2]", "{\"a\"}", "\"abc", "-", "1.", "\"\x01\""}) {
    expect_error(bad, CZ_ERR_FORMAT, {"src.json"}, [&] { json::parse(bad, "src.json"); });
  }
}

// ---- safetensors and load errors ---------------------------------------------------------------

static void write_model(const std::string& dir, const tiny::Dims& d, const tiny::Weights& w,
                        const std::string& cfg_text, const std::function<void(MemorySource&)>& edit = {}) {
  auto src = std::make_shared<MemorySource>();
  w.to_source(*src);
  if (edit) edit(*src);
  write_safetensors(dir + "/model.safetensors", *src, {{"format", "pt"}});
  write_file(dir + "/config.json", cfg_text);
}

static void test_safetensors_and_errors(const std::shared_ptr<Context>& ctx, const tiny::Dims& d,
                                        const tiny::Weights& w) {
  std::printf("safetensors + load errors\n");
  const std::string dir = tmpdir();
  write_model(dir, d, w, tiny::config_json(d));
  {
    auto f = SafeTensorsFile::open(dir + "/model.safetensors");
    const TensorView* v = f->find("fusion_module.mlp_head.0.weight");
    EXPECT(v && v->dtype == DType::F32 && v->shape == std::vector<int64_t>({24, 32}), "view");
    EXPECT(v && std::memcmp(v->data, w["fusion_module.mlp_head.0.weight"].data(), v->nbytes) == 0, "data");
    EXPECT(f->metadata().at("format") == "pt", "metadata");
    EXPECT(f->names().size() == w.order.size(), "names");
  }
  const std::string path = dir + "/model.safetensors";
  // Truncated: cut the last bytes of the data section.
  {
    std::ifstream in(path, std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string d2 = tmpdir();
    write_file(d2 + "/model.safetensors", all.substr(0, all.size() - 10));
    expect_error("truncated data", CZ_ERR_FORMAT, {"truncated", d2 + "/model.safetensors"},
                 [&] { SafeTensorsFile::open(d2 + "/model.safetensors"); });
    write_file(d2 + "/model.safetensors", all.substr(0, 100));
    expect_error("truncated header", CZ_ERR_FORMAT, {"truncated"},
                 [&] { SafeTensorsFile::open(d2 + "/model.safetensors"); });
    write_file(d2 + "/model.safetensors", std::string("\xff\xff\xff\xff\xff\xff\x00\x00", 8) + "{}");
    expect_error("huge header", CZ_ERR_FORMAT, {"header length"},
                 [&] { SafeTensorsFile::open(d2 + "/model.safetensors"); });
    std::string corrupt = all;
    corrupt[8] = '[';
    write_file(d2 + "/model.safetensors", corrupt);
    expect_error("corrupt header", CZ_ERR_FORMAT, {"invalid JSON"},
                 [&] { SafeTensorsFile::open(d2 + "/model.safetensors"); });
    expect_error("missing file", CZ_ERR_IO, {"nonexistent"},
                 [&] { SafeTensorsFile::open(d2 + "/nonexistent.safetensors"); });
    // The tensors must tile the data section exactly (the rules the TypeScript reader applies).
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | static_cast<uint8_t>(all[i]);
    auto with_len = [&](uint64_t n) {
      std::string s = all;
      for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
      return s;
    };
    // Padding spaces at the header's end make a header one byte shorter still valid JSON.
    std::string padded = all.substr(0, 8) + all.substr(8, hlen) + "    " + all.substr(8 + hlen);
    for (int i = 0; i < 8; ++i) padded[i] = static_cast<char>(((hlen + 4) >> (8 * i)) & 0xff);
    write_file(d2 + "/model.safetensors", padded);
    EXPECT(SafeTensorsFile::open(d2 + "/model.safetensors")->names().size() == w.order.size(),
           "space-padded header accepted");
    for (int i = 0; i < 8; ++i) padded[i] = static_cast<char>(((hlen + 3) >> (8 * i)) & 0xff);
    write_file(d2 + "/model.safetensors", padded);
    expect_error("header length one short", CZ_ERR_FORMAT, {"data section", "model.safetensors"},
                 [&] { SafeTensorsFile::open(d2 + "/model.safetensors"); });
    write_file(d2 + "/model.safetensors", with_len(hlen + 1));
    expect_error("header length one long", CZ_ERR_FORMAT, {"model.safetensors"},
                 [&] { SafeTensorsFile::open(d2 + "/model.safetensors"); });
    write_file(d2 + "/model.safetensors", all + std::string(4, '\0'));
    expect_error("trailing bytes", CZ_ERR_FORMAT, {"data section has"},
                 [&] { SafeTensorsFile::open(d2 + "/model.safetensors"); });
    // Shift the first tensor's end offset and the next one's start into each other.
    {
      std::string hdr = all.substr(8, hlen);
      size_t at = hdr.find("\"data_offsets\":[0,");
      EXPECT(at != std::string::npos, "first tensor's offsets found");
      if (at != std::string::npos) {
        size_t comma = hdr.find(',', at + 17), close = hdr.find(']', comma);
        std::string end_s = hdr.substr(comma + 1, close - comma - 1);
        long long end = std::stoll(end_s);
        // the tensor that starts at `end` now starts 2 bytes early (overlap): same header length
        std::string from = "[" + end_s + ",", to = "[" + std::to_string(end - 2) + ",";
        size_t nx = hdr.find(from);
        EXPECT(nx != std::string::npos && to.size() == from.size(), "second tensor found");
        if (nx != std::string::npos && to.size() == from.size()) {
          std::string s2 = all;
          std::string h2 = hdr;
          h2.replace(nx, from.size(), to);
          s2.replace(8, hlen, h2);
          write_file(d2 + "/model.safetensors", s2);
          expect_error("overlapping offsets", CZ_ERR_FORMAT, {"model.safetensors"},
                       [&] { SafeTensorsFile::open(d2 + "/model.safetensors"); });
        }
      }
    }
  }
  // Missing tensor, wrong shape, wrong dtype: errors name the tensor, the shapes and the file.
  {
    const std::string d2 = tmpdir();
    const std::string victim = "img_encoder.model.blocks.1.attn.proj.weight";
    write_model(d2, d, w, tiny::config_json(d), [&](MemorySource& s) {
      MemorySource t;  // copy all but the victim
      for (const auto& n : s.names())
        if (n != victim) t.add(n, s.find(n)->dtype, s.find(n)->shape, s.find(n)->data);
      s = std::move(t);
    });
    expect_error("missing tensor", CZ_ERR_FORMAT, {victim, d2 + "/model.safetensors", "[32, 32]"},
                 [&] { CarzeroModel::load(ctx, d2, {}); });
    write_model(d2, d, w, tiny::config_json(d), [&](MemorySource& s) {
      std::vector<float> z(32 * 16, 0.0f);
      s.add(victim, DType::F32, {32, 16}, z.data());
    });
    expect_error("wrong shape", CZ_ERR_FORMAT, {victim, "[32, 16]", "expected [32, 32]", "model.safetensors"},
                 [&] { CarzeroModel::load(ctx, d2, {}); });
    write_model(d2, d, w, tiny::config_json(d), [&](MemorySource& s) {
      std::vector<int32_t> z(32 * 32, 0);
      s.add(victim, DType::I32, {32, 32}, z.data());
    });
    expect_error("wrong dtype", CZ_ERR_FORMAT, {victim, "dtype I32"}, [&] { CarzeroModel::load(ctx, d2, {}); });
    // bf16 / f16 sources are widened.
    write_model(d2, d, w, tiny::config_json(d), [&](MemorySource& s) {
      std::vector<uint16_t> z(32 * 32);
      const auto& src = w[victim];
      for (size_t i = 0; i < z.size(); ++i) z[i] = f32_to_bf16(src[i]);
      s.add(victim, DType::BF16, {32, 32}, z.data());
    });
    bool loaded = false;
    try {
      loaded = CarzeroModel::load(ctx, d2, {}) != nullptr;
    } catch (const Error& e) {
      std::printf("  bf16 source: %s\n", e.what());
    }
    EXPECT(loaded, "bf16 source tensor loads");
    // Config errors name the field.
    write_model(d2, d, w, "{\"format\":\"carzero-model\",\"format_version\":1,\"vision\":{\"depth\":\"x\"}}");
    expect_error("config type", CZ_ERR_FORMAT, {"vision.depth", "config.json"},
                 [&] { CarzeroModel::load(ctx, d2, {}); });
    write_model(d2, d, w, "{\"format\":\"carzero-model\",\"format_version\":1,\"vision\":{\"depth\":12,\"heads\":4}}");
    expect_error("config disagrees", CZ_ERR_FORMAT, {"vision.depth", "12"}, [&] { CarzeroModel::load(ctx, d2, {}); });
    write_model(d2, d, w, "{\"format\":\"carzero-model\",\"format_version\":1,\"vision\":{\"heads\":5}}");
    expect_error("heads", CZ_ERR_FORMAT, {"vision.heads"}, [&] { CarzeroModel::load(ctx, d2, {}); });
    write_model(d2, d, w, "{\"format\":\"carzero-model\",\"format_version\":1,\"text\":{\"wdith\":3}}");
    expect_error("unknown field", CZ_ERR_FORMAT, {"text.wdith"}, [&] { CarzeroModel::load(ctx, d2, {}); });
    write_model(d2, d, w, "{\"format_version\":1}");
    expect_error("format", CZ_ERR_FORMAT, {"format"}, [&] { CarzeroModel::load(ctx, d2, {}); });
    expect_error("no dir", CZ_ERR_IO, {"/nonexistent-dir/config.json"},
                 [&] { CarzeroModel::load(ctx, "/nonexistent-dir", {}); });
  }
}

// ---- the graphs against the reference -------------------------------------------------------------

struct Inputs {
  int64_t B = 5, Q = 5, L = 12;
  std::vector<float> pixels;  // (B, 3, H, W), channels identical for b >= 2
  std::vector<int32_t> ids;
  std::vector<uint8_t> mask, kinds;
};

static Inputs make_inputs(const tiny::Dims& d) {
  Inputs in;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t HW = d.img * d.img;
  in.pixels.resize(static_cast<size_t>(in.B * 3 * HW));
  for (int64_t b = 0; b < in.B; ++b)
    for (int64_t i = 0; i < HW; ++i) {
      const float g = nd(rng);
      for (int64_t c = 0; c < 3; ++c)
        in.pixels[(b * 3 + c) * HW + i] = b < 2 ? nd(rng) : g;  // images 0, 1: distinct channels
    }
  // Hand-made texts: kinds 0 word start, 1 ##, 2 [SEP], 3 after.
  const std::vector<std::vector<uint8_t>> kinds = {
      {0, 0, 0, 0, 2},                       // [CLS] a b c [SEP]
      {0, 0, 1, 1, 0, 1, 0, 2},              // ## runs
      {0, 1, 0, 1, 1, 0, 0, 0, 1, 0, 0, 2},  // full length, [SEP] last
      {0, 2},                                // empty text: [CLS] [SEP]
      {0, 0, 1, 2},                          // word + ## right before [SEP]
  };
  in.ids.assign(static_cast<size_t>(in.Q * in.L), 0);
  in.mask.assign(in.ids.size(), 0);
  in.kinds.assign(in.ids.size(), 3);
  for (int64_t q = 0; q < in.Q; ++q)
    for (size_t t = 0; t < kinds[q].size(); ++t) {
      in.ids[q * in.L + t] = static_cast<int32_t>(1 + (rng() % (d.vocab - 1)));
      in.mask[q * in.L + t] = 1;
      in.kinds[q * in.L + t] = kinds[q][t];
    }
  return in;
}

struct Embeds {
  ImageEmbeddings img;
  TextEmbeddings txt;
};

static void test_graphs(const std::shared_ptr<Context>& ctx, const tiny::Dims& d, const tiny::Weights& w,
                        Precision prec) {
  const bool bf = prec == Precision::BF16;
  std::printf("graphs (%s)\n", precision_name(prec));
  const std::string dir = tmpdir();
  write_model(dir, d, w, tiny::config_json(d));
  LoadOptions opts;
  opts.precision = prec;
  auto model = CarzeroModel::load(ctx, dir, opts);
  const tiny::Ref ref{w, d};
  const Inputs in = make_inputs(d);
  const int64_t B = in.B, Q = in.Q, L = in.L, C = d.C, P = d.P(), T = 1 + P, HW = d.img * d.img;
  // fp32: the spec target 1e-4 relative; bf16: bf16 weights and GEMM inputs (8 bits of mantissa).
  const double atol = bf ? 6e-2 : 2e-5, rtol = bf ? 6e-2 : 1e-4;

  // Images.
  Tensor pix = host_tensor(DType::F32, {B, 3, d.img, d.img}, in.pixels.data());
  ImageEmbeddings ie = model->embed_images(pix);
  EXPECT(ie.global.shape() == std::vector<int64_t>({B, C}), "global shape %s", ie.global.shape_str().c_str());
  EXPECT(ie.local.shape() == std::vector<int64_t>({B, P, C}), "local shape");
  std::vector<double> rg, rl;
  for (int64_t b = 0; b < B; ++b) {
    tiny::Vec x = ref.vit(in.pixels.data() + b * 3 * HW, 3);
    rg.insert(rg.end(), x.begin(), x.begin() + C);
    rl.insert(rl.end(), x.begin() + C, x.begin() + T * C);
  }
  compare("image global vs reference", ie.global.ptr<float>(), rg, atol, rtol);
  compare("image local vs reference", ie.local.ptr<float>(), rl, atol, rtol);
  // Grey input (1 channel) == the same image replicated to 3 channels (images 2..4).
  {
    const int64_t nb = B - 2;
    std::vector<float> grey(static_cast<size_t>(nb * HW));
    for (int64_t b = 0; b < nb; ++b) std::memcpy(&grey[b * HW], &in.pixels[(2 + b) * 3 * HW], HW * 4);
    ImageEmbeddings g1 = model->embed_images(host_tensor(DType::F32, {nb, 1, d.img, d.img}, grey.data()));
    compare("1-channel global == 3-channel", g1.global.ptr<float>(), as_vec(ie.global.ptr<float>() + 2 * C, nb * C),
            bf ? 1e-2 : 1e-5, bf ? 1e-2 : 1e-5);
    compare("1-channel local == 3-channel", g1.local.ptr<float>(),
            as_vec(ie.local.ptr<float>() + 2 * P * C, nb * P * C), bf ? 1e-2 : 1e-5, bf ? 1e-2 : 1e-5);
  }
  // Chunked (2 images per chunk) == one chunk.
  {
    LoadOptions o = opts;
    o.max_images = 2;
    model->set_options(o);
    ImageEmbeddings c2 = model->embed_images(pix);
    compare("chunked images == whole batch", c2.local.ptr<float>(), as_vec(ie.local.ptr<float>(), B * P * C), 1e-6,
            1e-6);
    model->set_options(opts);
  }

  // Texts.
  Tensor ids = host_tensor(DType::I32, {Q, L}, in.ids.data());
  Tensor mask = host_tensor(DType::U8, {Q, L}, in.mask.data());
  Tensor kinds = host_tensor(DType::U8, {Q, L}, in.kinds.data());
  TextEmbeddings te = model->embed_texts(ids, mask, kinds);
  std::vector<double> rs, rw;
  for (int64_t q = 0; q < Q; ++q) {
    auto layers = ref.bert(&in.ids[q * L], &in.mask[q * L], L);
    tiny::Vec words, sent;
    ref.aggregate(layers, &in.kinds[q * L], L, &words, &sent);
    rs.insert(rs.end(), sent.begin(), sent.end());
    rw.insert(rw.end(), words.begin(), words.end());
  }
  compare("sentence vs reference", te.sentence.ptr<float>(), rs, atol, rtol);
  compare("words vs reference", te.words.ptr<float>(), rw, atol, rtol);
  // Aggregation rules by hand: entries per text = words + [SEP]; beyond them exact zeros;
  // sentence = sum of entries / L.
  {
    const int64_t n_entries[] = {5, 5, 8, 2, 3};
    for (int64_t q = 0; q < Q; ++q) {
      const float* wq = te.words.ptr<float>() + q * L * C;
      bool zeros = true, nonzero = true;
      for (int64_t j = 0; j < L; ++j) {
        double nrm = 0;
        for (int64_t c = 0; c < C; ++c) nrm += std::fabs(wq[j * C + c]);
        if (j < n_entries[q])
          nonzero = nonzero && nrm > 0;
        else
          zeros = zeros && nrm == 0;
      }
      EXPECT(zeros && nonzero, "text %lld: entries 0..%lld nonzero, the rest exactly zero", (long long)q,
             (long long)n_entries[q] - 1);
      std::vector<double> mean(C, 0.0);
      for (int64_t j = 0; j < L; ++j)
        for (int64_t c = 0; c < C; ++c) mean[c] += wq[j * C + c] / double(L);
      compare(strfmt("sentence[%lld] == sum(words)/L", (long long)q).c_str(), te.sentence.ptr<float>() + q * C, mean,
              1e-5, 1e-5);
    }
  }
  // Text chunking.
  {
    LoadOptions o = opts;
    o.max_texts = 2;
    model->set_options(o);
    TextEmbeddings c2 = model->embed_texts(ids, mask, kinds);
    // Chunks of 2 texts also run BERT on fewer positions (the longest text of the chunk).
    compare("chunked (trimmed) texts == whole batch", c2.words.ptr<float>(), as_vec(te.words.ptr<float>(), Q * L * C),
            1e-5, 1e-5);
    compare("chunked (trimmed) sentence == whole batch", c2.sentence.ptr<float>(),
            as_vec(te.sentence.ptr<float>(), Q * C), 1e-5, 1e-5);
    model->set_options(opts);
  }

  // Scores: the batched head against the per-pair reference on the same embeddings.
  ScoreResult sr = model->score(ie.global, ie.local, te.sentence, te.words, true);
  EXPECT(sr.attention.defined() && sr.attention.shape() == std::vector<int64_t>({B, Q, P}), "attention shape");
  std::vector<double> ri2t(B * Q), rt2i(Q * B), rscore(B * Q), rmap(B * Q * P, 0.0);
  for (int64_t b = 0; b < B; ++b) {
    tiny::Vec M(ie.global.ptr<float>() + b * C, ie.global.ptr<float>() + (b + 1) * C);
    M.insert(M.end(), ie.local.ptr<float>() + b * P * C, ie.local.ptr<float>() + (b + 1) * P * C);
    for (int64_t q = 0; q < Q; ++q) {
      tiny::Vec s(te.sentence.ptr<float>() + q * C, te.sentence.ptr<float>() + (q + 1) * C);
      std::vector<tiny::Vec> probs;
      ri2t[b * Q + q] = ref.head(M, 1 + P, s, &probs);
      for (const auto& pl : probs)  // (NH, 1, S)
        for (int64_t h = 0; h < d.hheads; ++h)
          for (int64_t p = 0; p < P; ++p)
            rmap[(b * Q + q) * P + p] += pl[h * (1 + P) + 1 + p] / double(d.hheads * d.hdepth);
    }
  }
  for (int64_t q = 0; q < Q; ++q) {
    tiny::Vec M(te.sentence.ptr<float>() + q * C, te.sentence.ptr<float>() + (q + 1) * C);
    M.insert(M.end(), te.words.ptr<float>() + q * L * C, te.words.ptr<float>() + (q + 1) * L * C);
    for (int64_t b = 0; b < B; ++b) {
      tiny::Vec g(ie.global.ptr<float>() + b * C, ie.global.ptr<float>() + (b + 1) * C);
      rt2i[q * B + b] = ref.head(M, 1 + L, g);
    }
  }
  for (int64_t b = 0; b < B; ++b)
    for (int64_t q = 0; q < Q; ++q) rscore[b * Q + q] = 0.5 * (ri2t[b * Q + q] + rt2i[q * B + b]);
  const double hatol = bf ? 5e-2 : 1e-5, hrtol = bf ? 5e-2 : 1e-4;
  compare("i2t vs per-pair reference", sr.i2t.ptr<float>(), ri2t, hatol, hrtol);
  compare("t2i vs per-pair reference", sr.t2i.ptr<float>(), rt2i, hatol, hrtol);
  compare("score vs per-pair reference", sr.score.ptr<float>(), rscore, hatol, hrtol);
  compare("grounding attention vs reference", sr.attention.ptr<float>(), rmap, bf ? 2e-2 : 1e-6, bf ? 5e-2 : 1e-4);
  // Chunked scoring (2 images x 3 texts per chunk) == whole.
  {
    LoadOptions o = opts;
    o.max_score_images = 2;
    o.max_score_texts = 3;
    model->set_options(o);
    ScoreResult c = model->score(ie.global, ie.local, te.sentence, te.words, true);
    compare("chunked i2t == whole", c.i2t.ptr<float>(), as_vec(sr.i2t.ptr<float>(), B * Q), 1e-6, 1e-5);
    compare("chunked t2i == whole", c.t2i.ptr<float>(), as_vec(sr.t2i.ptr<float>(), B * Q), 1e-6, 1e-5);
    compare("chunked attention == whole", c.attention.ptr<float>(), as_vec(sr.attention.ptr<float>(), B * Q * P), 1e-7,
            1e-5);
    model->set_options(opts);
    ScoreResult na = model->score(ie.global, ie.local, te.sentence, te.words, false);
    EXPECT(!na.attention.defined(), "no attention unless asked");
    compare("score without maps == with", na.score.ptr<float>(), as_vec(sr.score.ptr<float>(), B * Q), 1e-30, 0);
  }
  if (bf) return;
  // Call errors name the argument.
  expect_error("pixels dtype", CZ_ERR_INVALID_ARGUMENT, {"pixels", "i32"}, [&] {
    model->embed_images(Tensor::empty_host(DType::I32, {1, 3, d.img, d.img}));
  });
  expect_error("pixels size", CZ_ERR_INVALID_ARGUMENT, {"pixels", "[1, 3, 16, 16]"}, [&] {
    model->embed_images(Tensor::empty_host(DType::F32, {1, 3, 16, 16}));
  });
  expect_error("pixels channels", CZ_ERR_INVALID_ARGUMENT, {"pixels", "2 channels"}, [&] {
    model->embed_images(Tensor::empty_host(DType::F32, {1, 2, d.img, d.img}));
  });
  expect_error("mask shape", CZ_ERR_INVALID_ARGUMENT, {"mask"}, [&] {
    model->embed_texts(ids, Tensor::empty_host(DType::U8, {Q, L + 1}), kinds);
  });
  {
    std::vector<uint8_t> k2 = in.kinds;
    k2[1 * L + 3] = 7;
    expect_error("kinds value", CZ_ERR_INVALID_ARGUMENT, {"kinds[1][3]", "7"}, [&] {
      model->embed_texts(ids, mask, host_tensor(DType::U8, {Q, L}, k2.data()));
    });
    k2 = in.kinds;
    k2[2 * L] = 1;
    expect_error("kinds start", CZ_ERR_INVALID_ARGUMENT, {"kinds[2][0]"}, [&] {
      model->embed_texts(ids, mask, host_tensor(DType::U8, {Q, L}, k2.data()));
    });
    std::vector<int32_t> id2 = in.ids;
    id2[4] = 1000;
    expect_error("ids range", CZ_ERR_INVALID_ARGUMENT, {"1000"}, [&] {
      model->embed_texts(host_tensor(DType::I32, {Q, L}, id2.data()), mask, kinds);
    });
  }
  expect_error("score words width", CZ_ERR_INVALID_ARGUMENT, {"words"}, [&] {
    model->score(ie.global, ie.local, te.sentence, Tensor::empty_host(DType::F32, {Q, L, C + 1}), false);
  });
  expect_error("score local", CZ_ERR_INVALID_ARGUMENT, {"image local"}, [&] {
    model->score(ie.global, Tensor::empty_host(DType::F32, {B, P + 1, C}), te.sentence, te.words, false);
  });
  // Empty batches.
  {
    ImageEmbeddings e0 = model->embed_images(Tensor::empty_host(DType::F32, {0, 3, d.img, d.img}));
    EXPECT(e0.global.shape() == std::vector<int64_t>({0, C}), "empty image batch");
    ScoreResult s0 = model->score(e0.global, e0.local, te.sentence, te.words, true);
    EXPECT(s0.i2t.shape() == std::vector<int64_t>({0, Q}) && s0.t2i.shape() == std::vector<int64_t>({Q, 0}),
           "empty score");
  }
}

// Prepacked GEMM weights (CPU inference): packed on first use, reused, and bit-identical to the
// per-call packing. The reference without panels is the same model after enable_training (fp32
// copies of the same weights, every GEMM packing per call, its inference paths unchanged).
static void test_prepacked(const std::shared_ptr<Context>& ctx, const tiny::Dims& d, const tiny::Weights& w,
                           Precision prec) {
  std::printf("prepacked weights (%s)\n", precision_name(prec));
  const std::string dir = tmpdir();
  write_model(dir, d, w, tiny::config_json(d));
  LoadOptions opts;
  opts.precision = prec;
  auto model = CarzeroModel::load(ctx, dir, opts);
  const Inputs in = make_inputs(d);
  const int64_t B = in.B, Q = in.Q, L = in.L;
  EXPECT(model->packed_weight_bytes() == 0, "nothing packed at load (%zu bytes)", model->packed_weight_bytes());
  Tensor pix = host_tensor(DType::F32, {B, 3, d.img, d.img}, in.pixels.data());
  Tensor ids = host_tensor(DType::I32, {Q, L}, in.ids.data());
  Tensor mask = host_tensor(DType::U8, {Q, L}, in.mask.data());
  Tensor kinds = host_tensor(DType::U8, {Q, L}, in.kinds.data());
  auto same = [](const char* what, const Tensor& a, const Tensor& b) {
    EXPECT(a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.nbytes()) == 0, "%s: not bit-identical", what);
  };
  ImageEmbeddings ie = model->embed_images(pix);
  const size_t vit_bytes = model->packed_weight_bytes();
  EXPECT(vit_bytes > 0, "the ViT's weights are packed after its first use");
  TextEmbeddings te = model->embed_texts(ids, mask, kinds);
  ScoreResult sr = model->score(ie.global, ie.local, te.sentence, te.words, false);
  const size_t all_bytes = model->packed_weight_bytes();
  EXPECT(all_bytes > vit_bytes, "BERT and the head packed on first use (%zu > %zu bytes)", all_bytes, vit_bytes);
  // Second calls reuse the panels: the same bytes, the same results.
  ImageEmbeddings ie2 = model->embed_images(pix);
  EXPECT(model->packed_weight_bytes() == all_bytes, "second call packs nothing");
  same("images, second call (global)", ie.global, ie2.global);
  same("images, second call (local)", ie.local, ie2.local);
  if (prec != Precision::FP32) return;  // training (the unpacked reference) needs fp32
  model->enable_training(1);
  EXPECT(model->packed_weight_bytes() == 0, "training frees the packed weights");
  ImageEmbeddings iu = model->embed_images(pix);
  TextEmbeddings tu = model->embed_texts(ids, mask, kinds);
  ScoreResult su = model->score(iu.global, iu.local, tu.sentence, tu.words, false);
  EXPECT(model->packed_weight_bytes() == 0, "a training model packs nothing");
  same("images global, prepacked vs per-call packing", ie.global, iu.global);
  same("images local, prepacked vs per-call packing", ie.local, iu.local);
  same("texts sentence, prepacked vs per-call packing", te.sentence, tu.sentence);
  same("texts words, prepacked vs per-call packing", te.words, tu.words);
  same("score i2t, prepacked vs per-call packing", sr.i2t, su.i2t);
  same("score t2i, prepacked vs per-call packing", sr.t2i, su.t2i);
}

// attention_backward_gemm (the alignment head's backward through GEMMs) against the op's fused
// backward, fp32, on the head's layouts: queries shared by every item (layer 0) or per item, K and
// V interleaved in one (items, Tk, 2C) buffer; whole batch in one chunk, chunks of one item, and
// uneven chunks of two. Gradients accumulate onto non-zero values.
static void test_attention_gemm(const std::shared_ptr<Context>& ctx) {
  std::printf("attention backward through GEMMs\n");
  Runner r{*ctx};
  const int64_t B = 5, NH = 3, Tq = 7, Tk = 11, D = 16, C = NH * D;
  std::mt19937 rng(77);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  auto rnd = [&](int64_t n) {
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = nd(rng);
    return v;
  };
  for (const bool shared_q : {true, false}) {
    const int64_t nq = (shared_q ? 1 : B) * Tq * C;
    std::vector<float> q = rnd(nq), kv = rnd(B * Tk * 2 * C), dout = rnd(B * Tq * C);
    std::vector<float> out(B * Tq * C), lse(B * NH * Tq);
    AttnArgs a;
    a.B = B, a.NH = NH, a.Tq = Tq, a.Tk = Tk, a.HS = D;
    a.q = q.data(), a.ldq = C, a.q_bs = shared_q ? 0 : Tq * C;
    a.k = kv.data(), a.v = kv.data() + C, a.ldk = a.ldv = 2 * C, a.k_bs = a.v_bs = Tk * 2 * C;
    a.out = out.data(), a.ldo = C, a.o_bs = Tq * C;
    a.scale = 1.0f / std::sqrt(static_cast<float>(D));
    a.lse = lse.data();
    r.ops().attention_forward(r.ex(), a);
    const std::vector<float> dq0 = rnd(nq), dkv0 = rnd(B * Tk * 2 * C);
    Runner rb{*ctx};  // mixed precision: the GEMMs at bf16
    rb.compute = DType::BF16;
    auto run = [&](bool gemm_path, int64_t chunk_bytes, std::vector<float>& dq, std::vector<float>& dkv,
                   const Runner* with = nullptr) {
      dq = dq0, dkv = dkv0;
      AttnGrads g;
      g.dout = dout.data(), g.dq = dq.data(), g.dk = dkv.data(), g.dv = dkv.data() + C;
      if (gemm_path)
        attention_backward_gemm(with ? *with : r, a, g, chunk_bytes);
      else
        r.ops().attention_backward(r.ex(), a, g);
    };
    std::vector<float> rq, rkv;
    run(false, 0, rq, rkv);
    const int64_t item = NH * Tq * Tk * 4;
    for (const int64_t chunk_bytes : {int64_t{64} << 20, item, 2 * item}) {
      std::vector<float> gq, gkv;
      run(true, chunk_bytes, gq, gkv);
      double worst = 0, changed = 0;
      for (size_t i = 0; i < gq.size(); ++i) worst = std::max(worst, double(std::fabs(gq[i] - rq[i])));
      for (size_t i = 0; i < gkv.size(); ++i) worst = std::max(worst, double(std::fabs(gkv[i] - rkv[i])));
      for (size_t i = 0; i < gkv.size(); ++i) changed = std::max(changed, double(std::fabs(gkv[i] - dkv0[i])));
      EXPECT(worst < 2e-5 && changed > 1e-2, "shared_q %d, chunk %lld bytes: worst |gemm - fused| %.3g (change %.3g)",
             shared_q, static_cast<long long>(chunk_bytes), worst, changed);
    }
    // bf16 GEMMs: the increments within bf16 rounding of the fp32 ones (relative Frobenius error),
    // and not equal to them
    std::vector<float> bq, bkv;
    run(true, item, bq, bkv, &rb);
    double num = 0, den = 0;
    auto acc = [&](const std::vector<float>& got, const std::vector<float>& ref, const std::vector<float>& base) {
      for (size_t i = 0; i < got.size(); ++i) {
        const double d = double(got[i]) - ref[i], inc = double(ref[i]) - base[i];
        num += d * d, den += inc * inc;
      }
    };
    acc(bq, rq, dq0);
    acc(bkv, rkv, dkv0);
    const double rel = std::sqrt(num / den);
    EXPECT(rel < 1e-2 && rel > 1e-5, "shared_q %d, bf16 GEMMs: relative error of the gradients %.3g", shared_q, rel);
    std::printf("  bf16 GEMMs, shared_q %d: relative error of the gradients %.3g\n", shared_q, rel);
  }
}

int fixture_tests(const std::shared_ptr<Context>& ctx, int* checks, int* failures);
int train_tests(const std::shared_ptr<Context>& ctx, int* checks, int* failures);

int main() {
  std::shared_ptr<Context> ctx(Context::create(DeviceType::CPU, 0, 0).release());
  tiny::Dims d;
  tiny::Weights w = tiny::make_weights(d, 1234);
  try {
    test_json();
    test_safetensors_and_errors(ctx, d, w);
    test_graphs(ctx, d, w, Precision::FP32);
    test_graphs(ctx, d, w, Precision::BF16);
    test_prepacked(ctx, d, w, Precision::FP32);
    test_prepacked(ctx, d, w, Precision::BF16);
    test_attention_gemm(ctx);
    fixture_tests(ctx, &g_checks, &g_failures);
    train_tests(ctx, &g_checks, &g_failures);
  } catch (const std::exception& e) {
    std::printf("  FAIL uncaught exception: %s\n", e.what());
    ++g_failures;
  }
  std::printf("%d checks, %d failures\n", g_checks, g_failures);
  return g_failures ? 1 : 0;
}
