// test_nn.cpp: cases for layernorm, gelu, relu, add, softmax (forward, backward, gradient checks).
// Dimension letters: N rows, C channels, n elements.
#include <cmath>

#include "harness.h"
#include "reference.h"

namespace cztest {

namespace {

constexpr double kTolF32 = 1e-7;   // fp32 op vs float64 reference (NMSE)
constexpr double kTolGrad = 1e-6;  // fp32 backward vs float64 finite differences (NMSE)

// Known prefill for += gradients: the analytic gradient is (after - before).
std::vector<float> prefill(Rng& r, int64_t n) { return r.uniform_vec(n, -1.0, 1.0); }

std::vector<double> minus(const std::vector<float>& after, const std::vector<float>& before) {
  std::vector<double> d(after.size());
  for (size_t i = 0; i < after.size(); ++i) d[i] = static_cast<double>(after[i]) - before[i];
  return d;
}

void layernorm_case(Ctx& c, int64_t N, int64_t C, double offset, bool affine_null_dbias) {
  const float eps = 1e-6f;
  auto x = c.rng.normal_vec(N * C, 1.0, offset);
  auto w = c.rng.normal_vec(C, 0.5, 1.0);
  auto b = c.rng.normal_vec(C, 0.5);
  float* dx = c.in("inp", x);
  float* dw = c.in("weight", w);
  float* db = c.in("bias", b);
  float* out = c.out_nan("out", N * C);
  float* mean = c.out_nan("mean", N);
  float* rstd = c.out_nan("rstd", N);
  c.ops().layernorm_forward(c.ex(), out, mean, rstd, dx, dw, db, N, C, eps);
  c.check("layernorm_forward");
  std::vector<double> X = to_f64(x), W = to_f64(w), Bb = to_f64(b), ro, rm, rr;
  ref::layernorm(X, W, Bb, N, C, eps, ro, &rm, &rr);
  c.expect_close("out", c.get(out, N * C), ro, kTolF32);
  c.expect_close("mean", c.get(mean, N), rm, kTolF32);
  c.expect_close("rstd", c.get(rstd, N), rr, kTolF32);

  // backward: dinp (=, NaN prefill), dweight/dbias (+=, known prefill)
  auto R = c.rng.normal_vec(N * C);
  float* dout = c.in("dout", R);
  float* dinp = c.out_nan("dinp", N * C);
  auto gw0 = prefill(c.rng, C), gb0 = prefill(c.rng, C);
  float* dweight = c.out("dweight", gw0);
  float* dbias = affine_null_dbias ? nullptr : c.out("dbias", gb0);
  c.ops().layernorm_backward(c.ex(), dinp, dweight, dbias, dout, dx, dw, mean, rstd, N, C);
  c.check("layernorm_backward");
  std::vector<double> R64 = to_f64(R);
  auto loss = [&] {
    std::vector<double> o;
    ref::layernorm(X, W, Bb, N, C, eps, o, nullptr, nullptr);
    return dot(o, R64);
  };
  std::vector<Ctx::GradInput> gi = {{"dinp", &X, to_f64(c.get(dinp, N * C)), 10},
                                    {"dweight", &W, minus(c.get(dweight, C), gw0), 10}};
  if (dbias) gi.push_back({"dbias", &Bb, minus(c.get(dbias, C), gb0), 10});
  c.check_grads(loss, gi, kTolGrad);
}

// add_layernorm_forward: sum_mode 0 = sum_out null, 1 = separate buffer, 2 = in place (sum_out
// aliases a); b null tests the plain LayerNorm with a bf16/f32 output (and sum_out as a copy).
void add_layernorm_case(Ctx& c, int64_t N, int64_t C, bool with_b, int sum_mode, bool bf16, double offset) {
  const float eps = 1e-5f;
  auto x = c.rng.normal_vec(N * C, 1.0, offset);
  auto y = c.rng.normal_vec(N * C, 0.5);
  auto w = c.rng.normal_vec(C, 0.5, 1.0);
  auto bb = c.rng.normal_vec(C, 0.5);
  float* da = sum_mode == 2 ? c.out("a", x) : c.in("a", x);
  float* db = with_b ? c.in("b", y) : nullptr;
  float* sum = sum_mode == 1 ? c.out_nan("sum", N * C) : sum_mode == 2 ? da : nullptr;
  void* out;
  if (bf16)
    out = c.out("out", std::vector<uint16_t>(N * C, carzero::f32_to_bf16(NAN)));
  else
    out = c.out_nan("out", N * C);
  float* mean = c.out_nan("mean", N);
  float* rstd = c.out_nan("rstd", N);
  c.ops().add_layernorm_forward(c.ex(), sum, out, bf16 ? DType::BF16 : DType::F32, mean, rstd, da, db,
                                c.in("weight", w), c.in("bias", bb), N, C, eps);
  c.check("add_layernorm_forward");
  std::vector<double> S(N * C), ro, rm, rr;
  for (int64_t i = 0; i < N * C; ++i)  // the sum in fp32, as the op forms it
    S[i] = with_b ? static_cast<double>(x[i] + y[i]) : x[i];
  ref::layernorm(S, to_f64(w), to_f64(bb), N, C, eps, ro, &rm, &rr);
  std::vector<float> o(N * C);
  if (bf16) {
    auto o16 = c.get(static_cast<const uint16_t*>(out), N * C);
    for (int64_t i = 0; i < N * C; ++i) o[i] = carzero::bf16_to_f32(o16[i]);
  } else {
    o = c.get(static_cast<const float*>(out), N * C);
  }
  c.expect_close("out", o, ro, bf16 ? 1e-5 : kTolF32);
  c.expect_close("mean", c.get(mean, N), rm, kTolF32);
  c.expect_close("rstd", c.get(rstd, N), rr, kTolF32);
  if (sum) c.expect_close("sum", c.get(sum, N * C), S, 1e-14);
}

// copy2d: dst rows (pitch dp, padding columns must keep their sentinel) = src rows (+ add rows);
// a pitch of 0 broadcasts one row.
void copy2d_case(Ctx& c, int64_t W, int64_t H, int64_t dp, int64_t sp, bool with_add, int64_t ap) {
  auto src = c.rng.normal_vec(sp ? sp * H : W);
  auto add = c.rng.normal_vec(ap ? ap * H : W);
  std::vector<float> dst0(static_cast<size_t>(dp * H), 0.25f);
  float* d = c.out("dst", dst0);
  c.ops().copy2d(c.ex(), d, dp, c.in("src", src), sp, with_add ? c.in("add", add) : nullptr, ap, W, H);
  c.check("copy2d");
  std::vector<double> ref(dst0.begin(), dst0.end());
  for (int64_t r = 0; r < H; ++r)
    for (int64_t k = 0; k < W; ++k)
      ref[r * dp + k] = static_cast<double>(src[r * sp + k] + (with_add ? add[r * ap + k] : 0.0f));
  c.expect_close("dst", c.get(d, dp * H), ref, 1e-14);
}

// Elementwise unary op: kind 0 = gelu, 1 = relu.
void unary_case(Ctx& c, int kind, int64_t n) {
  std::vector<float> x = c.rng.normal_vec(n, 3.0);
  if (kind == 1)  // keep relu inputs away from the kink so finite differences are valid
    for (auto& v : x) v = v >= 0 ? v + 0.01f : v - 0.01f;
  float* dx = c.in("inp", x);
  float* out = c.out_nan("out", n);
  if (kind == 0)
    c.ops().gelu_forward(c.ex(), out, dx, n);
  else
    c.ops().relu_forward(c.ex(), out, dx, n);
  c.check("forward");
  std::vector<double> X = to_f64(x);
  auto fwd = [&](const std::vector<double>& in) {
    std::vector<double> o(in.size());
    for (size_t i = 0; i < in.size(); ++i) o[i] = kind == 0 ? ref::gelu(in[i]) : (in[i] > 0 ? in[i] : 0);
    return o;
  };
  c.expect_close("out", c.get(out, n), fwd(X), kTolF32);
  auto R = c.rng.normal_vec(n);
  float* dout = c.in("dout", R);
  float* dinp = c.out_nan("dinp", n);
  if (kind == 0)
    c.ops().gelu_backward(c.ex(), dinp, dx, dout, n);
  else
    c.ops().relu_backward(c.ex(), dinp, dx, dout, n);
  c.check("backward");
  std::vector<double> R64 = to_f64(R);
  c.check_grads([&] { return dot(fwd(X), R64); }, {{"dinp", &X, to_f64(c.get(dinp, n)), 16}}, kTolGrad);
}

void add_case(Ctx& c, int64_t n, bool only_da) {
  auto a = c.rng.normal_vec(n), b = c.rng.normal_vec(n);
  float* da_in = c.in("a", a);
  float* db_in = c.in("b", b);
  float* out = c.out_nan("out", n);
  c.ops().add_forward(c.ex(), out, da_in, db_in, n);
  c.check("add_forward");
  std::vector<double> A = to_f64(a), B = to_f64(b);
  auto fwd = [&] {
    std::vector<double> o(n);
    for (int64_t i = 0; i < n; ++i) o[i] = A[i] + B[i];
    return o;
  };
  c.expect_close("out", c.get(out, n), fwd(), kTolF32);
  auto R = c.rng.normal_vec(n);
  float* dout = c.in("dout", R);
  float* ga = c.out_nan("da", n);
  float* gb = only_da ? nullptr : c.out_nan("db", n);
  c.ops().add_backward(c.ex(), ga, gb, dout, n);
  c.check("add_backward");
  std::vector<double> R64 = to_f64(R);
  std::vector<Ctx::GradInput> gi = {{"da", &A, to_f64(c.get(ga, n)), 8}};
  if (gb) gi.push_back({"db", &B, to_f64(c.get(gb, n)), 8});
  c.check_grads([&] { return dot(fwd(), R64); }, gi, kTolGrad);
}

void softmax_case(Ctx& c, int64_t rows, int64_t cols, bool neg_inf) {
  auto x = c.rng.normal_vec(rows * cols, 3.0);
  if (neg_inf) {  // some -inf entries and, in row 0, nothing but -inf (-> zeros)
    for (int64_t j = 0; j < cols; ++j) x[j] = -INFINITY;
    for (int64_t i = cols; i < rows * cols; i += 3) x[i] = -INFINITY;
  }
  float* dx = c.in("inp", x);
  float* out = c.out_nan("out", rows * cols);
  c.ops().softmax_forward(c.ex(), out, dx, rows, cols);
  c.check("softmax_forward");
  std::vector<double> X = to_f64(x), ro;
  ref::softmax(X, rows, cols, ro);
  auto y = c.get(out, rows * cols);
  c.expect_close("out", y, ro, kTolF32);
  auto R = c.rng.normal_vec(rows * cols);
  float* dout = c.in("dout", R);
  float* dinp = c.out_nan("dinp", rows * cols);
  c.ops().softmax_backward(c.ex(), dinp, out, dout, rows, cols);
  c.check("softmax_backward");
  if (neg_inf) {  // d/dx at -inf entries is 0; compare with the analytic float64 formula
    std::vector<double> ref_d(rows * cols, 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      double s = 0;
      for (int64_t j = 0; j < cols; ++j) s += ro[r * cols + j] * R[r * cols + j];
      for (int64_t j = 0; j < cols; ++j) ref_d[r * cols + j] = ro[r * cols + j] * (R[r * cols + j] - s);
    }
    c.expect_close("dinp", c.get(dinp, rows * cols), ref_d, kTolF32);
    return;
  }
  std::vector<double> R64 = to_f64(R);
  c.check_grads(
      [&] {
        std::vector<double> o;
        ref::softmax(X, rows, cols, o);
        return dot(o, R64);
      },
      {{"dinp", &X, to_f64(c.get(dinp, rows * cols)), 16}}, kTolGrad);
}

}  // namespace

void register_nn_cases(Registry& r) {
  struct LN {
    int64_t N, C;
    double off;
    bool nodb;
  };
  for (LN p : {LN{1, 1, 0, false}, LN{7, 97, 0, false}, LN{5, 768, 0, true}, LN{197, 768, 0, false},
               LN{16, 768, 300.0, false}, LN{3, 7, -50.0, false}})
    add_case(
        r,
        fmt("layernorm(N=%lld,C=%lld,offset=%g%s)", (long long)p.N, (long long)p.C, p.off, p.nodb ? ",dbias=null" : ""),
        [p](Ctx& c) { layernorm_case(c, p.N, p.C, p.off, p.nodb); });
  struct ALN {
    int64_t N, C;
    bool b;
    int sum;
    bool bf16;
    double off;
  };
  for (ALN p : {ALN{1, 1, true, 1, false, 0}, ALN{7, 97, true, 0, false, 0}, ALN{197, 768, true, 2, false, 0},
                ALN{33, 768, true, 1, true, 0}, ALN{16, 768, false, 0, true, 300.0}, ALN{5, 40, false, 1, false, -50.0},
                ALN{9, 1024, true, 2, true, 0}})
    add_case(r,
             fmt("add_layernorm(N=%lld,C=%lld,b=%d,sum=%s,out=%s,offset=%g)", (long long)p.N, (long long)p.C, p.b,
                 p.sum == 0   ? "null"
                 : p.sum == 1 ? "buffer"
                              : "in-place",
                 p.bf16 ? "bf16" : "f32", p.off),
             [p](Ctx& c) { add_layernorm_case(c, p.N, p.C, p.b, p.sum, p.bf16, p.off); });
  struct C2 {
    int64_t W, H, dp, sp;
    bool add;
    int64_t ap;
  };
  for (C2 p :
       {C2{1, 1, 1, 1, false, 0}, C2{768, 5, 197 * 768, 768, false, 0}, C2{196 * 768, 3, 197 * 768, 196 * 768, true, 0},
        C2{768, 4, 768, 0, false, 0}, C2{33, 7, 40, 35, true, 34}, C2{768, 6, 768, 197 * 768, false, 0}})
    add_case(r,
             fmt("copy2d(W=%lld,H=%lld,dpitch=%lld,spitch=%lld,add=%d,apitch=%lld)", (long long)p.W, (long long)p.H,
                 (long long)p.dp, (long long)p.sp, p.add, (long long)p.ap),
             [p](Ctx& c) { copy2d_case(c, p.W, p.H, p.dp, p.sp, p.add, p.ap); });
  for (int64_t n : {1, 7, 97, 197 * 3072})
    add_case(r, fmt("gelu(n=%lld)", (long long)n), [n](Ctx& c) { unary_case(c, 0, n); });
  for (int64_t n : {1, 97, 197 * 768})
    add_case(r, fmt("relu(n=%lld)", (long long)n), [n](Ctx& c) { unary_case(c, 1, n); });
  for (int64_t n : {1, 97, 197 * 768})
    add_case(r, fmt("add(n=%lld)", (long long)n), [n](Ctx& c) { add_case(c, n, false); });
  add_case(r, "add(n=33,db=null)", [](Ctx& c) { add_case(c, 33, true); });
  struct SM {
    int64_t R, C;
    bool ninf;
  };
  for (SM p : {SM{1, 1, false}, SM{7, 97, false}, SM{12, 197, false}, SM{197, 197, false}, SM{5, 33, true}})
    add_case(r, fmt("softmax(rows=%lld,cols=%lld%s)", (long long)p.R, (long long)p.C, p.ninf ? ",neg_inf=1" : ""),
             [p](Ctx& c) { softmax_case(c, p.R, p.C, p.ninf); });
}

}  // namespace cztest
