// reference.cpp: float64 references (see reference.h). Deliberately naive: one loop nest per
// formula, so a reader can check each line against the definition.
#include "reference.h"

#include <cmath>
#include <limits>

namespace cztest::ref {

double gelu(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }
double gelu_grad(double x) {
  return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))) + x * std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
}

// Round to a binary format with `mant` explicit mantissa bits, minimum normal exponent emin and
// largest finite value maxv: quantum 2^(e - mant) where e = max(floor(log2|v|), emin); RNE by
// std::nearbyint (default rounding mode); values past the rounding boundary become inf.
static double round_format(double v, int mant, int emin, double maxv) {
  if (std::isnan(v) || std::isinf(v) || v == 0.0) return v;
  const double a = std::fabs(v);
  int e = std::ilogb(a);
  if (e < emin) e = emin;
  const double q = std::ldexp(1.0, e - mant);
  double r = std::nearbyint(a / q) * q;
  // overflow: anything that rounds above maxv (i.e. a >= maxv + q_max/2) is inf
  if (r > maxv) r = std::numeric_limits<double>::infinity();
  return v < 0 ? -r : r;
}
double round_bf16(double v) {
  return round_format(v, 7, -126, std::ldexp(255.0, 120));  // (2 - 2^-7) * 2^127
}
double round_f16(double v) { return round_format(v, 10, -14, 65504.0); }

void gemm(const GemmShape& s, const Vec& A_in, const Vec& B_in, const Vec* bias, Vec& C, Vec* preact) {
  // bf16 compute: every operand element rounded once, before any product
  Vec Ar, Br;
  if (s.round_operands) {
    Ar = A_in, Br = B_in;
    for (auto& x : Ar) x = s.round_f16 ? round_f16(x) : round_bf16(x);
    for (auto& x : Br) x = s.round_f16 ? round_f16(x) : round_bf16(x);
  }
  const Vec& A = s.round_operands ? Ar : A_in;
  const Vec& B = s.round_operands ? Br : B_in;
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t i = 0; i < s.m; ++i)
      for (int64_t j = 0; j < s.n; ++j) {
        double acc = 0;
        for (int64_t p = 0; p < s.k; ++p) {
          const double a = A[b * s.sa + (s.ta ? p * s.lda + i : i * s.lda + p)];
          const double bb = B[b * s.sb + (s.tb ? j * s.ldb + p : p * s.ldb + j)];
          acc += a * bb;
        }
        double& c = C[b * s.sc + i * s.ldc + j];
        double z = s.alpha * acc + (s.beta != 0 ? s.beta * c : 0.0) + (bias ? (*bias)[j] : 0.0);
        if (preact && s.act != carzero::Act::None) (*preact)[b * s.sc + i * s.ldc + j] = z;
        if (s.act == carzero::Act::Relu) z = z > 0 ? z : 0;
        if (s.act == carzero::Act::Gelu) z = gelu(z);
        c = z;
      }
}

void layernorm(const Vec& x, const Vec& w, const Vec& b, int64_t N, int64_t C, double eps, Vec& out, Vec* mean,
               Vec* rstd) {
  out.assign(N * C, 0.0);
  if (mean) mean->assign(N, 0.0);
  if (rstd) rstd->assign(N, 0.0);
  for (int64_t r = 0; r < N; ++r) {
    double m = 0;
    for (int64_t c = 0; c < C; ++c) m += x[r * C + c];
    m /= C;
    double var = 0;
    for (int64_t c = 0; c < C; ++c) var += (x[r * C + c] - m) * (x[r * C + c] - m);
    var /= C;
    const double rs = 1.0 / std::sqrt(var + eps);
    for (int64_t c = 0; c < C; ++c) out[r * C + c] = (x[r * C + c] - m) * rs * w[c] + b[c];
    if (mean) (*mean)[r] = m;
    if (rstd) (*rstd)[r] = rs;
  }
}

void softmax(const Vec& x, int64_t rows, int64_t cols, Vec& out) {
  out.assign(rows * cols, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    double mx = -INFINITY;
    for (int64_t c = 0; c < cols; ++c) mx = std::max(mx, x[r * cols + c]);
    if (mx == -INFINITY) continue;
    double s = 0;
    for (int64_t c = 0; c < cols; ++c) s += std::exp(x[r * cols + c] - mx);
    for (int64_t c = 0; c < cols; ++c) out[r * cols + c] = std::exp(x[r * cols + c] - mx) / s;
  }
}

void attention(const AttnShape& s, const Vec& q, const Vec& k, const Vec& v, const std::vector<uint8_t>* mask, Vec& out,
               Vec* lse, Vec* probs) {
  std::vector<double> sc(s.Tk);
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.NH; ++h)
      for (int64_t i = 0; i < s.Tq; ++i) {
        double mx = -INFINITY;
        for (int64_t j = 0; j < s.Tk; ++j) {
          if (mask && !(*mask)[b * s.mask_bs + j]) {
            sc[j] = -INFINITY;
            continue;
          }
          double d = 0;
          for (int64_t e = 0; e < s.HS; ++e)
            d +=
                q[s.q_off + b * s.q_bs + i * s.ldq + h * s.HS + e] * k[s.k_off + b * s.k_bs + j * s.ldk + h * s.HS + e];
          sc[j] = s.scale * d;
          mx = std::max(mx, sc[j]);
        }
        double sum = 0;
        for (int64_t j = 0; j < s.Tk; ++j) sum += mx == -INFINITY ? 0.0 : std::exp(sc[j] - mx);
        const int64_t row = (b * s.NH + h) * s.Tq + i;
        if (lse) (*lse)[row] = mx == -INFINITY ? -INFINITY : mx + std::log(sum);
        // p_j = exp(s_j - max) / sum (all zero when every key is masked)
        for (int64_t j = 0; j < s.Tk; ++j) sc[j] = mx == -INFINITY ? 0.0 : std::exp(sc[j] - mx) / sum;
        for (int64_t e = 0; e < s.HS; ++e) {
          double o = 0;
          for (int64_t j = 0; j < s.Tk; ++j) o += sc[j] * v[s.v_off + b * s.v_bs + j * s.ldv + h * s.HS + e];
          out[b * s.o_bs + i * s.ldo + h * s.HS + e] = o;
        }
        if (probs)
          for (int64_t j = 0; j < s.Tk; ++j) (*probs)[row * s.Tk + j] = sc[j];
      }
}

void embedding(const std::vector<int32_t>& ids, const Vec& table, int64_t C, Vec& out) {
  out.assign(ids.size() * C, 0.0);
  for (size_t i = 0; i < ids.size(); ++i)
    for (int64_t c = 0; c < C; ++c) out[i * C + c] = table[ids[i] * C + c];
}

void patch_embed(const Vec& img, const Vec& weight, const Vec& bias, int64_t B, int64_t Cin, int64_t H, int64_t W,
                 int64_t OC, int64_t ps, Vec& out) {
  const int64_t Hp = H / ps, Wp = W / ps, P = Hp * Wp;
  out.assign(B * P * OC, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t py = 0; py < Hp; ++py)
      for (int64_t px = 0; px < Wp; ++px)
        for (int64_t o = 0; o < OC; ++o) {
          double acc = bias.empty() ? 0.0 : bias[o];
          for (int64_t c = 0; c < Cin; ++c)
            for (int64_t ky = 0; ky < ps; ++ky)
              for (int64_t kx = 0; kx < ps; ++kx)
                acc += weight[((o * Cin + c) * ps + ky) * ps + kx] *
                       img[((b * Cin + c) * H + py * ps + ky) * W + px * ps + kx];
          out[(b * P + py * Wp + px) * OC + o] = acc;
        }
}

void softmax_xent(const Vec& x, const std::vector<int32_t>& t, int64_t R, int64_t Cc, int axis, Vec& losses) {
  const int64_t count = axis == 1 ? R : Cc, len = axis == 1 ? Cc : R;
  auto at = [&](int64_t d, int64_t e) { return axis == 1 ? x[d * Cc + e] : x[e * Cc + d]; };
  losses.assign(count, 0.0);
  for (int64_t d = 0; d < count; ++d) {
    double mx = -INFINITY;
    for (int64_t e = 0; e < len; ++e) mx = std::max(mx, at(d, e));
    double s = 0;
    for (int64_t e = 0; e < len; ++e) s += std::exp(at(d, e) - mx);
    losses[d] = mx + std::log(s) - at(d, t[d]);
  }
}

void adam(Vec& p, const Vec& grad, Vec& m, Vec& v, const carzero::AdamArgs& a) {
  const double b1 = a.beta1, b2 = a.beta2, lr = a.lr, wd = a.weight_decay;
  const double bc1 = 1 - std::pow(b1, static_cast<double>(a.step));
  const double bc2 = 1 - std::pow(b2, static_cast<double>(a.step));
  for (size_t i = 0; i < p.size(); ++i) {
    double g = grad[i] * static_cast<double>(a.grad_scale);
    if (a.decoupled)
      p[i] *= 1 - lr * wd;
    else
      g += wd * p[i];
    m[i] = b1 * m[i] + (1 - b1) * g;
    v[i] = b2 * v[i] + (1 - b2) * g * g;
    const double denom = std::sqrt(v[i]) / std::sqrt(bc2) + static_cast<double>(a.eps);
    p[i] -= lr / bc1 * m[i] / denom;
  }
}

void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
  uint32_t k[2] = {key[0], key[1]};
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = 0xD2511F53ull * c[0], p1 = 0xCD9E8D57ull * c[2];
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0];
    const uint32_t n1 = static_cast<uint32_t>(p1);
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1];
    const uint32_t n3 = static_cast<uint32_t>(p0);
    c[0] = n0, c[1] = n1, c[2] = n2, c[3] = n3;
    k[0] += 0x9E3779B9u;
    k[1] += 0xBB67AE85u;
  }
  for (int i = 0; i < 4; ++i) out[i] = c[i];
}

double philox_uniform(uint64_t seed, uint64_t counter) {
  const uint32_t ctr[4] = {static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32), 0, 0};
  const uint32_t key[2] = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  uint32_t out[4];
  philox4x32_10(ctr, key, out);
  return std::ldexp(static_cast<double>(out[0] >> 8), -24);
}

void dropout(const Vec& x, double p, uint64_t seed, uint64_t offset, Vec& out) {
  out.assign(x.size(), 0.0);
  for (size_t i = 0; i < x.size(); ++i) out[i] = philox_uniform(seed, offset + i) >= p && p < 1 ? x[i] / (1 - p) : 0.0;
}

}  // namespace cztest::ref
