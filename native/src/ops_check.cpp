// ops_check.cpp: see ops_check.h.
#include "ops_check.h"

#include <cmath>

namespace carzero {

void check_gemm_args(const GemmArgs& g, const char* who) {
  CZ_ARG(g.m >= 0, "%s: m (%lld) must be >= 0", who, (long long)g.m);
  CZ_ARG(g.n >= 0, "%s: n (%lld) must be >= 0", who, (long long)g.n);
  CZ_ARG(g.k >= 0, "%s: k (%lld) must be >= 0", who, (long long)g.k);
  CZ_ARG(g.batch >= 0, "%s: batch (%lld) must be >= 0", who, (long long)g.batch);
  CZ_ARG(g.a_type == DType::F32 || g.a_type == DType::BF16, "%s: a_type %s is not supported (F32 or BF16)", who,
         dtype_name(g.a_type));
  CZ_ARG(g.b_type == DType::F32 || g.b_type == DType::BF16, "%s: b_type %s is not supported (F32 or BF16)", who,
         dtype_name(g.b_type));
  CZ_ARG(g.compute == DType::F32 || g.compute == DType::BF16 || g.compute == DType::F16,
         "%s: compute %s is not supported (F32, BF16 or F16)", who, dtype_name(g.compute));
  CZ_ARG(!g.tf32 || g.compute == DType::F32, "%s: tf32 applies to compute F32 only (compute %s)", who,
         dtype_name(g.compute));
  CZ_ARG(g.c_type == DType::F32 || g.c_type == DType::BF16, "%s: c_type %s is not supported (F32 or BF16)", who,
         dtype_name(g.c_type));
  CZ_ARG(g.c_type == DType::F32 || !g.preact, "%s: preact needs c_type F32 (a BF16 C is for inference)", who);
  CZ_ARG(g.act == Act::None || g.act == Act::Relu || g.act == Act::Gelu, "%s: act (%d) is not a valid activation", who,
         static_cast<int>(g.act));
  // Leading dimensions: the stored row length of each operand.
  const int64_t a_cols = g.trans_a ? g.m : g.k, b_cols = g.trans_b ? g.k : g.n;
  CZ_ARG(g.lda >= a_cols, "%s: lda (%lld) must be >= %s (%lld)", who, (long long)g.lda, g.trans_a ? "m" : "k",
         (long long)a_cols);
  CZ_ARG(g.ldb >= b_cols, "%s: ldb (%lld) must be >= %s (%lld)", who, (long long)g.ldb, g.trans_b ? "k" : "n",
         (long long)b_cols);
  CZ_ARG(g.ldc >= g.n, "%s: ldc (%lld) must be >= n (%lld)", who, (long long)g.ldc, (long long)g.n);
  CZ_ARG(g.stride_a >= 0 && g.stride_b >= 0 && g.stride_c >= 0,
         "%s: batch strides must be >= 0 (stride_a %lld, stride_b %lld, stride_c %lld)", who, (long long)g.stride_a,
         (long long)g.stride_b, (long long)g.stride_c);
  const bool out = g.batch > 0 && g.m > 0 && g.n > 0;  // C has elements
  const bool reads = out && g.k > 0;                   // A and B are read
  CZ_ARG(!out || g.c, "%s: c is null with m (%lld) x n (%lld) > 0", who, (long long)g.m, (long long)g.n);
  CZ_ARG(!reads || g.a, "%s: a is null with m (%lld) x k (%lld) > 0", who, (long long)g.m, (long long)g.k);
  CZ_ARG(!reads || g.b, "%s: b is null with k (%lld) x n (%lld) > 0", who, (long long)g.k, (long long)g.n);
  // Batch items writing the same C would race; shared inputs (stride 0) are fine.
  CZ_ARG(!out || g.batch == 1 || g.stride_c > 0, "%s: stride_c must be > 0 when batch (%lld) > 1", who,
         (long long)g.batch);
}

bool check_add_layernorm_args(const char* op, const float* sum_out, const void* out, DType out_type, const float* a,
                              const float* b, int64_t N, int64_t C, float eps) {
  require_size(op, "N", N);
  require_size(op, "C", C);
  CZ_ARG(std::isfinite(eps) && eps >= 0.0f, "%s: eps = %g must be finite and >= 0", op, eps);
  CZ_ARG(out_type == DType::F32 || out_type == DType::BF16, "%s: out_type %s is not supported (F32 or BF16)", op,
         dtype_name(out_type));
  if (N == 0) return false;
  CZ_ARG(C > 0, "%s: C = %lld must be > 0 when N > 0", op, static_cast<long long>(C));
  require_ptr(op, "out", out, true);
  require_ptr(op, "a", a, true);
  CZ_ARG(out != static_cast<const void*>(a) && out != static_cast<const void*>(b) &&
             out != static_cast<const void*>(sum_out),
         "%s: out must not alias a, b or sum_out", op);
  return true;
}

bool check_copy2d_args(const float* dst, int64_t dpitch, const float* src, int64_t spitch, const float* add,
                       int64_t apitch, int64_t width, int64_t height) {
  const char* op = "copy2d";
  require_size(op, "width", width);
  require_size(op, "height", height);
  CZ_ARG(dpitch >= width, "%s: dpitch = %lld is less than width = %lld", op, static_cast<long long>(dpitch),
         static_cast<long long>(width));
  CZ_ARG(spitch == 0 || spitch >= width, "%s: spitch = %lld must be 0 or >= width = %lld", op,
         static_cast<long long>(spitch), static_cast<long long>(width));
  CZ_ARG(apitch == 0 || apitch >= width, "%s: apitch = %lld must be 0 or >= width = %lld", op,
         static_cast<long long>(apitch), static_cast<long long>(width));
  if (width == 0 || height == 0) return false;
  require_ptr(op, "dst", dst, true);
  require_ptr(op, "src", src, true);
  CZ_ARG(dst != src || spitch == dpitch, "%s: dst == src needs spitch == dpitch (in place)", op);
  CZ_ARG(dst != add || apitch == dpitch, "%s: dst == add needs apitch == dpitch (in place)", op);
  return true;
}

void check_attn_args(const char* op, const AttnArgs& a) {
  require_size(op, "B", a.B);
  require_size(op, "NH", a.NH);
  require_size(op, "Tq", a.Tq);
  require_size(op, "Tk", a.Tk);
  require_size(op, "HS", a.HS);
  CZ_ARG(a.dtype == DType::F32 || a.dtype == DType::BF16 || a.dtype == DType::F16,
         "%s: dtype %s is not supported (F32, BF16 or F16)", op, dtype_name(a.dtype));
  CZ_ARG(!a.tf32 || a.dtype == DType::F32, "%s: tf32 applies to F32 storage only (dtype %s)", op, dtype_name(a.dtype));
  const int64_t C = a.NH * a.HS;
  const struct {
    const char* name;
    int64_t v;
  } lds[] = {{"ldq", a.ldq}, {"ldk", a.ldk}, {"ldv", a.ldv}, {"ldo", a.ldo}};
  for (const auto& l : lds)
    CZ_ARG(l.v >= C, "%s: %s = %lld is less than NH*HS = %lld", op, l.name, static_cast<long long>(l.v),
           static_cast<long long>(C));
  const struct {
    const char* name;
    int64_t v;
  } bss[] = {{"q_bs", a.q_bs}, {"k_bs", a.k_bs}, {"v_bs", a.v_bs}, {"o_bs", a.o_bs}, {"mask_bs", a.mask_bs}};
  for (const auto& s : bss) CZ_ARG(s.v >= 0, "%s: %s = %lld must be >= 0", op, s.name, static_cast<long long>(s.v));
  CZ_ARG(std::isfinite(a.scale), "%s: scale = %g must be finite", op, a.scale);
  const bool work = a.B > 0 && a.NH > 0 && a.Tq > 0;
  require_ptr(op, "q", a.q, work && a.HS > 0);
  require_ptr(op, "out", a.out, work);
  require_ptr(op, "k", a.k, work && a.Tk > 0 && a.HS > 0);
  require_ptr(op, "v", a.v, work && a.Tk > 0 && a.HS > 0);
}

void check_patch_args(const char* op, int64_t B, int64_t Cin, int64_t H, int64_t W, int64_t OC, int64_t ps) {
  require_size(op, "B", B);
  require_size(op, "Cin", Cin);
  require_size(op, "H", H);
  require_size(op, "W", W);
  require_size(op, "OC", OC);
  CZ_ARG(ps > 0, "%s: ps = %lld must be > 0", op, static_cast<long long>(ps));
  CZ_ARG(H % ps == 0, "%s: H = %lld is not a multiple of ps = %lld", op, static_cast<long long>(H),
         static_cast<long long>(ps));
  CZ_ARG(W % ps == 0, "%s: W = %lld is not a multiple of ps = %lld", op, static_cast<long long>(W),
         static_cast<long long>(ps));
}

bool check_adam_args(const char* op, const float* param, const float* grad, const float* m, const float* v, int64_t n,
                     const AdamArgs& a) {
  require_size(op, "n", n);
  CZ_ARG(a.step >= 1, "%s: step = %lld must be >= 1", op, static_cast<long long>(a.step));
  CZ_ARG(a.beta1 >= 0.0f && a.beta1 < 1.0f, "%s: beta1 = %g is outside [0, 1)", op, a.beta1);
  CZ_ARG(a.beta2 >= 0.0f && a.beta2 < 1.0f, "%s: beta2 = %g is outside [0, 1)", op, a.beta2);
  CZ_ARG(std::isfinite(a.lr) && a.lr >= 0.0f, "%s: lr = %g must be finite and >= 0", op, a.lr);
  CZ_ARG(std::isfinite(a.eps) && a.eps >= 0.0f, "%s: eps = %g must be finite and >= 0", op, a.eps);
  CZ_ARG(std::isfinite(a.weight_decay) && a.weight_decay >= 0.0f, "%s: weight_decay = %g must be finite and >= 0", op,
         a.weight_decay);
  if (n == 0) return false;
  require_ptr(op, "param", param, true);
  require_ptr(op, "grad", grad, true);
  require_ptr(op, "m", m, true);
  require_ptr(op, "v", v, true);
  return true;
}

}  // namespace carzero
