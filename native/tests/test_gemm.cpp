// test_gemm.cpp: GEMM and GEMM-backward cases (GemmArgs in ops.h).
// Dimension letters: M, N, K of C (M, N) = op(A) (M, K) @ op(B) (K, N); batch items b.
// Every case pads the leading dimensions when asked (pad columns hold NaN in A/B/dC, so reading
// them into a result is caught, and a sentinel in C/preact/dA, which must survive), checks C and
// preact against the float64 reference, and for bf16 compute compares with a reference whose
// operands are rounded to bf16 (products of two bf16 values are exact in fp32, so only the fp32
// accumulation order differs: the tolerance can stay at 1e-6).
#include <array>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "cpu/cpu_ops.h"
#include "harness.h"
#include "reference.h"

namespace cztest {

namespace {

struct GP {
  bool ta = false, tb = false;
  int64_t m = 1, n = 1, k = 1, batch = 1;
  bool bias = false;
  Act act = Act::None;
  float alpha = 1.0f, beta = 0.0f;
  DType compute = DType::F32, at = DType::F32, bt = DType::F32;
  std::string isa = "default";
  bool sa0 = false, sb0 = false, nan_c = false;
  int64_t pad = 0;
  bool bwd = false;
  bool c16 = false;   // C stored as bf16 (c_type; no preact)
  bool tf32 = false;  // GemmArgs::tf32 (compute F32): exact fp32 on the CPU, TF32 allowed on CUDA
};

const char* act_name(Act a) { return a == Act::None ? "none" : a == Act::Relu ? "relu" : "gelu"; }
const char* dt(DType t) { return carzero::dtype_name(t); }

std::string gemm_name(const GP& p) {
  std::string s = fmt("gemm%s(ta=%d,tb=%d,m=%lld,n=%lld,k=%lld,batch=%lld,bias=%d,act=%s,alpha=%g,beta=%g",
                      p.bwd ? "_backward" : "", p.ta, p.tb, (long long)p.m, (long long)p.n, (long long)p.k,
                      (long long)p.batch, p.bias, act_name(p.act), p.alpha, p.beta);
  if (!p.bwd)
    s += fmt(",compute=%s,a=%s,b=%s,isa=%s", dt(p.compute), dt(p.at), dt(p.bt), p.isa.c_str());
  else if (p.compute != DType::F32)
    s += fmt(",compute=%s", dt(p.compute));
  if (p.sa0) s += ",stride_a=0";
  if (p.sb0) s += ",stride_b=0";
  if (p.nan_c) s += ",C=nan";
  if (p.pad) s += fmt(",pad=%lld", (long long)p.pad);
  if (p.c16) s += ",c=bf16";
  if (p.tf32) s += ",tf32";
  return s + ")";
}

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kSentinel = 0.25f;

// A stored operand: `items` matrices of (rows, ld) with real columns [0, cols).
struct Operand {
  int64_t rows, cols, ld, items;
  std::vector<float> dev_f32;      // device contents when stored as f32 (NaN padding)
  std::vector<uint16_t> dev_bf16;  // device contents when stored as bf16
  std::vector<double> host;        // the values the op sees (bf16-exact when stored bf16), 0 pads
  bool is_pad(size_t i) const { return static_cast<int64_t>(i % ld) >= cols; }
};

Operand make_operand(Rng& rng, int64_t rows, int64_t cols, int64_t pad, int64_t items, DType t) {
  Operand o{rows, cols, std::max<int64_t>(cols, 1) + pad, items, {}, {}, {}};
  const size_t n = static_cast<size_t>(items * rows * o.ld);
  o.host.assign(n, 0.0);
  if (t == DType::F32)
    o.dev_f32.assign(n, kNaN);
  else
    o.dev_bf16.assign(n, carzero::f32_to_bf16(kNaN));
  for (size_t i = 0; i < n; ++i) {
    if (o.is_pad(i)) continue;
    float v = static_cast<float>(rng.normal());
    if (t == DType::BF16) {
      o.dev_bf16[i] = carzero::f32_to_bf16(v);
      v = carzero::bf16_to_f32(o.dev_bf16[i]);
    } else {
      o.dev_f32[i] = v;
    }
    o.host[i] = v;
  }
  return o;
}

const void* upload(Ctx& c, const char* name, const Operand& o) {
  if (!o.dev_bf16.empty()) return c.in(name, o.dev_bf16);
  return c.in(name, o.dev_f32);
}

void gemm_case(Ctx& c, const GP& p) {
  const int64_t M = p.m, N = p.n, K = p.k;
  const int64_t ar = p.ta ? K : M, ac = p.ta ? M : K, br = p.tb ? N : K, bc = p.tb ? K : N;
  Operand A = make_operand(c.rng, ar, ac, p.pad, p.sa0 ? 1 : p.batch, p.at);
  Operand B = make_operand(c.rng, br, bc, p.pad, p.sb0 ? 1 : p.batch, p.bt);
  const int64_t ldc = std::max<int64_t>(N, 1) + p.pad, csz = p.batch * M * ldc;
  std::vector<float> c0(csz, kSentinel), p0(csz, kSentinel);
  std::vector<double> rc(csz, kSentinel), rp(csz, kSentinel);
  for (int64_t i = 0; i < csz; ++i) {
    if (i % ldc >= N) continue;
    float v = p.beta != 0.0f ? static_cast<float>(c.rng.normal()) : (p.nan_c ? kNaN : 0.0f);
    if (p.c16) v = carzero::bf16_to_f32(carzero::f32_to_bf16(v));
    c0[i] = v;
    rc[i] = p.beta != 0.0f ? v : 0.0;
    p0[i] = kNaN;
  }
  auto bias = c.rng.normal_vec(N);
  std::vector<double> bias64 = to_f64(bias);

  GemmArgs g;
  g.a_type = p.at, g.b_type = p.bt, g.compute = p.compute, g.tf32 = p.tf32;
  g.trans_a = p.ta, g.trans_b = p.tb;
  g.m = M, g.n = N, g.k = K;
  g.a = upload(c, "A", A);
  g.lda = A.ld, g.stride_a = p.sa0 ? 0 : ar * A.ld;
  g.b = upload(c, "B", B);
  g.ldb = B.ld, g.stride_b = p.sb0 ? 0 : br * B.ld;
  std::vector<uint16_t> c16(p.c16 ? csz : 0);
  for (size_t i = 0; i < c16.size(); ++i) c16[i] = carzero::f32_to_bf16(c0[i]);
  if (p.c16)
    g.c = c.out("C", c16), g.c_type = DType::BF16;
  else
    g.c = c.out("C", c0);
  g.ldc = ldc, g.stride_c = M * ldc;
  g.batch = p.batch;
  g.alpha = p.alpha, g.beta = p.beta;
  g.bias = p.bias ? c.in("bias", bias) : nullptr;
  g.act = p.act;
  g.preact = p.act != Act::None && !p.c16 ? c.out("preact", p0) : nullptr;

  if (p.isa == "default") {
    c.ops().gemm(c.ex(), g);
  } else {
    if (!c.be.gemm_isa) return c.skip("backend " + c.be.name + " has no ISA levels");
    std::string why;
    if (!c.be.gemm_isa(c.ex(), g, p.isa, &why)) return c.skip(why);
  }
  c.check("gemm");
  ref::GemmShape s;
  s.ta = p.ta, s.tb = p.tb, s.m = M, s.n = N, s.k = K;
  s.lda = A.ld, s.ldb = B.ld, s.ldc = ldc;
  s.sa = g.stride_a, s.sb = g.stride_b, s.sc = g.stride_c, s.batch = p.batch;
  s.alpha = p.alpha, s.beta = p.beta, s.act = p.act;
  s.round_operands = p.compute != DType::F32;
  s.round_f16 = p.compute == DType::F16;
  ref::gemm(s, A.host, B.host, p.bias ? &bias64 : nullptr, rc, g.preact ? &rp : nullptr);
  // A bf16 C adds its rounding (and, where the bias/activation is applied after the product
  // was stored, a second one): a few 2^-9 relative errors per element.
  // TF32 (CUDA): operands cut to a 10-bit mantissa, not emulated here (the rounding mode is
  // cuBLAS's): about 1e-6 nmse, so 2e-5; the CPU has no TF32 and must stay exact fp32.
  const bool tf32_round = p.tf32 && c.be.name != "cpu";
  const double tol = p.c16 ? 2e-5 : tf32_round ? 2e-5 : p.compute != DType::F32 ? 1e-6 : 1e-7;
  if (p.c16) {
    auto cv = c.get(static_cast<const uint16_t*>(g.c), csz);
    std::vector<float> cf(cv.size());
    for (size_t i = 0; i < cv.size(); ++i) cf[i] = carzero::bf16_to_f32(cv[i]);
    c.expect_close("C", cf, rc, tol);
  } else {
    c.expect_close("C", c.get(static_cast<const float*>(g.c), csz), rc, tol);
  }
  if (g.preact) c.expect_close("preact", c.get(g.preact, csz), rp, tol);
  if (!p.bwd) return;

  // backward: dC (NaN padding), dA (=: NaN at real positions, sentinel padding),
  // dB and dbias (+=: known prefill everywhere, padding included, which must not change)
  std::vector<float> R(csz, kNaN);
  std::vector<double> R64(csz, 0.0);
  for (int64_t i = 0; i < csz; ++i)
    if (i % ldc < N) R[i] = static_cast<float>(c.rng.normal()), R64[i] = R[i];
  float* dc = c.in("dC", R);
  std::vector<float> da0(A.host.size()), db0 = c.rng.uniform_vec(static_cast<int64_t>(B.host.size()), -1, 1);
  for (size_t i = 0; i < da0.size(); ++i) da0[i] = A.is_pad(i) ? kSentinel : kNaN;
  auto gb0 = c.rng.uniform_vec(N, -1, 1);
  float* da = c.out("dA", da0);
  float* db = c.out("dB", db0);
  float* dbias = p.bias ? c.out("dbias", gb0) : nullptr;
  c.ops().gemm_backward(c.ex(), g, dc, da, db, dbias);
  c.check("gemm_backward");
  auto dav = c.get(da, static_cast<int64_t>(da0.size()));
  std::vector<double> an_a(dav.size()), an_b(db0.size()), an_bias(N);
  for (size_t i = 0; i < dav.size(); ++i) an_a[i] = dav[i] - (A.is_pad(i) ? kSentinel : 0.0f);
  auto dbv = c.get(db, static_cast<int64_t>(db0.size()));
  for (size_t i = 0; i < dbv.size(); ++i) an_b[i] = static_cast<double>(dbv[i]) - db0[i];
  std::vector<Ctx::GradInput> gi = {{"dA", &A.host, an_a, 12}, {"dB", &B.host, an_b, 12}};
  if (dbias) {
    auto v = c.get(dbias, N);
    for (int64_t j = 0; j < N; ++j) an_bias[j] = static_cast<double>(v[j]) - gb0[j];
    gi.push_back({"dbias", &bias64, an_bias, 12});
  }
  ref::GemmShape se = s;  // the exact function (finite differences of a rounded one are 0)
  se.round_operands = false;
  auto loss = [&] {
    std::vector<double> o(csz, 0.0);
    ref::gemm(se, A.host, B.host, p.bias ? &bias64 : nullptr, o, nullptr);
    return dot(o, R64);
  };
  // Mixed-precision backward: the products round dZ and the operands (bf16: 2^-9, f16: 2^-12
  // relative), so each gradient coordinate carries that error against the exact reference
  // (NMSE bounds below). The random directional derivatives add those errors over every
  // coordinate coherently, so they are checked for fp32 only.
  if (p.compute == DType::F32)
    c.check_grads(loss, gi, 1e-6);
  else
    c.check_grads(loss, gi, p.compute == DType::BF16 ? 1e-4 : 1e-5, /*directions=*/0);
}

// ---- prepacked weights (cpu::PackedWeight, cpu::gemm_prepacked) ----------------------------------
// The prepacked path must give exactly (bit for bit) what the per-call packing gives: packing
// only moves data, and the driver runs the same micro-kernels over the same K blocks in the same
// order. Shapes: M = 1, 7 and 197 x 8; N and K not multiples of the panel widths or K blocks.
struct PP {
  std::string isa = "default";
  DType compute = DType::F32, at = DType::F32, bt = DType::F32;
  int64_t m = 1, n = 37, k = 45, batch = 1, pad = 0;
  bool bias = true, c16 = false;
  Act act = Act::None;
  float beta = 0.0f;
};

std::string prepack_name(const PP& p) {
  return fmt(
      "gemm_prepacked(isa=%s,compute=%s,a=%s,b=%s,m=%lld,n=%lld,k=%lld,batch=%lld,pad=%lld,"
      "bias=%d,act=%s,beta=%g%s)",
      p.isa.c_str(), dt(p.compute), dt(p.at), dt(p.bt), (long long)p.m, (long long)p.n, (long long)p.k,
      (long long)p.batch, (long long)p.pad, p.bias, act_name(p.act), p.beta, p.c16 ? ",c=bf16" : "");
}

void prepack_case(Ctx& c, const PP& p) {
  if (c.be.name != "cpu") return c.skip("prepacked weights are a CPU GEMM feature");
  carzero::CpuIsa level = carzero::cpu_isa();
  if (p.isa == "generic")
    level = carzero::CpuIsa::Generic;
  else if (p.isa == "avx2")
    level = carzero::CpuIsa::Avx2;
  else if (p.isa == "avx512")
    level = carzero::CpuIsa::Avx512;
  if (static_cast<int>(carzero::cpu_isa_detected()) < static_cast<int>(level)) return c.skip("CPU lacks " + p.isa);
  const int64_t M = p.m, N = p.n, K = p.k, B = p.batch, lda = K + p.pad;
  // Operands: A (B, M, lda) and W (N, K) as f32 or bf16 bits; C and preact (B, M, N).
  auto store = [&](int64_t n, DType t, std::vector<float>& f, std::vector<uint16_t>& h) {
    f = c.rng.uniform_vec(n, -1.0, 1.0);
    if (t == DType::BF16) {
      h.resize(f.size());
      for (size_t i = 0; i < f.size(); ++i) h[i] = carzero::f32_to_bf16(f[i]);
    }
  };
  std::vector<float> a32, w32, bias = c.rng.uniform_vec(N, -0.5, 0.5);
  std::vector<uint16_t> a16, w16;
  store(B * M * lda, p.at, a32, a16);
  store(N * K, p.bt, w32, w16);
  const std::vector<float> c0 = c.rng.uniform_vec(B * M * N, -1.0, 1.0);
  std::vector<uint16_t> c0_16(c0.size());
  for (size_t i = 0; i < c0.size(); ++i) c0_16[i] = carzero::f32_to_bf16(c0[i]);
  const void* W = p.bt == DType::BF16 ? static_cast<const void*>(w16.data()) : w32.data();

  GemmArgs g;
  g.a_type = p.at, g.b_type = p.bt, g.compute = p.compute;
  g.trans_b = true;
  g.m = M, g.n = N, g.k = K, g.batch = B;
  g.a = p.at == DType::BF16 ? static_cast<const void*>(a16.data()) : a32.data();
  g.lda = lda, g.stride_a = M * lda;
  g.b = W, g.ldb = K, g.stride_b = 0;
  g.c_type = p.c16 ? DType::BF16 : DType::F32;
  g.ldc = N, g.stride_c = M * N;
  g.beta = p.beta;
  g.bias = p.bias ? bias.data() : nullptr;
  g.act = p.act;

  struct Out {
    std::vector<float> c, pre;
    std::vector<uint16_t> c16;
  };
  auto run = [&](DType compute, carzero::cpu::PackedWeight* pw) {
    Out o;
    o.c = c0;
    o.c16 = c0_16;
    o.pre.assign(c0.size(), kSentinel);
    GemmArgs h = g;
    h.compute = compute;
    h.c = p.c16 ? static_cast<void*>(o.c16.data()) : o.c.data();
    h.preact = p.act != Act::None && !p.c16 ? o.pre.data() : nullptr;
    if (pw) {
      c.expect(pw->matches(h), "the prepacked weight matches its GEMM");
      if (p.isa == "default")
        carzero::cpu::gemm_prepacked(c.ex(), h, *pw);
      else
        carzero::cpu::gemm_prepacked_with_isa(c.ex(), h, *pw, level);
    } else if (p.isa == "default") {
      carzero::cpu::gemm(c.ex(), h);
    } else {
      carzero::cpu::gemm_with_isa(c.ex(), h, level);
    }
    return o;
  };
  auto same = [&](const char* what, const Out& x, const Out& y) {
    bool eq = x.c.size() == y.c.size() && std::memcmp(x.c.data(), y.c.data(), x.c.size() * 4) == 0 &&
              std::memcmp(x.pre.data(), y.pre.data(), x.pre.size() * 4) == 0 &&
              std::memcmp(x.c16.data(), y.c16.data(), x.c16.size() * 2) == 0;
    if (!eq) {
      size_t first = 0;
      while (first < x.c.size() && std::memcmp(&x.c[first], &y.c[first], 4) == 0) ++first;
      c.fail(
          fmt("%s: prepacked result differs from the per-call packing (first C difference at "
              "%zu of %zu)",
              what, first, x.c.size()));
    }
  };
  const Out ref = run(p.compute, nullptr);
  carzero::cpu::PackedWeight pw(W, p.bt, N, K);
  c.expect(pw.bytes() == 0, "nothing packed before the first use");
  same("first call (packs)", ref, run(p.compute, &pw));
  const size_t bytes = pw.bytes();
  c.expect(bytes >= static_cast<size_t>(N * K) * (p.compute == DType::BF16 ? 2 : 4),
           fmt("packed bytes %zu cover the weight", bytes));
  same("second call (panels reused)", ref, run(p.compute, &pw));
  c.expect(pw.bytes() == bytes, "the second call packs nothing");
  // The same weight at the other compute type: a second packed copy, still exact.
  const DType other = p.compute == DType::F32 ? DType::BF16 : DType::F32;
  if (!p.c16) {
    const Out ref2 = run(other, nullptr);
    same("other compute type", ref2, run(other, &pw));
  }
  // A GEMM that is not on this weight (another leading dimension) falls back to packing per call.
  if (!p.c16 && p.isa == "default") {
    GemmArgs h = g;
    h.ldb = K + 1;
    c.expect(!pw.matches(h), "a different ldb does not match");
  }
}

}  // namespace

static void register_prepack_cases(Registry& r) {
  std::vector<PP> cases;
  for (const char* isa : {"generic", "avx2", "avx512"})
    for (auto tys : {std::array<DType, 3>{DType::F32, DType::F32, DType::F32},
                     std::array<DType, 3>{DType::BF16, DType::F32, DType::BF16},
                     std::array<DType, 3>{DType::BF16, DType::BF16, DType::BF16},
                     std::array<DType, 3>{DType::BF16, DType::F32, DType::F32}})
      for (auto mnk : {std::array<int64_t, 3>{1, 37, 45}, std::array<int64_t, 3>{7, 100, 803},
                       std::array<int64_t, 3>{197 * 8, 45, 803}, std::array<int64_t, 3>{1, 771, 97},
                       std::array<int64_t, 3>{197, 130, 1001}}) {
        PP p;
        p.isa = isa, p.compute = tys[0], p.at = tys[1], p.bt = tys[2];
        p.m = mnk[0], p.n = mnk[1], p.k = mnk[2];
        cases.push_back(p);
      }
  // the model's epilogues (default ISA): GELU with preact, residual accumulate, a shared weight
  // over a batch, padded A, bf16 C
  for (DType ct : {DType::F32, DType::BF16}) {
    PP p;
    p.compute = ct, p.bt = ct;
    p.m = 197, p.n = 3072 - 5, p.k = 768, p.act = Act::Gelu;
    cases.push_back(p);
    p.m = 7, p.n = 768, p.k = 3072 - 9, p.act = Act::None, p.beta = 1.0f, p.batch = 3, p.pad = 3;
    cases.push_back(p);
    p.m = 1, p.n = 1, p.k = 768, p.batch = 1, p.pad = 0, p.beta = 0.0f, p.act = Act::Relu;
    cases.push_back(p);
    p.m = 50, p.n = 200, p.k = 96, p.beta = 1.0f, p.act = Act::None, p.c16 = true;
    cases.push_back(p);
    p.beta = 0.0f, p.act = Act::Gelu, p.at = DType::BF16;
    cases.push_back(p);
  }
  for (const PP& p : cases) add_case(r, prepack_name(p), [p](Ctx& c) { prepack_case(c, p); });
}

void register_gemm_cases(Registry& r) {
  std::vector<GP> cases;
  // every transpose / bias / activation / beta combination at an awkward shape
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (int bias = 0; bias < 2; ++bias)
        for (Act act : {Act::None, Act::Relu, Act::Gelu})
          for (float beta : {0.0f, 0.5f}) {
            GP p;
            p.ta = ta, p.tb = tb, p.m = 23, p.n = 17, p.k = 11, p.bias = bias, p.act = act, p.beta = beta;
            p.nan_c = beta == 0.0f;
            cases.push_back(p);
          }
  // every ISA level x storage/compute type: an awkward batched shape and the ViT nn.Linear shape
  for (const char* isa : {"generic", "avx2", "avx512"})
    for (auto tys : {std::array<DType, 3>{DType::F32, DType::F32, DType::F32},
                     std::array<DType, 3>{DType::F32, DType::BF16, DType::BF16},
                     std::array<DType, 3>{DType::BF16, DType::F32, DType::F32},
                     std::array<DType, 3>{DType::BF16, DType::F32, DType::BF16},
                     std::array<DType, 3>{DType::BF16, DType::BF16, DType::BF16}}) {
      GP p;
      p.compute = tys[0], p.at = tys[1], p.bt = tys[2], p.isa = isa;
      p.tb = true, p.m = 197, p.n = 7, p.k = 97, p.batch = 2, p.bias = true, p.act = Act::Gelu, p.beta = 0.5f;
      cases.push_back(p);
      GP q = p;
      q.n = 768, q.k = 768, q.batch = 1, q.act = Act::None, q.beta = 0.0f, q.nan_c = true;
      cases.push_back(q);
      GP t = p;  // weight-gradient layout: op(A) = A^T
      t.ta = true, t.tb = false, t.m = 64, t.n = 96, t.k = 197, t.batch = 1, t.act = Act::Relu, t.beta = 1.0f;
      cases.push_back(t);
    }
  // edge cases
  auto edge = [&](auto f) {
    GP p;
    p.m = 13, p.n = 9, p.k = 7;
    f(p);
    cases.push_back(p);
  };
  edge([](GP& p) { p.k = 0, p.beta = 0.5f, p.bias = true, p.act = Act::Relu; });
  edge([](GP& p) { p.k = 0, p.beta = 0.0f, p.nan_c = true, p.bias = true; });
  edge([](GP& p) { p.m = 1, p.tb = true, p.bias = true, p.act = Act::Gelu; });
  edge([](GP& p) { p.n = 1, p.ta = true, p.beta = 0.5f; });
  edge([](GP& p) { p.m = 1, p.n = 1, p.k = 1; });
  edge([](GP& p) { p.m = 1, p.n = 1, p.k = 768, p.tb = true, p.compute = DType::BF16; });
  edge([](GP& p) { p.batch = 3, p.sb0 = true, p.tb = true, p.bias = true, p.alpha = -0.5f; });
  edge([](GP& p) { p.batch = 3, p.sa0 = true, p.alpha = 2.0f, p.beta = 0.5f, p.act = Act::Gelu; });
  edge([](GP& p) {
    p.batch = 2, p.pad = 3, p.ta = true, p.tb = true, p.beta = 0.0f, p.nan_c = true, p.act = Act::Relu;
  });
  edge([](GP& p) { p.batch = 0; });
  edge([](GP& p) { p.m = 0, p.bias = true; });
  edge([](GP& p) {
    p.m = 97, p.n = 33, p.k = 768, p.batch = 2, p.pad = 5, p.compute = DType::BF16, p.at = DType::BF16,
    p.bt = DType::BF16, p.bias = true, p.act = Act::Gelu;
  });
  // F16 compute (fp16 mixed precision): operands rounded to half, incl. an f32 A beyond 65504
  // (-> inf) is not tested here (NaN-free references only)
  edge([](GP& p) {
    p.m = 97, p.n = 33, p.k = 768, p.tb = true, p.compute = DType::F16, p.bias = true, p.act = Act::Gelu;
  });
  edge(
      [](GP& p) { p.batch = 3, p.sb0 = true, p.tb = true, p.compute = DType::F16, p.bt = DType::BF16, p.beta = 0.5f; });
  // bf16 C (inference): fused-epilogue shapes, a residual accumulate (beta = 1), fp32 compute
  // (dense fp32 then rounded), K = 0, a batch sharing B
  edge([](GP& p) {
    p.m = 97, p.n = 33, p.k = 768, p.batch = 2, p.pad = 5, p.compute = DType::BF16, p.at = DType::BF16,
    p.bt = DType::BF16, p.bias = true, p.act = Act::Gelu, p.nan_c = true, p.c16 = true;
  });
  edge([](GP& p) {
    p.m = 50, p.n = 64, p.k = 96, p.tb = true, p.compute = DType::BF16, p.bt = DType::BF16, p.bias = true,
    p.beta = 1.0f, p.c16 = true;
  });
  edge([](GP& p) {
    p.m = 40, p.n = 24, p.k = 72, p.tb = true, p.compute = DType::BF16, p.at = DType::BF16, p.bt = DType::BF16,
    p.bias = true, p.act = Act::Relu, p.nan_c = true, p.c16 = true;
  });
  edge([](GP& p) { p.tb = true, p.beta = 0.5f, p.bias = true, p.act = Act::Gelu, p.c16 = true; });
  edge([](GP& p) {
    p.m = 37, p.n = 128, p.k = 64, p.batch = 2, p.pad = 8, p.tb = true, p.compute = DType::BF16, p.bt = DType::BF16,
    p.bias = true, p.act = Act::Gelu, p.nan_c = true, p.c16 = true;
  });  // 8-column multiples (the vectorised rounding)
  edge([](GP& p) { p.k = 0, p.beta = 0.5f, p.bias = true, p.act = Act::Relu, p.c16 = true; });
  edge([](GP& p) {
    p.batch = 3, p.sb0 = true, p.tb = true, p.bias = true, p.alpha = -0.5f, p.compute = DType::BF16, p.c16 = true,
    p.nan_c = true;
  });
  // tf32 (fp32 compute that may use TF32 tensor cores on CUDA): the ViT's linear shapes with the
  // fused epilogues, a batch sharing B, a transposed A with beta
  edge([](GP& p) {
    p.m = 197, p.n = 96, p.k = 768, p.tb = true, p.bias = true, p.act = Act::Gelu, p.pad = 4, p.tf32 = true;
  });
  edge([](GP& p) { p.m = 97, p.n = 33, p.k = 256, p.tb = true, p.bias = true, p.act = Act::Relu, p.tf32 = true; });
  edge([](GP& p) { p.batch = 3, p.sb0 = true, p.tb = true, p.bias = true, p.alpha = -0.5f, p.tf32 = true; });
  edge([](GP& p) { p.m = 40, p.n = 24, p.k = 72, p.ta = true, p.beta = 0.5f, p.nan_c = true, p.tf32 = true; });
  // backward (F32 only, beta = 0): every transpose x activation, shared weight across the batch
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (Act act : {Act::None, Act::Relu, Act::Gelu}) {
        GP p;
        p.bwd = true, p.ta = ta, p.tb = tb, p.act = act, p.m = 13, p.n = 11, p.k = 9;
        p.bias = true, p.alpha = 0.7f, p.batch = 2, p.sb0 = tb, p.pad = ta ? 2 : 0;
        cases.push_back(p);
      }
  for (DType ct : {DType::BF16, DType::F16}) {  // mixed-precision training backward
    GP p;
    p.bwd = true, p.tb = true, p.m = 33, p.n = 24, p.k = 40, p.bias = true, p.act = Act::Gelu;
    p.compute = ct, p.batch = 2, p.sb0 = true;
    cases.push_back(p);
  }
  {
    GP p;
    p.bwd = true, p.tb = true, p.m = 197, p.n = 64, p.k = 96, p.bias = true, p.act = Act::Gelu;
    cases.push_back(p);
    p.m = 1, p.n = 1, p.k = 1, p.act = Act::None, p.bias = false;
    cases.push_back(p);
  }
  for (const GP& p : cases) add_case(r, gemm_name(p), [p](Ctx& c) { gemm_case(c, p); });
  register_prepack_cases(r);
}

}  // namespace cztest
