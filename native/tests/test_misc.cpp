// test_misc.cpp: cases for adam_update, sum_squares, scale, dropout (+ Philox) and convert.
// Dimension letters: n elements.
#include <cmath>
#include <cstring>
#include <limits>

#include "core/dtype.h"
#include "harness.h"
#include "reference.h"

namespace cztest {

namespace {

// ---- adam -------------------------------------------------------------------------------------
// Several consecutive steps against the float64 PyTorch formula. The parameter check compares
// the change p - p0 (not p), so an error in the update itself is not hidden by |p| >> lr.
void adam_case(Ctx& c, int64_t n, bool adamw, float wd, float gscale, int steps, int64_t step0) {
  auto p = c.rng.normal_vec(n), m = c.rng.normal_vec(n, 0.01), v = c.rng.uniform_vec(n, 0, 1e-4);
  if (step0 == 1) std::fill(m.begin(), m.end(), 0.0f), std::fill(v.begin(), v.end(), 0.0f);
  std::vector<double> P = to_f64(p), M = to_f64(m), Vv = to_f64(v), P0 = P;
  float* dp = c.out("param", p);
  float* dm = c.out("m", m);
  float* dv = c.out("v", v);
  AdamArgs a;
  a.lr = 1e-3f, a.beta1 = 0.9f, a.beta2 = 0.999f, a.eps = 1e-8f, a.weight_decay = wd;
  a.decoupled = adamw, a.grad_scale = gscale;
  for (int s = 0; s < steps; ++s) {
    auto g = c.rng.normal_vec(n);
    float* dg = c.in(fmt("grad%d", s), g);
    a.step = step0 + s;
    c.ops().adam_update(c.ex(), dp, dg, dm, dv, n, a);
    c.check("adam_update");
    // the reference steps from the op's own previous state (float), as the op does
    ref::adam(P, to_f64(g), M, Vv, a);
    auto pp = c.get(dp, n), mm = c.get(dm, n), vv = c.get(dv, n);
    std::vector<double> dref(n);
    std::vector<float> dout(n);
    for (int64_t i = 0; i < n; ++i) dref[i] = P[i] - P0[i], dout[i] = static_cast<float>(pp[i] - P0[i]);
    c.expect_close(fmt("param delta step %lld", (long long)a.step), dout, dref, 1e-7);
    c.expect_close(fmt("m step %lld", (long long)a.step), mm, M, 1e-7);
    c.expect_close(fmt("v step %lld", (long long)a.step), vv, Vv, 1e-7);
    for (int64_t i = 0; i < n; ++i) P[i] = pp[i], M[i] = mm[i], Vv[i] = vv[i];
  }
}

// ---- sum_squares / scale ----------------------------------------------------------------------
void sum_squares_case(Ctx& c, int64_t n, double sd) {
  auto x = c.rng.normal_vec(n, sd);
  float* dx = c.in("x", x);
  const double got = c.ops().sum_squares(c.ex(), dx, n);
  c.check("sum_squares");
  long double want = 0;
  for (float v : x) want += static_cast<long double>(v) * v;
  const double rel =
      want != 0 ? std::fabs(got - static_cast<double>(want)) / static_cast<double>(want) : std::fabs(got);
  c.max_nmse = rel * rel;
  c.expect(rel <= 1e-12, fmt("sum_squares = %.17g, reference %.17g (rel %.2e)", got, (double)want, rel));
}

void scale_case(Ctx& c, int64_t n, float s) {
  auto x = c.rng.normal_vec(n);
  float* dx = c.out("x", x);
  c.ops().scale(c.ex(), dx, n, s);
  c.check("scale");
  std::vector<double> ref(n);
  for (int64_t i = 0; i < n; ++i) ref[i] = static_cast<double>(x[i]) * s;
  c.expect_close("x", c.get(dx, n), ref, 1e-7);
}

// ---- dropout -----------------------------------------------------------------------------------
void philox_kat_case(Ctx& c) {
  // Random123 known-answer tests for philox4x32_10 (kat_vectors): counter, key -> output.
  struct KAT {
    uint32_t ctr[4], key[2], out[4];
  };
  const KAT kats[] = {{{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
                      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
                       {0xffffffff, 0xffffffff},
                       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
                      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
                       {0xa4093822, 0x299f31d0},
                       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}};
  for (const KAT& k : kats) {
    uint32_t out[4];
    ref::philox4x32_10(k.ctr, k.key, out);
    for (int i = 0; i < 4; ++i)
      c.expect(out[i] == k.out[i], fmt("reference philox KAT word %d: %08x != %08x", i, out[i], k.out[i]));
  }
  // The op's uniform for counter = key = 0 is the first KAT word's top 24 bits.
  const float u = carzero::cpu::philox_uniform(0, 0);
  c.expect(u == std::ldexp(static_cast<float>(0x6627e8d5u >> 8), -24),
           fmt("cpu::philox_uniform(0, 0) = %.9g, want (0x6627e8d5 >> 8) * 2^-24", u));
  // and agrees with the reference for assorted 64-bit seeds and counters (hi words in play)
  for (int i = 0; i < 1000; ++i) {
    const uint64_t seed = c.rng.next(), ctr = i < 500 ? c.rng.next() : static_cast<uint64_t>(i);
    const double want = ref::philox_uniform(seed, ctr);
    const float got = carzero::cpu::philox_uniform(seed, ctr);
    if (static_cast<double>(got) != want) {
      c.fail(fmt("philox_uniform(%llx, %llx) = %.9g, reference %.9g", (unsigned long long)seed, (unsigned long long)ctr,
                 got, want));
      break;
    }
  }
}

void dropout_case(Ctx& c, int64_t n, float p, uint64_t seed, uint64_t offset) {
  auto x = c.rng.normal_vec(n);
  float* dx = c.in("inp", x);
  float* out = c.out_nan("out", n);
  c.ops().dropout_forward(c.ex(), out, dx, n, p, seed, offset);
  c.check("dropout_forward");
  std::vector<double> X = to_f64(x), ro;
  ref::dropout(X, p, seed, offset, ro);
  auto y = c.get(out, n);
  c.expect_close("out", y, ro, 1e-7);
  // the mask itself must match exactly (zero iff dropped)
  for (int64_t i = 0; i < n; ++i)
    if ((y[i] == 0.0f) != (ro[i] == 0.0) && x[i] != 0.0f) {
      c.fail(fmt("mask differs at %lld", (long long)i));
      break;
    }
  // statistics: the kept fraction is Binomial(n, 1 - p): within 5 standard deviations
  if (n >= 10000 && p > 0 && p < 1) {
    int64_t kept = 0;
    for (int64_t i = 0; i < n; ++i) kept += y[i] != 0.0f;
    const double mu = n * (1.0 - p), sd = std::sqrt(n * p * (1.0 - p));
    c.expect(std::fabs(kept - mu) <= 5 * sd,
             fmt("kept %lld of %lld, expected %.0f +- %.0f", (long long)kept, (long long)n, mu, 5 * sd));
  }
  // determinism: the same (seed, offset) gives bit-identical output
  float* out2 = c.out_nan("out2", n);
  c.ops().dropout_forward(c.ex(), out2, dx, n, p, seed, offset);
  auto y2 = c.get(out2, n);
  c.expect(std::memcmp(y.data(), y2.data(), n * sizeof(float)) == 0, "same seed+offset differs");
  // a run split at n1 (second part with offset + n1) equals the whole run
  if (n >= 2) {
    const int64_t n1 = n / 3 + 1;
    float* out3 = c.out_nan("out3", n);
    c.ops().dropout_forward(c.ex(), out3, dx, n1, p, seed, offset);
    c.ops().dropout_forward(c.ex(), out3 + n1, dx + n1, n - n1, p, seed, offset + n1);
    auto y3 = c.get(out3, n);
    c.expect(std::memcmp(y.data(), y3.data(), n * sizeof(float)) == 0, "split run differs from whole run");
  }
  // a different offset (or seed) gives a different mask
  if (n >= 64 && p > 0 && p < 1) {
    float* out4 = c.out_nan("out4", n);
    c.ops().dropout_forward(c.ex(), out4, dx, n, p, seed, offset + 7);
    auto y4 = c.get(out4, n);
    int64_t diff = 0;
    for (int64_t i = 0; i < n; ++i) diff += (y[i] == 0.0f) != (y4[i] == 0.0f);
    c.expect(diff > 0, "offset + 7 gave the same mask");
    c.ops().dropout_forward(c.ex(), out4, dx, n, p, seed + 1, offset);
    y4 = c.get(out4, n);
    diff = 0;
    for (int64_t i = 0; i < n; ++i) diff += (y[i] == 0.0f) != (y4[i] == 0.0f);
    c.expect(diff > 0, "seed + 1 gave the same mask");
  }
  c.check("dropout_forward (repeats)");
  // backward: the same mask and scale applied to dout (=)
  auto R = c.rng.normal_vec(n);
  float* dout = c.in("dout", R);
  float* dinp = c.out_nan("dinp", n);
  c.ops().dropout_backward(c.ex(), dinp, dout, n, p, seed, offset);
  c.check("dropout_backward");
  std::vector<double> R64 = to_f64(R);
  c.check_grads(
      [&] {
        std::vector<double> o;
        ref::dropout(X, p, seed, offset, o);
        return dot(o, R64);
      },
      {{"dinp", &X, to_f64(c.get(dinp, n)), 16}}, 1e-6);
}

// ---- convert -----------------------------------------------------------------------------------
uint32_t fbits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float bitsf(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Special and tie values for float -> bf16/f16 rounding.
std::vector<float> special_floats(Rng& rng, bool f16) {
  std::vector<float> v = {0.0f,
                          -0.0f,
                          1.0f,
                          -1.0f,
                          INFINITY,
                          -INFINITY,
                          std::numeric_limits<float>::quiet_NaN(),
                          3.0e38f,
                          -3.4e38f,
                          std::numeric_limits<float>::denorm_min(),
                          1e-40f,
                          -1e-39f,
                          std::numeric_limits<float>::min()};
  if (!f16) {
    // bf16 ties: low 16 bits exactly 0x8000, with even and odd kept bit
    for (uint32_t hi : {0x3f80u, 0x3f81u, 0xc0a0u, 0xc0a1u, 0x7f7fu, 0x0001u}) v.push_back(bitsf((hi << 16) | 0x8000u));
    v.push_back(bitsf(0x7f7fffffu));  // FLT_MAX rounds to inf in bf16
  } else {
    // f16 ties: 1 + 2^-11 (tie, even -> 1), 1 + 3*2^-11 (tie, odd -> up), max/overflow edges,
    // and half subnormals (2^-24 is the smallest; 2^-25 ties to 0; 3*2^-25 ties up to 2*2^-24)
    for (float f : {1.0f + 0x1.0p-11f, 1.0f + 3 * 0x1.0p-11f, 65504.0f, 65519.0f, 65520.0f, -65536.0f, 0x1.0p-24f,
                    0x1.0p-25f, 3 * 0x1.0p-25f, 0x1.0p-14f, 0x1.ffcp-15f, 5.96e-8f, 6.1e-5f, -3.0e-6f})
      v.push_back(f);
  }
  for (int i = 0; i < 2000; ++i) {
    const double mag = std::ldexp(1.0, static_cast<int>(rng.below(f16 ? 44 : 200)) - (f16 ? 28 : 100));
    v.push_back(static_cast<float>(rng.normal() * mag));
  }
  return v;
}

void convert_round_case(Ctx& c, DType to) {
  const bool f16 = to == DType::F16;
  auto x = special_floats(c.rng, f16);
  const int64_t n = static_cast<int64_t>(x.size());
  float* dx = c.in("src", x);
  std::vector<uint16_t> init(n, 0xdead);
  uint16_t* dh = c.out("dst", init);
  c.ops().convert(c.ex(), dh, to, dx, DType::F32, n);
  c.check("convert f32->16");
  auto h = c.get(dh, n);
  // back to f32 through the op as well
  float* back = c.out_nan("back", n);
  uint16_t* dh_in = c.in("half", h);
  c.ops().convert(c.ex(), back, DType::F32, dh_in, to, n);
  c.check("convert 16->f32");
  auto y = c.get(back, n);
  int bad = 0;
  for (int64_t i = 0; i < n && bad < 1; ++i) {
    const double want = f16 ? ref::round_f16(x[i]) : ref::round_bf16(x[i]);
    const float got = y[i];
    const bool ok = std::isnan(want) ? std::isnan(got)
                                     : (static_cast<double>(got) == want && std::signbit(got) == std::signbit(want));
    if (!ok) {
      ++bad;
      c.fail(fmt("f32->%s->f32 of %.9g (bits %08x): got %.9g, want %.9g", f16 ? "f16" : "bf16", x[i], fbits(x[i]), got,
                 want));
    }
  }
  // widening every 16-bit pattern is exact: compare with an independent decode
  std::vector<uint16_t> all(65536);
  for (int i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  uint16_t* dall = c.in("all", all);
  float* wide = c.out_nan("wide", 65536);
  c.ops().convert(c.ex(), wide, DType::F32, dall, to, 65536);
  c.check("convert all patterns");
  auto w = c.get(wide, 65536);
  for (int i = 0; i < 65536; ++i) {
    double want;
    if (!f16) {
      want = bitsf(static_cast<uint32_t>(i) << 16);
    } else {
      const int s = i >> 15, e = (i >> 10) & 31, m = i & 1023;
      want = e == 0 ? std::ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : std::ldexp(1024 + m, e - 25);
      if (s) want = -want;
    }
    const bool ok = std::isnan(want) ? std::isnan(w[i]) : static_cast<double>(w[i]) == want;
    if (!ok) {
      c.fail(fmt("%s pattern %04x -> %.9g, want %.9g", f16 ? "f16" : "bf16", i, w[i], want));
      break;
    }
  }
}

void convert_misc_case(Ctx& c) {
  const int64_t n = 97;
  // u8 -> f32 / bf16 / i32; i32 -> f32; bf16 <-> f16; same-type copy
  std::vector<uint8_t> u(n);
  for (auto& v : u) v = static_cast<uint8_t>(c.rng.below(256));
  std::vector<int32_t> iv(n);
  for (auto& v : iv) v = static_cast<int32_t>(c.rng.next());
  iv[0] = (1 << 24) + 1;  // not representable: rounds to nearest even
  uint8_t* du = c.in("u8", u);
  int32_t* di = c.in("i32", iv);
  float* f = c.out_nan("f32", n);
  c.ops().convert(c.ex(), f, DType::F32, du, DType::U8, n);
  auto fu = c.get(f, n);
  for (int64_t i = 0; i < n; ++i) c.expect(fu[i] == u[i], fmt("u8->f32 [%lld]", (long long)i));
  c.ops().convert(c.ex(), f, DType::F32, di, DType::I32, n);
  auto fi = c.get(f, n);
  for (int64_t i = 0; i < n; ++i) c.expect(fi[i] == static_cast<float>(iv[i]), fmt("i32->f32 [%lld]", (long long)i));
  std::vector<int32_t> i0(n, -7);
  int32_t* i2 = c.out("i32_out", i0);
  c.ops().convert(c.ex(), i2, DType::I32, du, DType::U8, n);
  auto ii = c.get(i2, n);
  for (int64_t i = 0; i < n; ++i) c.expect(ii[i] == u[i], fmt("u8->i32 [%lld]", (long long)i));
  std::vector<uint16_t> h0(n, 0);
  uint16_t* hb = c.out("bf16", h0);
  c.ops().convert(c.ex(), hb, DType::BF16, du, DType::U8, n);
  auto hbv = c.get(hb, n);
  for (int64_t i = 0; i < n; ++i)
    c.expect(carzero::bf16_to_f32(hbv[i]) == static_cast<float>(ref::round_bf16(u[i])),
             fmt("u8->bf16 [%lld]", (long long)i));
  // bf16 -> f16 -> bf16 of values exactly representable in both survives
  std::vector<uint16_t> b16(n);
  for (int64_t i = 0; i < n; ++i) b16[i] = carzero::f32_to_bf16(static_cast<float>(c.rng.below(512) - 256) / 8.0f);
  uint16_t* db16 = c.in("bf16_in", b16);
  uint16_t* dh16 = c.out("f16", h0);
  uint16_t* db16b = c.out("bf16_back", h0);
  c.ops().convert(c.ex(), dh16, DType::F16, db16, DType::BF16, n);
  c.ops().convert(c.ex(), db16b, DType::BF16, dh16, DType::F16, n);
  c.expect(c.get(db16b, n) == b16, "bf16 -> f16 -> bf16 round trip changed values");
  // same type: a copy
  uint8_t* du2 = c.out("u8_copy", std::vector<uint8_t>(n, 0));
  c.ops().convert(c.ex(), du2, DType::U8, du, DType::U8, n);
  c.expect(c.get(du2, n) == u, "u8 -> u8 copy differs");
  c.check("convert misc");
}

}  // namespace

void register_misc_cases(Registry& r) {
  for (bool w : {false, true}) {
    add_case(r, fmt("adam(n=1,decoupled=%d,wd=0,steps=3)", w), [w](Ctx& c) { adam_case(c, 1, w, 0.0f, 1.0f, 3, 1); });
    add_case(r, fmt("adam(n=1000,decoupled=%d,wd=0.01,grad_scale=0.5,steps=5)", w),
             [w](Ctx& c) { adam_case(c, 1000, w, 0.01f, 0.5f, 5, 1); });
    add_case(r, fmt("adam(n=4097,decoupled=%d,wd=0.1,step0=10000,steps=2)", w),
             [w](Ctx& c) { adam_case(c, 4097, w, 0.1f, 1.0f, 2, 10000); });
  }
  for (int64_t n : {0, 1, 97, 1000003})
    add_case(r, fmt("sum_squares(n=%lld)", (long long)n), [n](Ctx& c) { sum_squares_case(c, n, 3.0); });
  add_case(r, "sum_squares(n=100000,sd=1e-20)", [](Ctx& c) { sum_squares_case(c, 100000, 1e-20); });
  for (int64_t n : {1, 97, 1000003})
    add_case(r, fmt("scale(n=%lld,s=-0.37)", (long long)n), [n](Ctx& c) { scale_case(c, n, -0.37f); });
  add_case(r, "philox_kat(philox4x32_10)", [](Ctx& c) { philox_kat_case(c); });
  struct D {
    int64_t n;
    float p;
    uint64_t seed, off;
  };
  for (D d : {D{1, 0.5f, 1, 0}, D{97, 0.1f, 42, 0}, D{262147, 0.1f, 0x123456789abcdefull, 12345},
              D{200000, 0.5f, 7, (1ull << 32) - 100000}, D{1000, 0.0f, 3, 5}, D{1000, 1.0f, 3, 5}})
    add_case(r,
             fmt("dropout(n=%lld,p=%g,seed=%llu,offset=%llu)", (long long)d.n, d.p, (unsigned long long)d.seed,
                 (unsigned long long)d.off),
             [d](Ctx& c) { dropout_case(c, d.n, d.p, d.seed, d.off); });
  add_case(r, "convert(f32<->bf16,ties,nan,inf,subnormal)", [](Ctx& c) { convert_round_case(c, DType::BF16); });
  add_case(r, "convert(f32<->f16,ties,nan,inf,subnormal)", [](Ctx& c) { convert_round_case(c, DType::F16); });
  add_case(r, "convert(u8,i32,bf16<->f16,copy)", [](Ctx& c) { convert_misc_case(c); });
}

}  // namespace cztest
