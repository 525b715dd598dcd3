// test_data.cpp: cases for embedding, patch_embed and softmax_xent (forward, backward, gradient
// checks). Dimension letters: N lookups, V vocabulary, C channels; B, Cin, H, W, ps, OC for
// patches; R rows, Cc columns for the cross-entropy.
#include "harness.h"
#include "reference.h"

namespace cztest {

namespace {

std::vector<double> minus(const std::vector<float>& after, const std::vector<float>& before) {
  std::vector<double> d(after.size());
  for (size_t i = 0; i < after.size(); ++i) d[i] = static_cast<double>(after[i]) - before[i];
  return d;
}

void embedding_case(Ctx& c, int64_t N, int64_t V, int64_t C) {
  std::vector<int32_t> ids(N);
  for (auto& id : ids) id = static_cast<int32_t>(c.rng.below(V));  // repeats when N > V
  if (N > 1) ids[N - 1] = ids[0];                                  // at least one repeat
  auto table = c.rng.normal_vec(V * C);
  int32_t* dids = c.in("ids", ids);
  float* dtab = c.in("table", table);
  float* out = c.out_nan("out", N * C);
  c.ops().embedding_forward(c.ex(), out, dids, dtab, N, V, C);
  c.check("embedding_forward");
  std::vector<double> T = to_f64(table), ro;
  ref::embedding(ids, T, C, ro);
  c.expect_close("out", c.get(out, N * C), ro, 0.0);  // a gather is exact
  auto R = c.rng.normal_vec(N * C);
  float* dout = c.in("dout", R);
  auto g0 = c.rng.uniform_vec(V * C, -1, 1);
  float* dtable = c.out("dtable", g0);
  c.ops().embedding_backward(c.ex(), dtable, dout, dids, N, V, C);
  c.check("embedding_backward");
  std::vector<double> R64 = to_f64(R);
  c.check_grads(
      [&] {
        std::vector<double> o;
        ref::embedding(ids, T, C, o);
        return dot(o, R64);
      },
      {{"dtable", &T, minus(c.get(dtable, V * C), g0), 24}}, 1e-6);
}

void patch_embed_case(Ctx& c, int64_t B, int64_t Cin, int64_t H, int64_t W, int64_t OC, int64_t ps, bool bias, bool bwd,
                      bool dimg_null) {
  const int64_t P = (H / ps) * (W / ps), KK = Cin * ps * ps;
  auto img = c.rng.normal_vec(B * Cin * H * W);
  auto w = c.rng.normal_vec(OC * KK, 1.0 / std::sqrt(static_cast<double>(KK)));
  auto bs = c.rng.normal_vec(OC);
  float* dimg_in = c.in("img", img);
  float* dw = c.in("weight", w);
  float* db = bias ? c.in("bias", bs) : nullptr;
  float* out = c.out_nan("out", B * P * OC);
  c.ops().patch_embed_forward(c.ex(), out, dimg_in, dw, db, B, Cin, H, W, OC, ps);
  c.check("patch_embed_forward");
  std::vector<double> I = to_f64(img), Wt = to_f64(w), Bs = bias ? to_f64(bs) : std::vector<double>{};
  std::vector<double> ro;
  ref::patch_embed(I, Wt, Bs, B, Cin, H, W, OC, ps, ro);
  c.expect_close("out", c.get(out, B * P * OC), ro, 1e-7);
  if (!bwd) return;
  auto R = c.rng.normal_vec(B * P * OC);
  float* dout = c.in("dout", R);
  float* dimg = dimg_null ? nullptr : c.out_nan("dimg", B * Cin * H * W);
  auto gw0 = c.rng.uniform_vec(OC * KK, -1, 1), gb0 = c.rng.uniform_vec(OC, -1, 1);
  float* dweight = c.out("dweight", gw0);
  float* dbias = bias ? c.out("dbias", gb0) : nullptr;
  c.ops().patch_embed_backward(c.ex(), dimg, dweight, dbias, dout, dimg_in, dw, B, Cin, H, W, OC, ps);
  c.check("patch_embed_backward");
  std::vector<double> R64 = to_f64(R);
  auto loss = [&] {
    std::vector<double> o;
    ref::patch_embed(I, Wt, Bs, B, Cin, H, W, OC, ps, o);
    return dot(o, R64);
  };
  std::vector<Ctx::GradInput> gi = {{"dweight", &Wt, minus(c.get(dweight, OC * KK), gw0), 12}};
  if (dimg) gi.push_back({"dimg", &I, to_f64(c.get(dimg, B * Cin * H * W)), 12});
  if (dbias) gi.push_back({"dbias", &Bs, minus(c.get(dbias, OC), gb0), 12});
  c.check_grads(loss, gi, 1e-6);
}

void xent_case(Ctx& c, int64_t R, int64_t Cc, int axis, double sd) {
  const int64_t count = axis == 1 ? R : Cc, classes = axis == 1 ? Cc : R;
  auto x = c.rng.normal_vec(R * Cc, sd);
  std::vector<int32_t> t(count);
  for (auto& v : t) v = static_cast<int32_t>(c.rng.below(classes));
  float* dx = c.in("logits", x);
  int32_t* dt = c.in("targets", t);
  float* losses = c.out_nan("losses", count);
  c.ops().softmax_xent_forward(c.ex(), losses, dx, dt, R, Cc, axis);
  c.check("softmax_xent_forward");
  std::vector<double> X = to_f64(x), rl;
  ref::softmax_xent(X, t, R, Cc, axis, rl);
  c.expect_close("losses", c.get(losses, count), rl, 1e-7);
  auto dl = c.rng.normal_vec(count);
  float* ddl = c.in("dlosses", dl);
  float* dlogits = c.out_nan("dlogits", R * Cc);
  c.ops().softmax_xent_backward(c.ex(), dlogits, ddl, dx, dt, R, Cc, axis);
  c.check("softmax_xent_backward");
  std::vector<double> D = to_f64(dl);
  c.check_grads(
      [&] {
        std::vector<double> l;
        ref::softmax_xent(X, t, R, Cc, axis, l);
        return dot(l, D);
      },
      {{"dlogits", &X, to_f64(c.get(dlogits, R * Cc)), 16}}, 1e-6);
}

}  // namespace

void register_data_cases(Registry& r) {
  struct E {
    int64_t N, V, C;
  };
  for (E p : {E{1, 1, 1}, E{97, 7, 33}, E{197, 1000, 768}, E{16, 30522, 7}})
    add_case(r, fmt("embedding(N=%lld,V=%lld,C=%lld)", (long long)p.N, (long long)p.V, (long long)p.C),
             [p](Ctx& c) { embedding_case(c, p.N, p.V, p.C); });
  struct PE {
    int64_t B, Cin, H, W, OC, ps;
    bool bias, bwd, dimg_null;
  };
  for (PE p : {PE{2, 3, 32, 48, 24, 16, true, true, false}, PE{1, 1, 4, 4, 1, 4, false, true, false},
               PE{3, 2, 12, 8, 5, 4, true, true, true}, PE{1, 3, 224, 224, 768, 16, true, false, false}})
    add_case(r,
             fmt("patch_embed(B=%lld,Cin=%lld,H=%lld,W=%lld,OC=%lld,ps=%lld,bias=%d,%s%s)", (long long)p.B,
                 (long long)p.Cin, (long long)p.H, (long long)p.W, (long long)p.OC, (long long)p.ps, p.bias,
                 p.bwd ? "fwd+bwd" : "fwd", p.dimg_null ? ",dimg=null" : ""),
             [p](Ctx& c) { patch_embed_case(c, p.B, p.Cin, p.H, p.W, p.OC, p.ps, p.bias, p.bwd, p.dimg_null); });
  struct X {
    int64_t R, Cc;
    int axis;
    double sd;
  };
  for (X p : {X{1, 1, 1, 1.0}, X{1, 1, 0, 1.0}, X{7, 5, 1, 2.0}, X{7, 5, 0, 2.0}, X{97, 197, 1, 3.0},
              X{97, 197, 0, 3.0}, X{256, 256, 0, 10.0}, X{256, 256, 1, 10.0}, X{3, 1000, 0, 30.0}})
    add_case(r, fmt("softmax_xent(R=%lld,Cc=%lld,axis=%d,sd=%g)", (long long)p.R, (long long)p.Cc, p.axis, p.sd),
             [p](Ctx& c) { xent_case(c, p.R, p.Cc, p.axis, p.sd); });
}

}  // namespace cztest
