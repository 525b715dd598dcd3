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

// Every op names its tensor arguments and scalar parameters (and results) with enums in a
// namespace of its own, written beside its runner and its spec; the runner reads c.f32(kBias),
// c.p[kAlpha], and the spec lists each name at its enum: args() / params() / results() check at
// registration that the order is the enum's, so an index and the name it stands for cannot drift.
const Role I = Role::In, O = Role::Out, IO = Role::InOut;

struct ArgAt {
  size_t index;
  ArgSpec spec;
};
struct ParamAt {
  size_t index;
  ParamSpec spec;
};
struct ResultAt {
  size_t index;
  const char* name;
};

ArgAt arg(size_t i, const char* name, Role role, const std::vector<DType>& dt, bool opt = false) {
  return {i, ArgSpec{name, role, dt, opt}};
}
ParamAt param(size_t i, const char* name, double def) { return {i, ParamSpec{name, def}}; }

void check_at(size_t index, size_t pos, const char* what, const char* name) {
  CZ_REQUIRE(index == pos, CZ_ERR_INTERNAL, "op spec: %s '%s' is listed at position %zu but its enum index is %zu",
             what, name, pos, index);
}

std::vector<ArgSpec> args(std::initializer_list<ArgAt> list) {
  std::vector<ArgSpec> v;
  for (const ArgAt& a : list) {
    check_at(a.index, v.size(), "argument", a.spec.name);
    v.push_back(a.spec);
  }
  return v;
}

std::vector<ParamSpec> params(std::initializer_list<ParamAt> list) {
  std::vector<ParamSpec> v;
  for (const ParamAt& a : list) {
    check_at(a.index, v.size(), "parameter", a.spec.name);
    v.push_back(a.spec);
  }
  return v;
}

std::vector<const char*> results(std::initializer_list<ResultAt> list) {
  std::vector<const char*> v;
  for (const ResultAt& a : list) {
    check_at(a.index, v.size(), "result", a.name);
    v.push_back(a.name);
  }
  return v;
}

// ---- GEMM -------------------------------------------------------------------------------------
// a: op(A) (M,K) stored (M,K)/(K,M); b: op(B) (K,N) stored (K,N)/(N,K); either may be 2-D (shared
// by the batch) or 3-D (batch, ., .); c: (M,N) or (batch, M, N).
GemmArgs gemm_args(const OpCall& c, size_t ia, size_t ib, size_t ic, bool ta, bool tb) {
  const Tensor& A = c.req(ia);
  const Tensor& B = c.req(ib);
  const Tensor& C = c.req(ic);
  if (C.ndim() != 2 && C.ndim() != 3)
    c.fail("argument '%s' must be 2-D (M, N) or 3-D (batch, M, N), got %s", c.arg_name(ic), C.shape_str().c_str());
  int64_t batch = C.ndim() == 3 ? C.size(0) : 1;
  for (size_t i : {ia, ib}) {
    const Tensor& X = c.req(i);
    if (X.ndim() == 3 && C.ndim() == 2)
      c.fail("argument '%s' is batched %s but '%s' is not", c.arg_name(i), X.shape_str().c_str(), c.arg_name(ic));
    if (X.ndim() == 3 && X.size(0) != batch)
      c.fail("argument '%s' has batch %lld, '%s' has %lld", c.arg_name(i), static_cast<long long>(X.size(0)),
             c.arg_name(ic), static_cast<long long>(batch));
    if (X.ndim() != 2 && X.ndim() != 3)
      c.fail("argument '%s' must be 2-D or 3-D, got %s", c.arg_name(i), X.shape_str().c_str());
  }
  int64_t ar = A.size(-2), ac = A.size(-1), br = B.size(-2), bc = B.size(-1);
  int64_t M = ta ? ac : ar, K = ta ? ar : ac;
  int64_t Kb = tb ? bc : br, N = tb ? br : bc;
  if (K != Kb)
    c.fail("inner dimensions differ: op('%s') is (%lld, %lld) but op('%s') is (%lld, %lld)", c.arg_name(ia),
           static_cast<long long>(M), static_cast<long long>(K), c.arg_name(ib), static_cast<long long>(Kb),
           static_cast<long long>(N));
  if (C.size(-2) != M || C.size(-1) != N)
    c.fail("argument '%s' must be (%lld, %lld) per batch item, got %s", c.arg_name(ic), static_cast<long long>(M),
           static_cast<long long>(N), C.shape_str().c_str());
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

namespace gemm_op {
enum Arg : size_t { kA, kB, kC, kBias, kPreact };
enum Param : size_t { kTransA, kTransB, kAlpha, kBeta, kAct, kCompute };
}  // namespace gemm_op

void run_gemm(Context& ctx, OpCall& c) {
  using namespace gemm_op;
  GemmArgs g = gemm_args(c, kA, kB, kC, c.iparam(kTransA, 0, 1), c.iparam(kTransB, 0, 1));
  g.alpha = static_cast<float>(c.p[kAlpha]);
  g.beta = static_cast<float>(c.p[kBeta]);
  g.act = act_from(c, kAct);
  int64_t compute = c.iparam(kCompute, -1, 1);
  if (compute < 0)
    g.compute = (g.a_type == DType::BF16 || g.b_type == DType::BF16) ? DType::BF16 : DType::F32;
  else
    g.compute = compute == 1 ? DType::BF16 : DType::F32;
  if (c.has(kBias)) {
    c.expect_shape(kBias, {g.n});
    g.bias = c.f32(kBias);
  }
  if (c.has(kPreact)) {
    c.expect_shape(kPreact, c.req(kC).shape());
    g.preact = c.f32(kPreact);
  }
  ctx.ops().gemm(ctx.exec(), g);
}

OpSpec gemm_spec() {
  using namespace gemm_op;
  return {"gemm",
          "c = act(alpha * op(a) @ op(b) + beta * c + bias); preact keeps the pre-activation",
          args({arg(kA, "a", I, kF32BF16), arg(kB, "b", I, kF32BF16), arg(kC, "c", IO, kF32),
                arg(kBias, "bias", I, kF32, true), arg(kPreact, "preact", O, kF32, true)}),
          false,
          params({param(kTransA, "trans_a", 0), param(kTransB, "trans_b", 0), param(kAlpha, "alpha", 1),
                  param(kBeta, "beta", 0), param(kAct, "act", 0), param(kCompute, "compute", -1)}),
          {},
          run_gemm};
}

namespace gemm_backward_op {
enum Arg : size_t { kA, kB, kDc, kPreact, kDa, kDb, kDbias };
enum Param : size_t { kTransA, kTransB, kAlpha, kAct };
}  // namespace gemm_backward_op

void run_gemm_backward(Context& ctx, OpCall& c) {
  using namespace gemm_backward_op;
  GemmArgs g = gemm_args(c, kA, kB, kDc, c.iparam(kTransA, 0, 1), c.iparam(kTransB, 0, 1));
  g.alpha = static_cast<float>(c.p[kAlpha]);
  g.act = act_from(c, kAct);
  if (g.act != Act::None && !c.has(kPreact)) c.fail("argument 'preact' is required when act != 0");
  if (c.has(kPreact)) {
    c.expect_shape(kPreact, c.req(kDc).shape());
    g.preact = c.f32(kPreact);
  }
  if (c.has(kDa)) c.expect_shape(kDa, c.req(kA).shape());
  if (c.has(kDb)) c.expect_shape(kDb, c.req(kB).shape());
  if (c.has(kDbias)) c.expect_shape(kDbias, {g.n});
  ctx.ops().gemm_backward(ctx.exec(), g, c.f32(kDc), c.f32(kDa), c.f32(kDb), c.f32(kDbias));
}

OpSpec gemm_backward_spec() {
  using namespace gemm_backward_op;
  return {"gemm_backward",
          "da (=), db (+=), dbias (+=) of gemm",
          args({arg(kA, "a", I, kF32), arg(kB, "b", I, kF32), arg(kDc, "dc", I, kF32),
                arg(kPreact, "preact", I, kF32, true), arg(kDa, "da", O, kF32, true), arg(kDb, "db", IO, kF32, true),
                arg(kDbias, "dbias", IO, kF32, true)}),
          false,
          params({param(kTransA, "trans_a", 0), param(kTransB, "trans_b", 0), param(kAlpha, "alpha", 1),
                  param(kAct, "act", 0)}),
          {},
          run_gemm_backward};
}

// ---- LayerNorm --------------------------------------------------------------------------------
namespace layernorm_forward_op {
enum Arg : size_t { kInp, kWeight, kBias, kOut, kMean, kRstd };  // inp (..., C), mean/rstd (N)
enum Param : size_t { kEps };
}  // namespace layernorm_forward_op

void run_layernorm_forward(Context& ctx, OpCall& c) {
  using namespace layernorm_forward_op;
  const Tensor& x = c.req(kInp);
  if (x.ndim() < 1) c.fail("argument 'inp' must have at least one dimension");
  int64_t C = x.size(-1), N = rows_of(x);
  c.expect_shape(kWeight, {C});
  c.expect_shape(kBias, {C});
  c.expect_shape(kOut, x.shape());
  if (c.has(kMean)) c.expect_numel(kMean, N);
  if (c.has(kRstd)) c.expect_numel(kRstd, N);
  const double eps = c.p[kEps];
  if (!(eps > 0)) c.fail("parameter 'eps' must be > 0, got %g", eps);
  ctx.ops().layernorm_forward(ctx.exec(), c.f32(kOut), c.f32(kMean), c.f32(kRstd), c.f32(kInp), c.f32(kWeight),
                              c.f32(kBias), N, C, static_cast<float>(eps));
}

OpSpec layernorm_forward_spec() {
  using namespace layernorm_forward_op;
  return {"layernorm_forward",
          "out = (inp - mean) * rstd * weight + bias over the last dim",
          args({arg(kInp, "inp", I, kF32), arg(kWeight, "weight", I, kF32), arg(kBias, "bias", I, kF32),
                arg(kOut, "out", O, kF32), arg(kMean, "mean", O, kF32, true), arg(kRstd, "rstd", O, kF32, true)}),
          false,
          params({param(kEps, "eps", 1e-5)}),
          {},
          run_layernorm_forward};
}

namespace layernorm_backward_op {
enum Arg : size_t { kDout, kInp, kWeight, kMean, kRstd, kDinp, kDweight, kDbias };
}  // namespace layernorm_backward_op

void run_layernorm_backward(Context& ctx, OpCall& c) {
  using namespace layernorm_backward_op;
  const Tensor& x = c.req(kInp);
  int64_t C = x.size(-1), N = rows_of(x);
  c.expect_shape(kDout, x.shape());
  c.expect_shape(kWeight, {C});
  c.expect_numel(kMean, N);
  c.expect_numel(kRstd, N);
  if (c.has(kDinp)) c.expect_shape(kDinp, x.shape());
  if (c.has(kDweight)) c.expect_shape(kDweight, {C});
  if (c.has(kDbias)) c.expect_shape(kDbias, {C});
  ctx.ops().layernorm_backward(ctx.exec(), c.f32(kDinp), c.f32(kDweight), c.f32(kDbias), c.f32(kDout), c.f32(kInp),
                               c.f32(kWeight), c.f32(kMean), c.f32(kRstd), N, C);
}

OpSpec layernorm_backward_spec() {
  using namespace layernorm_backward_op;
  return {"layernorm_backward",
          "dinp (=), dweight (+=), dbias (+=)",
          args({arg(kDout, "dout", I, kF32), arg(kInp, "inp", I, kF32), arg(kWeight, "weight", I, kF32),
                arg(kMean, "mean", I, kF32), arg(kRstd, "rstd", I, kF32), arg(kDinp, "dinp", O, kF32, true),
                arg(kDweight, "dweight", IO, kF32, true), arg(kDbias, "dbias", IO, kF32, true)}),
          false,
          {},
          {},
          run_layernorm_backward};
}

// ---- elementwise ------------------------------------------------------------------------------
// gelu_forward, relu_forward: out = f(inp).
namespace unary_forward_op {
enum Arg : size_t { kInp, kOut };
}  // namespace unary_forward_op

OpSpec unary_forward_spec(const char* name, const char* doc,
                          void (*OpTable::*fn)(Exec&, float*, const float*, int64_t)) {
  using namespace unary_forward_op;
  return {name,
          doc,
          args({arg(kInp, "inp", I, kF32), arg(kOut, "out", O, kF32)}),
          false,
          {},
          {},
          [fn](Context& x, OpCall& c) {
            c.expect_shape(kOut, c.req(kInp).shape());
            (x.ops().*fn)(x.exec(), c.f32(kOut), c.f32(kInp), c.req(kInp).numel());
          }};
}

// gelu_backward, relu_backward: dinp (=) from the forward's inp.
namespace unary_backward_op {
enum Arg : size_t { kInp, kDout, kDinp };
}  // namespace unary_backward_op

OpSpec unary_backward_spec(const char* name, const char* doc,
                           void (*OpTable::*fn)(Exec&, float*, const float*, const float*, int64_t)) {
  using namespace unary_backward_op;
  return {name,
          doc,
          args({arg(kInp, "inp", I, kF32), arg(kDout, "dout", I, kF32), arg(kDinp, "dinp", O, kF32)}),
          false,
          {},
          {},
          [fn](Context& x, OpCall& c) {
            c.expect_shape(kDout, c.req(kInp).shape());
            c.expect_shape(kDinp, c.req(kInp).shape());
            (x.ops().*fn)(x.exec(), c.f32(kDinp), c.f32(kInp), c.f32(kDout), c.req(kInp).numel());
          }};
}

namespace add_forward_op {
enum Arg : size_t { kA, kB, kOut };
}  // namespace add_forward_op

OpSpec add_forward_spec() {
  using namespace add_forward_op;
  return {"add_forward",
          "out = a + b (residual)",
          args({arg(kA, "a", I, kF32), arg(kB, "b", I, kF32), arg(kOut, "out", O, kF32)}),
          false,
          {},
          {},
          [](Context& x, OpCall& c) {
            c.expect_shape(kB, c.req(kA).shape());
            c.expect_shape(kOut, c.req(kA).shape());
            x.ops().add_forward(x.exec(), c.f32(kOut), c.f32(kA), c.f32(kB), c.req(kA).numel());
          }};
}

namespace add_backward_op {
enum Arg : size_t { kDout, kDa, kDb };
}  // namespace add_backward_op

OpSpec add_backward_spec() {
  using namespace add_backward_op;
  return {"add_backward",
          "da = db = dout (written)",
          args({arg(kDout, "dout", I, kF32), arg(kDa, "da", O, kF32, true), arg(kDb, "db", O, kF32, true)}),
          false,
          {},
          {},
          [](Context& x, OpCall& c) {
            if (c.has(kDa)) c.expect_shape(kDa, c.req(kDout).shape());
            if (c.has(kDb)) c.expect_shape(kDb, c.req(kDout).shape());
            x.ops().add_backward(x.exec(), c.f32(kDa), c.f32(kDb), c.f32(kDout), c.req(kDout).numel());
          }};
}

namespace softmax_forward_op {
enum Arg : size_t { kInp, kOut };
}  // namespace softmax_forward_op

OpSpec softmax_forward_spec() {
  using namespace softmax_forward_op;
  return {"softmax_forward",
          "softmax over the last dim",
          args({arg(kInp, "inp", I, kF32), arg(kOut, "out", O, kF32)}),
          false,
          {},
          {},
          [](Context& x, OpCall& c) {
            const Tensor& t = c.req(kInp);
            if (t.ndim() < 1) c.fail("argument 'inp' must have at least one dimension");
            c.expect_shape(kOut, t.shape());
            x.ops().softmax_forward(x.exec(), c.f32(kOut), c.f32(kInp), rows_of(t), t.size(-1));
          }};
}

namespace softmax_backward_op {
enum Arg : size_t { kOut, kDout, kDinp };
}  // namespace softmax_backward_op

OpSpec softmax_backward_spec() {
  using namespace softmax_backward_op;
  return {"softmax_backward",
          "dinp (=) from the forward's out",
          args({arg(kOut, "out", I, kF32), arg(kDout, "dout", I, kF32), arg(kDinp, "dinp", O, kF32)}),
          false,
          {},
          {},
          [](Context& x, OpCall& c) {
            const Tensor& t = c.req(kOut);
            if (t.ndim() < 1) c.fail("argument 'out' must have at least one dimension");
            c.expect_shape(kDout, t.shape());
            c.expect_shape(kDinp, t.shape());
            x.ops().softmax_backward(x.exec(), c.f32(kDinp), c.f32(kOut), c.f32(kDout), rows_of(t), t.size(-1));
          }};
}

// ---- attention --------------------------------------------------------------------------------
// q (B, Tq, C); k, v (B, Tk, C) or (Tk, C) shared by the batch; mask (B, Tk) or (Tk) u8.
AttnArgs attn_args(const OpCall& c, size_t iq, size_t ik, size_t iv, size_t io, size_t imask, size_t i_nh,
                   size_t i_scale) {
  const Tensor& q = c.req(iq);
  const Tensor& k = c.req(ik);
  c.req(iv);
  if (q.ndim() != 3) c.fail("argument 'q' must be (B, Tq, C), got %s", q.shape_str().c_str());
  int64_t B = q.size(0), Tq = q.size(1), C = q.size(2);
  if (k.ndim() != 2 && k.ndim() != 3)
    c.fail("argument 'k' must be (B, Tk, C) or (Tk, C), got %s", k.shape_str().c_str());
  int64_t Tk = k.size(-2);
  if (k.ndim() == 3)
    c.expect_shape(ik, {B, Tk, C});
  else
    c.expect_shape(ik, {Tk, C});
  c.expect_shape(iv, k.shape());
  c.expect_shape(io, q.shape());
  int64_t NH = c.iparam(i_nh, 1, 4096);
  if (C % NH != 0)
    c.fail("parameter 'num_heads' (%lld) must divide the channels of 'q' (%lld)", static_cast<long long>(NH),
           static_cast<long long>(C));
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
    if (m.ndim() == 2)
      c.expect_shape(imask, {B, Tk});
    else
      c.expect_shape(imask, {Tk});
    a.key_mask = m.ptr<uint8_t>();
    a.mask_bs = m.ndim() == 2 ? Tk : 0;
  }
  double s = c.p[i_scale];
  a.scale = s == 0 ? static_cast<float>(1.0 / std::sqrt(static_cast<double>(a.HS))) : static_cast<float>(s);
  return a;
}

namespace attention_forward_op {
enum Arg : size_t { kQ, kK, kV, kOut, kMask, kLse, kProbs };
enum Param : size_t { kNumHeads, kScale };  // scale 0 = 1/sqrt(HS)
}  // namespace attention_forward_op

void run_attention_forward(Context& ctx, OpCall& c) {
  using namespace attention_forward_op;
  AttnArgs a = attn_args(c, kQ, kK, kV, kOut, kMask, kNumHeads, kScale);
  if (c.has(kLse)) c.expect_shape(kLse, {a.B, a.NH, a.Tq});
  if (c.has(kProbs)) c.expect_shape(kProbs, {a.B, a.NH, a.Tq, a.Tk});
  a.lse = c.f32(kLse);
  a.probs = c.f32(kProbs);
  ctx.ops().attention_forward(ctx.exec(), a);
}

OpSpec attention_forward_spec() {
  using namespace attention_forward_op;
  return {
      "attention_forward",
      "multi-head scaled dot-product attention; k/v may be (Tk, C) shared by the batch",
      args({arg(kQ, "q", I, kF32), arg(kK, "k", I, kF32), arg(kV, "v", I, kF32), arg(kOut, "out", O, kF32),
            arg(kMask, "mask", I, kU8, true), arg(kLse, "lse", O, kF32, true), arg(kProbs, "probs", O, kF32, true)}),
      false,
      params({param(kNumHeads, "num_heads", 1), param(kScale, "scale", 0)}),
      {},
      run_attention_forward};
}

namespace attention_backward_op {
enum Arg : size_t { kQ, kK, kV, kOut, kLse, kDout, kDq, kDk, kDv, kMask };
enum Param : size_t { kNumHeads, kScale };
}  // namespace attention_backward_op

void run_attention_backward(Context& ctx, OpCall& c) {
  using namespace attention_backward_op;
  AttnArgs a = attn_args(c, kQ, kK, kV, kOut, kMask, kNumHeads, kScale);
  c.expect_shape(kLse, {a.B, a.NH, a.Tq});
  a.lse = c.f32(kLse);
  c.expect_shape(kDout, c.req(kOut).shape());
  AttnGrads g;
  g.dout = c.f32(kDout);
  if (c.has(kDq)) c.expect_shape(kDq, c.req(kQ).shape());
  if (c.has(kDk)) c.expect_shape(kDk, c.req(kK).shape());
  if (c.has(kDv)) c.expect_shape(kDv, c.req(kV).shape());
  g.dq = c.f32(kDq);
  g.dk = c.f32(kDk);
  g.dv = c.f32(kDv);
  ctx.ops().attention_backward(ctx.exec(), a, g);
}

OpSpec attention_backward_spec() {
  using namespace attention_backward_op;
  return {"attention_backward",
          "dq, dk, dv accumulate (+=)",
          args({arg(kQ, "q", I, kF32), arg(kK, "k", I, kF32), arg(kV, "v", I, kF32), arg(kOut, "out", I, kF32),
                arg(kLse, "lse", I, kF32), arg(kDout, "dout", I, kF32), arg(kDq, "dq", IO, kF32, true),
                arg(kDk, "dk", IO, kF32, true), arg(kDv, "dv", IO, kF32, true), arg(kMask, "mask", I, kU8, true)}),
          false,
          params({param(kNumHeads, "num_heads", 1), param(kScale, "scale", 0)}),
          {},
          run_attention_backward};
}

// ---- embedding / patch embedding ----------------------------------------------------------------
namespace embedding_forward_op {
enum Arg : size_t { kIds, kTable, kOut };  // ids (...), table (V, C), out (..., C)
}  // namespace embedding_forward_op

void run_embedding_forward(Context& ctx, OpCall& c) {
  using namespace embedding_forward_op;
  const Tensor& ids = c.req(kIds);
  const Tensor& tab = c.req(kTable);
  if (tab.ndim() != 2) c.fail("argument 'table' must be (V, C), got %s", tab.shape_str().c_str());
  std::vector<int64_t> os = ids.shape();
  os.push_back(tab.size(1));
  c.expect_shape(kOut, os);
  ctx.ops().embedding_forward(ctx.exec(), c.f32(kOut), c.i32(kIds), c.f32(kTable), ids.numel(), tab.size(0),
                              tab.size(1));
}

OpSpec embedding_forward_spec() {
  using namespace embedding_forward_op;
  return {"embedding_forward",
          "out[i] = table[ids[i]]",
          args({arg(kIds, "ids", I, kI32), arg(kTable, "table", I, kF32), arg(kOut, "out", O, kF32)}),
          false,
          {},
          {},
          run_embedding_forward};
}

namespace embedding_backward_op {
enum Arg : size_t { kDout, kIds, kDtable };  // dout (..., C), ids (...), dtable (V, C)
}  // namespace embedding_backward_op

void run_embedding_backward(Context& ctx, OpCall& c) {
  using namespace embedding_backward_op;
  const Tensor& ids = c.req(kIds);
  const Tensor& tab = c.req(kDtable);
  if (tab.ndim() != 2) c.fail("argument 'dtable' must be (V, C), got %s", tab.shape_str().c_str());
  std::vector<int64_t> os = ids.shape();
  os.push_back(tab.size(1));
  c.expect_shape(kDout, os);
  ctx.ops().embedding_backward(ctx.exec(), c.f32(kDtable), c.f32(kDout), c.i32(kIds), ids.numel(), tab.size(0),
                               tab.size(1));
}

OpSpec embedding_backward_spec() {
  using namespace embedding_backward_op;
  return {"embedding_backward",
          "dtable[ids[i]] += dout[i]",
          args({arg(kDout, "dout", I, kF32), arg(kIds, "ids", I, kI32), arg(kDtable, "dtable", IO, kF32)}),
          false,
          {},
          {},
          run_embedding_backward};
}

struct PatchGeom {
  int64_t B, Cin, H, W, OC, ps;
};

PatchGeom patch_geom(const OpCall& c, size_t iimg, size_t iw, size_t iout, size_t ibias) {
  const Tensor& img = c.req(iimg);
  const Tensor& w = c.req(iw);
  if (img.ndim() != 4)
    c.fail("argument '%s' must be (B, Cin, H, W), got %s", c.arg_name(iimg), img.shape_str().c_str());
  if (w.ndim() != 4 || w.size(2) != w.size(3) || w.size(1) != img.size(1))
    c.fail("argument '%s' must be (OC, %lld, ps, ps), got %s", c.arg_name(iw), static_cast<long long>(img.size(1)),
           w.shape_str().c_str());
  PatchGeom g{img.size(0), img.size(1), img.size(2), img.size(3), w.size(0), w.size(2)};
  if (g.ps < 1 || g.H % g.ps || g.W % g.ps)
    c.fail("image %lldx%lld is not a multiple of the patch size %lld", static_cast<long long>(g.H),
           static_cast<long long>(g.W), static_cast<long long>(g.ps));
  c.expect_shape(iout, {g.B, (g.H / g.ps) * (g.W / g.ps), g.OC});
  if (c.has(ibias)) c.expect_shape(ibias, {g.OC});
  return g;
}

namespace patch_embed_forward_op {
// img (B, Cin, H, W), weight (OC, Cin, ps, ps), bias (OC), out (B, P, OC)
enum Arg : size_t { kImg, kWeight, kBias, kOut };
}  // namespace patch_embed_forward_op

void run_patch_embed_forward(Context& ctx, OpCall& c) {
  using namespace patch_embed_forward_op;
  PatchGeom g = patch_geom(c, kImg, kWeight, kOut, kBias);
  ctx.ops().patch_embed_forward(ctx.exec(), c.f32(kOut), c.f32(kImg), c.f32(kWeight), c.f32(kBias), g.B, g.Cin, g.H,
                                g.W, g.OC, g.ps);
}

OpSpec patch_embed_forward_spec() {
  using namespace patch_embed_forward_op;
  return {"patch_embed_forward",
          "conv ps x ps stride ps -> (B, P, OC) patches row-major",
          args({arg(kImg, "img", I, kF32), arg(kWeight, "weight", I, kF32), arg(kBias, "bias", I, kF32, true),
                arg(kOut, "out", O, kF32)}),
          false,
          {},
          {},
          run_patch_embed_forward};
}

namespace patch_embed_backward_op {
enum Arg : size_t { kDout, kImg, kWeight, kDweight, kDbias, kDimg };  // dout (B, P, OC)
}  // namespace patch_embed_backward_op

void run_patch_embed_backward(Context& ctx, OpCall& c) {
  using namespace patch_embed_backward_op;
  PatchGeom g = patch_geom(c, kImg, kWeight, kDout, kDbias);
  c.expect_shape(kDweight, c.req(kWeight).shape());
  if (c.has(kDimg)) c.expect_shape(kDimg, c.req(kImg).shape());
  ctx.ops().patch_embed_backward(ctx.exec(), c.f32(kDimg), c.f32(kDweight), c.f32(kDbias), c.f32(kDout), c.f32(kImg),
                                 c.f32(kWeight), g.B, g.Cin, g.H, g.W, g.OC, g.ps);
}

OpSpec patch_embed_backward_spec() {
  using namespace patch_embed_backward_op;
  return {"patch_embed_backward",
          "dweight (+=), dbias (+=), dimg (=)",
          args({arg(kDout, "dout", I, kF32), arg(kImg, "img", I, kF32), arg(kWeight, "weight", I, kF32),
                arg(kDweight, "dweight", IO, kF32), arg(kDbias, "dbias", IO, kF32, true),
                arg(kDimg, "dimg", O, kF32, true)}),
          false,
          {},
          {},
          run_patch_embed_backward};
}

// ---- softmax cross-entropy ----------------------------------------------------------------------
void xent_shapes(const OpCall& c, size_t ilog, size_t itgt, size_t iloss, size_t i_axis, int64_t* R, int64_t* Cc,
                 int* axis) {
  const Tensor& x = c.req(ilog);
  if (x.ndim() != 2) c.fail("argument 'logits' must be (R, Cc), got %s", x.shape_str().c_str());
  *R = x.size(0);
  *Cc = x.size(1);
  *axis = static_cast<int>(c.iparam(i_axis, 0, 1));
  int64_t count = *axis == 1 ? *R : *Cc;
  c.expect_shape(itgt, {count});
  c.expect_shape(iloss, {count});
}

namespace xent_forward_op {
enum Arg : size_t { kLogits, kTargets, kLosses };  // logits (R, Cc), targets, losses (R | Cc)
enum Param : size_t { kAxis };
enum Result : size_t { kMeanLoss };
}  // namespace xent_forward_op

void run_xent_forward(Context& ctx, OpCall& c) {
  using namespace xent_forward_op;
  int64_t R, Cc;
  int axis;
  xent_shapes(c, kLogits, kTargets, kLosses, kAxis, &R, &Cc, &axis);
  ctx.ops().softmax_xent_forward(ctx.exec(), c.f32(kLosses), c.f32(kLogits), c.i32(kTargets), R, Cc, axis);
  int64_t count = axis == 1 ? R : Cc;
  std::vector<float> host(static_cast<size_t>(count));
  ctx.download(c.req(kLosses), host.data(), host.size() * sizeof(float));
  double s = 0;
  for (float v : host) s += v;
  c.results[kMeanLoss] = count ? s / static_cast<double>(count) : 0.0;
}

OpSpec xent_forward_spec() {
  using namespace xent_forward_op;
  return {"softmax_xent_forward",
          "per-distribution cross-entropy; axis 1: rows vs targets, axis 0: columns",
          args({arg(kLogits, "logits", I, kF32), arg(kTargets, "targets", I, kI32), arg(kLosses, "losses", O, kF32)}),
          false,
          params({param(kAxis, "axis", 1)}),
          results({{kMeanLoss, "mean_loss"}}),
          run_xent_forward};
}

namespace xent_backward_op {
enum Arg : size_t { kLogits, kTargets, kDlosses, kDlogits };
enum Param : size_t { kAxis };
}  // namespace xent_backward_op

void run_xent_backward(Context& ctx, OpCall& c) {
  using namespace xent_backward_op;
  int64_t R, Cc;
  int axis;
  xent_shapes(c, kLogits, kTargets, kDlosses, kAxis, &R, &Cc, &axis);
  c.expect_shape(kDlogits, c.req(kLogits).shape());
  ctx.ops().softmax_xent_backward(ctx.exec(), c.f32(kDlogits), c.f32(kDlosses), c.f32(kLogits), c.i32(kTargets), R, Cc,
                                  axis);
}

OpSpec xent_backward_spec() {
  using namespace xent_backward_op;
  return {"softmax_xent_backward",
          "dlogits (=)",
          args({arg(kLogits, "logits", I, kF32), arg(kTargets, "targets", I, kI32), arg(kDlosses, "dlosses", I, kF32),
                arg(kDlogits, "dlogits", O, kF32)}),
          false,
          params({param(kAxis, "axis", 1)}),
          {},
          run_xent_backward};
}

// ---- optimizer and regularisation ---------------------------------------------------------------
namespace adam_op {
enum Arg : size_t { kParam, kGrad, kM, kV };
enum Param : size_t { kLr, kBeta1, kBeta2, kEps, kWeightDecay, kStep, kDecoupled, kGradScale };
}  // namespace adam_op

void run_adam(Context& ctx, OpCall& c) {
  using namespace adam_op;
  const Tensor& p = c.req(kParam);
  for (size_t i : {kGrad, kM, kV}) c.expect_shape(i, p.shape());
  AdamArgs a;
  a.lr = static_cast<float>(c.p[kLr]);
  a.beta1 = static_cast<float>(c.p[kBeta1]);
  a.beta2 = static_cast<float>(c.p[kBeta2]);
  a.eps = static_cast<float>(c.p[kEps]);
  a.weight_decay = static_cast<float>(c.p[kWeightDecay]);
  a.step = c.iparam(kStep, 1, int64_t{1} << 52);
  a.decoupled = c.iparam(kDecoupled, 0, 1) != 0;
  a.grad_scale = static_cast<float>(c.p[kGradScale]);
  if (!(a.beta1 >= 0 && a.beta1 < 1)) c.fail("parameter 'beta1' must be in [0, 1), got %g", c.p[kBeta1]);
  if (!(a.beta2 >= 0 && a.beta2 < 1)) c.fail("parameter 'beta2' must be in [0, 1), got %g", c.p[kBeta2]);
  if (!(a.eps > 0)) c.fail("parameter 'eps' must be > 0, got %g", c.p[kEps]);
  if (!(a.lr >= 0)) c.fail("parameter 'lr' must be >= 0, got %g", c.p[kLr]);
  ctx.ops().adam_update(ctx.exec(), c.f32(kParam), c.f32(kGrad), c.f32(kM), c.f32(kV), p.numel(), a);
}

OpSpec adam_spec() {
  using namespace adam_op;
  return {"adam_update",
          "PyTorch Adam (L2 in gradient) or AdamW (decoupled = 1)",
          args({arg(kParam, "param", IO, kF32), arg(kGrad, "grad", I, kF32), arg(kM, "m", IO, kF32),
                arg(kV, "v", IO, kF32)}),
          false,
          params({param(kLr, "lr", 1e-3), param(kBeta1, "beta1", 0.9), param(kBeta2, "beta2", 0.999),
                  param(kEps, "eps", 1e-8), param(kWeightDecay, "weight_decay", 0), param(kStep, "step", 1),
                  param(kDecoupled, "decoupled", 0), param(kGradScale, "grad_scale", 1)}),
          {},
          run_adam};
}

namespace sum_squares_op {
enum Arg : size_t { kX };
enum Result : size_t { kSum };
}  // namespace sum_squares_op

OpSpec sum_squares_spec() {
  using namespace sum_squares_op;
  return {"sum_squares",
          "sum of x^2",
          args({arg(kX, "x", I, kF32)}),
          false,
          {},
          results({{kSum, "sum"}}),
          [](Context& x, OpCall& c) { c.results[kSum] = x.ops().sum_squares(x.exec(), c.f32(kX), c.req(kX).numel()); }};
}

namespace scale_op {
enum Arg : size_t { kX };
enum Param : size_t { kS };
}  // namespace scale_op

OpSpec scale_spec() {
  using namespace scale_op;
  return {"scale",
          "x *= s",
          args({arg(kX, "x", IO, kF32)}),
          false,
          params({param(kS, "s", 1)}),
          {},
          [](Context& x, OpCall& c) {
            x.ops().scale(x.exec(), c.f32(kX), c.req(kX).numel(), static_cast<float>(c.p[kS]));
          }};
}

namespace clip_grad_norm_op {
enum Arg : size_t { kGrads };  // variadic: every tensor is one of 'grads'
enum Param : size_t { kMaxNorm };
enum Result : size_t { kTotalNorm };  // the norm before clipping
}  // namespace clip_grad_norm_op

void run_clip_grad_norm(Context& ctx, OpCall& c) {
  // PyTorch clip_grad_norm_: coef = max_norm / (norm + 1e-6), applied only when coef < 1.
  using namespace clip_grad_norm_op;
  double max_norm = c.p[kMaxNorm];
  if (!(max_norm > 0)) c.fail("parameter 'max_norm' must be > 0, got %g", max_norm);
  double ss = 0;
  for (size_t i = 0; i < c.t.size(); ++i) ss += ctx.ops().sum_squares(ctx.exec(), c.f32(i), c.req(i).numel());
  double norm = std::sqrt(ss);
  double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0)
    for (size_t i = 0; i < c.t.size(); ++i)
      ctx.ops().scale(ctx.exec(), c.f32(i), c.req(i).numel(), static_cast<float>(coef));
  c.results[kTotalNorm] = norm;
}

OpSpec clip_grad_norm_spec() {
  using namespace clip_grad_norm_op;
  return {"clip_grad_norm",
          "scale all grads so their global L2 norm <= max_norm",
          args({arg(kGrads, "grads", IO, kF32)}),
          true,
          params({param(kMaxNorm, "max_norm", 1)}),
          results({{kTotalNorm, "total_norm"}}),
          run_clip_grad_norm};
}

void check_p(const OpCall& c, size_t i) {
  if (!(c.p[i] >= 0 && c.p[i] <= 1)) c.fail("parameter 'p' must be in [0, 1], got %g", c.p[i]);
}

uint64_t u64param(const OpCall& c, size_t i) { return static_cast<uint64_t>(c.iparam(i, 0, int64_t{1} << 53)); }

namespace dropout_forward_op {
enum Arg : size_t { kInp, kOut };
enum Param : size_t { kP, kSeed, kOffset };
}  // namespace dropout_forward_op

OpSpec dropout_forward_spec() {
  using namespace dropout_forward_op;
  return {"dropout_forward",
          "inverted dropout with a counter-based RNG",
          args({arg(kInp, "inp", I, kF32), arg(kOut, "out", O, kF32)}),
          false,
          params({param(kP, "p", 0.1), param(kSeed, "seed", 0), param(kOffset, "offset", 0)}),
          {},
          [](Context& x, OpCall& c) {
            check_p(c, kP);
            c.expect_shape(kOut, c.req(kInp).shape());
            x.ops().dropout_forward(x.exec(), c.f32(kOut), c.f32(kInp), c.req(kInp).numel(),
                                    static_cast<float>(c.p[kP]), u64param(c, kSeed), u64param(c, kOffset));
          }};
}

namespace dropout_backward_op {
enum Arg : size_t { kDout, kDinp };
enum Param : size_t { kP, kSeed, kOffset };
}  // namespace dropout_backward_op

OpSpec dropout_backward_spec() {
  using namespace dropout_backward_op;
  return {"dropout_backward",
          "dinp (=) with the forward's mask",
          args({arg(kDout, "dout", I, kF32), arg(kDinp, "dinp", O, kF32)}),
          false,
          params({param(kP, "p", 0.1), param(kSeed, "seed", 0), param(kOffset, "offset", 0)}),
          {},
          [](Context& x, OpCall& c) {
            check_p(c, kP);
            c.expect_shape(kDinp, c.req(kDout).shape());
            x.ops().dropout_backward(x.exec(), c.f32(kDinp), c.f32(kDout), c.req(kDout).numel(),
                                     static_cast<float>(c.p[kP]), u64param(c, kSeed), u64param(c, kOffset));
          }};
}

namespace convert_op {
enum Arg : size_t { kSrc, kDst };
}  // namespace convert_op

OpSpec convert_spec() {
  using namespace convert_op;
  return {"convert",
          "dst = src converted to dst's dtype",
          args({arg(kSrc, "src", I, kAll), arg(kDst, "dst", O, kAll)}),
          false,
          {},
          {},
          [](Context& x, OpCall& c) {
            c.expect_shape(kDst, c.req(kSrc).shape());
            x.ops().convert(x.exec(), c.req(kDst).data(), c.req(kDst).dtype(), c.req(kSrc).data(), c.req(kSrc).dtype(),
                            c.req(kSrc).numel());
          }};
}

void register_all(std::vector<OpSpec>& r) {
  r.push_back(gemm_spec());
  r.push_back(gemm_backward_spec());
  r.push_back(layernorm_forward_spec());
  r.push_back(layernorm_backward_spec());
  r.push_back(unary_forward_spec("gelu_forward", "exact GELU 0.5 x (1 + erf(x / sqrt 2))", &OpTable::gelu_forward));
  r.push_back(unary_backward_spec("gelu_backward", "dinp (=)", &OpTable::gelu_backward));
  r.push_back(unary_forward_spec("relu_forward", "max(x, 0)", &OpTable::relu_forward));
  r.push_back(unary_backward_spec("relu_backward", "dinp (=)", &OpTable::relu_backward));
  r.push_back(add_forward_spec());
  r.push_back(add_backward_spec());
  r.push_back(softmax_forward_spec());
  r.push_back(softmax_backward_spec());
  r.push_back(attention_forward_spec());
  r.push_back(attention_backward_spec());
  r.push_back(embedding_forward_spec());
  r.push_back(embedding_backward_spec());
  r.push_back(patch_embed_forward_spec());
  r.push_back(patch_embed_backward_spec());
  r.push_back(xent_forward_spec());
  r.push_back(xent_backward_spec());
  r.push_back(adam_spec());
  r.push_back(sum_squares_spec());
  r.push_back(scale_spec());
  r.push_back(clip_grad_norm_spec());
  r.push_back(dropout_forward_spec());
  r.push_back(dropout_backward_spec());
  r.push_back(convert_spec());
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
  if (x.dtype() != dt) fail("argument '%s' must be %s, got %s", arg_name(i), dtype_name(dt), dtype_name(x.dtype()));
}

int64_t OpCall::iparam(size_t i, int64_t lo, int64_t hi) const {
  double v = p[i];
  if (!(v == std::floor(v)) || v < static_cast<double>(lo) || v > static_cast<double>(hi))
    fail("parameter '%s' must be an integer in [%lld, %lld], got %g", spec->params[i].name, static_cast<long long>(lo),
         static_cast<long long>(hi), v);
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
    if (x.device() != ctx.device()) c.fail("argument '%s' lives on another device than the context", a.name);
  }
  if (params.size() > spec->params.size()) c.fail("takes %zu parameters, got %zu", spec->params.size(), params.size());
  c.p.resize(spec->params.size());
  for (size_t i = 0; i < spec->params.size(); ++i) {
    c.p[i] = i < params.size() ? params[i] : spec->params[i].def;
    if (!std::isfinite(c.p[i])) c.fail("parameter '%s' must be a finite number, got %g", spec->params[i].name, c.p[i]);
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
    j += "{\"name\":" + quote(s.name) + ",\"doc\":" + quote(s.doc) +
         ",\"variadic\":" + (s.variadic ? "true" : "false") + ",\"args\":[";
    for (size_t i = 0; i < s.args.size(); ++i) {
      const ArgSpec& a = s.args[i];
      j += i ? "," : "";
      j += "{\"name\":" + quote(a.name) + ",\"role\":\"" +
           (a.role == Role::In    ? "in"
            : a.role == Role::Out ? "out"
                                  : "inout") +
           "\",\"dtypes\":[";
      for (size_t k = 0; k < a.dtypes.size(); ++k) j += std::string(k ? "," : "") + quote(dtype_name(a.dtypes[k]));
      j += std::string("],\"optional\":") + (a.optional ? "true" : "false") + "}";
    }
    j += "],\"params\":[";
    for (size_t i = 0; i < s.params.size(); ++i) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.17g", s.params[i].def);
      j += std::string(i ? "," : "") + "{\"name\":" + quote(s.params[i].name) + ",\"default\":" + buf + "}";
    }
    j += "],\"results\":[";
    for (size_t i = 0; i < s.results.size(); ++i) j += std::string(i ? "," : "") + quote(s.results[i]);
    j += "]}";
  }
  return j + "]";
}

}  // namespace carzero
