// train_test.cpp: the training step (native/src/model/train.cpp, docs/TRAINING.md).
// 1. Finite differences of the whole forward_backward loss on a random micro model (C = 8,
//    8 x 8 patches of 16 x 16 images, ViT depth 1, BERT depth 3 with the last 2 aggregated, head
//    depth 2), for every parameter (its largest-gradient element and one random element), with
//    dropout off and on (the dropout masks are a pure function of (seed, step), so the loss is a
//    deterministic function of the parameters either way). A grey (1-channel) batch must give the
//    same loss and gradients as the same batch repeated over 3 channels.
// 2. Gradient parity with the float64 PyTorch reference (test/fixtures/tiny/train/) when a
//    converted tiny model directory exists (CZ_TINY_MODEL_DIR, default <fixtures>/tiny/model).
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/json.h"
#include "core/status.h"
#include "model/carzero.h"
#include "model/safetensors.h"
#include "tiny_model.h"

using namespace carzero;
using namespace carzero::model;

namespace {

struct Counter {
  int* checks;
  int* failures;
  void expect(bool ok, const std::string& what) {
    ++*checks;
    if (!ok) {
      ++*failures;
      std::printf("  FAIL %s\n", what.c_str());
    }
  }
};

Tensor host(DType dt, std::vector<int64_t> shape, const void* data) {
  Tensor t = Tensor::empty_host(dt, shape, false);
  std::memcpy(t.data(), data, t.nbytes());
  return t;
}

struct Batch {
  int64_t N = 0, L = 0;
  std::vector<float> pixels;  // (N, Cin, H, W)
  int64_t Cin = 3;
  std::vector<int32_t> ids;
  std::vector<uint8_t> mask, kinds;
  StepInputs inputs(bool dropout, uint64_t step, int64_t img) const {
    StepInputs in;
    in.pixels = host(DType::F32, {N, Cin, img, img}, pixels.data());
    in.ids = host(DType::I32, {N, L}, ids.data());
    in.mask = host(DType::U8, {N, L}, mask.data());
    in.kinds = host(DType::U8, {N, L}, kinds.data());
    in.dropout = dropout;
    in.step = step;
    return in;
  }
};

std::vector<float> copy_of(const Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  std::memcpy(v.data(), t.data(), t.nbytes());
  return v;
}

void finite_differences(const std::shared_ptr<Context>& ctx, Counter& ck) {
  tiny::Dims d;
  d.C = 8;
  d.img = 16;
  d.ps = 8;
  d.vdepth = 1;
  d.vheads = 2;
  d.vmlp = 12;
  d.vocab = 20;
  d.tdepth = 3;
  d.theads = 2;
  d.inter = 12;
  d.maxpos = 12;
  d.tlast = 2;
  d.hdepth = 2;
  d.hheads = 2;
  d.ffn = 10;
  d.mlp = {6, 4, 1};
  tiny::Weights w = tiny::make_weights(d, 99);
  auto src = std::make_shared<MemorySource>();
  w.to_source(*src);
  ModelConfig cfg = ModelConfig::parse(tiny::config_json(d), "micro config");
  auto model = CarzeroModel::from_source(ctx, cfg, src, LoadOptions());
  model->enable_training(7);
  // Batch: N = 3 pairs, L = 10 positions (texts of 6, 8 and 5 tokens: BERT runs on 8).
  Batch b;
  b.N = 3;
  b.L = 10;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t HW = d.img * d.img;
  b.pixels.resize(static_cast<size_t>(b.N * 3 * HW));
  for (auto& x : b.pixels) x = nd(rng);
  const std::vector<std::vector<uint8_t>> kinds = {{0, 0, 1, 0, 0, 2}, {0, 0, 0, 1, 1, 0, 1, 2}, {0, 1, 0, 0, 2}};
  for (int64_t q = 0; q < b.N; ++q)
    for (int64_t t = 0; t < b.L; ++t) {
      const bool real = t < static_cast<int64_t>(kinds[q].size());
      b.ids.push_back(real ? static_cast<int32_t>(1 + (q * 7 + t * 3) % (d.vocab - 1)) : 0);
      b.mask.push_back(real ? 1 : 0);
      b.kinds.push_back(real ? kinds[q][t] : 3);
    }
  auto params = model->parameters();
  auto grads = model->gradients();
  ck.expect(params.size() == grads.size() && !params.empty(), "parameters() and gradients() match");
  for (bool dropout : {false, true}) {
    const uint64_t step = 11;
    model->zero_grad();
    StepResult r0 = model->forward_backward(b.inputs(dropout, step, d.img));
    std::map<std::string, std::vector<float>> g;
    for (auto& kv : grads) g[kv.first] = copy_of(kv.second);
    // loss_scale multiplies the gradients, not the loss.
    {
      model->zero_grad();
      StepInputs in = b.inputs(dropout, step, d.img);
      in.loss_scale = 4.0f;
      StepResult r4 = model->forward_backward(in);
      double worst = 0;
      for (auto& kv : grads) {
        const std::vector<float>& ref = g[kv.first];
        const float* p = kv.second.ptr<float>();
        for (size_t i = 0; i < ref.size(); ++i)
          worst = std::max(worst, std::fabs(p[i] - 4.0 * ref[i]) / (1e-6 + 4.0 * std::fabs(ref[i])));
      }
      ck.expect(r4.loss == r0.loss && worst < 1e-5, "lossScale 4: same loss, gradients x4");
    }
    // Accumulation: a second call adds the same gradients.
    {
      model->zero_grad();
      model->forward_backward(b.inputs(dropout, step, d.img));
      model->forward_backward(b.inputs(dropout, step, d.img));
      double worst = 0;
      for (auto& kv : grads) {
        const std::vector<float>& ref = g[kv.first];
        const float* p = kv.second.ptr<float>();
        for (size_t i = 0; i < ref.size(); ++i)
          worst = std::max(worst, std::fabs(p[i] - 2.0 * ref[i]) / (1e-6 + 2.0 * std::fabs(ref[i])));
      }
      ck.expect(worst < 1e-5, "gradients accumulate over calls");
    }
    int n = 0, bad = 0;
    double worst = 0;
    std::string worst_name;
    for (size_t pi = 0; pi < params.size(); ++pi) {
      const std::string& name = params[pi].first;
      float* p = params[pi].second.ptr<float>();
      const std::vector<float>& gr = g[name];
      const int64_t count = static_cast<int64_t>(gr.size());
      int64_t amax = 0;
      for (int64_t i = 1; i < count; ++i)
        if (std::fabs(gr[i]) > std::fabs(gr[amax])) amax = i;
      std::uniform_int_distribution<int64_t> pick(0, count - 1);
      for (int64_t i : {amax, pick(rng)}) {
        // Central differences at two step sizes (float32 loss: noise ~1e-7 relative; a step that
        // crosses a ReLU kink is caught by the smaller one); the better one counts.
        const float orig = p[i];
        const double an = gr[i];
        double fd = 0, err = 1e30;
        for (float rel : {2e-3f, 5e-4f}) {
          const float h = rel * std::max(1.0f, std::fabs(orig));
          p[i] = orig + h;
          const double lp = model->forward_backward(b.inputs(dropout, step, d.img)).loss;
          p[i] = orig - h;
          const double lm = model->forward_backward(b.inputs(dropout, step, d.img)).loss;
          p[i] = orig;
          const double f = (lp - lm) / (2.0 * static_cast<double>(h));
          // Loss noise / step ~ 1e-7 * 2 / 1e-3: an absolute floor of 3e-4.
          const double e =
              std::max(0.0, std::fabs(f - an) - 3e-4) / std::max(1e-3, std::max(std::fabs(f), std::fabs(an)));
          if (e < err) {
            err = e;
            fd = f;
          }
        }
        {
          const double raw = std::fabs(fd - an) / std::max(1e-3, std::max(std::fabs(fd), std::fabs(an)));
          if (raw > worst) {
            worst = raw;
            worst_name = name + "[" + std::to_string(i) + "] fd " + std::to_string(fd) + " analytic " +
                         std::to_string(an) + " (raw; 3e-4 absolute floor)";
          }
        }
        ++n;
        if (err > 2e-2) {
          ++bad;
          std::printf("    fd mismatch %s[%lld]: fd %.6g analytic %.6g\n", name.c_str(), static_cast<long long>(i), fd,
                      an);
        }
      }
    }
    std::printf(
        "  %s finite differences (dropout %s): %d coordinates of %zu parameters, loss %.6f, "
        "worst rel err %.2e (%s)\n",
        bad ? "FAIL" : "ok  ", dropout ? "on" : "off", n, params.size(), r0.loss, worst, worst_name.c_str());
    ck.expect(bad == 0, std::string("finite differences, dropout ") + (dropout ? "on" : "off"));
  }
  // Grey input == the same image over 3 channels (the gradient reaches the 3-channel kernel).
  {
    Batch grey = b;
    grey.Cin = 1;
    grey.pixels.clear();
    for (int64_t i = 0; i < b.N; ++i)
      grey.pixels.insert(grey.pixels.end(), b.pixels.begin() + i * 3 * HW, b.pixels.begin() + i * 3 * HW + HW);
    Batch rgb = b;
    for (int64_t i = 0; i < b.N; ++i)
      for (int c = 1; c < 3; ++c) std::memcpy(&rgb.pixels[(i * 3 + c) * HW], &rgb.pixels[i * 3 * HW], HW * 4);
    model->zero_grad();
    const double l3 = model->forward_backward(rgb.inputs(false, 0, d.img)).loss;
    std::map<std::string, std::vector<float>> g3;
    for (auto& kv : grads) g3[kv.first] = copy_of(kv.second);
    model->zero_grad();
    const double l1 = model->forward_backward(grey.inputs(false, 0, d.img)).loss;
    double worst = 0;
    for (auto& kv : grads) {
      const float* p = kv.second.ptr<float>();
      const std::vector<float>& ref = g3[kv.first];
      for (size_t i = 0; i < ref.size(); ++i)
        worst = std::max(worst, std::fabs(p[i] - ref[i]) / (1e-5 + std::fabs(ref[i])));
    }
    std::printf("  grey vs 3-channel: loss %.9f vs %.9f, worst grad rel diff %.2e\n", l1, l3, worst);
    ck.expect(std::fabs(l1 - l3) < 1e-6 && worst < 1e-3, "grey input == 3-channel input");
  }
  // bf16 models refuse training.
  {
    LoadOptions o;
    o.precision = Precision::BF16;
    auto m2 = CarzeroModel::from_source(ctx, cfg, src, o);
    bool threw = false;
    try {
      m2->enable_training(1);
    } catch (const Error& e) {
      threw = std::string(e.what()).find("fp32") != std::string::npos;
    }
    ck.expect(threw, "bf16 model: enable_training refuses with a clear error");
  }
}

bool exists(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0;
}

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

template <typename T>
std::vector<T> read_bin(const std::string& p, int64_t n) {
  std::vector<T> v(static_cast<size_t>(n));
  std::ifstream in(p, std::ios::binary);
  CZ_REQUIRE(in.good(), CZ_ERR_IO, "cannot open %s", p.c_str());
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(n * sizeof(T)));
  CZ_REQUIRE(in.gcount() == static_cast<std::streamsize>(n * sizeof(T)), CZ_ERR_IO, "%s is short", p.c_str());
  return v;
}

void fixture_parity(const std::shared_ptr<Context>& ctx, Counter& ck) {
  const std::string fx = std::string(CZ_FIXTURE_DIR) + "/tiny";
  const char* env = std::getenv("CZ_TINY_MODEL_DIR");
  const std::string dir = env && *env ? std::string(env) : fx + "/model";
  if (!exists(fx + "/train/grads/index.json") || !exists(dir + "/model.safetensors")) {
    std::printf("train fixtures: no converted model at %s or no %s/train/grads, skipped\n", dir.c_str(), fx.c_str());
    return;
  }
  auto model = CarzeroModel::load(ctx, dir, LoadOptions());
  model->enable_training(0);
  const json::Value loss = json::parse(slurp(fx + "/train/loss.json"), "loss.json");
  const json::Value gidx = json::parse(slurp(fx + "/train/grads/index.json"), "grads/index.json");
  const int64_t N = loss.find("N")->as_int64("N"), side = model->config().vision.image_size;
  const int64_t Lt = model->config().text.max_length;
  Batch b;
  b.N = N;
  b.L = Lt;
  std::vector<int32_t> ids_all = read_bin<int32_t>(fx + "/text/ids.i32", 14 * Lt);
  std::vector<uint8_t> mask_all = read_bin<uint8_t>(fx + "/text/mask.u8", 14 * Lt);
  std::vector<uint8_t> kinds_all = read_bin<uint8_t>(fx + "/text/kinds.u8", 14 * Lt);
  for (const auto& name : loss.find("images")->arr) {
    std::vector<float> g = read_bin<float>(fx + "/images/ref/" + name.str + ".x224.f32", side * side);
    for (int c = 0; c < 3; ++c) b.pixels.insert(b.pixels.end(), g.begin(), g.end());
  }
  for (const auto& row : loss.find("text_rows")->arr) {
    const int64_t r = row.as_int64("row");
    b.ids.insert(b.ids.end(), ids_all.begin() + r * Lt, ids_all.begin() + (r + 1) * Lt);
    b.mask.insert(b.mask.end(), mask_all.begin() + r * Lt, mask_all.begin() + (r + 1) * Lt);
    b.kinds.insert(b.kinds.end(), kinds_all.begin() + r * Lt, kinds_all.begin() + (r + 1) * Lt);
  }
  model->zero_grad();
  StepInputs in = b.inputs(false, 0, side);
  in.i2t_out = Tensor::empty_host(DType::F32, {N, N});
  in.t2i_out = Tensor::empty_host(DType::F32, {N, N});
  StepResult r = model->forward_backward(in);
  const double ref_loss = loss.find("loss")->num, ref_i = loss.find("ce_i2t")->num, ref_t = loss.find("ce_t2i")->num;
  std::printf("  train fixture loss %.9f (ref %.9f), ce(I) %.9f (ref %.9f), ce(T) %.9f (ref %.9f)\n", r.loss, ref_loss,
              r.i2t_loss, ref_i, r.t2i_loss, ref_t);
  ck.expect(std::fabs(r.loss - ref_loss) <= 1e-5 * std::fabs(ref_loss) + 1e-6 &&
                std::fabs(r.i2t_loss - ref_i) <= 1e-5 * std::fabs(ref_i) + 1e-6 &&
                std::fabs(r.t2i_loss - ref_t) <= 1e-5 * std::fabs(ref_t) + 1e-6,
            "train fixture loss");
  auto cmp = [&](const std::string& what, const float* got, const std::vector<float>& ref, double rel_of_max) {
    double mx = 0, err = 0;
    for (float x : ref) mx = std::max(mx, std::fabs(double(x)));
    int64_t worst = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      const double e = std::fabs(got[i] - double(ref[i]));
      if (e > err) {
        err = e;
        worst = static_cast<int64_t>(i);
      }
    }
    const double ratio = mx > 0 ? err / mx : err;
    // Mathematically zero gradients (key biases: softmax is shift-invariant; the last mlp_head
    // bias: so is the cross-entropy) are ~1e-17 in float64 and ~1e-8 of float32 noise here.
    const bool ok = err <= rel_of_max * mx + 1e-7;
    ck.expect(ok, what);
    if (!ok || std::getenv("CZ_VERBOSE"))
      std::printf("  %s %-70s max|err|/max|ref| = %.2e (max|ref| %.3g, at %lld)\n", ok ? "ok  " : "FAIL", what.c_str(),
                  ratio, mx, static_cast<long long>(worst));
    return mx > 1e-6 ? ratio : 0.0;  // the worst ratio is reported over non-zero gradients
  };
  cmp("i2t", in.i2t_out.ptr<float>(), read_bin<float>(fx + "/train/i2t.f32", N * N), 1e-4);
  cmp("t2i", in.t2i_out.ptr<float>(), read_bin<float>(fx + "/train/t2i.f32", N * N), 1e-4);
  std::map<std::string, Tensor> got;
  for (auto& kv : model->gradients()) got[kv.first] = kv.second;
  const json::Value* gl = gidx.find("grads");
  int compared = 0;
  double worst = 0;
  std::string worst_name;
  for (const auto& kv : gl->obj) {
    const std::string& name = kv.first;
    auto it = got.find(name);
    if (it == got.end()) {
      ck.expect(false, "gradient of " + name + " missing");
      continue;
    }
    int64_t n = 1;
    for (const auto& s : kv.second.find("shape")->arr) n *= s.as_int64("shape");
    ck.expect(n == it->second.numel(), "gradient size of " + name);
    if (n != it->second.numel()) continue;
    const double ratio =
        cmp("grad " + name, it->second.ptr<float>(), read_bin<float>(fx + "/" + kv.second.find("file")->str, n), 2e-4);
    ++compared;
    if (ratio > worst) {
      worst = ratio;
      worst_name = name;
    }
    got.erase(it);
  }
  for (auto& kv : got) ck.expect(false, "gradient " + kv.first + " has no reference");
  std::printf("  train fixture gradients: %d compared, worst max|err|/max|ref| %.2e (%s)\n", compared, worst,
              worst_name.c_str());
}

}  // namespace

int train_tests(const std::shared_ptr<Context>& ctx, int* checks, int* failures) {
  Counter ck{checks, failures};
  std::printf("training step\n");
  try {
    finite_differences(ctx, ck);
    fixture_parity(ctx, ck);
  } catch (const std::exception& e) {
    ck.expect(false, std::string("training tests threw: ") + e.what());
  }
  return 0;
}
