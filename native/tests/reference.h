// reference.h: plain float64 reference implementations of every op, written independently of
// the backends (straight from the definitions, no blocking, no shortcuts) for the parity tests.
// Buffers are whole device-layout buffers (including row padding) converted to double; strides
// are in elements, exactly as in ops.h.
#pragma once
#include <cstdint>
#include <vector>

#include "ops.h"

namespace cztest::ref {

using Vec = std::vector<double>;

double gelu(double x);
double gelu_grad(double x);
// Value of float v rounded to bf16 / f16 (round to nearest even, overflow to inf, NaN kept),
// computed with double arithmetic (not bit tricks) so it is independent of core/dtype.h.
double round_bf16(double v);
double round_f16(double v);

// C[b] = act(alpha * op(A[b]) op(B[b]) + beta * C[b] + bias) on the stored layouts; C (and preact
// when non-null) are updated in place at their real positions only. round_operands emulates
// bf16 compute (operands rounded to bf16 before multiplying).
struct GemmShape {
  bool ta = false, tb = false;
  int64_t m = 0, n = 0, k = 0, lda = 0, ldb = 0, ldc = 0, sa = 0, sb = 0, sc = 0, batch = 1;
  double alpha = 1, beta = 0;
  carzero::Act act = carzero::Act::None;
  bool round_operands = false;
  bool round_f16 = false;  // with round_operands: to IEEE half instead of bf16 (F16 compute)
};
void gemm(const GemmShape& s, const Vec& A, const Vec& B, const Vec* bias, Vec& C, Vec* preact);

// out (N, C), mean/rstd (N)
void layernorm(const Vec& x, const Vec& w, const Vec& b, int64_t N, int64_t C, double eps, Vec& out, Vec* mean,
               Vec* rstd);
// rows of -inf only give zeros
void softmax(const Vec& x, int64_t rows, int64_t cols, Vec& out);

struct AttnShape {
  int64_t B = 0, NH = 0, Tq = 0, Tk = 0, HS = 0;
  int64_t ldq = 0, q_bs = 0, ldk = 0, k_bs = 0, ldv = 0, v_bs = 0, ldo = 0, o_bs = 0;
  int64_t mask_bs = 0;
  double scale = 1;
  // element offsets of q, k, v inside their buffers (a packed qkv buffer uses one buffer)
  int64_t q_off = 0, k_off = 0, v_off = 0;
};
// out written at its real positions; lse (B, NH, Tq) and probs (B, NH, Tq, Tk) when non-null.
void attention(const AttnShape& s, const Vec& q, const Vec& k, const Vec& v, const std::vector<uint8_t>* mask, Vec& out,
               Vec* lse, Vec* probs);

// out (N, C) = table[ids]
void embedding(const std::vector<int32_t>& ids, const Vec& table, int64_t C, Vec& out);
// out (B, P, OC) from img (B, Cin, H, W), weight (OC, Cin, ps, ps), bias (OC) or empty
void patch_embed(const Vec& img, const Vec& weight, const Vec& bias, int64_t B, int64_t Cin, int64_t H, int64_t W,
                 int64_t OC, int64_t ps, Vec& out);
// losses per distribution (axis 1: rows, axis 0: columns)
void softmax_xent(const Vec& logits, const std::vector<int32_t>& t, int64_t R, int64_t Cc, int axis, Vec& losses);
// One PyTorch Adam/AdamW step in double.
void adam(Vec& p, const Vec& g, Vec& m, Vec& v, const carzero::AdamArgs& a);

// Philox4x32-10: the full 4-word output for counter (4 words) and key (2 words).
void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
double philox_uniform(uint64_t seed, uint64_t counter);
// out = keep ? x / (1 - p) : 0 with keep iff uniform >= p
void dropout(const Vec& x, double p, uint64_t seed, uint64_t offset, Vec& out);

}  // namespace cztest::ref
