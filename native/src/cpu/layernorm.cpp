// layernorm.cpp: LayerNorm over the last dimension, forward and backward side by side
// (llm.c llmc/layernorm.cuh structure).
// Dimension letters: N rows (B*T), C channels.
//   out (N, C), inp (N, C), weight (C), bias (C), mean (N), rstd (N)
// Statistics are two-pass (mean, then mean of squared deviations) with double lane
// accumulators, so large-offset inputs do not lose precision (no E[x^2] - E[x]^2).
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/dtype.h"
#include "core/threadpool.h"
#include "cpu/cpu_ops.h"
#include "cpu/cpu_util.h"
#include "ops_check.h"

namespace carzero::cpu {

// y = (x - mean) * rstd * weight + bias, rstd = 1 / sqrt(var + eps), var biased (divide by C),
// as torch.nn.LayerNorm. weight/bias may be null (identity affine); mean/rstd may be null.
void layernorm_forward(Exec& ex, float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t N, int64_t C, float eps) {
  const char* op = "layernorm_forward";
  require_size(op, "N", N);
  require_size(op, "C", C);
  CZ_ARG(std::isfinite(eps) && eps >= 0.0f, "%s: eps = %g must be finite and >= 0", op, eps);
  if (N == 0) return;
  CZ_ARG(C > 0, "%s: C = %lld must be > 0 when N > 0", op, static_cast<long long>(C));
  require_ptr(op, "out", out, true);
  require_ptr(op, "inp", inp, true);
  const int64_t grain = std::max<int64_t>(1, 4096 / C);
  ex.pool->parallel_for(N, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = inp + r * C;
      float* y = out + r * C;
      double m = sum_f64(x, C) / static_cast<double>(C);
      double var = sum_sq_dev_f64(x, C, m) / static_cast<double>(C);
      double rs = 1.0 / std::sqrt(var + static_cast<double>(eps));
      const float mf = static_cast<float>(m), rf = static_cast<float>(rs);
      if (weight && bias) {
        for (int64_t c = 0; c < C; ++c) y[c] = (x[c] - mf) * rf * weight[c] + bias[c];
      } else {
        for (int64_t c = 0; c < C; ++c) {
          float v = (x[c] - mf) * rf;
          if (weight) v *= weight[c];
          if (bias) v += bias[c];
          y[c] = v;
        }
      }
      if (mean) mean[r] = mf;
      if (rstd) rstd[r] = rf;
    }
  });
}

// Fused residual add + LayerNorm (ops.h): per row, s = a + b into sum_out (or a row scratch),
// then the LayerNorm of s as above, stored as f32 or rounded to bf16.
void add_layernorm_forward(Exec& ex, float* sum_out, void* out, DType out_type, float* mean, float* rstd,
                           const float* a, const float* b, const float* weight, const float* bias, int64_t N, int64_t C,
                           float eps) {
  if (!check_add_layernorm_args("add_layernorm_forward", sum_out, out, out_type, a, b, N, C, eps)) return;
  const int64_t grain = std::max<int64_t>(1, 4096 / C);
  ex.pool->parallel_for(N, grain, [&](int64_t r0, int64_t r1) {
    std::vector<float> row;
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = a + r * C;
      if (b) {
        float* dst = sum_out ? sum_out + r * C : (row.resize(static_cast<size_t>(C)), row.data());
        const float* y = b + r * C;
        for (int64_t c = 0; c < C; ++c) dst[c] = x[c] + y[c];
        x = dst;
      } else if (sum_out && sum_out != a) {
        std::copy(x, x + C, sum_out + r * C);
      }
      const double m = sum_f64(x, C) / static_cast<double>(C);
      const double var = sum_sq_dev_f64(x, C, m) / static_cast<double>(C);
      const double rs = 1.0 / std::sqrt(var + static_cast<double>(eps));
      const float mf = static_cast<float>(m), rf = static_cast<float>(rs);
      auto value = [&](int64_t c) {
        float v = (x[c] - mf) * rf;
        if (weight) v *= weight[c];
        if (bias) v += bias[c];
        return v;
      };
      if (out_type == DType::F32) {
        float* y = static_cast<float*>(out) + r * C;
        for (int64_t c = 0; c < C; ++c) y[c] = value(c);
      } else {
        uint16_t* y = static_cast<uint16_t*>(out) + r * C;
        for (int64_t c = 0; c < C; ++c) y[c] = f32_to_bf16(value(c));
      }
      if (mean) mean[r] = mf;
      if (rstd) rstd[r] = rf;
    }
  });
}

// With xhat = (x - mean) * rstd and g = weight * dout (per row):
//   dinp = rstd * (g - mean(g) - xhat * mean(g * xhat))          (=)
//   dweight += sum_rows dout * xhat,  dbias += sum_rows dout      (+=)
// dinp, dweight, dbias are each nullable. Parameter sums go through per-task double partials
// (fixed row ranges per task index, so the result does not depend on thread scheduling).
void layernorm_backward(Exec& ex, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C) {
  const char* op = "layernorm_backward";
  require_size(op, "N", N);
  require_size(op, "C", C);
  if (N == 0 || C == 0) return;
  require_ptr(op, "dout", dout, true);
  require_ptr(op, "inp", inp, true);
  require_ptr(op, "mean", mean, true);
  require_ptr(op, "rstd", rstd, true);
  const bool want_params = dweight || dbias;
  const int64_t tasks = std::min<int64_t>(N, std::max(1, ex.pool->size()));
  const int64_t per = (N + tasks - 1) / tasks;
  // partial[t] = [dweight partial (C) | dbias partial (C)] in double
  std::vector<double> partial(want_params ? static_cast<size_t>(tasks * 2 * C) : 0, 0.0);
  ex.pool->run(tasks, [&](int64_t t) {
    const int64_t r0 = t * per, r1 = std::min(N, r0 + per);
    std::vector<float> g(static_cast<size_t>(C)), xhat(static_cast<size_t>(C));
    double* pw = want_params ? partial.data() + t * 2 * C : nullptr;
    double* pb = pw ? pw + C : nullptr;
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = inp + r * C;
      const float* dy = dout + r * C;
      const float m = mean[r], rs = rstd[r];
      for (int64_t c = 0; c < C; ++c) {
        xhat[c] = (x[c] - m) * rs;
        g[c] = weight ? weight[c] * dy[c] : dy[c];
      }
      if (pw) {
        for (int64_t c = 0; c < C; ++c) {
          pw[c] += static_cast<double>(dy[c]) * xhat[c];
          pb[c] += static_cast<double>(dy[c]);
        }
      }
      if (dinp) {
        const double inv_c = 1.0 / static_cast<double>(C);
        const float g_mean = static_cast<float>(sum_f64(g.data(), C) * inv_c);
        const float gx_mean = static_cast<float>(dot_f64(g.data(), xhat.data(), C) * inv_c);
        float* dx = dinp + r * C;
        for (int64_t c = 0; c < C; ++c) dx[c] = rs * (g[c] - g_mean - xhat[c] * gx_mean);
      }
    }
  });
  if (want_params) {
    ex.pool->parallel_for(C, 256, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        double sw = 0, sb = 0;
        for (int64_t t = 0; t < tasks; ++t) {
          sw += partial[static_cast<size_t>(t * 2 * C + c)];
          sb += partial[static_cast<size_t>(t * 2 * C + C + c)];
        }
        if (dweight) dweight[c] += static_cast<float>(sw);
        if (dbias) dbias[c] += static_cast<float>(sb);
      }
    });
  }
}

}  // namespace carzero::cpu
