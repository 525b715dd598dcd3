// fixture_test.cpp: the native model against the PyTorch reference fixtures of
// test/fixtures/tiny/ (tools/reference/make_fixtures.py; layouts in outputs/index.json): global and
// local image embeddings, sentence and word embeddings, i2t, t2i, score and grounding attention,
// tensor by tensor with |got - ref| <= atol + rtol * |ref|.
//
// The fixtures hold the original checkpoint (.ckpt), not a converted model directory, so the
// model directory comes from `carzero convert` (src/weights/):
//   CZ_TINY_MODEL_DIR         (default <fixtures>/tiny/model)        checked against outputs/
//   CZ_TINY_HALVES_MODEL_DIR  (default <fixtures>/tiny/model-halves) checked against outputs-halves/
// test/model.test.ts converts on the fly and runs the same comparison through the addon. A missing
// model directory skips its comparison with a note.
#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/json.h"
#include "core/status.h"
#include "model/carzero.h"

using namespace carzero;
using namespace carzero::model;

namespace {

bool exists(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0;
}

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  CZ_REQUIRE(in.good(), CZ_ERR_IO, "%s: cannot open", p.c_str());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

template <typename T>
std::vector<T> read_bin(const std::string& p, size_t n) {
  std::string s = slurp(p);
  CZ_REQUIRE(s.size() == n * sizeof(T), CZ_ERR_FORMAT, "%s: %zu bytes, expected %zu", p.c_str(), s.size(),
             n * sizeof(T));
  std::vector<T> v(n);
  std::memcpy(v.data(), s.data(), s.size());
  return v;
}

struct Checker {
  int* checks;
  int* failures;
  void compare(const std::string& what, const Tensor& got, const std::vector<float>& ref, double atol, double rtol) {
    ++*checks;
    if (static_cast<size_t>(got.numel()) != ref.size()) {
      ++*failures;
      std::printf("  FAIL %s: %lld values, reference has %zu\n", what.c_str(), (long long)got.numel(), ref.size());
      return;
    }
    const float* g = got.ptr<float>();
    double worst = 0, max_ref = 0, max_err = 0, max_rel = 0;
    size_t wi = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      const double e = std::fabs(double(g[i]) - ref[i]);
      const double r = e / (atol + rtol * std::fabs(ref[i]));
      if (!(r <= worst)) {
        worst = std::isnan(r) ? 1e30 : r;
        wi = i;
      }
      max_ref = std::max(max_ref, std::fabs(double(ref[i])));
      max_err = std::max(max_err, e);
    }
    max_rel = max_err / (max_ref > 0 ? max_ref : 1);
    const bool ok = worst <= 1.0;
    if (!ok) ++*failures;
    std::printf("  %s %-34s max|err|=%.3g max|err|/max|ref|=%.3g worst=%.3f%s\n", ok ? "ok  " : "FAIL", what.c_str(),
                max_err, max_rel, worst, ok ? "" : strfmt(" at %zu (got %g ref %g)", wi, g[wi], ref[wi]).c_str());
  }
};

Tensor host(DType dt, std::vector<int64_t> shape, const void* data) {
  Tensor t = Tensor::empty_host(dt, shape, false);
  std::memcpy(t.data(), data, t.nbytes());
  return t;
}

void run_one(const std::shared_ptr<Context>& ctx, const std::string& fx, const std::string& model_dir,
             const std::string& outputs, Precision prec, Checker& ck) {
  const json::Value idx = json::parse(slurp(fx + "/" + outputs + "/index.json"), outputs + "/index.json");
  const int64_t B = idx.find("B")->as_int64("B"), Q = idx.find("Q")->as_int64("Q"), P = idx.find("P")->as_int64("P"),
                L = idx.find("L")->as_int64("L"), C = idx.find("C")->as_int64("C");
  LoadOptions opts;
  opts.precision = prec;
  auto model = CarzeroModel::load(ctx, model_dir, opts);
  const int64_t side = model->config().vision.image_size;
  // Inputs: pixels from images/ref/<name>.x224.f32 (one grey plane), text/ids|mask|kinds.
  std::vector<float> grey, rgb;
  for (const auto& name : idx.find("images")->arr) {
    std::vector<float> g = read_bin<float>(fx + "/images/ref/" + name.str + ".x224.f32", side * side);
    grey.insert(grey.end(), g.begin(), g.end());
    for (int c = 0; c < 3; ++c) rgb.insert(rgb.end(), g.begin(), g.end());
  }
  std::vector<int32_t> ids = read_bin<int32_t>(fx + "/text/ids.i32", Q * L);
  std::vector<uint8_t> mask = read_bin<uint8_t>(fx + "/text/mask.u8", Q * L);
  std::vector<uint8_t> kinds = read_bin<uint8_t>(fx + "/text/kinds.u8", Q * L);
  const json::Value* tensors = idx.find("tensors");
  auto ref = [&](const char* name) {
    const json::Value* t = tensors->find(name);
    if (!t) return std::vector<float>();
    int64_t n = 1;
    for (const auto& s : t->find("shape")->arr) n *= s.as_int64(name);
    return read_bin<float>(fx + "/" + t->find("file")->str, n);
  };
  const bool bf = prec == Precision::BF16;
  // fp32: the spec target (relative 1e-4, plus a small absolute floor for values near zero).
  // bf16: weights and GEMM inputs rounded to 8-bit mantissas; errors are judged against the
  // tensor's scale (atol = frac * max|ref|): 2 % for embeddings, 10 % for the logits, which pass
  // through 10+ bf16 GEMMs of a random model with large gains.
  const double rt = bf ? 3e-2 : 1e-4;
  const std::string tag = std::string("[") + outputs + " " + precision_name(prec) + "] ";
  ImageEmbeddings ie = model->embed_images(host(DType::F32, {B, 3, side, side}, rgb.data()));
  ImageEmbeddings ie1 = model->embed_images(host(DType::F32, {B, 1, side, side}, grey.data()));
  TextEmbeddings te = model->embed_texts(host(DType::I32, {Q, L}, ids.data()), host(DType::U8, {Q, L}, mask.data()),
                                         host(DType::U8, {Q, L}, kinds.data()));
  ScoreResult sr = model->score(ie.global, ie.local, te.sentence, te.words, true);
  (void)P;
  (void)C;
  struct Item {
    const char* name;
    const Tensor* t;
    double atol;  // fp32
    double frac;  // bf16: atol = frac * max|ref|
  };
  const Item items[] = {
      {"img_global", &ie.global, 1e-5, 0.02},
      {"img_local", &ie.local, 1e-5, 0.02},
      {"txt_sentence", &te.sentence, 1e-5, 0.02},
      {"txt_words", &te.words, 1e-5, 0.02},
      {"i2t", &sr.i2t, 1e-5, 0.1},
      {"t2i", &sr.t2i, 1e-5, 0.1},
      {"score", &sr.score, 1e-5, 0.1},
      {"attention", &sr.attention, 1e-7, 0.1},
      {"img_global", &ie1.global, 1e-5, 0.02},
  };
  for (const Item& it : items) {
    std::vector<float> r = ref(it.name);
    if (r.empty()) continue;  // this fixture set does not have it
    double max_ref = 0;
    for (float x : r) max_ref = std::max(max_ref, std::fabs(double(x)));
    ck.compare(tag + it.name + (it.t == &ie1.global ? " (1-channel input)" : ""), *it.t, r,
               bf ? it.frac * max_ref : it.atol, rt);
  }
}

}  // namespace

int fixture_tests(const std::shared_ptr<Context>& ctx, int* checks, int* failures) {
  const std::string fx = std::string(CZ_FIXTURE_DIR) + "/tiny";
  if (!exists(fx + "/outputs/index.json")) {
    std::printf("fixtures: %s/outputs absent, skipped\n", fx.c_str());
    return 0;
  }
  Checker ck{checks, failures};
  struct Case {
    const char* env;
    const char* dflt;
    const char* outputs;
  };
  const Case cases[] = {{"CZ_TINY_MODEL_DIR", "/model", "outputs"},
                        {"CZ_TINY_HALVES_MODEL_DIR", "/model-halves", "outputs-halves"}};
  for (const Case& c : cases) {
    const char* env = std::getenv(c.env);
    const std::string dir = env && *env ? std::string(env) : fx + c.dflt;
    if (!exists(dir + "/model.safetensors") || !exists(fx + "/" + c.outputs + "/index.json")) {
      std::printf("fixtures: no converted model at %s (set %s; `carzero convert`), %s skipped\n", dir.c_str(), c.env,
                  c.outputs);
      continue;
    }
    std::printf("fixtures: %s vs %s/%s\n", dir.c_str(), fx.c_str(), c.outputs);
    try {
      run_one(ctx, fx, dir, c.outputs, Precision::FP32, ck);
      run_one(ctx, fx, dir, c.outputs, Precision::BF16, ck);
    } catch (const std::exception& e) {
      ++*checks;
      ++*failures;
      std::printf("  FAIL %s: %s\n", c.outputs, e.what());
    }
  }
  return 0;
}
