// carzero.cpp: see carzero.h.
#include "model/carzero.h"

#include <algorithm>
#include <vector>

#include "model/glue.h"

namespace carzero::model {

bool parse_precision(const std::string& s, Precision* out) {
  if (s == "fp32")
    *out = Precision::FP32;
  else if (s == "bf16")
    *out = Precision::BF16;
  else if (s == "tf32")
    *out = Precision::TF32;
  else
    return false;
  return true;
}

const char* precision_name(Precision p) {
  return p == Precision::BF16 ? "bf16" : p == Precision::TF32 ? "tf32" : "fp32";
}

static void check_options(const LoadOptions& o) {
  CZ_ARG(o.precision == Precision::FP32 || o.precision == Precision::BF16 || o.precision == Precision::TF32,
         "precision must be fp32, bf16 or tf32");
  CZ_ARG(o.max_images >= 1, "max_images must be >= 1, got %lld", (long long)o.max_images);
  CZ_ARG(o.max_texts >= 1, "max_texts must be >= 1, got %lld", (long long)o.max_texts);
  CZ_ARG(o.max_score_images >= 1, "max_score_images must be >= 1, got %lld", (long long)o.max_score_images);
  CZ_ARG(o.max_score_texts >= 1, "max_score_texts must be >= 1, got %lld", (long long)o.max_score_texts);
}

std::shared_ptr<CarzeroModel> CarzeroModel::load(std::shared_ptr<Context> ctx, const std::string& dir,
                                                 const LoadOptions& opts) {
  CZ_ARG(ctx != nullptr, "context is null");
  CZ_ARG(!dir.empty(), "model directory is empty");
  std::string base = dir;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  ModelConfig cfg = ModelConfig::load_file(base + "/config.json");
  std::shared_ptr<const TensorSource> src = SafeTensorsFile::open(base + "/model.safetensors");
  return from_source(std::move(ctx), std::move(cfg), std::move(src), opts);
}

std::shared_ptr<CarzeroModel> CarzeroModel::from_source(std::shared_ptr<Context> ctx, ModelConfig cfg,
                                                        std::shared_ptr<const TensorSource> src,
                                                        const LoadOptions& opts) {
  CZ_ARG(ctx != nullptr, "context is null");
  check_options(opts);
  cfg.resolve(*src);
  std::shared_ptr<CarzeroModel> m(new CarzeroModel());
  m->ctx_ = std::move(ctx);
  m->cfg_ = std::move(cfg);
  m->opts_ = opts;
  const DType wt = opts.precision == Precision::BF16 ? DType::BF16 : DType::F32;
  m->params_ = std::make_unique<ParamStore>(m->ctx_, std::move(src));
  m->vit_.declare(*m->params_, m->cfg_.vision, wt);
  m->bert_.declare(*m->params_, m->cfg_.text, wt);
  m->head_.declare(*m->params_, m->cfg_.head, wt);
  m->params_->materialise();
  m->vit_.bind(*m->params_);
  m->bert_.bind(*m->params_);
  m->head_.bind(*m->params_);
  // CPU: every Linear weight packed once (on first use) into the GEMM's panels.
  m->vit_.prepack(*m->ctx_, m->packs_);
  m->bert_.prepack(*m->ctx_, m->packs_);
  m->head_.prepack(*m->ctx_, m->packs_);
  return m;
}

void CarzeroModel::set_options(const LoadOptions& o) {
  check_options(o);
  std::lock_guard<std::mutex> lk(mu_);
  const Precision p = opts_.precision;
  opts_ = o;
  opts_.precision = p;
}

void CarzeroModel::release_workspace() {
  std::lock_guard<std::mutex> lk(mu_);
  ws_.release();
}

Runner CarzeroModel::runner() const {
  return Runner{*ctx_, opts_.precision == Precision::BF16 ? DType::BF16 : DType::F32,
                opts_.precision == Precision::TF32};
}

void CarzeroModel::check_input(const Tensor& t, const char* name, DType dt, const std::vector<int64_t>& shape) const {
  CZ_ARG(t.defined(), "argument '%s' is missing", name);
  CZ_ARG(t.device() == ctx_->device(), "argument '%s' is on %s, the model on %s", name,
         t.device() == DeviceType::CPU ? "cpu" : "cuda", ctx_->device() == DeviceType::CPU ? "cpu" : "cuda");
  CZ_ARG(t.dtype() == dt, "argument '%s' has dtype %s, expected %s", name, dtype_name(t.dtype()), dtype_name(dt));
  bool ok = t.ndim() == static_cast<int>(shape.size());
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = shape[i] < 0 || t.size(int(i)) == shape[i];
  if (!ok) {
    std::string want = "(";
    for (size_t i = 0; i < shape.size(); ++i)
      want += (i ? ", " : "") + (shape[i] < 0 ? std::string("*") : std::to_string(shape[i]));
    want += ")";
    throw_error(CZ_ERR_INVALID_ARGUMENT, "argument '%s' has shape %s, expected %s", name, t.shape_str().c_str(),
                want.c_str());
  }
}

std::vector<std::vector<int64_t>> CarzeroModel::output_shapes_images(int64_t B) const {
  return {{B, cfg_.vision.width}, {B, cfg_.vision.patches(), cfg_.vision.width}};
}
std::vector<std::vector<int64_t>> CarzeroModel::output_shapes_texts(int64_t Q, int64_t L) const {
  return {{Q, cfg_.text.width}, {Q, L, cfg_.text.width}};
}
std::vector<std::vector<int64_t>> CarzeroModel::output_shapes_score(int64_t B, int64_t Q) const {
  return {{B, Q}, {Q, B}, {B, Q}, {B, Q, cfg_.vision.patches()}};
}

ImageEmbeddings CarzeroModel::embed_images(const Tensor& pixels) {
  CZ_ARG(pixels.defined() && pixels.ndim() == 4, "argument 'pixels' must be 4-D (B, 3 or 1, H, W), got %s",
         pixels.defined() ? pixels.shape_str().c_str() : "nothing");
  auto sh = output_shapes_images(pixels.size(0));
  ImageEmbeddings out;
  out.global = ctx_->alloc(DType::F32, sh[0], false);
  out.local = ctx_->alloc(DType::F32, sh[1], false);
  embed_images_into(pixels, out);
  return out;
}

void CarzeroModel::embed_images_into(const Tensor& pixels, const ImageEmbeddings& out) {
  const VisionConfig& v = cfg_.vision;
  CZ_ARG(pixels.defined() && pixels.ndim() == 4, "argument 'pixels' must be (B, %lld or 1, %lld, %lld), got %s",
         (long long)v.in_chans, (long long)v.image_size, (long long)v.image_size,
         pixels.defined() ? pixels.shape_str().c_str() : "nothing");
  const int64_t Cin = pixels.size(1);
  CZ_ARG(Cin == v.in_chans || Cin == 1, "argument 'pixels' has %lld channels, expected %lld or 1", (long long)Cin,
         (long long)v.in_chans);
  check_input(pixels, "pixels", DType::F32, {-1, Cin, v.image_size, v.image_size});
  const int64_t B = pixels.size(0), C = v.width, P = v.patches();
  check_input(out.global, "global", DType::F32, {B, C});
  check_input(out.local, "local", DType::F32, {B, P, C});
  std::lock_guard<std::mutex> lk(mu_);
  const Runner r = runner();
  const int64_t chunk = std::min<int64_t>(std::max<int64_t>(B, 1), opts_.max_images);
  const int64_t img = Cin * v.image_size * v.image_size;
  for (int64_t b0 = 0; b0 < B; b0 += chunk) {
    const int64_t nb = std::min(chunk, B - b0);
    VitActs acts;
    ws_.run_plan(*ctx_, [&](Bump& m) { acts = vit_.plan(m, nb, false, Cin); });
    vit_.forward(r, acts, pixels.ptr<float>() + b0 * img, Cin, out.global.ptr<float>() + b0 * C,
                 out.local.ptr<float>() + b0 * P * C);
  }
}

TextEmbeddings CarzeroModel::embed_texts(const Tensor& ids, const Tensor& mask, const Tensor& kinds) {
  CZ_ARG(ids.defined() && ids.ndim() == 2, "argument 'ids' must be (Q, L), got %s",
         ids.defined() ? ids.shape_str().c_str() : "nothing");
  auto sh = output_shapes_texts(ids.size(0), ids.size(1));
  TextEmbeddings out;
  out.sentence = ctx_->alloc(DType::F32, sh[0], false);
  out.words = ctx_->alloc(DType::F32, sh[1], false);
  embed_texts_into(ids, mask, kinds, out);
  return out;
}

void CarzeroModel::embed_texts_into(const Tensor& ids, const Tensor& mask, const Tensor& kinds,
                                    const TextEmbeddings& out) {
  CZ_ARG(ids.defined() && ids.ndim() == 2, "argument 'ids' must be (Q, L), got %s",
         ids.defined() ? ids.shape_str().c_str() : "nothing");
  const int64_t Q = ids.size(0), L = ids.size(1), C = cfg_.text.width;
  check_input(ids, "ids", DType::I32, {Q, L});
  check_input(mask, "mask", DType::U8, {Q, L});
  check_input(kinds, "kinds", DType::U8, {Q, L});
  CZ_ARG(L >= 2 && L <= cfg_.text.max_position,
         "argument 'ids' has %lld positions, expected 2..%lld (text.max_position)", (long long)L,
         (long long)cfg_.text.max_position);
  check_input(out.sentence, "sentence", DType::F32, {Q, C});
  check_input(out.words, "words", DType::F32, {Q, L, C});
  std::vector<uint8_t> kinds_host(static_cast<size_t>(Q * L)), mask_host(kinds_host.size());
  to_host(*ctx_, kinds_host.data(), kinds.data(), kinds_host.size());
  to_host(*ctx_, mask_host.data(), mask.data(), mask_host.size());
  validate_kinds(kinds_host.data(), Q, L);
  std::lock_guard<std::mutex> lk(mu_);
  const Runner r = runner();
  const int64_t chunk = std::min<int64_t>(std::max<int64_t>(Q, 1), opts_.max_texts);
  for (int64_t q0 = 0; q0 < Q; q0 += chunk) {
    const int64_t nq = std::min(chunk, Q - q0);
    // Padding is masked out of every attention, so the hidden states of real tokens do not
    // depend on the positions after them: run BERT on the first Lr positions only, Lr = the
    // longest text of the chunk (through its last real or non-"after [SEP]" token). Prompts are
    // ~10 tokens of 97: this is most of the text encoder's time.
    int64_t Lr = 1;
    for (int64_t q = q0; q < q0 + nq; ++q)
      for (int64_t t = L - 1; t >= Lr; --t)
        if (mask_host[q * L + t] || kinds_host[q * L + t] != 3) {
          Lr = t + 1;
          break;
        }
    const bool trim = Lr < L;
    BertActs acts;
    int32_t* ids_c = nullptr;
    uint8_t* mask_c = nullptr;
    ws_.run_plan(*ctx_, [&](Bump& m) {
      acts = bert_.plan(m, nq, Lr, false);
      ids_c = trim ? m.take<int32_t>(nq * Lr) : nullptr;
      mask_c = trim ? m.take<uint8_t>(nq * Lr) : nullptr;
    });
    const int32_t* ids_p = ids.ptr<int32_t>() + q0 * L;
    const uint8_t* mask_p = mask.ptr<uint8_t>() + q0 * L;
    if (trim) {
      std::vector<int32_t> ids_all(static_cast<size_t>(nq * L)), ids_h(static_cast<size_t>(nq * Lr));
      std::vector<uint8_t> mask_h(static_cast<size_t>(nq * Lr));
      to_host(*ctx_, ids_all.data(), ids_p, ids_all.size() * 4);
      for (int64_t q = 0; q < nq; ++q)
        for (int64_t t = 0; t < Lr; ++t) {
          ids_h[q * Lr + t] = ids_all[q * L + t];
          mask_h[q * Lr + t] = mask_host[(q0 + q) * L + t];
        }
      from_host(*ctx_, ids_c, ids_h.data(), ids_h.size() * 4);
      from_host(*ctx_, mask_c, mask_h.data(), mask_h.size());
      ids_p = ids_c;
      mask_p = mask_c;
    }
    bert_.forward(r, acts, ids_p, mask_p);
    aggregate_words(*ctx_, acts.hsum, Lr, kinds_host.data() + q0 * L, out.words.ptr<float>() + q0 * L * C,
                    out.sentence.ptr<float>() + q0 * C, nq, L, C);
  }
}

ScoreResult CarzeroModel::score(const Tensor& g, const Tensor& loc, const Tensor& s, const Tensor& w, bool attention) {
  CZ_ARG(g.defined() && g.ndim() == 2, "argument 'image global' must be (B, C), got %s",
         g.defined() ? g.shape_str().c_str() : "nothing");
  CZ_ARG(s.defined() && s.ndim() == 2, "argument 'sentence' must be (Q, C), got %s",
         s.defined() ? s.shape_str().c_str() : "nothing");
  auto sh = output_shapes_score(g.size(0), s.size(0));
  ScoreResult out;
  out.i2t = ctx_->alloc(DType::F32, sh[0], false);
  out.t2i = ctx_->alloc(DType::F32, sh[1], false);
  out.score = ctx_->alloc(DType::F32, sh[2], false);
  if (attention) out.attention = ctx_->alloc(DType::F32, sh[3], false);
  score_into(g, loc, s, w, out);
  return out;
}

void CarzeroModel::score_into(const Tensor& g, const Tensor& loc, const Tensor& s, const Tensor& w,
                              const ScoreResult& out) {
  const bool attention = out.attention.defined();
  const int64_t C = cfg_.head.width, P = cfg_.vision.patches();
  CZ_ARG(g.defined() && g.ndim() == 2, "argument 'image global' must be (B, %lld), got %s", (long long)C,
         g.defined() ? g.shape_str().c_str() : "nothing");
  CZ_ARG(s.defined() && s.ndim() == 2, "argument 'sentence' must be (Q, %lld), got %s", (long long)C,
         s.defined() ? s.shape_str().c_str() : "nothing");
  CZ_ARG(w.defined() && w.ndim() == 3, "argument 'words' must be (Q, L, %lld), got %s", (long long)C,
         w.defined() ? w.shape_str().c_str() : "nothing");
  const int64_t B = g.size(0), Q = s.size(0), L = w.size(1);
  check_input(g, "image global", DType::F32, {B, C});
  check_input(loc, "image local", DType::F32, {B, P, C});
  check_input(s, "sentence", DType::F32, {Q, C});
  check_input(w, "words", DType::F32, {Q, L, C});
  check_input(out.i2t, "i2t", DType::F32, {B, Q});
  check_input(out.t2i, "t2i", DType::F32, {Q, B});
  check_input(out.score, "score", DType::F32, {B, Q});
  if (attention) check_input(out.attention, "attention", DType::F32, {B, Q, P});
  std::lock_guard<std::mutex> lk(mu_);
  const Runner r = runner();
  const int64_t bc = std::min<int64_t>(std::max<int64_t>(B, 1), opts_.max_score_images);
  const int64_t qc = std::min<int64_t>(std::max<int64_t>(Q, 1), opts_.max_score_texts);
  float* i2t = out.i2t.ptr<float>();
  float* t2i = out.t2i.ptr<float>();
  for (int64_t b0 = 0; b0 < B; b0 += bc) {
    const int64_t nb = std::min(bc, B - b0);
    for (int64_t q0 = 0; q0 < Q; q0 += qc) {
      const int64_t nq = std::min(qc, Q - q0);
      const bool whole_q = nq == Q;
      // i2t: memory = images [b0, b0+nb), queries = sentences [q0, q0+nq).
      HeadActs a;
      float* maps = nullptr;
      ws_.run_plan(*ctx_, [&](Bump& m) {
        a = head_.plan(m, nb, nq, P, false, attention);
        maps = attention && !whole_q ? m.take(nb * nq * P) : nullptr;
      });
      float* avg = attention ? (whole_q ? out.attention.ptr<float>() + b0 * Q * P : maps) : nullptr;
      head_.forward(r, a, g.ptr<float>() + b0 * C, loc.ptr<float>() + b0 * P * C, s.ptr<float>() + q0 * C,
                    i2t + b0 * Q + q0, Q, avg);
      if (attention && !whole_q)
        r.ops().copy2d(r.ex(), out.attention.ptr<float>() + (b0 * Q + q0) * P, Q * P, maps, nq * P, nullptr, 0, nq * P,
                       nb);
      // t2i: memory = texts [q0, q0+nq), queries = image globals [b0, b0+nb).
      HeadActs t;
      ws_.run_plan(*ctx_, [&](Bump& m) { t = head_.plan(m, nq, nb, L, false, false); });
      head_.forward(r, t, s.ptr<float>() + q0 * C, w.ptr<float>() + q0 * L * C, g.ptr<float>() + b0 * C,
                    t2i + q0 * B + b0, B, nullptr);
    }
  }
  combine_scores(*ctx_, i2t, t2i, out.score.ptr<float>(), B, Q);
}

}  // namespace carzero::model
