// train.cpp: CarzeroModel's training step (docs/TRAINING.md; spec 6): the forward of every part
// with its activations kept, the contrastive loss ce(I) + ce(T), and the backward of the head
// (both directions), the word aggregation, BERT and the ViT into the gradient arena.
//
// Loss: I = i2t (N x N, I[b, q]), T = t2i (N x N, T[q, b]); ce(X) = (CE(X, diag) + CE(X^T, diag))
// / 2 with CE the mean over rows: softmax_xent axis 1 (rows) and axis 0 (columns, = CE(X^T)).
#include <algorithm>
#include <cmath>
#include <vector>

#include "model/carzero.h"
#include "model/glue.h"

namespace carzero::model {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

}  // namespace

void CarzeroModel::enable_training(uint64_t seed, DType compute, bool recompute) {
  std::lock_guard<std::mutex> lk(mu_);
  CZ_ARG(compute == DType::F32 || compute == DType::BF16 || compute == DType::F16,
         "training precision must be fp32, bf16 or fp16 (got %s)", dtype_name(compute));
  train_compute_ = compute;
  recompute_ = recompute;
  CZ_ARG(opts_.precision == Precision::FP32, "training needs an fp32 model (this model was loaded with precision %s)",
         precision_name(opts_.precision));
  seed_ = seed;
  if (training_) return;
  ws_.release();
  auto ps = std::make_unique<ParamStore>(ctx_, params_->source());
  vit_.declare(*ps, cfg_.vision, DType::F32, true);
  bert_.declare(*ps, cfg_.text, DType::F32, true);
  head_.declare(*ps, cfg_.head, DType::F32);
  ps->materialise(/*zero_copy=*/false);
  ps->allocate_grads();
  params_ = std::move(ps);
  vit_.bind(*params_);
  bert_.bind(*params_);
  head_.bind(*params_);
  // The weights now change at every optimizer step: the Lins rebound above carry no prepacked
  // panels (every GEMM packs per call), and the inference layout's panels are freed.
  packs_.clear();
  training_ = true;
}

void CarzeroModel::init_collective(const std::vector<uint8_t>& id, int rank, int world) {
  std::lock_guard<std::mutex> lk(mu_);
  CZ_ARG(ctx_->device() != DeviceType::CPU,
         "data-parallel training needs a CUDA model (collectives run on NCCL); this model is on the CPU");
  ctx_->backend()->collective_init(id, rank, world);
  world_ = world;
}

void CarzeroModel::all_reduce_gradients() {
  std::lock_guard<std::mutex> lk(mu_);
  CZ_ARG(training_, "allReduceGradients: call enableTraining first");
  if (world_ == 1 && ctx_->device() == DeviceType::CPU) return;
  const size_t n = params_->grad_arena_floats();
  ctx_->backend()->all_reduce_sum(params_->grad_arena(), n);
  if (world_ > 1)
    ctx_->ops().scale(ctx_->exec(), params_->grad_arena(), static_cast<int64_t>(n), 1.0f / static_cast<float>(world_));
}

void CarzeroModel::all_reduce_sum(float* p, int64_t n) {
  std::lock_guard<std::mutex> lk(mu_);
  CZ_ARG(n >= 0, "allReduceSum: negative size");
  if (world_ == 1 && ctx_->device() == DeviceType::CPU) return;
  ctx_->backend()->all_reduce_sum(p, static_cast<size_t>(n));
}

void CarzeroModel::zero_grad() {
  std::lock_guard<std::mutex> lk(mu_);
  CZ_ARG(training_, "zeroGrad: call enableTraining first");
  params_->zero_grads();
}

void CarzeroModel::freeze(int vision, int text) {
  std::lock_guard<std::mutex> lk(mu_);
  if (vision >= 0) frozen_vision_ = vision != 0;
  if (text >= 0) frozen_text_ = text != 0;
}

bool CarzeroModel::trainable(const std::string& name) const {
  // The ViT's position table is frozen in the original (requires_grad = False: MRM's fixed
  // sin-cos table); its gradient is computed but it is not a trainable parameter.
  if (name == "img_encoder.model.pos_embed") return false;
  if (frozen_vision_ && starts_with(name, "img_encoder.")) return false;
  if (frozen_text_ && starts_with(name, "text_encoder.")) return false;
  return true;
}

std::vector<std::pair<std::string, Tensor>> CarzeroModel::parameters() const {
  CZ_ARG(training_, "parameters: call enableTraining first");
  std::vector<std::pair<std::string, Tensor>> out;
  for (size_t i = 0; i < params_->size(); ++i) {
    const Param& p = params_->param(static_cast<int>(i));
    if (trainable(p.name)) out.emplace_back(p.name, params_->param_tensor(static_cast<int>(i)));
  }
  return out;
}

std::vector<std::pair<std::string, Tensor>> CarzeroModel::gradients() const {
  CZ_ARG(training_, "gradients: call enableTraining first");
  std::vector<std::pair<std::string, Tensor>> out;
  for (size_t i = 0; i < params_->size(); ++i) {
    const Param& p = params_->param(static_cast<int>(i));
    if (trainable(p.name)) out.emplace_back(p.name, params_->grad_tensor(static_cast<int>(i)));
  }
  return out;
}

StepResult CarzeroModel::forward_backward(const StepInputs& in) {
  CZ_ARG(training_, "forwardBackward: call enableTraining first");
  const VisionConfig& v = cfg_.vision;
  const Tensor& px = in.pixels;
  CZ_ARG(px.defined() && px.ndim() == 4, "argument 'pixels' must be (N, %lld or 1, %lld, %lld), got %s",
         (long long)v.in_chans, (long long)v.image_size, (long long)v.image_size,
         px.defined() ? px.shape_str().c_str() : "nothing");
  const int64_t N = px.size(0), Cin = px.size(1);
  CZ_ARG(Cin == v.in_chans || Cin == 1, "argument 'pixels' has %lld channels, expected %lld or 1", (long long)Cin,
         (long long)v.in_chans);
  check_input(px, "pixels", DType::F32, {N, Cin, v.image_size, v.image_size});
  CZ_ARG(in.ids.defined() && in.ids.ndim() == 2, "argument 'ids' must be (N, L), got %s",
         in.ids.defined() ? in.ids.shape_str().c_str() : "nothing");
  const int64_t L = in.ids.size(1), C = cfg_.head.width, P = v.patches();
  check_input(in.ids, "ids", DType::I32, {N, L});
  check_input(in.mask, "mask", DType::U8, {N, L});
  check_input(in.kinds, "kinds", DType::U8, {N, L});
  CZ_ARG(N >= 1, "forwardBackward: the batch is empty");
  CZ_ARG(L >= 2 && L <= cfg_.text.max_position,
         "argument 'ids' has %lld positions, expected 2..%lld (text.max_position)", (long long)L,
         (long long)cfg_.text.max_position);
  CZ_ARG(std::isfinite(in.loss_scale), "lossScale must be finite");
  if (in.i2t_out.defined()) check_input(in.i2t_out, "i2t", DType::F32, {N, N});
  if (in.t2i_out.defined()) check_input(in.t2i_out, "t2i", DType::F32, {N, N});
  std::vector<uint8_t> kinds_host(static_cast<size_t>(N * L)), mask_host(kinds_host.size());
  to_host(*ctx_, kinds_host.data(), in.kinds.data(), kinds_host.size());
  to_host(*ctx_, mask_host.data(), in.mask.data(), mask_host.size());
  validate_kinds(kinds_host.data(), N, L);

  std::lock_guard<std::mutex> lk(mu_);
  const Runner r{*ctx_, train_compute_};
  const bool train_v = !frozen_vision_, train_t = !frozen_text_;
  Dropout drop;
  drop.on = in.dropout;
  drop.p = 0.1f;
  drop.seed = splitmix64(seed_ ^ splitmix64(in.step));
  // BERT runs on the first Lr positions (padding is masked out of every attention, and positions
  // past [SEP] feed nothing: exact, see embed_texts_into).
  int64_t Lr = 1;
  for (int64_t q = 0; q < N; ++q)
    for (int64_t t = L - 1; t >= Lr; --t)
      if (mask_host[q * L + t] || kinds_host[q * L + t] != 3) {
        Lr = t + 1;
        break;
      }
  const bool trim = Lr < L;

  VitActs va;
  VitGrads vg;
  BertActs ba;
  BertGrads bg;
  HeadActs hi, ht;
  HeadGrads gi, gt;
  int32_t* ids_c = nullptr;
  uint8_t* mask_c = nullptr;
  int32_t* targets = nullptr;
  float *glob = nullptr, *loc = nullptr, *sent = nullptr, *words = nullptr;
  float *dglob = nullptr, *dloc = nullptr, *dsent = nullptr, *dwords = nullptr, *dhsum = nullptr;
  float *I = nullptr, *T = nullptr, *dI = nullptr, *dT = nullptr, *tmp = nullptr;
  float *losses = nullptr, *dlosses = nullptr;
  ws_.run_plan(*ctx_, [&](Bump& m) {
    va = vit_.plan(m, N, train_v, Cin, recompute_);
    if (train_v) vg = vit_.plan_backward(m, N);
    ba = bert_.plan(m, N, Lr, train_t, recompute_);
    if (train_t) bg = bert_.plan_backward(m, N, Lr);
    ids_c = trim ? m.take<int32_t>(N * Lr) : nullptr;
    mask_c = trim ? m.take<uint8_t>(N * Lr) : nullptr;
    targets = m.take<int32_t>(N);
    glob = m.take(N * C);
    loc = m.take(N * P * C);
    sent = m.take(N * C);
    words = m.take(N * L * C);
    dglob = m.take(N * C);
    dloc = m.take(N * P * C);
    dsent = m.take(N * C);
    dwords = m.take(N * L * C);
    dhsum = m.take(N * Lr * C);
    hi = head_.plan(m, N, N, P, true, false);
    gi = head_.plan_backward(m, N, N, P);
    ht = head_.plan(m, N, N, L, true, false);
    gt = head_.plan_backward(m, N, N, L);
    I = m.take(N * N);
    T = m.take(N * N);
    dI = m.take(N * N);
    dT = m.take(N * N);
    tmp = m.take(N * N);
    losses = m.take(N);
    dlosses = m.take(N);
  });
  const int32_t* ids_p = in.ids.ptr<int32_t>();
  const uint8_t* mask_p = in.mask.ptr<uint8_t>();
  if (trim) {
    std::vector<int32_t> ids_all(static_cast<size_t>(N * L)), ids_h(static_cast<size_t>(N * Lr));
    std::vector<uint8_t> mask_h(static_cast<size_t>(N * Lr));
    to_host(*ctx_, ids_all.data(), ids_p, ids_all.size() * 4);
    for (int64_t q = 0; q < N; ++q)
      for (int64_t t = 0; t < Lr; ++t) {
        ids_h[q * Lr + t] = ids_all[q * L + t];
        mask_h[q * Lr + t] = mask_host[q * L + t];
      }
    from_host(*ctx_, ids_c, ids_h.data(), ids_h.size() * 4);
    from_host(*ctx_, mask_c, mask_h.data(), mask_h.size());
    ids_p = ids_c;
    mask_p = mask_c;
  }
  {
    std::vector<int32_t> tg(static_cast<size_t>(N));
    for (int64_t i = 0; i < N; ++i) tg[i] = static_cast<int32_t>(i);
    from_host(*ctx_, targets, tg.data(), tg.size() * 4);
  }

  // ---- forward -------------------------------------------------------------------------------
  vit_.forward(r, va, px.ptr<float>(), Cin, glob, loc);
  bert_.forward(r, ba, ids_p, mask_p, &drop);
  aggregate_words(*ctx_, ba.hsum, Lr, kinds_host.data(), words, sent, N, L, C);
  head_.forward(r, hi, glob, loc, sent, I, N, nullptr, &drop, Dropout::HeadI2T);
  head_.forward(r, ht, sent, words, glob, T, N, nullptr, &drop, Dropout::HeadT2I);
  if (in.i2t_out.defined()) r.copy(in.i2t_out.ptr<float>(), I, N * N);
  if (in.t2i_out.defined()) r.copy(in.t2i_out.ptr<float>(), T, N * N);

  // ---- loss ----------------------------------------------------------------------------------
  StepResult res;
  std::vector<float> lh(static_cast<size_t>(N));
  auto mean_ce = [&](const float* X, int axis) {
    r.ops().softmax_xent_forward(r.ex(), losses, X, targets, N, N, axis);
    to_host(*ctx_, lh.data(), losses, lh.size() * 4);
    double s = 0;
    for (float x : lh) s += x;
    return s / static_cast<double>(N);
  };
  res.i2t_loss = 0.5 * (mean_ce(I, 1) + mean_ce(I, 0));
  res.t2i_loss = 0.5 * (mean_ce(T, 1) + mean_ce(T, 0));
  res.loss = res.i2t_loss + res.t2i_loss;
  {
    std::vector<float> dl(static_cast<size_t>(N), static_cast<float>(0.5 * in.loss_scale / static_cast<double>(N)));
    from_host(*ctx_, dlosses, dl.data(), dl.size() * 4);
  }
  for (int d = 0; d < 2; ++d) {
    const float* X = d ? T : I;
    float* dX = d ? dT : dI;
    r.ops().softmax_xent_backward(r.ex(), dX, dlosses, X, targets, N, N, 1);
    r.ops().softmax_xent_backward(r.ex(), tmp, dlosses, X, targets, N, N, 0);
    r.accumulate(dX, tmp, N * N);
  }

  // ---- backward ------------------------------------------------------------------------------
  r.zero(dglob, N * C);
  r.zero(dloc, N * P * C);
  r.zero(dsent, N * C);
  r.zero(dwords, N * L * C);
  head_.backward(r, hi, gi, *params_, glob, loc, sent, dI, N, train_v ? dglob : nullptr, train_v ? dloc : nullptr,
                 train_t ? dsent : nullptr, &drop, Dropout::HeadI2T);
  head_.backward(r, ht, gt, *params_, sent, words, glob, dT, N, train_t ? dsent : nullptr, train_t ? dwords : nullptr,
                 train_v ? dglob : nullptr, &drop, Dropout::HeadT2I);
  if (train_t) {
    aggregate_words_backward(*ctx_, dwords, dsent, Lr, kinds_host.data(), dhsum, N, L, C);
    bert_.backward(r, ba, bg, *params_, ids_p, mask_p, dhsum, &drop);
  }
  if (train_v) vit_.backward(r, va, vg, *params_, px.ptr<float>(), Cin, dglob, dloc);
  return res;
}

}  // namespace carzero::model
