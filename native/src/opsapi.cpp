// opsapi.cpp: the op registry (see opsapi.h). Shape rules per op are written next to the call
// into the backend, so a reader sees what each argument must look like.
//
// Dimension letters: N rows, C channels, B batch, NH heads, HS head size, Tq/Tk query/key
// positions, V vocabulary, M/N/K GEMM sizes, R/Cc logits rows/columns.
#include "opsapi.h"

#include <cmath>
#include <cstdarg>
#include <cstring>

#include "core/json.h"
#include "core/status.h"

namespace carzero {

namespace {

const std::vector<DType> kF32{DType::F32};
const std::vector<DType> kI32{DType::I32};
const std::vector<DType> kU8{DType::U8};
const std::vector<DType> kF32BF16{DType::F32, DType::BF16};
const std::vector<DType> kAll{DType::F32, DType::BF16, DType::F16, DType::I32, DType::U8};

int64_t rows_of(const Tensor& t) { return t.ndim() == 0 ? 1 : t.numel() / t.size(-1); }

Act act_from(const OpCall& c, size_t i) { return static_cast<Act>(c.iparam(i, 0, 2)); }

// ---- GEMM -------------------------------------------------------------------------------------
// a: op(A) (M,K) stored (M,K)/(K,M); b: op(B) (K,N) stored (K,N)/(N,K); either may be 2-D (shared
// by the batch) or 3-D (batch, ., .); c: (M,N) or (batch, M, N).
GemmArgs gemm_args(const OpCall& c, size_t ia, size_t ib, size_t ic, bool ta, bool tb) {
  const Tensor& A = c.req(ia);
  const Tensor& B = c.req(ib);
  const Tensor& C = c.req(ic);
  if (C.ndim() != 2 && C.ndim() != 3)
    c.fail("argument '%s' must be 2-D (M, N) or 3-D (batch, M, N), got %s", c.arg_name(ic),
           C.shape_str().c_str());
  int64_t batch = C.ndim() == 3 ? C.size(0) : 1;
  for (size_t i : {ia, ib}) {
    const Tensor& X = c.req(i);
    if (X.ndim() == 3 && C.ndim() == 2)
      c.fail("argument '%s' is batched %s but '%s' is not", c.arg_name(i), X.shape_str().c_str(),
             c.arg_name(ic));
    if (X.ndim() == 3 && X.size(0) != batch)
      c.fail("argument '%s' has batch %lld, '%s' has %lld", c.arg_name(i),
             static_cast<long long>(X.size(0)), c.arg_name(ic), static_cast<long long>(batch));
    if (X.ndim() != 2 && X.ndim() != 3)
      c.fail("argument '%s' must be 2-D or 3-D, got %s", c.arg_name(i), X.shape_str().c_str());
  }
  int64_t ar = A.size(-2), ac = A.size(-1), br = B.size(-2), bc = B.size(-1);
  int64_t M = ta ? ac : ar, K = ta ? ar : ac;
  int64_t Kb = tb ? bc : br, N = tb ? br : bc;
  if (K != Kb)
    c.fail("inner dimensions differ: op('%s') is (%lld, %lld) but op('%s') is (%lld, %lld)",
           c.arg_name(ia), static_cast<long long>(M), static_cast<long long>(K), c.arg_name(ib),
           static_cast<long long>(Kb), static_cast<long long>(N));
  if (C.size(-2) != M || C.size(-1) != N)
    c.fail("argument '%s' must be (%lld, %lld) per batch item, got %s", c.arg_name(ic),
           static_cast<long long>(M), static_cast<long long>(N), C.shape_str().c_str());
  GemmArgs g;
  g.a_type = A.dtype();
  g.b_type = B.dtype();
  g.trans_a = ta;
  g.trans_b = tb;
  g.m = M;
  g.n = N;
  g.k = K;
  g.a = A.data();
  g.lda = ac;
  g.stride_a = A.ndim() == 3 ? ar * ac : 0;
  g.b = B.data();
  g.ldb = bc;
  g.stride_b = B.ndim() == 3 ? br * bc : 0;
  g.c = C.ptr<float>();
  g.ldc = N;
  g.stride_c = M * N;
  g.batch = batch;
  return g;
}

void run_gemm(Context& ctx, OpCall& c) {
  // args: a, b, c, bias, preact; params: trans_a, trans_b, alpha, beta, act, compute
  GemmArgs g = gemm_args(c, 0, 1, 2, c.iparam(0, 0, 1), c.iparam(1, 0, 1));
  g.alpha = static_cast<float>(c.p[2]);
  g.beta = static_cast<float>(c.p[3]);
  g.act = act_from(c, 4);
  int64_t compute = c.iparam(5, -1, 1);
  if (compute < 0)
    g.compute = (g.a_type == DType::BF16 || g.b_type == DType::BF16) ? DType::BF16 : DType::F32;
  else
    g.compute = compute == 1 ? DType::BF16 : DType::F32;
  if (c.has(3)) {
    c.expect_shape(3, {g.n});
    g.bias = c.f32(3);
  }
  if (c.has(4)) {
    c.expect_shape(4, c.req(2).shape());
    g.preact = c.f32(4);
  }
  ctx.ops().gemm(ctx.exec(), g);
}

void run_gemm_backward(Context& ctx, OpCall& c) {
  // args: a, b, dc, preact, da, db, dbias; params: trans_a, trans_b, alpha, act
  GemmArgs g = gemm_args(c, 0, 1, 2, c.iparam(0, 0, 1), c.iparam(1, 0, 1));
  g.alpha = static_cast<float>(c.p[2]);
  g.act = act_from(c, 3);
  if (g.act != Act::None && !c.has(3)) c.fail("argument 'preact' is required when act != 0");
  if (c.has(3)) {
    c.expect_shape(3, c.req(2).shape());
    g.preact = c.f32(3);
  }
  if (c.has(4)) c.expect_shape(4, c.req(0).shape());
  if (c.has(5)) c.expect_shape(5, c.req(1).shape());
  if (c.has(6)) c.expect_shape(6, {g.n});
  ctx.ops().gemm_backward(ctx.exec(), g, c.f32(2), c.f32(4), c.f32(5), c.f32(6));
}

// ---- LayerNorm --------------------------------------------------------------------------------
void run_layernorm_forward(Context& ctx, OpCall& c) {
  // args: inp (..., C), weight (C), bias (C), out (..., C), mean (N), rstd (N); params: eps
  const Tensor& x = c.req(0);
  if (x.ndim() < 1) c.fail("argument 'inp' must have at least one dimension");
  int64_t C = x.size(-1), N = rows_of(x);
  c.expect_shape(1, {C});
  c.expect_shape(2, {C});
  c.expect_shape(3, x.shape());
  if (c.has(4)) c.expect_numel(4, N);
  if (c.has(5)) c.expect_numel(5, N);
  if (!(c.p[0] > 0)) c.fail("parameter 'eps' must be > 0, got %g", c.p[0]);
  ctx.ops().layernorm_forward(ctx.exec(), c.f32(3), c.f32(4), c.f32(5), c.f32(0), c.f32(1),
                              c.f32(2), N, C, static_cast<float>(c.p[0]));
}

void run_layernorm_backward(Context& ctx, OpCall& c) {
  // args: dout, inp, weight, mean, rstd, dinp, dweight, dbias
  const Tensor& x = c.req(1);
  int64_t C = x.size(-1), N = rows_of(x);
  c.expect_shape(0, x.shape());
  c.expect_shape(2, {C});
  c.expect_numel(3, N);
  c.expect_numel(4, N);
  if (c.has(5)) c.expect_shape(5, x.shape());
  if (c.has(6)) c.expect_shape(6, {C});
  if (c.has(7)) c.expect_shape(7, {C});
  ctx.ops().layernorm_backward(ctx.exec(), c.f32(5), c.f32(6), c.f32(7), c.f32(0), c.f32(1),
                               c.f32(2), c.f32(3), c.f32(4), N, C);
}

// ---- elementwise ------------------------------------------------------------------------------
void run_unary_forward(Context& ctx, OpCall& c,
                       void (*OpTable::*fn)(Exec&, float*, const float*, int64_t)) {
  c.expect_shape(1, c.req(0).shape());
  (ctx.ops().*fn)(ctx.exec(), c.f32(1), c.f32(0), c.req(0).numel());
}

void run_unary_backward(Context& ctx, OpCall& c,
                        void (*OpTable::*fn)(Exec&, float*, const float*, const float*, int64_t)) {
  // args: inp, dout, dinp
  c.expect_shape(1, c.req(0).shape());
  c.expect_shape(2, c.req(0).shape());
  (ctx.ops().*fn)(ctx.exec(), c.f32(2), c.f32(0), c.f32(1), c.req(0).numel());
}

// ---- attention --------------------------------------------------------------------------------
// q (B, Tq, C); k, v (B, Tk, C) or (Tk, C) shared by the batch; mask (B, Tk) or (Tk) u8.
AttnArgs attn_args(const OpCall& c, size_t iq, size_t ik, size_t iv, size_t io, size_t imask,
                   size_t i_nh, size_t i_scale) {
  const Tensor& q = c.req(iq);
  const Tensor& k = c.req(ik);
  c.req(iv);
  if (q.ndim() != 3) c.fail("argument 'q' must be (B, Tq, C), got %s", q.shape_str().c_str());
  int64_t B = q.size(0), Tq = q.size(1), C = q.size(2);
  if (k.ndim() != 2 && k.ndim() != 3)
    c.fail("argument 'k' must be (B, Tk, C) or (Tk, C), got %s", k.shape_str().c_str());
  int64_t Tk = k.size(-2);
  if (k.ndim() == 3) c.expect_shape(ik, {B, Tk, C});
  else c.expect_shape(ik, {Tk, C});
  c.expect_shape(iv, k.shape());
  c.expect_shape(io, q.shape());
  int64_t NH = c.iparam(i_nh, 1, 4096);
  if (C % NH != 0)
    c.fail("parameter 'num_heads' (%lld) must divide the channels of 'q' (%lld)",
           static_cast<long long>(NH), static_cast<long long>(C));
  AttnArgs a;
  a.B = B;
  a.NH = NH;
  a.Tq = Tq;
  a.Tk = Tk;
  a.HS = C / NH;
  a.q = c.f32(iq);
  a.ldq = C;
  a.q_bs = Tq * C;
  a.k = c.f32(ik);
  a.ldk = C;
  a.k_bs = k.ndim() == 3 ? Tk * C : 0;
  a.v = c.f32(iv);
  a.ldv = C;
  a.v_bs = a.k_bs;
  a.out = c.f32(io);
  a.ldo = C;
  a.o_bs = Tq * C;
  if (c.has(imask)) {
    const Tensor& m = c.req(imask);
    if (m.ndim() == 2) c.expect_shape(imask, {B, Tk});
    else c.expect_shape(imask, {Tk});
    a.key_mask = m.ptr<uint8_t>();
    a.mask_bs = m.ndim() == 2 ? Tk : 0;
  }
  double s = c.p[i_scale];
  a.scale = s == 0 ? static_cast<float>(1.0 / std::sqrt(static_cast<double>(a.HS)))
                   : static_cast<float>(s);
  return a;
}

void run_attention_forward(Context& ctx, OpCall& c) {
  // args: q, k, v, out, mask, lse, probs; params: num_heads, scale (0 = 1/sqrt(HS))
  AttnArgs a = attn_args(c, 0, 1, 2, 3, 4, 0, 1);
  if (c.has(5)) c.expect_shape(5, {a.B, a.NH, a.Tq});
  if (c.has(6)) c.expect_shape(6, {a.B, a.NH, a.Tq, a.Tk});
  a.lse = c.f32(5);
  a.probs = c.f32(6);
  ctx.ops().attention_forward(ctx.exec(), a);
}

void run_attention_backward(Context& ctx, OpCall& c) {
  // args: q, k, v, out, lse, dout, dq, dk, dv, mask; params: num_heads, scale
  AttnArgs a = attn_args(c, 0, 1, 2, 3, 9, 0, 1);
  c.expect_shape(4, {a.B, a.NH, a.Tq});
  a.lse = c.f32(4);
  c.expect_shape(5, c.req(3).shape());
  AttnGrads g;
  g.dout = c.f32(5);
  if (c.has(6)) c.expect_shape(6, c.req(0).shape());
  if (c.has(7)) c.expect_shape(7, c.req(1).shape());
  if (c.has(8)) c.expect_shape(8, c.req(2).shape());
  g.dq = c.f32(6);
  g.dk = c.f32(7);
  g.dv = c.f32(8);
  ctx.ops().attention_backward(ctx.exec(), a, g);
}

// ---- embedding / patch embedding ----------------------------------------------------------------
void run_embedding_forward(Context& ctx, OpCall& c) {
  // args: ids (...), table (V, C), out (..., C)
  const Tensor& ids = c.req(0);
  const Tensor& tab = c.req(1);
  if (tab.ndim() != 2) c.fail("argument 'table' must be (V, C), got %s", tab.shape_str().c_str());
  std::vector<int64_t> os = ids.shape();
  os.push_back(tab.size(1));
  c.expect_shape(2, os);
  ctx.ops().embedding_forward(ctx.exec(), c.f32(2), c.i32(0), c.f32(1), ids.numel(), tab.size(0),
                              tab.size(1));
}

void run_embedding_backward(Context& ctx, OpCall& c) {
  // args: dout (..., C), ids (...), dtable (V, C)
  const Tensor& ids = c.req(1);
  const Tensor& tab = c.req(2);
  if (tab.ndim() != 2) c.fail("argument 'dtable' must be (V, C), got %s", tab.shape_str().c_str());
  std::vector<int64_t> os = ids.shape();
  os.push_back(tab.size(1));
  c.expect_shape(0, os);
  ctx.ops().embedding_backward(ctx.exec(), c.f32(2), c.f32(0), c.i32(1), ids.numel(),
                               tab.size(0), tab.size(1));
}

struct PatchGeom {
  int64_t B, Cin, H, W, OC, ps;
};

PatchGeom patch_geom(const OpCall& c, size_t iimg, size_t iw, size_t iout, size_t ibias) {
  const Tensor& img = c.req(iimg);
  const Tensor& w = c.req(iw);
  if (img.ndim() != 4)
    c.fail("argument '%s' must be (B, Cin, H, W), got %s", c.arg_name(iimg),
           img.shape_str().c_str());
  if (w.ndim() != 4 || w.size(2) != w.size(3) || w.size(1) != img.size(1))
    c.fail("argument '%s' must be (OC, %lld, ps, ps), got %s", c.arg_name(iw),
           static_cast<long long>(img.size(1)), w.shape_str().c_str());
  PatchGeom g{img.size(0), img.size(1), img.size(2), img.size(3), w.size(0), w.size(2)};
  if (g.ps < 1 || g.H % g.ps || g.W % g.ps)
    c.fail("image %lldx%lld is not a multiple of the patch size %lld",
           static_cast<long long>(g.H), static_cast<long long>(g.W), static_cast<long long>(g.ps));
  c.expect_shape(iout, {g.B, (g.H / g.ps) * (g.W / g.ps), g.OC});
  if (c.has(ibias)) c.expect_shape(ibias, {g.OC});
  return g;
}

void run_patch_embed_forward(Context& ctx, OpCall& c) {
  // args: img (B, Cin, H, W), weight (OC, Cin, ps, ps), bias (OC), out (B, P, OC)
  PatchGeom g = patch_geom(c, 0, 1, 3, 2);
  ctx.ops().patch_embed_forward(ctx.exec(), c.f32(3), c.f32(0), c.f32(1), c.f32(2), g.B, g.Cin,
                                g.H, g.W, g.OC, g.ps);
}

void run_patch_embed_backward(Context& ctx, OpCall& c) {
  // args: dout (B, P, OC), img, weight, dweight, dbias, dimg
  PatchGeom g = patch_geom(c, 1, 2, 0, 4);
  c.expect_shape(3, c.req(2).shape());
  if (c.has(5)) c.expect_shape(5, c.req(1).shape());
  ctx.ops().patch_embed_backward(ctx.exec(), c.f32(5), c.f32(3), c.f32(4), c.f32(0), c.f32(1),
                                 c.f32(2), g.B, g.Cin, g.H, g.W, g.OC, g.ps);
}

// ---- softmax cross-entropy ----------------------------------------------------------------------
void xent_shapes(const OpCall& c, size_t ilog, size_t itgt, size_t iloss, int64_t* R, int64_t* Cc,
                 int* axis) {
  const Tensor& x = c.req(ilog);
  if (x.ndim() != 2) c.fail("argument 'logits' must be (R, Cc), got %s", x.shape_str().c_str());
  *R = x.size(0);
  *Cc = x.size(1);
  *axis = static_cast<int>(c.iparam(0, 0, 1));
  int64_t count = *axis == 1 ? *R : *Cc;
  c.expect_shape(itgt, {count});
  c.expect_shape(iloss, {count});
}

void run_xent_forward(Context& ctx, OpCall& c) {
  // args: logits (R, Cc), targets (R | Cc), losses (R | Cc); params: axis; results: mean loss
  int64_t R, Cc;
  int axis;
  xent_shapes(c, 0, 1, 2, &R, &Cc, &axis);
  ctx.ops().softmax_xent_forward(ctx.exec(), c.f32(2), c.f32(0), c.i32(1), R, Cc, axis);
  int64_t count = axis == 1 ? R : Cc;
  std::vector<float> host(static_cast<size_t>(count));
  ctx.download(c.req(2), host.data(), host.size() * sizeof(float));
  double s = 0;
  for (float v : host) s += v;
  c.results[0] = count ? s / static_cast<double>(count) : 0.0;
}

void run_xent_backward(Context& ctx, OpCall& c) {
  // args: logits, targets, dlosses, dlogits; params: axis
  int64_t R, Cc;
  int axis;
  xent_shapes(c, 0, 1, 2, &R, &Cc, &axis);
  c.expect_shape(3, c.req(0).shape());
  ctx.ops().softmax_xent_backward(ctx.exec(), c.f32(3), c.f32(2), c.f32(0), c.i32(1), R, Cc, axis);
}

// ---- optimizer and regularisation ---------------------------------------------------------------
void run_adam(Context& ctx, OpCall& c) {
  // args: param, grad, m, v; params: lr, beta1, beta2, eps, weight_decay, step, decoupled, grad_scale
  const Tensor& p = c.req(0);
  for (size_t i = 1; i < 4; ++i) c.expect_shape(i, p.shape());
  AdamArgs a;
  a.lr = static_cast<float>(c.p[0]);
  a.beta1 = static_cast<float>(c.p[1]);
  a.beta2 = static_cast<float>(c.p[2]);
  a.eps = static_cast<float>(c.p[3]);
  a.weight_decay = static_cast<float>(c.p[4]);
  a.step = c.iparam(5, 1, int64_t{1} << 52);
  a.decoupled = c.iparam(6, 0, 1) != 0;
  a.grad_scale = static_cast<float>(c.p[7]);
  if (!(a.beta1 >= 0 && a.beta1 < 1)) c.fail("parameter 'beta1' must be in [0, 1), got %g", c.p[1]);
  if (!(a.beta2 >= 0 && a.beta2 < 1)) c.fail("parameter 'beta2' must be in [0, 1), got %g", c.p[2]);
  if (!(a.eps > 0)) c.fail("parameter 'eps' must be > 0, got %g", c.p[3]);
  if (!(a.lr >= 0)) c.fail("parameter 'lr' must be >= 0, got %g", c.p[0]);
  ctx.ops().adam_update(ctx.exec(), c.f32(0), c.f32(1), c.f32(2), c.f32(3), p.numel(), a);
}

void run_clip_grad_norm(Context& ctx, OpCall& c) {
  // variadic grads; params: max_norm; results: total norm before clipping.
  // PyTorch clip_grad_norm_: coef = max_norm / (norm + 1e-6), applied only when coef < 1.
  double max_norm = c.p[0];
  if (!(max_norm > 0)) c.fail("parameter 'max_norm' must be > 0, got %g", max_norm);
  double ss = 0;
  for (size_t i = 0; i < c.t.size(); ++i)
    ss += ctx.ops().sum_squares(ctx.exec(), c.f32(i), c.req(i).numel());
  double norm = std::sqrt(ss);
  double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0)
    for (size_t i = 0; i < c.t.size(); ++i)
      ctx.ops().scale(ctx.exec(), c.f32(i), c.req(i).numel(), static_cast<float>(coef));
  c.results[0] = norm;
}

void check_p(const OpCall& c) {
  if (!(c.p[0] >= 0 && c.p[0] <= 1)) c.fail("parameter 'p' must be in [0, 1], got %g", c.p[0]);
}

uint64_t u64param(const OpCall& c, size_t i) {
  return static_cast<uint64_t>(c.iparam(i, 0, int64_t{1} << 53));
}

void register_all(std::vector<OpSpec>& r) {
  auto A = [](const char* n, Role role, const std::vector<DType>& dt, bool opt = false) {
    return ArgSpec{n, role, dt, opt};
  };
  const Role I = Role::In, O = Role::Out, IO = Role::InOut;

  r.push_back({"gemm", "c = act(alpha * op(a) @ op(b) + beta * c + bias); preact keeps the pre-activation",
               {A("a", I, kF32BF16), A("b", I, kF32BF16), A("c", IO, kF32), A("bias", I, kF32, true),
                A("preact", O, kF32, true)},
               false,
               {{"trans_a", 0}, {"trans_b", 0}, {"alpha", 1}, {"beta", 0}, {"act", 0}, {"compute", -1}},
               {}, run_gemm});
  r.push_back({"gemm_backward", "da (=), db (+=), dbias (+=) of gemm",
               {A("a", I, kF32), A("b", I, kF32), A("dc", I, kF32), A("preact", I, kF32, true),
                A("da", O, kF32, true), A("db", IO, kF32, true), A("dbias", IO, kF32, true)},
               false, {{"trans_a", 0}, {"trans_b", 0}, {"alpha", 1}, {"act", 0}}, {},
               run_gemm_backward});
  r.push_back({"layernorm_forward", "out = (inp - mean) * rstd * weight + bias over the last dim",
               {A("inp", I, kF32), A("weight", I, kF32), A("bias", I, kF32), A("out", O, kF32),
                A("mean", O, kF32, true), A("rstd", O, kF32, true)},
               false, {{"eps", 1e-5}}, {}, run_layernorm_forward});
  r.push_back({"layernorm_backward", "dinp (=), dweight (+=), dbias (+=)",
               {A("dout", I, kF32), A("inp", I, kF32), A("weight", I, kF32), A("mean", I, kF32),
                A("rstd", I, kF32), A("dinp", O, kF32, true), A("dweight", IO, kF32, true),
                A("dbias", IO, kF32, true)},
               false, {}, {}, run_layernorm_backward});
  r.push_back({"gelu_forward", "exact GELU 0.5 x (1 + erf(x / sqrt 2))",
               {A("inp", I, kF32), A("out", O, kF32)}, false, {}, {},
               [](Context& x, OpCall& c) { run_unary_forward(x, c, &OpTable::gelu_forward); }});
  r.push_back({"gelu_backward", "dinp (=)",
               {A("inp", I, kF32), A("dout", I, kF32), A("dinp", O, kF32)}, false, {}, {},
               [](Context& x, OpCall& c) { run_unary_backward(x, c, &OpTable::gelu_backward); }});
  r.push_back({"relu_forward", "max(x, 0)", {A("inp", I, kF32), A("out", O, kF32)}, false, {}, {},
               [](Context& x, OpCall& c) { run_unary_forward(x, c, &OpTable::relu_forward); }});
  r.push_back({"relu_backward", "dinp (=)",
               {A("inp", I, kF32), A("dout", I, kF32), A("dinp", O, kF32)}, false, {}, {},
               [](Context& x, OpCall& c) { run_unary_backward(x, c, &OpTable::relu_backward); }});
  r.push_back({"add_forward", "out = a + b (residual)",
               {A("a", I, kF32), A("b", I, kF32), A("out", O, kF32)}, false, {}, {},
               [](Context& x, OpCall& c) {
                 c.expect_shape(1, c.req(0).shape());
                 c.expect_shape(2, c.req(0).shape());
                 x.ops().add_forward(x.exec(), c.f32(2), c.f32(0), c.f32(1), c.req(0).numel());
               }});
  r.push_back({"add_backward", "da = db = dout (written)",
               {A("dout", I, kF32), A("da", O, kF32, true), A("db", O, kF32, true)}, false, {}, {},
               [](Context& x, OpCall& c) {
                 if (c.has(1)) c.expect_shape(1, c.req(0).shape());
                 if (c.has(2)) c.expect_shape(2, c.req(0).shape());
                 x.ops().add_backward(x.exec(), c.f32(1), c.f32(2), c.f32(0), c.req(0).numel());
               }});
  r.push_back({"softmax_forward", "softmax over the last dim", {A("inp", I, kF32), A("out", O, kF32)},
               false, {}, {},
               [](Context& x, OpCall& c) {
                 const Tensor& t = c.req(0);
                 if (t.ndim() < 1) c.fail("argument 'inp' must have at least one dimension");
                 c.expect_shape(1, t.shape());
                 x.ops().softmax_forward(x.exec(), c.f32(1), c.f32(0), rows_of(t), t.size(-1));
               }});
  r.push_back({"softmax_backward", "dinp (=) from the forward's out",
               {A("out", I, kF32), A("dout", I, kF32), A("dinp", O, kF32)}, false, {}, {},
               [](Context& x, OpCall& c) {
                 const Tensor& t = c.req(0);
                 if (t.ndim() < 1) c.fail("argument 'out' must have at least one dimension");
                 c.expect_shape(1, t.shape());
                 c.expect_shape(2, t.shape());
                 x.ops().softmax_backward(x.exec(), c.f32(2), c.f32(0), c.f32(1), rows_of(t),
                                          t.size(-1));
               }});
  r.push_back({"attention_forward",
               "multi-head scaled dot-product attention; k/v may be (Tk, C) shared by the batch",
               {A("q", I, kF32), A("k", I, kF32), A("v", I, kF32), A("out", O, kF32),
                A("mask", I, kU8, true), A("lse", O, kF32, true), A("probs", O, kF32, true)},
               false, {{"num_heads", 1}, {"scale", 0}}, {}, run_attention_forward});
  r.push_back({"attention_backward", "dq, dk, dv accumulate (+=)",
               {A("q", I, kF32), A("k", I, kF32), A("v", I, kF32), A("out", I, kF32),
                A("lse", I, kF32), A("dout", I, kF32), A("dq", IO, kF32, true),
                A("dk", IO, kF32, true), A("dv", IO, kF32, true), A("mask", I, kU8, true)},
               false, {{"num_heads", 1}, {"scale", 0}}, {}, run_attention_backward});
  r.push_back({"embedding_forward", "out[i] = table[ids[i]]",
               {A("ids", I, kI32), A("table", I, kF32), A("out", O, kF32)}, false, {}, {},
               run_embedding_forward});
  r.push_back({"embedding_backward", "dtable[ids[i]] += dout[i]",
               {A("dout", I, kF32), A("ids", I, kI32), A("dtable", IO, kF32)}, false, {}, {},
               run_embedding_backward});
  r.push_back({"patch_embed_forward", "conv ps x ps stride ps -> (B, P, OC) patches row-major",
               {A("img", I, kF32), A("weight", I, kF32), A("bias", I, kF32, true),
                A("out", O, kF32)},
               false, {}, {}, run_patch_embed_forward});
  r.push_back({"patch_embed_backward", "dweight (+=), dbias (+=), dimg (=)",
               {A("dout", I, kF32), A("img", I, kF32), A("weight", I, kF32),
                A("dweight", IO, kF32), A("dbias", IO, kF32, true), A("dimg", O, kF32, true)},
               false, {}, {}, run_patch_embed_backward});
  r.push_back({"softmax_xent_forward",
               "per-distribution cross-entropy; axis 1: rows vs targets, axis 0: columns",
               {A("logits", I, kF32), A("targets", I, kI32), A("losses", O, kF32)}, false,
               {{"axis", 1}}, {"mean_loss"}, run_xent_forward});
  r.push_back({"softmax_xent_backward", "dlogits (=)",
               {A("logits", I, kF32), A("targets", I, kI32), A("dlosses", I, kF32),
                A("dlogits", O, kF32)},
               false, {{"axis", 1}}, {}, run_xent_backward});
  r.push_back({"adam_update", "PyTorch Adam (L2 in gradient) or AdamW (decoupled = 1)",
               {A("param", IO, kF32), A("grad", I, kF32), A("m", IO, kF32), A("v", IO, kF32)}, false,
               {{"lr", 1e-3}, {"beta1", 0.9}, {"beta2", 0.999}, {"eps", 1e-8}, {"weight_decay", 0},
                {"step", 1}, {"decoupled", 0}, {"grad_scale", 1}},
               {}, run_adam});
  r.push_back({"sum_squares", "sum of x^2", {A("x", I, kF32)}, false, {}, {"sum"},
               [](Context& x, OpCall& c) {
                 c.results[0] = x.ops().sum_squares(x.exec(), c.f32(0), c.req(0).numel());
               }});
  r.push_back({"scale", "x *= s", {A("x", IO, kF32)}, false, {{"s", 1}}, {},
               [](Context& x, OpCall& c) {
                 x.ops().scale(x.exec(), c.f32(0), c.req(0).numel(), static_cast<float>(c.p[0]));
               }});
  r.push_back({"clip_grad_norm", "scale all grads so their global L2 norm <= max_norm",
               {A("grads", IO, kF32)}, true, {{"max_norm", 1}}, {"total_norm"}, run_clip_grad_norm});
  r.push_back({"dropout_forward", "inverted dropout with a counter-based RNG",
               {A("inp", I, kF32), A("out", O, kF32)}, false, {{"p", 0.1}, {"seed", 0}, {"offset", 0}},
               {},
               [](Context& x, OpCall& c) {
                 check_p(c);
                 c.expect_shape(1, c.req(0).shape());
                 x.ops().dropout_forward(x.exec(), c.f32(1), c.f32(0), c.req(0).numel(),
                                         static_cast<float>(c.p[0]), u64param(c, 1), u64param(c, 2));
               }});
  r.push_back({"dropout_backward", "dinp (=) with the forward's mask",
               {A("dout", I, kF32), A("dinp", O, kF32)}, false, {{"p", 0.1}, {"seed", 0}, {"offset", 0}},
               {},
               [](Context& x, OpCall& c) {
                 check_p(c);
                 c.expect_shape(1, c.req(0).shape());
                 x.ops().dropout_backward(x.exec(), c.f32(1), c.f32(0), c.req(0).numel(),
                                          static_cast<float>(c.p[0]), u64param(c, 1), u64param(c, 2));
               }});
  r.push_back({"convert", "dst = src converted to dst's dtype", {A("src", I, kAll), A("dst", O, kAll)},
               false, {}, {},
               [](Context& x, OpCall& c) {
                 c.expect_shape(1, c.req(0).shape());
                 x.ops().convert(x.exec(), c.req(1).data(), c.req(1).dtype(), c.req(0).data(),
                                 c.req(0).dtype(), c.req(0).numel());
               }});
}

}  // namespace

const Tensor& OpCall::req(size_t i) const {
  if (!has(i)) fail("argument '%s' is required", arg_name(i));
  return *t[i];
}

const char* OpCall::arg_name(size_t i) const {
  if (spec->variadic) return spec->args[0].name;
  return i < spec->args.size() ? spec->args[i].name : "?";
}

void OpCall::fail(const char* fmt, ...) const {
  va_list ap;
  va_start(ap, fmt);
  char buf[1024];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  throw Error(CZ_ERR_INVALID_ARGUMENT, spec->name + ": " + buf);
}

void OpCall::expect_shape(size_t i, const std::vector<int64_t>& shape) const {
  const Tensor& x = req(i);
  if (x.shape() != shape)
    fail("argument '%s' must have shape %s, got %s", arg_name(i), shape_to_string(shape).c_str(),
         x.shape_str().c_str());
}

void OpCall::expect_numel(size_t i, int64_t n) const {
  const Tensor& x = req(i);
  if (x.numel() != n)
    fail("argument '%s' must have %lld elements, got %s", arg_name(i), static_cast<long long>(n),
         x.shape_str().c_str());
}

void OpCall::expect_dtype(size_t i, DType dt) const {
  const Tensor& x = req(i);
  if (x.dtype() != dt)
    fail("argument '%s' must be %s, got %s", arg_name(i), dtype_name(dt), dtype_name(x.dtype()));
}

int64_t OpCall::iparam(size_t i, int64_t lo, int64_t hi) const {
  double v = p[i];
  if (!(v == std::floor(v)) || v < static_cast<double>(lo) || v > static_cast<double>(hi))
    fail("parameter '%s' must be an integer in [%lld, %lld], got %g", spec->params[i].name,
         static_cast<long long>(lo), static_cast<long long>(hi), v);
  return static_cast<int64_t>(v);
}

const std::vector<OpSpec>& op_registry() {
  static const std::vector<OpSpec> reg = [] {
    std::vector<OpSpec> r;
    register_all(r);
    return r;
  }();
  return reg;
}

const OpSpec* find_op(const std::string& name) {
  for (const auto& s : op_registry())
    if (s.name == name) return &s;
  return nullptr;
}

void run_op(Context& ctx, const std::string& name, const std::vector<const Tensor*>& tensors,
            const std::vector<double>& params, std::vector<double>* results) {
  const OpSpec* spec = find_op(name);
  CZ_ARG(spec != nullptr, "unknown op '%s'", name.c_str());
  OpCall c;
  c.spec = spec;
  c.t = tensors;
  if (spec->variadic) {
    if (tensors.empty()) c.fail("at least one '%s' tensor is required", spec->args[0].name);
  } else {
    if (tensors.size() > spec->args.size())
      c.fail("takes %zu tensor arguments, got %zu", spec->args.size(), tensors.size());
    c.t.resize(spec->args.size(), nullptr);
  }
  for (size_t i = 0; i < c.t.size(); ++i) {
    const ArgSpec& a = spec->variadic ? spec->args[0] : spec->args[i];
    if (!c.t[i]) {
      if (!a.optional) c.fail("argument '%s' is required", a.name);
      continue;
    }
    const Tensor& x = *c.t[i];
    bool ok = false;
    for (DType d : a.dtypes) ok = ok || d == x.dtype();
    if (!ok) {
      std::string allowed;
      for (DType d : a.dtypes) allowed += std::string(allowed.empty() ? "" : "|") + dtype_name(d);
      c.fail("argument '%s' must be %s, got %s", a.name, allowed.c_str(), dtype_name(x.dtype()));
    }
    if (x.device() != ctx.device())
      c.fail("argument '%s' lives on another device than the context", a.name);
  }
  if (params.size() > spec->params.size())
    c.fail("takes %zu parameters, got %zu", spec->params.size(), params.size());
  c.p.resize(spec->params.size());
  for (size_t i = 0; i < spec->params.size(); ++i) {
    c.p[i] = i < params.size() ? params[i] : spec->params[i].def;
    if (!std::isfinite(c.p[i]))
      c.fail("parameter '%s' must be a finite number, got %g", spec->params[i].name, c.p[i]);
  }
  c.results.assign(spec->results.size(), 0.0);
  spec->run(ctx, c);
  if (results) *results = c.results;
}

std::string op_list_json() {
  // every string through json::quote: a doc line with a quote or a backslash stays valid JSON
  using json::quote;
  std::string j = "[";
  bool first = true;
  for (const auto& s : op_registry()) {
    j += first ? "" : ",";
    first = false;
    j += "{\"name\":" + quote(s.name) + ",\"doc\":" + quote(s.doc) + ",\"variadic\":" +
         (s.variadic ? "true" : "false") + ",\"args\":[";
    for (size_t i = 0; i < s.args.size(); ++i) {
      const ArgSpec& a = s.args[i];
      j += i ? "," : "";
      j += "{\"name\":" + quote(a.name) + ",\"role\":\"" +
           (a.role == Role::In ? "in" : a.role == Role::Out ? "out" : "inout") + "\",\"dtypes\":[";
      for (size_t k = 0; k < a.dtypes.size(); ++k)
        j += std::string(k ? "," : "") + quote(dtype_name(a.dtypes[k]));
      j += std::string("],\"optional\":") + (a.optional ? "true" : "false") + "}";
    }
    j += "],\"params\":[";
    for (size_t i = 0; i < s.params.size(); ++i) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.17g", s.params[i].def);
      j += std::string(i ? "," : "") + "{\"name\":" + quote(s.params[i].name) + ",\"default\":" + buf + "}";
    }
    j += "],\"results\":[";
    for (size_t i = 0; i < s.results.size(); ++i)
      j += std::string(i ? "," : "") + quote(s.results[i]);
    j += "]}";
  }
  return j + "]";
}

}  // namespace carzero
