// vit.cpp: see vit.h. Checkpoint names under "img_encoder.model." (spec 2).
#include "model/vit.h"

#include <cmath>
#include <cstdlib>
#include <string>

#include "core/settings.h"

namespace carzero::model {

namespace {
const std::string kP = "img_encoder.model.";
}

void VisionTransformer::declare(ParamStore& ps, const VisionConfig& cfg, DType wt, bool training) {
  cfg_ = cfg;
  training_ = training;
  i_patch_w1_ = i_cls_pos_ = i_cls_ = -1;
  wt_ = wt;
  C_ = cfg.width;
  P_ = cfg.patches();
  T_ = 1 + P_;
  NH_ = cfg.heads;
  HS_ = C_ / NH_;
  F_ = cfg.mlp_dim;
  const int64_t C = C_, ps_ = cfg.patch_size, Cin = cfg.in_chans;
  i_patch_w_ = ps.declare(kP + "patch_embed.proj.weight", {C, Cin, ps_, ps_}, DType::F32);
  i_patch_b_ = ps.declare(kP + "patch_embed.proj.bias", {C}, DType::F32);
  i_pos_ = ps.declare(kP + "pos_embed", {1, T_, C}, DType::F32);
  if (training) i_cls_ = ps.declare(kP + "cls_token", {1, 1, C}, DType::F32);
  // Derived (spec 1.3: the three input channels are identical, so a grey image can use the
  // kernel summed over channels: same result, a third of the work).
  if (!training) {
    std::vector<float> w = ps.read_f32(kP + "patch_embed.proj.weight", {C, Cin, ps_, ps_});
    std::vector<float> w1(static_cast<size_t>(C * ps_ * ps_), 0.0f);
    for (int64_t o = 0; o < C; ++o)
      for (int64_t ci = 0; ci < Cin; ++ci)
        for (int64_t k = 0; k < ps_ * ps_; ++k) w1[o * ps_ * ps_ + k] += w[(o * Cin + ci) * ps_ * ps_ + k];
    i_patch_w1_ =
        ps.declare_derived(kP + "patch_embed.proj.weight#sum_channels", {C, 1, ps_, ps_}, DType::F32, std::move(w1));
    std::vector<float> cls = ps.read_f32(kP + "cls_token", {1, 1, C});
    std::vector<float> pos = ps.read_f32(kP + "pos_embed", {1, T_, C});
    for (int64_t c = 0; c < C; ++c) cls[c] += pos[c];
    i_cls_pos_ = ps.declare_derived(kP + "cls_token#plus_pos0", {C}, DType::F32, std::move(cls));
  }
  i_blocks_.clear();
  for (int64_t l = 0; l < cfg.depth; ++l) {
    const std::string b = kP + "blocks." + std::to_string(l) + ".";
    BlockParams p;  // declared in checkpoint order
    p.norm1_w = ps.declare(b + "norm1.weight", {C}, DType::F32);
    p.norm1_b = ps.declare(b + "norm1.bias", {C}, DType::F32);
    p.qkv_w = ps.declare(b + "attn.qkv.weight", {3 * C, C}, wt);
    p.qkv_b = ps.declare(b + "attn.qkv.bias", {3 * C}, DType::F32);
    p.proj_w = ps.declare(b + "attn.proj.weight", {C, C}, wt);
    p.proj_b = ps.declare(b + "attn.proj.bias", {C}, DType::F32);
    p.norm2_w = ps.declare(b + "norm2.weight", {C}, DType::F32);
    p.norm2_b = ps.declare(b + "norm2.bias", {C}, DType::F32);
    p.fc1_w = ps.declare(b + "mlp.fc1.weight", {F_, C}, wt);
    p.fc1_b = ps.declare(b + "mlp.fc1.bias", {F_}, DType::F32);
    p.fc2_w = ps.declare(b + "mlp.fc2.weight", {C, F_}, wt);
    p.fc2_b = ps.declare(b + "mlp.fc2.bias", {C}, DType::F32);
    i_blocks_.push_back(p);
  }
  i_norm_w_ = ps.declare(kP + "norm.weight", {C}, DType::F32);
  i_norm_b_ = ps.declare(kP + "norm.bias", {C}, DType::F32);
}

void VisionTransformer::bind(const ParamStore& ps) {
  const float eps = static_cast<float>(cfg_.eps);
  patch_w_ = ps.f32(i_patch_w_);
  patch_w1_ = i_patch_w1_ >= 0 ? ps.f32(i_patch_w1_) : nullptr;
  patch_b_ = ps.f32(i_patch_b_);
  pos_ = ps.f32(i_pos_);
  cls_pos_ = i_cls_pos_ >= 0 ? ps.f32(i_cls_pos_) : nullptr;
  cls_ = i_cls_ >= 0 ? ps.f32(i_cls_) : nullptr;
  norm_ = LN{ps.f32(i_norm_w_), ps.f32(i_norm_b_), C_, eps};
  auto lin = [&](int w, int b, int64_t out, int64_t in) {
    return Lin{ps.ptr(w), ps.param(w).dtype, ps.f32(b), out, in};
  };
  blocks_.clear();
  for (const BlockParams& p : i_blocks_) {
    Block k;
    k.norm1 = LN{ps.f32(p.norm1_w), ps.f32(p.norm1_b), C_, eps};
    k.qkv = lin(p.qkv_w, p.qkv_b, 3 * C_, C_);
    k.proj = lin(p.proj_w, p.proj_b, C_, C_);
    k.norm2 = LN{ps.f32(p.norm2_w), ps.f32(p.norm2_b), C_, eps};
    k.fc1 = lin(p.fc1_w, p.fc1_b, F_, C_);
    k.fc2 = lin(p.fc2_w, p.fc2_b, C_, F_);
    blocks_.push_back(k);
  }
}

void VisionTransformer::prepack(const Context& ctx, WeightPacks& packs) {
  for (Block& k : blocks_)
    for (Lin* l : {&k.qkv, &k.proj, &k.fc1, &k.fc2}) packs.attach(ctx, *l);
}

VitActs VisionTransformer::plan(Bump& m, int64_t B, bool keep, int64_t Cin, bool recompute) const {
  VitActs a;
  a.B = B;
  a.keep = keep;
  a.recompute = keep && recompute;
  const int64_t BT = B * T_;
  if (!patch_w1_ && Cin == 1) a.pix3 = m.take(B * cfg_.in_chans * cfg_.image_size * cfg_.image_size);
  a.patches = m.take(B * P_ * C_);
  a.blocks.resize(blocks_.size());
  float* x = m.take(BT * C_);
  for (size_t l = 0; l < blocks_.size(); ++l) {
    VitBlockActs& s = a.blocks[l];
    if (!keep && l > 0) {
      s = a.blocks[0];
      continue;
    }
    s.x_in = l == 0 ? x : a.blocks[l - 1].x_out;
    if (a.recompute && l > 0) {  // the shared set of block 0, an own output
      const float* xin = s.x_in;
      s = a.blocks[0];
      s.x_in = const_cast<float*>(xin);
      s.x_out = m.take(BT * C_);
      continue;
    }
    s.ln1 = m.take(BT * C_);
    s.qkv = m.take(BT * 3 * C_);
    s.att = m.take(BT * C_);
    s.ln2 = m.take(BT * C_);
    s.h = m.take(BT * F_);
    if (keep) {
      s.ln1_mean = m.take(BT);
      s.ln1_rstd = m.take(BT);
      s.att_lse = m.take(B * NH_ * T_);
      s.x_mid = m.take(BT * C_);
      s.ln2_mean = m.take(BT);
      s.ln2_rstd = m.take(BT);
      s.fc1_pre = m.take(BT * F_);
      s.x_out = m.take(BT * C_);
    } else {
      s.x_mid = s.x_in;  // in place
      s.x_out = s.x_in;
    }
  }
  if (keep) {
    a.norm_mean = m.take(BT);
    a.norm_rstd = m.take(BT);
  }
  return a;
}

AttnArgs VisionTransformer::attn_args(const VitBlockActs& s, int64_t B, float scale) const {
  const int64_t C = C_, T = T_;
  AttnArgs at;
  at.B = B;
  at.NH = NH_;
  at.Tq = T;
  at.Tk = T;
  at.HS = HS_;
  at.q = s.qkv;
  at.k = s.qkv + C;
  at.v = s.qkv + 2 * C;
  at.ldq = at.ldk = at.ldv = 3 * C;  // read q, k, v straight from the packed buffer
  at.q_bs = at.k_bs = at.v_bs = T * 3 * C;
  at.out = s.att;
  at.ldo = C;
  at.o_bs = T * C;
  at.scale = scale;
  at.lse = s.att_lse;
  return at;
}

void VisionTransformer::forward_block(const Runner& r, size_t l, const VitBlockActs& s, int64_t B,
                                      bool training) const {
  const Block& k = blocks_[l];
  const int64_t C = C_, BT = B * T_;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS_));
  // x_mid = x_in + proj(attn(LN1(x_in)))
  r.layernorm(k.norm1, s.x_in, s.ln1, BT, s.ln1_mean, s.ln1_rstd);
  r.linear(k.qkv, s.ln1, BT, s.qkv);
  encoder_attention(r, attn_args(s, B, scale), training);
  if (s.x_mid != s.x_in) r.copy(s.x_mid, s.x_in, BT * C);
  r.linear(k.proj, s.att, BT, s.x_mid, Act::None, 1.0f);
  // x_out = x_mid + fc2(GELU(fc1(LN2(x_mid))))
  r.layernorm(k.norm2, s.x_mid, s.ln2, BT, s.ln2_mean, s.ln2_rstd);
  r.linear(k.fc1, s.ln2, BT, s.h, Act::Gelu, 0.0f, s.fc1_pre);
  if (s.x_out != s.x_mid) r.copy(s.x_out, s.x_mid, BT * C);
  r.linear(k.fc2, s.h, BT, s.x_out, Act::None, 1.0f);
}

void VisionTransformer::forward_block_bf16(const Runner& r, size_t l, const VitBlockActs& s, int64_t B) const {
  const Block& k = blocks_[l];
  const int64_t C = C_, T = T_, BT = B * T;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS_));
  // The shared (fp32-sized) buffers hold bf16 activations; x_in is the fp32 residual stream.
  uint16_t* ln1 = reinterpret_cast<uint16_t*>(s.ln1);
  uint16_t* qkv = reinterpret_cast<uint16_t*>(s.qkv);
  uint16_t* att = reinterpret_cast<uint16_t*>(s.att);
  uint16_t* ln2 = reinterpret_cast<uint16_t*>(s.ln2);
  uint16_t* h = reinterpret_cast<uint16_t*>(s.h);
  auto gemm16 = [&](const Lin& lin, const uint16_t* x, void* y, DType yt, Act act, float beta) {
    GemmArgs g = r.linear_args(lin, nullptr, BT, nullptr, act, beta);
    g.a = x, g.a_type = DType::BF16;
    g.c = y, g.c_type = yt;
    r.gemm(lin, g);
  };
  // x += proj(attn(LN1(x)))  (x_mid == x_in == x_out without keep)
  r.ops().add_layernorm_forward(r.ex(), nullptr, ln1, DType::BF16, nullptr, nullptr, s.x_in, nullptr, k.norm1.w,
                                k.norm1.b, BT, C, k.norm1.eps);
  gemm16(k.qkv, ln1, qkv, DType::BF16, Act::None, 0.0f);
  AttnArgs at;
  at.B = B, at.NH = NH_, at.Tq = T, at.Tk = T, at.HS = HS_;
  at.dtype = DType::BF16;
  at.q = qkv, at.k = qkv + C, at.v = qkv + 2 * C;
  at.ldq = at.ldk = at.ldv = 3 * C;
  at.q_bs = at.k_bs = at.v_bs = T * 3 * C;
  at.out = att, at.ldo = C, at.o_bs = T * C;
  at.scale = scale;
  r.ops().attention_forward(r.ex(), at);
  gemm16(k.proj, att, s.x_in, DType::F32, Act::None, 1.0f);
  // x += fc2(GELU(fc1(LN2(x))))
  r.ops().add_layernorm_forward(r.ex(), nullptr, ln2, DType::BF16, nullptr, nullptr, s.x_in, nullptr, k.norm2.w,
                                k.norm2.b, BT, C, k.norm2.eps);
  gemm16(k.fc1, ln2, h, DType::BF16, Act::Gelu, 0.0f);
  gemm16(k.fc2, h, s.x_in, DType::F32, Act::None, 1.0f);
}

void VisionTransformer::forward(const Runner& r, const VitActs& a, const float* pixels, int64_t Cin, float* global,
                                float* local) const {
  const int64_t B = a.B, C = C_, P = P_, T = T_, BT = B * T;
  CZ_ARG(Cin == cfg_.in_chans || Cin == 1, "pixels: %lld channels (expected %lld or 1)", static_cast<long long>(Cin),
         static_cast<long long>(cfg_.in_chans));
  // Patch embedding (B, P, C), then x[b] = [cls + pos[0]; patches[b] + pos[1:]].
  const int64_t HW = cfg_.image_size * cfg_.image_size;
  if (Cin == 1 && !patch_w1_) {  // training layout: the grey plane repeated over 3 channels
    CZ_REQUIRE(a.pix3 != nullptr, CZ_ERR_INTERNAL, "vit: grey input planned for 3 channels");
    const int64_t K = cfg_.in_chans;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < K; ++c) r.copy(a.pix3 + (b * K + c) * HW, pixels + b * HW, HW);
    pixels = a.pix3;
    Cin = K;
  }
  r.ops().patch_embed_forward(r.ex(), a.patches, pixels, Cin == 1 ? patch_w1_ : patch_w_, patch_b_, B, Cin,
                              cfg_.image_size, cfg_.image_size, C, cfg_.patch_size);
  float* x0 = a.blocks[0].x_in;
  // token 0 of every item: cls + pos[0] (precomputed for inference); tokens 1..P: patches + pos
  if (cls_pos_)
    r.ops().copy2d(r.ex(), x0, T * C, cls_pos_, 0, nullptr, 0, C, B);
  else
    r.ops().copy2d(r.ex(), x0, T * C, cls_, 0, pos_, 0, C, B);
  r.ops().copy2d(r.ex(), x0 + C, T * C, a.patches, P * C, pos_ + C, 0, P * C, B);
  // GPU inference at bf16: the activations between ops stay bf16 (LayerNorm outputs, qkv, the
  // attention output, the MLP hidden layer: each is a bf16 GEMM operand anyway), attention runs on
  // tensor cores, and only the residual stream x stays fp32. The CPU keeps fp32 activations
  // (its bf16 GEMM rounds operands while packing; bf16 storage would only add conversions).
  // CARZERO_VIT_BF16_ACTS=1 forces this path on the CPU too (to test it without a GPU).
  const bool force_bf16_acts = settings().vit_bf16_acts;
  const bool bf16_acts = r.compute == DType::BF16 && !a.keep && (r.ctx.device() != DeviceType::CPU || force_bf16_acts);
  for (size_t l = 0; l < blocks_.size(); ++l) {
    if (bf16_acts)
      forward_block_bf16(r, l, a.blocks[l], B);
    else
      forward_block(r, l, a.blocks[l], B, a.keep);
  }
  // Final LayerNorm straight into the outputs: token 0 -> global, tokens 1..P -> local.
  const float* xf = a.blocks.back().x_out;
  if (!a.keep) {  // one LayerNorm over every token into block 0's (free) ln1, then two gathers
    float* y = a.blocks[0].ln1;
    r.layernorm(norm_, xf, y, BT);
    r.ops().copy2d(r.ex(), global, C, y, T * C, nullptr, 0, C, B);
    r.ops().copy2d(r.ex(), local, P * C, y + C, T * C, nullptr, 0, P * C, B);
    return;
  }
  for (int64_t b = 0; b < B; ++b) {
    float* mean = a.norm_mean ? a.norm_mean + b * T : nullptr;
    float* rstd = a.norm_rstd ? a.norm_rstd + b * T : nullptr;
    r.layernorm(norm_, xf + b * T * C, global + b * C, 1, mean, rstd);
    r.layernorm(norm_, xf + b * T * C + C, local + b * P * C, P, mean ? mean + 1 : nullptr, rstd ? rstd + 1 : nullptr);
  }
}

VitGrads VisionTransformer::plan_backward(Bump& m, int64_t B) const {
  const int64_t BT = B * T_;
  VitGrads g;
  g.dx = m.take(BT * C_);
  g.dt = m.take(BT * C_);
  g.dt2 = m.take(BT * C_);
  g.dqkv = m.take(BT * 3 * C_);
  g.dh = m.take(BT * F_);
  return g;
}

void VisionTransformer::backward(const Runner& r, const VitActs& a, const VitGrads& g, const ParamStore& ps,
                                 const float* pixels, int64_t Cin, const float* dglobal, const float* dlocal) const {
  CZ_REQUIRE(a.keep && training_, CZ_ERR_INTERNAL, "vit backward needs kept activations");
  const int64_t B = a.B, C = C_, P = P_, T = T_, BT = B * T;
  auto G = [&](int i) { return ps.grad(i); };
  // Final LayerNorm: token 0 <- dglobal, tokens 1..P <- dlocal.
  const float* xf = a.blocks.back().x_out;
  for (int64_t b = 0; b < B; ++b) {
    r.layernorm_backward(norm_, dglobal + b * C, xf + b * T * C, a.norm_mean + b * T, a.norm_rstd + b * T, 1,
                         g.dx + b * T * C, G(i_norm_w_), G(i_norm_b_));
    r.layernorm_backward(norm_, dlocal + b * P * C, xf + b * T * C + C, a.norm_mean + b * T + 1,
                         a.norm_rstd + b * T + 1, P, g.dx + b * T * C + C, G(i_norm_w_), G(i_norm_b_));
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS_));
  for (size_t l = blocks_.size(); l-- > 0;) {
    const Block& k = blocks_[l];
    const VitBlockActs& s = a.blocks[l];
    const BlockParams& p = i_blocks_[l];
    // The shared set holds the last block's activations after the forward; earlier blocks are
    // re-run from their kept input (dropout-free, deterministic: the same values).
    if (a.recompute && l + 1 < blocks_.size()) forward_block(r, l, s, B, true);
    // x_out = x_mid + fc2(GELU(fc1(LN2(x_mid)))); g.dx = d x_out.
    r.linear_backward(k.fc2, s.h, BT, g.dx, g.dh, G(p.fc2_w), G(p.fc2_b));
    r.linear_backward(k.fc1, s.ln2, BT, g.dh, g.dt, G(p.fc1_w), G(p.fc1_b), Act::Gelu, s.fc1_pre);
    r.layernorm_backward(k.norm2, g.dt, s.x_mid, s.ln2_mean, s.ln2_rstd, BT, g.dt2, G(p.norm2_w), G(p.norm2_b));
    r.accumulate(g.dx, g.dt2, BT * C);  // d x_mid
    // x_mid = x_in + proj(attn(LN1(x_in))).
    r.linear_backward(k.proj, s.att, BT, g.dx, g.dt, G(p.proj_w), G(p.proj_b));
    r.zero(g.dqkv, BT * 3 * C);
    AttnGrads ag;
    ag.dout = g.dt;
    ag.dq = g.dqkv;
    ag.dk = g.dqkv + C;
    ag.dv = g.dqkv + 2 * C;
    encoder_attention_backward(r, attn_args(s, B, scale), ag);
    r.linear_backward(k.qkv, s.ln1, BT, g.dqkv, g.dt, G(p.qkv_w), G(p.qkv_b));
    r.layernorm_backward(k.norm1, g.dt, s.x_in, s.ln1_mean, s.ln1_rstd, BT, g.dt2, G(p.norm1_w), G(p.norm1_b));
    r.accumulate(g.dx, g.dt2, BT * C);  // d x_in
  }
  // x[b] = [cls + pos[0]; patches[b] + pos[1:]].
  const int64_t HW = cfg_.image_size * cfg_.image_size;
  const float* img = pixels;
  if (Cin == 1) img = a.pix3;
  for (int64_t b = 0; b < B; ++b) {
    r.accumulate(G(i_pos_), g.dx + b * T * C, T * C);
    r.accumulate(G(i_cls_), g.dx + b * T * C, C);
    r.ops().patch_embed_backward(r.ex(), nullptr, G(i_patch_w_), G(i_patch_b_), g.dx + b * T * C + C,
                                 img + b * cfg_.in_chans * HW, patch_w_, 1, cfg_.in_chans, cfg_.image_size,
                                 cfg_.image_size, C, cfg_.patch_size);
  }
}

}  // namespace carzero::model
