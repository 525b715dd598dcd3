// glue.cpp: see glue.h.
#include "model/glue.h"

#include <cstring>
#include <vector>

#include "core/status.h"
#include "core/threadpool.h"

namespace carzero::model {

void to_host(Context& ctx, void* dst, const void* src, size_t n) {
  if (!n) return;
  if (ctx.device() == DeviceType::CPU)
    std::memcpy(dst, src, n);
  else
    ctx.backend()->download(dst, src, n);
}

void from_host(Context& ctx, void* dst, const void* src, size_t n) {
  if (!n) return;
  if (ctx.device() == DeviceType::CPU)
    std::memcpy(dst, src, n);
  else
    ctx.backend()->upload(dst, src, n);
}

namespace {

// A host view of a device buffer: the buffer itself on the CPU, else a staged copy.
struct Staged {
  Context& ctx;
  void* dev;
  size_t n;
  std::vector<char> host;
  Staged(Context& c, const void* d, size_t bytes, bool read) : ctx(c), dev(const_cast<void*>(d)), n(bytes) {
    if (ctx.device() != DeviceType::CPU) {
      host.resize(n);
      if (read) to_host(ctx, host.data(), dev, n);
    }
  }
  template <typename T>
  T* get() {
    return static_cast<T*>(ctx.device() == DeviceType::CPU ? dev : static_cast<void*>(host.data()));
  }
  void commit() {
    if (ctx.device() != DeviceType::CPU) from_host(ctx, dev, host.data(), n);
  }
};

}  // namespace

void validate_kinds(const uint8_t* kinds, int64_t Q, int64_t L) {
  for (int64_t q = 0; q < Q; ++q) {
    const uint8_t* k = kinds + q * L;
    CZ_ARG(L == 0 || k[0] == 0,
           "kinds[%lld][0] is %d: every text must start with a word-starting token ([CLS], kind 0)",
           static_cast<long long>(q), k[0]);
    for (int64_t t = 0; t < L; ++t)
      CZ_ARG(k[t] <= 3, "kinds[%lld][%lld] is %d: expected 0 (word start), 1 (##), 2 ([SEP]) or 3",
             static_cast<long long>(q), static_cast<long long>(t), k[t]);
  }
}

void aggregate_words(Context& ctx, const float* hsum_d, int64_t Lh, const uint8_t* kinds, float* words_d,
                     float* sentence_d, int64_t Q, int64_t L, int64_t C) {
  validate_kinds(kinds, Q, L);
  CZ_REQUIRE(Lh <= L, CZ_ERR_INTERNAL, "aggregate_words: Lh %lld > L %lld", (long long)Lh, (long long)L);
  Staged hs(ctx, hsum_d, static_cast<size_t>(Q * Lh * C) * 4, true);
  Staged wd(ctx, words_d, static_cast<size_t>(Q * L * C) * 4, false);
  Staged sd(ctx, sentence_d, static_cast<size_t>(Q * C) * 4, false);
  const float* hsum = hs.get<float>();
  float* words = wd.get<float>();
  float* sentence = sd.get<float>();
  ctx.exec().pool->parallel_for(Q, 1, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      const uint8_t* k = kinds + q * L;
      const float* h = hsum + q * Lh * C;
      float* w = words + q * L * C;
      std::memset(w, 0, static_cast<size_t>(L * C) * 4);
      int64_t n = 0;     // entries written
      int64_t bank = 0;  // tokens in the open bank (accumulated in w[n])
      auto flush = [&] {
        if (bank) ++n;
        bank = 0;
      };
      auto add_to_bank = [&](int64_t t) {
        float* e = w + n * C;
        const float* x = h + t * C;
        for (int64_t c = 0; c < C; ++c) e[c] += x[c];
        ++bank;
      };
      for (int64_t t = 0; t < Lh; ++t) {  // positions >= Lh are kind 3 (checked by the caller)
        if (k[t] == 2) {                  // [SEP]: flush, append [SEP] itself, stop
          flush();
          if (n < L) {
            std::memcpy(w + n * C, h + t * C, static_cast<size_t>(C) * 4);
            ++n;
          }
          break;
        }
        if (k[t] == 3) break;  // past the text (no [SEP] seen: the original keeps no open bank)
        if (k[t] == 0) flush();
        add_to_bank(t);
      }
      // The sentence: mean over all L entries, zero pads included.
      float* s = sentence + q * C;
      for (int64_t c = 0; c < C; ++c) s[c] = 0.0f;
      for (int64_t j = 0; j < n; ++j)
        for (int64_t c = 0; c < C; ++c) s[c] += w[j * C + c];
      const float inv = 1.0f / static_cast<float>(L);
      for (int64_t c = 0; c < C; ++c) s[c] *= inv;
    }
  });
  wd.commit();
  sd.commit();
}

void aggregate_words_backward(Context& ctx, const float* dwords_d, const float* dsentence_d, int64_t Lh,
                              const uint8_t* kinds, float* dhsum_d, int64_t Q, int64_t L, int64_t C) {
  CZ_REQUIRE(Lh <= L, CZ_ERR_INTERNAL, "aggregate_words_backward: Lh %lld > L %lld", (long long)Lh, (long long)L);
  Staged wd(ctx, dwords_d, static_cast<size_t>(Q * L * C) * 4, true);
  Staged sd(ctx, dsentence_d, static_cast<size_t>(Q * C) * 4, true);
  Staged hs(ctx, dhsum_d, static_cast<size_t>(Q * Lh * C) * 4, false);
  const float* dwords = wd.get<float>();
  const float* dsent = sd.get<float>();
  float* dhsum = hs.get<float>();
  const float inv = 1.0f / static_cast<float>(L);
  ctx.exec().pool->parallel_for(Q, 1, [&](int64_t q0, int64_t q1) {
    std::vector<int64_t> entry(static_cast<size_t>(Lh));
    for (int64_t q = q0; q < q1; ++q) {
      const uint8_t* k = kinds + q * L;
      // The forward's walk: the entry each token was summed into (-1: none).
      int64_t n = 0, bank = 0;
      int64_t t = 0;
      for (; t < Lh; ++t) entry[t] = -1;
      for (t = 0; t < Lh; ++t) {
        if (k[t] == 2) {
          if (bank) ++n;
          bank = 0;
          if (n < L) entry[t] = n++;
          break;
        }
        if (k[t] == 3) break;
        if (k[t] == 0 && bank) {
          ++n;
          bank = 0;
        }
        entry[t] = n;
        ++bank;
      }
      // Entries j < n count in the sentence mean (an unflushed bank does not).
      const float* ds = dsent + q * C;
      float* dh = dhsum + q * Lh * C;
      for (t = 0; t < Lh; ++t) {
        float* o = dh + t * C;
        const int64_t e = entry[t];
        if (e < 0) {
          for (int64_t c = 0; c < C; ++c) o[c] = 0.0f;
          continue;
        }
        const float* w = dwords + (q * L + e) * C;
        const float sw = e < n ? inv : 0.0f;
        for (int64_t c = 0; c < C; ++c) o[c] = w[c] + sw * ds[c];
      }
    }
  });
  hs.commit();
}

void accumulate_attention(Context& ctx, const float* probs_d, float* avg_d, int64_t Nm, int64_t NH, int64_t Nq,
                          int64_t S, float scale, bool first) {
  const int64_t R = S - 1;
  Staged pr(ctx, probs_d, static_cast<size_t>(Nm * NH * Nq * S) * 4, true);
  Staged av(ctx, avg_d, static_cast<size_t>(Nm * Nq * R) * 4, !first);
  const float* probs = pr.get<float>();
  float* avg = av.get<float>();
  ctx.exec().pool->parallel_for(Nm * Nq, 4, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t i = r / Nq, j = r % Nq;
      float* o = avg + r * R;
      if (first)
        for (int64_t s = 0; s < R; ++s) o[s] = 0.0f;
      for (int64_t h = 0; h < NH; ++h) {
        const float* p = probs + ((i * NH + h) * Nq + j) * S + 1;
        for (int64_t s = 0; s < R; ++s) o[s] += scale * p[s];
      }
    }
  });
  av.commit();
}

void combine_scores(Context& ctx, const float* i2t_d, const float* t2i_d, float* score_d, int64_t B, int64_t Q) {
  const size_t n = static_cast<size_t>(B * Q) * 4;
  Staged a(ctx, i2t_d, n, true), b(ctx, t2i_d, n, true), s(ctx, score_d, n, false);
  const float* i2t = a.get<float>();
  const float* t2i = b.get<float>();
  float* score = s.get<float>();
  ctx.exec().pool->parallel_for(B, 16, [&](int64_t b0, int64_t b1) {
    for (int64_t bb = b0; bb < b1; ++bb)
      for (int64_t q = 0; q < Q; ++q) score[bb * Q + q] = 0.5f * (i2t[bb * Q + q] + t2i[q * B + bb]);
  });
  s.commit();
}

}  // namespace carzero::model
