// test_attention.cpp: attention forward/backward cases.
// Dimension letters: B batch, NH heads, HS head size, Tq queries, Tk keys, C = NH*HS.
// Layouts exercised: a packed qkv buffer (B, T, 3C) read with ld = 3C (ViT), separate q/k/v with
// padded rows (ld = C + pad; pad columns hold NaN on the device, so reading them is caught),
// a K/V memory shared across the batch (k_bs = v_bs = 0), key padding masks, a batch item whose
// keys are all masked, and the optional lse / probs outputs. Backward gradients all accumulate
// (ops.h), so they are pre-filled with known values and the increment is checked.
#include <cmath>
#include <limits>
#include <string>

#include "harness.h"
#include "reference.h"

namespace cztest {

namespace {

struct AttnP {
  int64_t B, NH, Tq, Tk, HS;
  bool mask = false, kshared = false, packed = false, allmasked = false, probs = false;
  bool bwd = false;
  int64_t pad = 0;
  int samples = 8;
  DType st = DType::F32;  // storage of q/k/v/out (AttnArgs::dtype): F32, BF16 or F16
  bool tf32 = false;      // AttnArgs::tf32 (F32 storage)
};

std::string attn_name(const AttnP& p) {
  return fmt(
      "attention(B=%lld,NH=%lld,Tq=%lld,Tk=%lld,HS=%lld,mask=%d,kshared=%d,packed=%d,"
      "allmasked=%d,probs=%d,pad=%lld,%s%s)",
      (long long)p.B, (long long)p.NH, (long long)p.Tq, (long long)p.Tk, (long long)p.HS, p.mask, p.kshared, p.packed,
      p.allmasked, p.probs, (long long)p.pad, p.bwd ? "fwd+bwd" : "fwd",
      p.st == DType::BF16  ? ",bf16"
      : p.st == DType::F16 ? ",f16"
      : p.tf32             ? ",tf32"
                           : "");
}

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// A strided (rows, ld) buffer per batch item with random values in [0, C) columns and NaN in the
// padding (device copy) / 0 (float64 copy used by the reference and finite differences).
void fill_strided(Rng& rng, int64_t items, int64_t rows, int64_t ld, int64_t C, double sd, std::vector<float>& dev,
                  std::vector<double>& host) {
  dev.assign(items * rows * ld, kNaN);
  host.assign(items * rows * ld, 0.0);
  for (int64_t r = 0; r < items * rows; ++r)
    for (int64_t c = 0; c < C; ++c) {
      const float v = static_cast<float>(sd * rng.normal());
      dev[r * ld + c] = v;
      host[r * ld + c] = v;
    }
}

// 16-bit storage conversions (bf16 or fp16, round to nearest even).
uint16_t to16(DType st, float x) { return st == DType::F16 ? carzero::f32_to_f16(x) : carzero::f32_to_bf16(x); }
float from16(DType st, uint16_t h) { return st == DType::F16 ? carzero::f16_to_f32(h) : carzero::bf16_to_f32(h); }

// Uploads dev as f32, or as bf16/fp16 with host rounded to the stored values (padding stays NaN/0).
void* upload(Ctx& c, const std::string& name, const std::vector<float>& dev, std::vector<double>& host, DType st) {
  if (st == DType::F32) return c.in(name, dev);
  std::vector<uint16_t> h(dev.size());
  for (size_t i = 0; i < dev.size(); ++i) {
    h[i] = to16(st, dev[i]);
    if (!std::isnan(dev[i])) host[i] = from16(st, h[i]);
  }
  return c.in(name, h);
}

void attention_case(Ctx& c, const AttnP& p) {
  const int64_t C = p.NH * p.HS, Bk = p.kshared ? 1 : p.B;
  AttnArgs a;
  a.B = p.B, a.NH = p.NH, a.Tq = p.Tq, a.Tk = p.Tk, a.HS = p.HS;
  a.dtype = p.st;
  a.tf32 = p.tf32;
  const bool lowp = p.st != DType::F32;
  const size_t es = lowp ? 2 : 4;
  a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(p.HS)));
  ref::AttnShape s;
  s.B = p.B, s.NH = p.NH, s.Tq = p.Tq, s.Tk = p.Tk, s.HS = p.HS, s.scale = a.scale;

  // inputs
  std::vector<float> qd, kd, vd;
  std::vector<double> Q, K, V;
  char *q = nullptr, *k = nullptr, *v = nullptr;
  if (p.packed) {  // qkv (B, T, 3C): q = cols [0, C), k = [C, 2C), v = [2C, 3C)
    fill_strided(c.rng, p.B, p.Tq, 3 * C, 3 * C, 1.0, qd, Q);
    char* qkv = static_cast<char*>(upload(c, "qkv", qd, Q, p.st));
    q = qkv, k = qkv + C * es, v = qkv + 2 * C * es;
    a.ldq = a.ldk = a.ldv = 3 * C;
    a.q_bs = a.k_bs = a.v_bs = p.Tq * 3 * C;
    s.ldq = s.ldk = s.ldv = 3 * C;
    s.q_bs = s.k_bs = s.v_bs = p.Tq * 3 * C;
    s.q_off = 0, s.k_off = C, s.v_off = 2 * C;
  } else {
    const int64_t ld = C + p.pad;
    fill_strided(c.rng, p.B, p.Tq, ld, C, 1.0, qd, Q);
    fill_strided(c.rng, Bk, p.Tk, ld, C, 1.0, kd, K);
    fill_strided(c.rng, Bk, p.Tk, ld, C, 1.0, vd, V);
    q = static_cast<char*>(upload(c, "q", qd, Q, p.st));
    k = static_cast<char*>(upload(c, "k", kd, K, p.st));
    v = static_cast<char*>(upload(c, "v", vd, V, p.st));
    a.ldq = a.ldk = a.ldv = ld;
    a.q_bs = p.Tq * ld;
    a.k_bs = a.v_bs = p.kshared ? 0 : p.Tk * ld;
    s.ldq = s.ldk = s.ldv = ld;
    s.q_bs = a.q_bs, s.k_bs = a.k_bs, s.v_bs = a.v_bs;
  }
  a.q = q, a.k = k, a.v = v;
  std::vector<uint8_t> mask;
  if (p.mask || p.allmasked) {
    mask.assign(p.B * p.Tk, 1);
    if (p.mask)
      for (auto& m : mask) m = c.rng.uniform() < 0.3 ? 0 : 1;
    for (int64_t b = 0; b < p.B; ++b) mask[b * p.Tk] = 1;  // at least one key per item...
    if (p.allmasked)
      for (int64_t j = 0; j < p.Tk; ++j) mask[j] = 0;  // ...except item 0 when testing that
    a.key_mask = c.in("key_mask", mask);
    a.mask_bs = s.mask_bs = p.Tk;
  }
  // outputs: out (B, Tq, ldo) NaN at real positions, a sentinel in the padding
  const int64_t ldo = C + p.pad;
  a.ldo = s.ldo = ldo;
  a.o_bs = s.o_bs = p.Tq * ldo;
  std::vector<float> out0(p.B * p.Tq * ldo, 0.25f);
  std::vector<double> rout(out0.size(), 0.25);
  for (int64_t r = 0; r < p.B * p.Tq; ++r)
    for (int64_t cc = 0; cc < C; ++cc) out0[r * ldo + cc] = kNaN;
  auto out_buf = [&](const std::string& name) -> void* {
    if (!lowp) return c.out(name, out0);
    std::vector<uint16_t> o16(out0.size());
    for (size_t i = 0; i < o16.size(); ++i) o16[i] = to16(p.st, out0[i]);
    return c.out(name, o16);
  };
  auto get_out = [&](const void* dev) {
    if (!lowp) return c.get(static_cast<const float*>(dev), static_cast<int64_t>(out0.size()));
    auto o16 = c.get(static_cast<const uint16_t*>(dev), static_cast<int64_t>(out0.size()));
    std::vector<float> o(o16.size());
    for (size_t i = 0; i < o.size(); ++i) o[i] = from16(p.st, o16[i]);
    return o;
  };
  // bf16/fp16 storage: the output is rounded to the storage type and (CUDA tensor cores) the
  // probabilities are rounded to it for the PV product; lse and probs stay fp32. fp16 rounds 8
  // times finer than bf16 (errors ~7e-8 against ~5e-6), and its bound is tight enough that a
  // kernel rounding anything to bf16 instead fails.
  // tf32 on CUDA (cuda, cuda-emu): q, k, v and the probabilities rounded to TF32 (10 mantissa
  // bits, 2^-11 relative); the CPU has no TF32 and must give exact fp32 (the fp32 bounds).
  const bool on_cuda = std::string(c.ops().backend).rfind("cuda", 0) == 0;  // cuda, cuda-emu
  const bool tf = p.tf32 && on_cuda;
  const bool half = p.st == DType::F16;
  const double tol_out = half ? 1e-6 : lowp ? 2e-5 : tf ? 2e-6 : 1e-7, tol_lse = lowp || tf ? 1e-6 : 1e-7;
  a.out = out_buf("out");
  const int64_t nlse = p.B * p.NH * p.Tq;
  a.lse = c.out_nan("lse", nlse);
  if (p.probs) a.probs = c.out_nan("probs", nlse * p.Tk);

  c.ops().attention_forward(c.ex(), a);
  c.check("attention_forward");
  std::vector<double> rlse(nlse), rprobs(p.probs ? nlse * p.Tk : 0);
  const std::vector<double>& Kr = p.packed ? Q : K;
  const std::vector<double>& Vr = p.packed ? Q : V;
  ref::attention(s, Q, Kr, Vr, mask.empty() ? nullptr : &mask, rout, &rlse, p.probs ? &rprobs : nullptr);
  c.expect_close("out", get_out(a.out), rout, tol_out);
  c.expect_close("lse", c.get(a.lse, nlse), rlse, tol_lse);
  if (p.probs) c.expect_close("probs", c.get(a.probs, nlse * p.Tk), rprobs, tol_lse);

  // inference path: no lse/probs requested must give the same output
  {
    AttnArgs a2 = a;
    a2.lse = nullptr, a2.probs = nullptr;
    a2.out = out_buf("out_nolse");
    c.ops().attention_forward(c.ex(), a2);
    c.check("attention_forward(lse=null)");
    c.expect_close("out(lse=null)", get_out(a2.out), rout, tol_out);
  }
  if (!p.bwd) return;

  // backward: dout (NaN in the padding), dq/dk/dv (+=) pre-filled
  std::vector<float> R(out0.size(), kNaN);
  std::vector<double> R64(out0.size(), 0.0);
  for (int64_t r = 0; r < p.B * p.Tq; ++r)
    for (int64_t cc = 0; cc < C; ++cc) {
      const float x = static_cast<float>(c.rng.normal());
      R[r * ldo + cc] = x;
      R64[r * ldo + cc] = x;
    }
  AttnGrads g;
  g.dout = c.in("dout", R);
  auto pre = [&](size_t n) { return c.rng.uniform_vec(static_cast<int64_t>(n), -1, 1); };
  std::vector<float> gq0, gk0, gv0;
  if (p.packed) {
    gq0 = pre(qd.size());
    float* dqkv = c.out("dqkv", gq0);
    g.dq = dqkv, g.dk = dqkv + C, g.dv = dqkv + 2 * C;
  } else {
    gq0 = pre(qd.size()), gk0 = pre(kd.size()), gv0 = pre(vd.size());
    g.dq = c.out("dq", gq0), g.dk = c.out("dk", gk0), g.dv = c.out("dv", gv0);
  }
  c.ops().attention_backward(c.ex(), a, g);
  c.check("attention_backward");
  auto delta = [&](float* dev, const std::vector<float>& before) {
    auto after = c.get(dev, static_cast<int64_t>(before.size()));
    std::vector<double> d(after.size());
    for (size_t i = 0; i < d.size(); ++i) d[i] = static_cast<double>(after[i]) - before[i];
    return d;
  };
  auto loss = [&] {
    std::vector<double> o(out0.size(), 0.0);
    ref::attention(s, Q, p.packed ? Q : K, p.packed ? Q : V, mask.empty() ? nullptr : &mask, o, nullptr, nullptr);
    return dot(o, R64);
  };
  // Gradient tolerance. bf16 on the CPU: the fp32 kernels on the bf16 values (2e-3: the backward
  // reads the bf16-rounded out). bf16 on CUDA: the tensor-core backward (head size 64) also rounds
  // dO, P and dS to bf16 for its products, as FlashAttention-2 does; a float64 emulation of those
  // roundings (tools/parity/attn_bwd_bf16_emulation.py) gives gradient errors of ~2.4e-3 of the
  // gradient's norm (median), more along directions nearly orthogonal to the gradient; measured
  // on an H100: 5.5e-3 and 7.6e-3 on two masked cases (2e-2 here: directional bound 1.4e-2).
  // tf32: the backward is fp32, but it recomputes P from the forward's TF32 lse.
  const bool tc_bwd = lowp && on_cuda;
  const double gtol = tf ? 1e-4 : !lowp ? 1e-6 : half ? 2e-3 : tc_bwd ? 2e-2 : 2e-3;  // fp16: see tol_out
  if (p.packed) {
    c.check_grads(loss, {{"dqkv", &Q, delta(g.dq, gq0), 3 * p.samples}}, gtol);
  } else {
    c.check_grads(loss,
                  {{"dq", &Q, delta(g.dq, gq0), p.samples},
                   {"dk", &K, delta(g.dk, gk0), p.samples},
                   {"dv", &V, delta(g.dv, gv0), p.samples}},
                  gtol);
  }
}

}  // namespace

void register_attention_cases(Registry& r) {
  std::vector<AttnP> cases;
  auto add = [&](AttnP p) { cases.push_back(p); };
  // small shapes: every feature, forward and backward
  add({1, 1, 1, 1, 1, false, false, false, false, false, true});
  add({2, 2, 7, 13, 8, true, false, false, false, true, true, 3, 12});
  add({2, 3, 40, 21, 7, true, false, false, false, false, true, 5, 12});   // tiled, partial block
  add({3, 2, 9, 9, 16, false, false, true, false, false, true, 0, 12});    // packed qkv
  add({2, 2, 33, 17, 24, true, true, false, false, false, true, 1, 12});   // shared K/V, tiled
  add({4, 2, 1, 19, 12, true, true, false, false, true, true, 2, 12});     // shared K/V, Tq=1
  add({3, 2, 11, 10, 8, true, false, false, true, false, true, 0, 12});    // item 0 all masked
  add({2, 2, 3, 10, 8, false, false, false, true, true, true, 0, 12});     // all masked, direct
  add({1, 2, 5, 0, 8, false, false, false, false, false, false});          // Tk = 0: zeros
  add({2, 2, 37, 45, 20, true, false, false, false, true, false, 2, 12});  // tiled with probs, two query blocks
  add({1, 2, 12, 0, 8, false, false, false, false, false, false});         // Tk = 0, tiled: zeros
  // model shapes, forward: ViT self-attention from packed qkv (ld 2304), BERT with padding
  // mask, the alignment head's cross-attention (Tq = 1 per pair, shared or per-pair memory)
  add({2, 12, 197, 197, 64, false, false, true, false, false, false});
  add({2, 12, 97, 97, 64, true, false, false, false, false, false});
  add({16, 4, 1, 197, 192, false, true, false, false, false, false});
  add({16, 4, 1, 98, 192, true, false, false, false, true, false});
  add({3, 4, 8, 197, 192, false, false, false, false, false, false});  // 8 queries: tiled path
  // model head sizes, backward (fewer heads/items to keep the float64 checks quick)
  add({1, 2, 197, 197, 64, false, false, true, false, false, true, 0, 6});
  add({2, 2, 97, 97, 64, true, false, false, false, false, true, 0, 6});
  add({6, 4, 1, 98, 192, true, true, false, false, false, true, 0, 6});
  add({3, 4, 1, 197, 192, false, false, false, false, false, true, 0, 6});
  // bf16 storage (gradient tolerance: the backward reads the bf16-rounded out, so its errors are
  // a few bf16 roundoffs, 2^-9 each, of the gradient norm): the same features on the widening path (HS 8, 12, 24) and
  // the tensor-core head sizes (32, 64, 128, 192): tiles, padding masks, a fully masked item, unaligned rows (pad 1),
  // shared memories (flattened queries), packed qkv; backward through the widening path.
  auto bf = [&](AttnP p) {
    p.st = DType::BF16;
    add(p);
  };
  auto hf = [&](AttnP p) {
    p.st = DType::F16;
    add(p);
  };
  bf({2, 2, 7, 13, 8, true, false, false, false, true, true, 3, 12});
  bf({4, 2, 1, 19, 12, true, true, false, false, true, true, 2, 12});
  bf({1, 2, 5, 0, 8, false, false, false, false, false, false});
  bf({2, 2, 70, 130, 32, true, false, false, false, false, true, 0, 8});
  bf({3, 2, 11, 10, 64, true, false, false, true, false, false});
  bf({2, 2, 33, 17, 64, true, true, false, false, false, false, 1});
  bf({2, 3, 100, 150, 128, true, false, false, false, false, false, 8});
  bf({2, 12, 197, 197, 64, false, false, true, false, false, false});
  bf({2, 12, 97, 97, 64, true, false, false, false, false, false});
  bf({16, 4, 1, 197, 192, false, true, false, false, false, false});
  bf({70, 4, 1, 98, 192, true, true, false, false, false, false});
  bf({16, 4, 1, 98, 192, true, false, false, false, true, false});
  bf({3, 4, 8, 197, 192, false, false, false, false, false, false});
  bf({1, 2, 197, 197, 64, false, false, true, false, false, true, 0, 6});
  // head size 64 on the whole-sequence kernels (forward and backward): many query tiles per warp,
  // Tk at its limit of 256 with a mask, a fully masked item, Tk = 1; past the limit (Tk 257) the
  // tiled forward takes over
  bf({2, 3, 150, 256, 64, true, false, false, false, false, true, 0, 6});
  bf({3, 2, 11, 10, 64, true, false, false, true, false, true, 0, 8});  // item 0 all masked
  bf({2, 2, 97, 97, 64, true, false, false, false, false, true, 0, 6});
  bf({2, 2, 20, 1, 64, false, false, false, false, false, false});
  bf({1, 2, 40, 257, 64, true, false, false, false, false, false});
  // the 32-row kernels' edges: Tq at the limit of 256 (8 jobs: more than the persistent kernel's
  // 7 compute warps), and 3 query tiles (the last job a single tile) against 70 keys
  bf({2, 3, 256, 200, 64, true, false, false, false, false, false});
  bf({3, 2, 33, 70, 64, false, false, false, false, false, true, 0, 6});
  // fp16 storage: the same kernels with fp16 operands (mma .f16, P and the output rounded to fp16)
  // on each path: widening (HS 8), the tiled kernel (HS 32, 128, 192; flattened shared memories),
  // the whole-sequence forward and the tensor-core backward at head size 64 (ViT and BERT shapes)
  hf({2, 2, 7, 13, 8, true, false, false, false, true, true, 3, 12});
  hf({2, 2, 70, 130, 32, true, false, false, false, false, true, 0, 8});
  hf({2, 3, 100, 150, 128, true, false, false, false, false, false, 8});
  hf({16, 4, 1, 197, 192, false, true, false, false, false, false});
  hf({3, 4, 8, 197, 192, false, false, false, false, false, false});
  hf({1, 2, 197, 197, 64, false, false, true, false, false, true, 0, 6});
  hf({2, 2, 97, 97, 64, true, false, false, false, false, true, 0, 6});
  hf({3, 2, 11, 10, 64, true, false, false, true, false, true, 0, 8});  // item 0 all masked
  hf({2, 3, 150, 256, 64, true, false, false, false, false, false});
  // fp32 storage at precision tf32: on CUDA the TF32 tensor-core forward (head sizes 32, 64, 128,
  // 192: partial key tiles, masks, a fully masked item, unaligned rows, flattened shared memories,
  // packed qkv, the model shapes); the exact fp32 kernel where it does not apply (HS 8, probs,
  // Tk = 0) and for the backward; on the CPU exact fp32 throughout
  auto tf = [&](AttnP p) {
    p.tf32 = true;
    add(p);
  };
  tf({2, 2, 7, 13, 8, true, false, false, false, true, true, 3, 12});
  tf({1, 2, 5, 0, 8, false, false, false, false, false, false});
  tf({2, 2, 70, 130, 32, true, false, false, false, false, true, 0, 8});
  tf({3, 2, 11, 10, 64, true, false, false, true, false, false});
  tf({2, 2, 33, 17, 64, true, true, false, false, false, false, 1});
  tf({2, 3, 100, 150, 128, true, false, false, false, false, false, 8});
  tf({2, 12, 197, 197, 64, false, false, true, false, false, false});
  tf({2, 12, 97, 97, 64, true, false, false, false, false, false});
  tf({16, 4, 1, 197, 192, false, true, false, false, false, false});
  tf({70, 4, 1, 98, 192, true, true, false, false, false, false});
  tf({16, 4, 1, 98, 192, true, false, false, false, true, false});
  tf({3, 4, 8, 197, 192, false, false, false, false, false, false, 1});
  tf({1, 2, 197, 197, 64, false, false, true, false, false, true, 0, 6});
  for (const AttnP& p : cases) add_case(r, attn_name(p), [p](Ctx& c) { attention_case(c, p); });
}

}  // namespace cztest
