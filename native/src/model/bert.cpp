// bert.cpp: see bert.h. Checkpoint names: Hugging Face BertModel under "text_encoder.model.".
#include "model/bert.h"

#include <cmath>

namespace carzero::model {

namespace {
const std::string kP = "text_encoder.model.";
}

void BertEncoder::declare(ParamStore& ps, const TextConfig& cfg, DType wt, bool training) {
  cfg_ = cfg;
  training_ = training;
  i_postype_ = i_pos_ = i_type_ = -1;
  C_ = cfg.width;
  NH_ = cfg.heads;
  HS_ = C_ / NH_;
  I_ = cfg.intermediate;
  const int64_t C = C_;
  i_word_ = ps.declare(kP + "embeddings.word_embeddings.weight", {cfg.vocab_size, C}, DType::F32);
  if (training) {
    i_pos_ = ps.declare(kP + "embeddings.position_embeddings.weight", {cfg.max_position, C}, DType::F32);
    i_type_ = ps.declare(kP + "embeddings.token_type_embeddings.weight", {cfg.type_vocab, C}, DType::F32);
  } else {
    // Token type ids are all 0: fold token_type_embeddings[0] into the position table.
    std::vector<float> pos = ps.read_f32(kP + "embeddings.position_embeddings.weight", {cfg.max_position, C});
    std::vector<float> typ = ps.read_f32(kP + "embeddings.token_type_embeddings.weight", {cfg.type_vocab, C});
    for (int64_t p = 0; p < cfg.max_position; ++p)
      for (int64_t c = 0; c < C; ++c) pos[p * C + c] += typ[c];
    i_postype_ = ps.declare_derived(kP + "embeddings.position_embeddings.weight#plus_type0", {cfg.max_position, C},
                                    DType::F32, std::move(pos));
  }
  i_ln_w_ = ps.declare(kP + "embeddings.LayerNorm.weight", {C}, DType::F32);
  i_ln_b_ = ps.declare(kP + "embeddings.LayerNorm.bias", {C}, DType::F32);
  i_layers_.clear();
  for (int64_t l = 0; l < cfg.depth; ++l) {
    const std::string b = kP + "encoder.layer." + std::to_string(l) + ".";
    LayerParams p;  // declared in checkpoint order
    if (training) {
      // Three consecutive parameters (no gap) = the packed (3C, C) matrix and (3C) bias.
      const std::string a = b + "attention.self.";
      p.qkv_w = ps.declare(a + "query.weight", {C, C}, wt);
      const int kw = ps.declare(a + "key.weight", {C, C}, wt, true);
      const int vw = ps.declare(a + "value.weight", {C, C}, wt, true);
      p.qkv_b = ps.declare(a + "query.bias", {C}, DType::F32);
      const int kb = ps.declare(a + "key.bias", {C}, DType::F32, true);
      const int vb = ps.declare(a + "value.bias", {C}, DType::F32, true);
      CZ_REQUIRE(ps.param(kw).packed && ps.param(vw).packed && ps.param(kb).packed && ps.param(vb).packed,
                 CZ_ERR_INTERNAL, "bert: q/k/v not packed");
    } else {
      // q, k, v packed into one (3C, C) matrix at load time: one GEMM, and attention reads the
      // three from the packed rows (stride 3C).
      std::vector<float> w, bias;
      for (const char* n : {"query", "key", "value"}) {
        std::vector<float> wi = ps.read_f32(b + "attention.self." + n + ".weight", {C, C});
        std::vector<float> bi = ps.read_f32(b + "attention.self." + n + ".bias", {C});
        w.insert(w.end(), wi.begin(), wi.end());
        bias.insert(bias.end(), bi.begin(), bi.end());
      }
      p.qkv_w = ps.declare_derived(b + "attention.self.qkv.weight#packed", {3 * C, C}, wt, std::move(w));
      p.qkv_b = ps.declare_derived(b + "attention.self.qkv.bias#packed", {3 * C}, DType::F32, std::move(bias));
    }
    p.out_dense_w = ps.declare(b + "attention.output.dense.weight", {C, C}, wt);
    p.out_dense_b = ps.declare(b + "attention.output.dense.bias", {C}, DType::F32);
    p.ln1_w = ps.declare(b + "attention.output.LayerNorm.weight", {C}, DType::F32);
    p.ln1_b = ps.declare(b + "attention.output.LayerNorm.bias", {C}, DType::F32);
    p.inter_w = ps.declare(b + "intermediate.dense.weight", {I_, C}, wt);
    p.inter_b = ps.declare(b + "intermediate.dense.bias", {I_}, DType::F32);
    p.out2_w = ps.declare(b + "output.dense.weight", {C, I_}, wt);
    p.out2_b = ps.declare(b + "output.dense.bias", {C}, DType::F32);
    p.ln2_w = ps.declare(b + "output.LayerNorm.weight", {C}, DType::F32);
    p.ln2_b = ps.declare(b + "output.LayerNorm.bias", {C}, DType::F32);
    i_layers_.push_back(p);
  }
}

void BertEncoder::bind(const ParamStore& ps) {
  const float eps = static_cast<float>(cfg_.eps);
  word_ = ps.f32(i_word_);
  postype_ = i_postype_ >= 0 ? ps.f32(i_postype_) : nullptr;
  pos_ = i_pos_ >= 0 ? ps.f32(i_pos_) : nullptr;
  type_ = i_type_ >= 0 ? ps.f32(i_type_) : nullptr;
  emb_ln_ = LN{ps.f32(i_ln_w_), ps.f32(i_ln_b_), C_, eps};
  auto lin = [&](int w, int b, int64_t out, int64_t in) {
    return Lin{ps.ptr(w), ps.param(w).dtype, ps.f32(b), out, in};
  };
  layers_.clear();
  for (const LayerParams& p : i_layers_) {
    Layer k;
    k.qkv = lin(p.qkv_w, p.qkv_b, 3 * C_, C_);
    k.out_dense = lin(p.out_dense_w, p.out_dense_b, C_, C_);
    k.ln1 = LN{ps.f32(p.ln1_w), ps.f32(p.ln1_b), C_, eps};
    k.inter = lin(p.inter_w, p.inter_b, I_, C_);
    k.out2 = lin(p.out2_w, p.out2_b, C_, I_);
    k.ln2 = LN{ps.f32(p.ln2_w), ps.f32(p.ln2_b), C_, eps};
    layers_.push_back(k);
  }
}

void BertEncoder::prepack(const Context& ctx, WeightPacks& packs) {
  for (Layer& k : layers_)
    for (Lin* l : {&k.qkv, &k.out_dense, &k.inter, &k.out2}) packs.attach(ctx, *l);
}

BertActs BertEncoder::plan(Bump& m, int64_t Q, int64_t L, bool keep, bool recompute) const {
  BertActs a;
  a.Q = Q;
  a.L = L;
  a.keep = keep;
  a.recompute = keep && recompute;
  const int64_t N = Q * L, C = C_;
  if (!postype_) a.postype = m.take(L * C);
  a.emb = m.take(N * C);
  if (keep) {
    a.emb_mean = m.take(N);
    a.emb_rstd = m.take(N);
  }
  float* x = m.take(N * C);  // embedding LayerNorm output = layer 0 input
  a.layers.resize(layers_.size());
  for (size_t l = 0; l < layers_.size(); ++l) {
    BertLayerActs& s = a.layers[l];
    if (!keep && l > 0) {
      s = a.layers[0];
      continue;
    }
    s.x_in = l == 0 ? x : a.layers[l - 1].out;
    if (a.recompute && l > 0) {  // layer 0's shared set, an own output
      const float* xin = s.x_in;
      s = a.layers[0];
      s.x_in = const_cast<float*>(xin);
      s.out = m.take(N * C);
      continue;
    }
    s.qkv = m.take(N * 3 * C);
    s.att = m.take(N * C);
    s.x1 = m.take(N * C);
    s.inter = m.take(N * I_);
    if (keep) {
      s.att_lse = m.take(Q * NH_ * L);
      s.res1 = m.take(N * C);
      s.ln1_mean = m.take(N);
      s.ln1_rstd = m.take(N);
      s.inter_pre = m.take(N * I_);
      s.res2 = m.take(N * C);
      s.out = m.take(N * C);
      s.ln2_mean = m.take(N);
      s.ln2_rstd = m.take(N);
    } else {
      // Ping-pong: x_in += dense(att) in place, LN -> x1; x1 += dense(inter) in place, LN -> x_in.
      s.res1 = s.x_in;
      s.res2 = s.x1;
      s.out = s.x_in;
    }
  }
  a.hsum = m.take(N * C);
  return a;
}

AttnArgs BertEncoder::attn_args(const BertLayerActs& s, int64_t Q, int64_t L, const uint8_t* mask) const {
  const int64_t C = C_;
  AttnArgs at;
  at.B = Q;
  at.NH = NH_;
  at.Tq = L;
  at.Tk = L;
  at.HS = HS_;
  at.q = s.qkv;
  at.k = s.qkv + C;
  at.v = s.qkv + 2 * C;
  at.ldq = at.ldk = at.ldv = 3 * C;
  at.q_bs = at.k_bs = at.v_bs = L * 3 * C;
  at.out = s.att;
  at.ldo = C;
  at.o_bs = L * C;
  at.key_mask = mask;  // padding keys masked out
  at.mask_bs = L;
  at.scale = 1.0f / std::sqrt(static_cast<float>(HS_));
  at.lse = s.att_lse;
  return at;
}

void BertEncoder::forward(const Runner& r, const BertActs& a, const int32_t* ids, const uint8_t* mask,
                          const Dropout* drop) const {
  const bool dr = drop && drop->on;
  const int64_t Q = a.Q, L = a.L, N = Q * L, C = C_;
  CZ_ARG(L <= cfg_.max_position, "ids: %lld positions exceed text.max_position = %lld", static_cast<long long>(L),
         static_cast<long long>(cfg_.max_position));
  r.ops().embedding_forward(r.ex(), a.emb, ids, word_, N, cfg_.vocab_size, C);
  const float* postype = postype_;
  if (!postype) {  // training layout: position + token type 0, for the first L positions
    for (int64_t t = 0; t < L; ++t) r.add(a.postype + t * C, pos_ + t * C, type_, C);
    postype = a.postype;
  }
  r.ops().copy2d(r.ex(), a.emb, L * C, a.emb, L * C, postype, 0, L * C, Q);
  r.layernorm(emb_ln_, a.emb, a.layers[0].x_in, N, a.emb_mean, a.emb_rstd);
  if (dr) drop->forward(r, a.layers[0].x_in, N * C, Dropout::site(Dropout::Text, 1023, 0));
  const int64_t first_kept = cfg_.depth - cfg_.last_n_layers;
  for (size_t l = 0; l < layers_.size(); ++l) {
    forward_layer(r, l, a, mask, drop);
    const BertLayerActs& s = a.layers[l];
    const int64_t li = static_cast<int64_t>(l);
    if (li == first_kept)
      r.copy(a.hsum, s.out, N * C);
    else if (li > first_kept)
      r.add(a.hsum, a.hsum, s.out, N * C);
  }
}

void BertEncoder::forward_layer(const Runner& r, size_t l, const BertActs& a, const uint8_t* mask,
                                const Dropout* drop) const {
  const bool dr = drop && drop->on;
  const int64_t Q = a.Q, L = a.L, N = Q * L, C = C_;
  const Layer& k = layers_[l];
  const BertLayerActs& s = a.layers[l];
  r.linear(k.qkv, s.x_in, N, s.qkv);
  encoder_attention(r, attn_args(s, Q, L, mask), a.keep);
  const int64_t li0 = static_cast<int64_t>(l);
  if (dr) {  // res1 = x_in + dropout(dense(att)), with x1 as the scratch
    r.linear(k.out_dense, s.att, N, s.x1);
    drop->forward(r, s.x1, N * C, Dropout::site(Dropout::Text, li0, 0));
    r.add(s.res1, s.x_in, s.x1, N * C);
  } else {
    if (s.res1 != s.x_in) r.copy(s.res1, s.x_in, N * C);
    r.linear(k.out_dense, s.att, N, s.res1, Act::None, 1.0f);
  }
  r.layernorm(k.ln1, s.res1, s.x1, N, s.ln1_mean, s.ln1_rstd);
  r.linear(k.inter, s.x1, N, s.inter, Act::Gelu, 0.0f, s.inter_pre);
  if (dr) {  // res2 = x1 + dropout(dense(inter)), with out as the scratch
    r.linear(k.out2, s.inter, N, s.out);
    drop->forward(r, s.out, N * C, Dropout::site(Dropout::Text, li0, 1));
    r.add(s.res2, s.x1, s.out, N * C);
  } else {
    if (s.res2 != s.x1) r.copy(s.res2, s.x1, N * C);
    r.linear(k.out2, s.inter, N, s.res2, Act::None, 1.0f);
  }
  r.layernorm(k.ln2, s.res2, s.out, N, s.ln2_mean, s.ln2_rstd);
}

BertGrads BertEncoder::plan_backward(Bump& m, int64_t Q, int64_t L) const {
  const int64_t N = Q * L;
  BertGrads g;
  g.dx = m.take(N * C_);
  g.dres = m.take(N * C_);
  g.dt = m.take(N * C_);
  g.datt = m.take(N * C_);
  g.dqkv = m.take(N * 3 * C_);
  g.dinter = m.take(N * I_);
  return g;
}

void BertEncoder::backward(const Runner& r, const BertActs& a, const BertGrads& g, const ParamStore& ps,
                           const int32_t* ids, const uint8_t* mask, const float* dhsum, const Dropout* drop) const {
  CZ_REQUIRE(a.keep && training_, CZ_ERR_INTERNAL, "bert backward needs kept activations");
  const int64_t Q = a.Q, L = a.L, N = Q * L, C = C_;
  const Dropout off;
  const Dropout& d = drop ? *drop : off;
  auto G = [&](int i) { return ps.grad(i); };
  const int64_t first_kept = cfg_.depth - cfg_.last_n_layers;
  for (size_t l = layers_.size(); l-- > 0;) {
    const Layer& k = layers_[l];
    const BertLayerActs& s = a.layers[l];
    const LayerParams& p = i_layers_[l];
    const int64_t li = static_cast<int64_t>(l);
    // Recompute: the shared set holds the last layer after the forward; earlier layers are re-run
    // from their kept input with the same dropout masks (counter-based: identical values).
    if (a.recompute && l + 1 < layers_.size()) forward_layer(r, l, a, mask, drop);
    // g.dx = d out: from the next layer, plus dhsum for the last n layers.
    if (l + 1 == layers_.size()) {
      if (li >= first_kept)
        r.copy(g.dx, dhsum, N * C);
      else
        r.zero(g.dx, N * C);
    } else if (li >= first_kept) {
      r.accumulate(g.dx, dhsum, N * C);
    }
    // out = LN2(res2), res2 = x1 + drop(out2(inter)), inter = GELU(dense(x1)).
    r.layernorm_backward(k.ln2, g.dx, s.res2, s.ln2_mean, s.ln2_rstd, N, g.dres, G(p.ln2_w), G(p.ln2_b));
    d.backward(r, g.dt, g.dres, N * C, Dropout::site(Dropout::Text, li, 1));
    r.linear_backward(k.out2, s.inter, N, g.dt, g.dinter, G(p.out2_w), G(p.out2_b));
    r.linear_backward(k.inter, s.x1, N, g.dinter, g.dt, G(p.inter_w), G(p.inter_b), Act::Gelu, s.inter_pre);
    r.accumulate(g.dres, g.dt, N * C);  // d x1
    // x1 = LN1(res1), res1 = x_in + drop(dense(att)).
    r.layernorm_backward(k.ln1, g.dres, s.res1, s.ln1_mean, s.ln1_rstd, N, g.dx, G(p.ln1_w),
                         G(p.ln1_b));  // g.dx = d res1
    d.backward(r, g.dt, g.dx, N * C, Dropout::site(Dropout::Text, li, 0));
    r.linear_backward(k.out_dense, s.att, N, g.dt, g.datt, G(p.out_dense_w), G(p.out_dense_b));
    r.zero(g.dqkv, N * 3 * C);
    AttnGrads ag;
    ag.dout = g.datt;
    ag.dq = g.dqkv;
    ag.dk = g.dqkv + C;
    ag.dv = g.dqkv + 2 * C;
    encoder_attention_backward(r, attn_args(s, Q, L, mask), ag);
    // qkv = x_in @ [Wq; Wk; Wv]^T: the three parameters' gradients are one packed block.
    r.linear_backward(k.qkv, s.x_in, N, g.dqkv, g.dt, G(p.qkv_w), G(p.qkv_b));
    r.accumulate(g.dx, g.dt, N * C);  // d x_in = d out of the previous layer
  }
  // x_in(0) = drop(LN(word[ids] + pos[t] + type[0])).
  d.backward(r, g.dx, g.dx, N * C, Dropout::site(Dropout::Text, 1023, 0));
  r.layernorm_backward(emb_ln_, g.dx, a.emb, a.emb_mean, a.emb_rstd, N, g.dres, G(i_ln_w_), G(i_ln_b_));
  r.ops().embedding_backward(r.ex(), G(i_word_), g.dres, ids, N, cfg_.vocab_size, C);
  // d postype (L, C) = sum over texts; -> pos[0:L], and the sum of its rows -> type[0].
  float* dpt = g.dt;
  r.copy(dpt, g.dres, L * C);
  for (int64_t q = 1; q < Q; ++q) r.accumulate(dpt, g.dres + q * L * C, L * C);
  r.accumulate(G(i_pos_), dpt, L * C);
  for (int64_t t = 0; t < L; ++t) r.accumulate(G(i_type_), dpt + t * C, C);
}

}  // namespace carzero::model
