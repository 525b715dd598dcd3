// align_head.cpp: see align_head.h. Checkpoint names under "fusion_module." (spec 4).
#include "model/align_head.h"

#include <algorithm>
#include <cmath>

#include "model/glue.h"

namespace carzero::model {

namespace {
const std::string kP = "fusion_module.";
}

void AlignHead::declare(ParamStore& ps, const HeadConfig& cfg, DType wt) {
  cfg_ = cfg;
  C_ = cfg.width;
  NH_ = cfg.heads;
  HS_ = C_ / NH_;
  F_ = cfg.ffn;
  const int64_t C = C_;
  i_dn_w_ = ps.declare(kP + "decoder_norm.weight", {C}, DType::F32);
  i_dn_b_ = ps.declare(kP + "decoder_norm.bias", {C}, DType::F32);
  i_layers_.clear();
  for (int64_t l = 0; l < cfg.depth; ++l) {
    const std::string b = kP + "decoder.layers." + std::to_string(l) + ".";
    LayerParams p;  // declared in checkpoint order
    p.norm2_w = ps.declare(b + "norm2.weight", {C}, DType::F32);
    p.norm2_b = ps.declare(b + "norm2.bias", {C}, DType::F32);
    p.in_proj_w = ps.declare(b + "multihead_attn.in_proj_weight", {3 * C, C}, wt);
    p.in_proj_b = ps.declare(b + "multihead_attn.in_proj_bias", {3 * C}, DType::F32);
    p.out_proj_w = ps.declare(b + "multihead_attn.out_proj.weight", {C, C}, wt);
    p.out_proj_b = ps.declare(b + "multihead_attn.out_proj.bias", {C}, DType::F32);
    p.norm3_w = ps.declare(b + "norm3.weight", {C}, DType::F32);
    p.norm3_b = ps.declare(b + "norm3.bias", {C}, DType::F32);
    p.linear1_w = ps.declare(b + "linear1.weight", {F_, C}, wt);
    p.linear1_b = ps.declare(b + "linear1.bias", {F_}, DType::F32);
    p.linear2_w = ps.declare(b + "linear2.weight", {C, F_}, wt);
    p.linear2_b = ps.declare(b + "linear2.bias", {C}, DType::F32);
    i_layers_.push_back(p);
  }
  i_mlp_.clear();
  int64_t in = C;
  for (size_t k = 0; k < cfg.mlp.size(); ++k) {
    const std::string b = kP + "mlp_head." + std::to_string(3 * k) + ".";
    // The MLP head stays fp32 at every precision (see forward).
    LinParams p;
    p.w = ps.declare(b + "weight", {cfg.mlp[k], in}, DType::F32);
    p.b = ps.declare(b + "bias", {cfg.mlp[k]}, DType::F32);
    i_mlp_.push_back(p);
    in = cfg.mlp[k];
  }
}

void AlignHead::bind(const ParamStore& ps) {
  const float eps = static_cast<float>(cfg_.eps);
  dec_norm_ = LN{ps.f32(i_dn_w_), ps.f32(i_dn_b_), C_, eps};
  auto lin = [&](int w, int b) {
    const Param& p = ps.param(w);
    return Lin{p.data, p.dtype, ps.f32(b), p.shape[0], p.shape[1]};
  };
  layers_.clear();
  for (const LayerParams& p : i_layers_) {
    Layer k;
    k.norm2 = LN{ps.f32(p.norm2_w), ps.f32(p.norm2_b), C_, eps};
    k.in_proj = lin(p.in_proj_w, p.in_proj_b);
    k.in_q = k.in_proj.rows(0, C_);
    k.in_kv = k.in_proj.rows(C_, 2 * C_);
    k.out_proj = lin(p.out_proj_w, p.out_proj_b);
    k.norm3 = LN{ps.f32(p.norm3_w), ps.f32(p.norm3_b), C_, eps};
    k.linear1 = lin(p.linear1_w, p.linear1_b);
    k.linear2 = lin(p.linear2_w, p.linear2_b);
    layers_.push_back(k);
  }
  mlp_.clear();
  for (const LinParams& p : i_mlp_) mlp_.push_back(lin(p.w, p.b));
}

void AlignHead::prepack(const Context& ctx, WeightPacks& packs) {
  // At inference in_proj is used only through its two slices (query; key | value): they get the
  // panels (the backward keeps slicing in_proj itself, without panels).
  for (Layer& k : layers_)
    for (Lin* l : {&k.in_q, &k.in_kv, &k.out_proj, &k.linear1, &k.linear2}) packs.attach(ctx, *l);
  for (Lin& l : mlp_) packs.attach(ctx, l);
}

HeadActs AlignHead::plan(Bump& m, int64_t Nm, int64_t Nq, int64_t R, bool keep, bool maps) const {
  HeadActs a;
  a.Nm = Nm;
  a.Nq = Nq;
  a.R = R;
  a.keep = keep;
  a.maps = maps;
  const int64_t S = 1 + R, C = C_, NP = Nm * Nq;
  a.mem = m.take(Nm * S * C);
  a.q0 = m.take(Nq * C);
  if (keep) {
    a.mem_mean = m.take(Nm * S);
    a.mem_rstd = m.take(Nm * S);
    a.q0_mean = m.take(Nq);
    a.q0_rstd = m.take(Nq);
  }
  float* t = m.take(NP * C);  // the pair state, updated in place without keep
  a.layers.resize(layers_.size());
  for (size_t l = 0; l < layers_.size(); ++l) {
    HeadLayerActs& s = a.layers[l];
    if (!keep && l > 1) {  // layer 0 differs (shared queries); layers >= 1 share buffers
      s = a.layers[1];
      continue;
    }
    const int64_t qrows = l == 0 ? Nq : NP;
    s.kv = m.take(Nm * S * 2 * C);
    s.t_in = l == 0 ? a.q0 : (keep ? a.layers[l - 1].t_out : t);
    s.n2 = m.take(qrows * C);
    s.qh = m.take(qrows * C);
    s.att = m.take(NP * C);
    if (maps) s.probs = m.take(Nm * NH_ * Nq * S);
    s.n3 = m.take(NP * C);
    s.f = m.take(NP * F_);
    if (keep) {
      s.n2_mean = m.take(qrows);
      s.n2_rstd = m.take(qrows);
      s.att_lse = m.take(Nm * NH_ * Nq);
      s.t_mid = m.take(NP * C);
      s.n3_mean = m.take(NP);
      s.n3_rstd = m.take(NP);
      s.f_pre = m.take(NP * F_);
      s.t_out = m.take(NP * C);
    } else {
      s.t_mid = t;
      s.t_out = t;
    }
    if (!keep && l == 1) {  // share the big buffers of layer 0 too
      s.kv = a.layers[0].kv;
      s.att = a.layers[0].att;
      s.probs = a.layers[0].probs;
      s.n3 = a.layers[0].n3;
      s.f = a.layers[0].f;
    }
  }
  a.fin = m.take(NP * C);
  if (keep) {
    a.tmp = m.take(NP * C);
    a.fin_mean = m.take(NP);
    a.fin_rstd = m.take(NP);
  }
  for (size_t k = 0; k < mlp_.size(); ++k) {
    const int64_t out = mlp_[k].out;
    const bool last = k + 1 == mlp_.size();
    a.mlp_pre.push_back(keep || last ? m.take(NP * out) : nullptr);
    a.mlp.push_back(last ? nullptr : m.take(NP * out));
  }
  return a;
}

AttnArgs AlignHead::attn_args(const HeadActs& a, const HeadLayerActs& s, bool shared_q) const {
  const int64_t C = C_, S = 1 + a.R;
  AttnArgs at;
  at.B = a.Nm;
  at.NH = NH_;
  at.Tq = a.Nq;
  at.Tk = S;
  at.HS = HS_;
  at.q = s.qh;
  at.ldq = C;
  at.q_bs = shared_q ? 0 : a.Nq * C;
  at.k = s.kv;
  at.v = s.kv + C;
  at.ldk = at.ldv = 2 * C;
  at.k_bs = at.v_bs = S * 2 * C;
  at.out = s.att;
  at.ldo = C;
  at.o_bs = a.Nq * C;
  at.scale = 1.0f / std::sqrt(static_cast<float>(HS_));  // no mask: zero-padded word entries
                                                         // take part (spec 5)
  at.lse = s.att_lse;
  at.probs = s.probs;
  return at;
}

void AlignHead::forward(const Runner& r, const HeadActs& a, const float* first, const float* rest, const float* queries,
                        float* logits, int64_t ld_logits, float* attn_avg, const Dropout* drop, uint64_t module) const {
  const int64_t Nm = a.Nm, Nq = a.Nq, R = a.R, S = 1 + R, C = C_, NP = Nm * Nq;
  if (NP == 0) return;
  const bool dr = drop && drop->on;
  CZ_REQUIRE(!dr || a.tmp, CZ_ERR_INTERNAL, "head: dropout needs kept activations");
  // m = LN_dec([first_i ; rest_i]) built straight into (Nm, S, C); t0 = LN_dec(queries).
  // Gather [first_i ; rest_i] for every item in two calls, then one LayerNorm over Nm*S rows
  // (in place: each row is read before it is written).
  r.ops().copy2d(r.ex(), a.mem, S * C, first, C, nullptr, 0, C, Nm);
  if (R) r.ops().copy2d(r.ex(), a.mem + C, S * C, rest, R * C, nullptr, 0, R * C, Nm);
  r.layernorm(dec_norm_, a.mem, a.mem, Nm * S, a.mem_mean, a.mem_rstd);
  r.layernorm(dec_norm_, queries, a.q0, Nq, a.q0_mean, a.q0_rstd);
  const float map_scale = 1.0f / static_cast<float>(NH_ * static_cast<int64_t>(layers_.size()));
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& k = layers_[l];
    const HeadLayerActs& s = a.layers[l];
    const bool shared_q = l == 0;
    const int64_t qrows = shared_q ? Nq : NP;
    // K | V of every memory item, once: (Nm*S, 2C).
    r.linear(k.in_kv, a.mem, Nm * S, s.kv);
    // Q = W_q norm2(t).
    r.layernorm(k.norm2, s.t_in, s.n2, qrows, s.n2_mean, s.n2_rstd);
    r.linear(k.in_q, s.n2, qrows, s.qh);
    r.attention(attn_args(a, s, shared_q));
    if (s.probs && attn_avg) accumulate_attention(r.ctx, s.probs, attn_avg, Nm, NH_, Nq, S, map_scale, l == 0);
    // t_mid = t + out_proj(att). In layer 0, t is the shared LN_dec(query): broadcast it.
    const uint64_t li = static_cast<uint64_t>(l);
    if (dr) {
      r.linear(k.out_proj, s.att, NP, a.tmp);
      drop->forward(r, a.tmp, NP * C, Dropout::site(module, li, 0));
      if (shared_q) {
        r.ops().copy2d(r.ex(), s.t_mid, Nq * C, a.tmp, Nq * C, a.q0, 0, Nq * C, Nm);
      } else {
        r.add(s.t_mid, s.t_in, a.tmp, NP * C);
      }
    } else if (shared_q) {
      r.ops().copy2d(r.ex(), s.t_mid, Nq * C, a.q0, 0, nullptr, 0, Nq * C, Nm);
    } else if (s.t_mid != s.t_in) {
      r.copy(s.t_mid, s.t_in, NP * C);
    }
    if (!dr) r.linear(k.out_proj, s.att, NP, s.t_mid, Act::None, 1.0f);
    // t_out = t_mid + linear2(relu(linear1(norm3(t_mid)))).
    r.layernorm(k.norm3, s.t_mid, s.n3, NP, s.n3_mean, s.n3_rstd);
    r.linear(k.linear1, s.n3, NP, s.f, Act::Relu, 0.0f, s.f_pre);
    if (dr) {
      drop->forward(r, s.f, NP * F_, Dropout::site(module, li, 1));
      r.linear(k.linear2, s.f, NP, a.tmp);
      drop->forward(r, a.tmp, NP * C, Dropout::site(module, li, 2));
      r.add(s.t_out, s.t_mid, a.tmp, NP * C);
    } else {
      if (s.t_out != s.t_mid) r.copy(s.t_out, s.t_mid, NP * C);
      r.linear(k.linear2, s.f, NP, s.t_out, Act::None, 1.0f);
    }
  }
  // logit = mlp_head(LN_dec(t)).
  r.layernorm(dec_norm_, a.layers.back().t_out, a.fin, NP, a.fin_mean, a.fin_rstd);
  if (dr) drop->forward(r, a.fin, NP * C, Dropout::site(module, 1023, 0));  // dropout_feas
  // The MLP head (Linear/ReLU layers narrowing to the one logit) runs in fp32 whatever the
  // model's precision: it amplifies rounding (full-size random model at bf16, CPU: i2t max rel
  // err 1.79e-2 with a bf16 MLP, 1.02e-2 with an fp32 one) and is a few percent of the head's work.
  const Runner r32{r.ctx, DType::F32};
  const float* x = a.fin;
  for (size_t k = 0; k < mlp_.size(); ++k) {
    const bool last = k + 1 == mlp_.size();
    if (last) {
      r32.linear(mlp_[k], x, NP, a.mlp_pre[k]);
    } else {
      r32.linear(mlp_[k], x, NP, a.mlp[k], Act::Relu, 0.0f, a.mlp_pre[k]);
      if (dr) drop->forward(r, a.mlp[k], NP * mlp_[k].out, Dropout::site(module, 1022, k));
      x = a.mlp[k];
    }
  }
  // The last layer has one output: logits (NP, 1) -> (Nm, Nq) with row stride ld_logits.
  const int64_t ld = ld_logits ? ld_logits : Nq;
  if (ld == Nq) {
    r.copy(logits, a.mlp_pre.back(), NP);
  } else {
    r.ops().copy2d(r.ex(), logits, ld, a.mlp_pre.back(), Nq, nullptr, 0, Nq, Nm);
  }
}

HeadGrads AlignHead::plan_backward(Bump& m, int64_t Nm, int64_t Nq, int64_t R) const {
  const int64_t S = 1 + R, C = C_, NP = Nm * Nq;
  int64_t wide = C;
  for (const Lin& l : mlp_) wide = std::max(wide, l.out);
  HeadGrads g;
  g.dt = m.take(NP * C);
  g.dt2 = m.take(NP * C);
  g.dn = m.take(NP * C);
  g.datt = m.take(NP * C);
  g.dqh = m.take(NP * C);
  g.df = m.take(NP * F_);
  g.dkv = m.take(Nm * S * 2 * C);
  g.dmem = m.take(Nm * S * C);
  g.dmem_t = m.take(Nm * S * C);
  g.dq0 = m.take(Nq * C);
  g.dq0_t = m.take(Nq * C);
  g.dmlp_a = m.take(NP * wide);
  g.dmlp_b = m.take(NP * wide);
  return g;
}

void AlignHead::backward(const Runner& r, const HeadActs& a, const HeadGrads& g, const ParamStore& ps,
                         const float* first, const float* rest, const float* queries, const float* dlogits,
                         int64_t ld_dlogits, float* dfirst, float* drest, float* dqueries, const Dropout* drop,
                         uint64_t module) const {
  const int64_t Nm = a.Nm, Nq = a.Nq, R = a.R, S = 1 + R, C = C_, NP = Nm * Nq, F = F_;
  if (NP == 0) return;
  CZ_REQUIRE(a.keep, CZ_ERR_INTERNAL, "head backward needs kept activations");
  const Dropout off;
  const Dropout& d = drop ? *drop : off;
  auto G = [&](int i) { return ps.grad(i); };
  // dlogits (Nm, Nq) -> the last mlp layer's output gradient (NP, 1).
  float* dy = g.dmlp_a;
  const int64_t ld = ld_dlogits ? ld_dlogits : Nq;
  if (ld == Nq)
    r.copy(dy, dlogits, NP);
  else
    for (int64_t i = 0; i < Nm; ++i) r.copy(dy + i * Nq, dlogits + i * ld, Nq);
  // mlp_head, last layer first: x_k = k ? drop(relu(pre_{k-1})) : fin.
  float* spare = g.dmlp_b;
  for (size_t k = mlp_.size(); k-- > 0;) {
    const bool last = k + 1 == mlp_.size();
    const float* x = k ? a.mlp[k - 1] : a.fin;
    float* dx = k ? spare : g.dt;
    r.linear_backward(mlp_[k], x, NP, dy, dx, G(i_mlp_[k].w), G(i_mlp_[k].b), last ? Act::None : Act::Relu,
                      a.mlp_pre[k]);
    if (k) d.backward(r, dx, dx, NP * mlp_[k - 1].out, Dropout::site(module, 1022, k - 1));
    spare = dy;
    dy = dx;
  }
  // fin = drop(LN_dec(t_out)).
  d.backward(r, g.dt, g.dt, NP * C, Dropout::site(module, 1023, 0));
  float* dT = g.dn;  // d t (the pair state), carried down the layers
  r.layernorm_backward(dec_norm_, g.dt, a.layers.back().t_out, a.fin_mean, a.fin_rstd, NP, dT, G(i_dn_w_), G(i_dn_b_));
  r.zero(g.dmem, Nm * S * C);
  for (size_t l = layers_.size(); l-- > 0;) {
    const Layer& k = layers_[l];
    const HeadLayerActs& s = a.layers[l];
    const LayerParams& p = i_layers_[l];
    const bool shared_q = l == 0;
    const int64_t qrows = shared_q ? Nq : NP;
    const uint64_t li = static_cast<uint64_t>(l);
    // t_out = t_mid + drop(linear2(drop(relu(linear1(norm3(t_mid)))))).
    d.backward(r, g.dt, dT, NP * C, Dropout::site(module, li, 2));
    r.linear_backward(k.linear2, s.f, NP, g.dt, g.df, G(p.linear2_w), G(p.linear2_b));
    d.backward(r, g.df, g.df, NP * F, Dropout::site(module, li, 1));
    r.linear_backward(k.linear1, s.n3, NP, g.df, g.dt, G(p.linear1_w), G(p.linear1_b), Act::Relu, s.f_pre);
    r.layernorm_backward(k.norm3, g.dt, s.t_mid, s.n3_mean, s.n3_rstd, NP, g.dt2, G(p.norm3_w), G(p.norm3_b));
    r.accumulate(dT, g.dt2, NP * C);  // d t_mid
    // t_mid = t_in + drop(out_proj(attn(W_q norm2(t_in), W_k m, W_v m))).
    d.backward(r, g.dt, dT, NP * C, Dropout::site(module, li, 0));
    r.linear_backward(k.out_proj, s.att, NP, g.dt, g.datt, G(p.out_proj_w), G(p.out_proj_b));
    r.zero(g.dqh, qrows * C);
    r.zero(g.dkv, Nm * S * 2 * C);
    AttnGrads ag;
    ag.dout = g.datt;
    ag.dq = g.dqh;
    ag.dk = g.dkv;
    ag.dv = g.dkv + C;
    attention_backward_gemm(r, attn_args(a, s, shared_q), ag);
    float* gw_in = G(p.in_proj_w);
    float* gb_in = G(p.in_proj_b);
    r.linear_backward(k.in_proj.rows(0, C), s.n2, qrows, g.dqh, g.dt, gw_in, gb_in);
    r.layernorm_backward(k.norm2, g.dt, s.t_in, s.n2_mean, s.n2_rstd, qrows, g.dt2, G(p.norm2_w), G(p.norm2_b));
    if (!shared_q) {
      r.accumulate(dT, g.dt2, NP * C);  // d t_in = d t_out of the previous layer
    } else {                            // t_in = q0 broadcast over the Nm memory items
      r.copy(g.dq0, g.dt2, Nq * C);
      for (int64_t i = 0; i < Nm; ++i) r.accumulate(g.dq0, dT + i * Nq * C, Nq * C);
    }
    r.linear_backward(k.in_proj.rows(C, 2 * C), a.mem, Nm * S, g.dkv, g.dmem_t, gw_in + C * C, gb_in + C);
    r.accumulate(g.dmem, g.dmem_t, Nm * S * C);
  }
  // q0 = LN_dec(queries); m = LN_dec([first; rest]).
  r.layernorm_backward(dec_norm_, g.dq0, queries, a.q0_mean, a.q0_rstd, Nq, g.dq0_t, G(i_dn_w_), G(i_dn_b_));
  if (dqueries) r.accumulate(dqueries, g.dq0_t, Nq * C);
  for (int64_t i = 0; i < Nm; ++i) {
    const float* dm = g.dmem + i * S * C;
    float* dmt = g.dmem_t + i * S * C;
    r.layernorm_backward(dec_norm_, dm, first + i * C, a.mem_mean + i * S, a.mem_rstd + i * S, 1, dmt, G(i_dn_w_),
                         G(i_dn_b_));
    r.layernorm_backward(dec_norm_, dm + C, rest + i * R * C, a.mem_mean + i * S + 1, a.mem_rstd + i * S + 1, R,
                         dmt + C, G(i_dn_w_), G(i_dn_b_));
    if (dfirst) r.accumulate(dfirst + i * C, dmt, C);
    if (drest) r.accumulate(drest + i * R * C, dmt + C, R * C);
  }
}

}  // namespace carzero::model
