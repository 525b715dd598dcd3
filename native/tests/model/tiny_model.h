// tiny_model.h: a random tiny CARZero (same tensor names and layout as a converted checkpoint)
// built in memory, and a plain double-precision reference of the spec (per image, per text, per
// pair; no batching, no tricks) to check the batched native graphs against.
#pragma once
#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "model/safetensors.h"

namespace tiny {

using Vec = std::vector<double>;

struct Dims {
  int64_t C = 32, img = 32, ps = 8, vdepth = 2, vheads = 4, vmlp = 64;
  int64_t vocab = 60, tdepth = 3, theads = 4, inter = 48, maxpos = 40, tlast = 2;
  int64_t hdepth = 2, hheads = 4, ffn = 40;
  std::vector<int64_t> mlp = {24, 16, 1};
  int64_t P() const { return (img / ps) * (img / ps); }
};

// name -> (shape, values)
struct Weights {
  std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> t;
  std::vector<std::string> order;
  void add(const std::string& n, std::vector<int64_t> shape, std::mt19937& rng, float scale, float offset = 0.0f) {
    int64_t k = 1;
    for (auto s : shape) k *= s;
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> v(static_cast<size_t>(k));
    for (auto& x : v) x = offset + scale * nd(rng);
    t[n] = {shape, v};
    order.push_back(n);
  }
  const std::vector<float>& operator[](const std::string& n) const { return t.at(n).second; }
  void to_source(carzero::model::MemorySource& src) const {
    for (const auto& n : order) {
      auto sv = t.at(n);
      src.add_f32(n, sv.first, std::move(sv.second));
    }
  }
};

inline Weights make_weights(const Dims& d, uint32_t seed) {
  std::mt19937 rng(seed);
  Weights w;
  const int64_t C = d.C;
  const std::string v = "img_encoder.model.";
  w.add(v + "cls_token", {1, 1, C}, rng, 0.5f);
  w.add(v + "pos_embed", {1, 1 + d.P(), C}, rng, 0.5f);
  w.add(v + "patch_embed.proj.weight", {C, 3, d.ps, d.ps}, rng, 0.05f);
  w.add(v + "patch_embed.proj.bias", {C}, rng, 0.1f);
  auto lin = [&](const std::string& n, int64_t out, int64_t in) {
    w.add(n + ".weight", {out, in}, rng, 1.0f / std::sqrt(static_cast<float>(in)));
    w.add(n + ".bias", {out}, rng, 0.05f);
  };
  auto ln = [&](const std::string& n) {
    w.add(n + ".weight", {C}, rng, 0.1f, 1.0f);
    w.add(n + ".bias", {C}, rng, 0.1f);
  };
  for (int64_t l = 0; l < d.vdepth; ++l) {
    const std::string b = v + "blocks." + std::to_string(l) + ".";
    ln(b + "norm1");
    lin(b + "attn.qkv", 3 * C, C);
    lin(b + "attn.proj", C, C);
    ln(b + "norm2");
    lin(b + "mlp.fc1", d.vmlp, C);
    lin(b + "mlp.fc2", C, d.vmlp);
  }
  ln(v + "norm");
  const std::string t = "text_encoder.model.";
  w.add(t + "embeddings.word_embeddings.weight", {d.vocab, C}, rng, 0.5f);
  w.add(t + "embeddings.position_embeddings.weight", {d.maxpos, C}, rng, 0.3f);
  w.add(t + "embeddings.token_type_embeddings.weight", {2, C}, rng, 0.3f);
  ln(t + "embeddings.LayerNorm");
  for (int64_t l = 0; l < d.tdepth; ++l) {
    const std::string b = t + "encoder.layer." + std::to_string(l) + ".";
    lin(b + "attention.self.query", C, C);
    lin(b + "attention.self.key", C, C);
    lin(b + "attention.self.value", C, C);
    lin(b + "attention.output.dense", C, C);
    ln(b + "attention.output.LayerNorm");
    lin(b + "intermediate.dense", d.inter, C);
    lin(b + "output.dense", C, d.inter);
    ln(b + "output.LayerNorm");
  }
  const std::string h = "fusion_module.";
  ln(h + "decoder_norm");
  for (int64_t l = 0; l < d.hdepth; ++l) {
    const std::string b = h + "decoder.layers." + std::to_string(l) + ".";
    ln(b + "norm2");
    w.add(b + "multihead_attn.in_proj_weight", {3 * C, C}, rng, 1.0f / std::sqrt((float)C));
    w.add(b + "multihead_attn.in_proj_bias", {3 * C}, rng, 0.05f);
    lin(b + "multihead_attn.out_proj", C, C);
    ln(b + "norm3");
    lin(b + "linear1", d.ffn, C);
    lin(b + "linear2", C, d.ffn);
  }
  int64_t in = C;
  for (size_t k = 0; k < d.mlp.size(); ++k) {
    lin(h + "mlp_head." + std::to_string(3 * k), d.mlp[k], in);
    in = d.mlp[k];
  }
  return w;
}

inline std::string config_json(const Dims& d) {
  return "{\"format\":\"carzero-model\",\"format_version\":1,"
         "\"vision\":{\"image_size\":" +
         std::to_string(d.img) + ",\"heads\":" + std::to_string(d.vheads) +
         ",\"eps\":1e-6},"
         "\"text\":{\"heads\":" +
         std::to_string(d.theads) + ",\"last_n_layers\":" + std::to_string(d.tlast) +
         ",\"max_length\":12,\"eps\":1e-12},"
         "\"head\":{\"heads\":" +
         std::to_string(d.hheads) +
         ",\"eps\":1e-5},"
         "\"preprocess\":{\"resize\":256,\"crop\":224,\"mean\":0.4978,\"std\":0.2449},"
         "\"source\":{\"checkpoint\":\"random\"}}";
}

// ---- double reference ------------------------------------------------------------------------

struct Ref {
  const Weights& w;
  const Dims& d;

  Vec get(const std::string& n) const {
    const auto& v = w[n];
    return Vec(v.begin(), v.end());
  }
  // y (rows, out) = x (rows, in) W^T + b
  Vec linear(const Vec& x, int64_t rows, const std::string& n, int64_t out, int64_t in, int64_t w_row0 = 0,
             const std::string& wname = "", const std::string& bname = "") const {
    const auto& W = w[wname.empty() ? n + ".weight" : wname];
    const auto& B = w[bname.empty() ? n + ".bias" : bname];
    Vec y(static_cast<size_t>(rows * out));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out; ++o) {
        double s = B[w_row0 + o];
        for (int64_t i = 0; i < in; ++i) s += x[r * in + i] * W[(w_row0 + o) * in + i];
        y[r * out + o] = s;
      }
    return y;
  }
  Vec layernorm(const Vec& x, int64_t rows, const std::string& n, double eps) const {
    const auto& g = w[n + ".weight"];
    const auto& b = w[n + ".bias"];
    const int64_t C = d.C;
    Vec y(x.size());
    for (int64_t r = 0; r < rows; ++r) {
      double m = 0, v = 0;
      for (int64_t c = 0; c < C; ++c) m += x[r * C + c];
      m /= C;
      for (int64_t c = 0; c < C; ++c) v += (x[r * C + c] - m) * (x[r * C + c] - m);
      v /= C;
      double rs = 1.0 / std::sqrt(v + eps);
      for (int64_t c = 0; c < C; ++c) y[r * C + c] = (x[r * C + c] - m) * rs * g[c] + b[c];
    }
    return y;
  }
  static double gelu(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }
  // q (Tq, C), k/v (Tk, C); mask (Tk) or empty. probs_out (NH, Tq, Tk) optional.
  static Vec mha(const Vec& q, const Vec& k, const Vec& v, int64_t Tq, int64_t Tk, int64_t C, int64_t NH,
                 const std::vector<uint8_t>& mask, Vec* probs_out = nullptr) {
    const int64_t HS = C / NH;
    const double sc = 1.0 / std::sqrt(static_cast<double>(HS));
    Vec o(static_cast<size_t>(Tq * C), 0.0);
    if (probs_out) probs_out->assign(static_cast<size_t>(NH * Tq * Tk), 0.0);
    for (int64_t h = 0; h < NH; ++h)
      for (int64_t i = 0; i < Tq; ++i) {
        Vec s(static_cast<size_t>(Tk));
        double mx = -1e300;
        for (int64_t j = 0; j < Tk; ++j) {
          double a = 0;
          for (int64_t e = 0; e < HS; ++e) a += q[i * C + h * HS + e] * k[j * C + h * HS + e];
          s[j] = a * sc;
          if (mask.empty() || mask[j]) mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (int64_t j = 0; j < Tk; ++j) {
          s[j] = (mask.empty() || mask[j]) ? std::exp(s[j] - mx) : 0.0;
          z += s[j];
        }
        for (int64_t j = 0; j < Tk; ++j) {
          double p = s[j] / z;
          if (probs_out) (*probs_out)[(h * Tq + i) * Tk + j] = p;
          for (int64_t e = 0; e < HS; ++e) o[i * C + h * HS + e] += p * v[j * C + h * HS + e];
        }
      }
    return o;
  }
  static Vec cols(const Vec& x, int64_t rows, int64_t ld, int64_t c0, int64_t n) {
    Vec y(static_cast<size_t>(rows * n));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < n; ++c) y[r * n + c] = x[r * ld + c0 + c];
    return y;
  }

  // One image (3 or 1 channels, H x W) -> tokens after the final LN (T, C).
  Vec vit(const float* img, int64_t cin) const {
    const int64_t C = d.C, ps = d.ps, side = d.img / ps, P = d.P(), T = 1 + P;
    const std::string v = "img_encoder.model.";
    const auto& W = w[v + "patch_embed.proj.weight"];
    const auto& Bb = w[v + "patch_embed.proj.bias"];
    const auto& pos = w[v + "pos_embed"];
    const auto& cls = w[v + "cls_token"];
    Vec x(static_cast<size_t>(T * C));
    for (int64_t c = 0; c < C; ++c) x[c] = cls[c] + pos[c];
    for (int64_t p = 0; p < P; ++p) {
      const int64_t py = p / side, px = p % side;
      for (int64_t o = 0; o < C; ++o) {
        double s = Bb[o];
        for (int64_t ci = 0; ci < 3; ++ci)
          for (int64_t ky = 0; ky < ps; ++ky)
            for (int64_t kx = 0; kx < ps; ++kx) {
              const int64_t src_c = cin == 1 ? 0 : ci;  // grey input: identical channels
              s += W[((o * 3 + ci) * ps + ky) * ps + kx] * img[(src_c * d.img + py * ps + ky) * d.img + px * ps + kx];
            }
        x[(1 + p) * C + o] = s + pos[(1 + p) * C + o];
      }
    }
    for (int64_t l = 0; l < d.vdepth; ++l) {
      const std::string b = v + "blocks." + std::to_string(l) + ".";
      Vec h = layernorm(x, T, b + "norm1", 1e-6);
      Vec qkv = linear(h, T, b + "attn.qkv", 3 * C, C);
      Vec a = mha(cols(qkv, T, 3 * C, 0, C), cols(qkv, T, 3 * C, C, C), cols(qkv, T, 3 * C, 2 * C, C), T, T, C,
                  d.vheads, {});
      Vec pr = linear(a, T, b + "attn.proj", C, C);
      for (size_t i = 0; i < x.size(); ++i) x[i] += pr[i];
      h = layernorm(x, T, b + "norm2", 1e-6);
      Vec f = linear(h, T, b + "mlp.fc1", d.vmlp, C);
      for (auto& e : f) e = gelu(e);
      Vec f2 = linear(f, T, b + "mlp.fc2", C, d.vmlp);
      for (size_t i = 0; i < x.size(); ++i) x[i] += f2[i];
    }
    return layernorm(x, T, v + "norm", 1e-6);
  }

  // One text: hidden states of every layer (depth, L, C).
  std::vector<Vec> bert(const int32_t* ids, const uint8_t* mask, int64_t L) const {
    const int64_t C = d.C;
    const std::string t = "text_encoder.model.";
    const auto& we = w[t + "embeddings.word_embeddings.weight"];
    const auto& pe = w[t + "embeddings.position_embeddings.weight"];
    const auto& te = w[t + "embeddings.token_type_embeddings.weight"];
    Vec x(static_cast<size_t>(L * C));
    for (int64_t i = 0; i < L; ++i)
      for (int64_t c = 0; c < C; ++c) x[i * C + c] = static_cast<double>(we[ids[i] * C + c]) + pe[i * C + c] + te[c];
    x = layernorm(x, L, t + "embeddings.LayerNorm", 1e-12);
    std::vector<uint8_t> m(mask, mask + L);
    std::vector<Vec> outs;
    for (int64_t l = 0; l < d.tdepth; ++l) {
      const std::string b = t + "encoder.layer." + std::to_string(l) + ".";
      Vec q = linear(x, L, b + "attention.self.query", C, C);
      Vec k = linear(x, L, b + "attention.self.key", C, C);
      Vec v = linear(x, L, b + "attention.self.value", C, C);
      Vec a = mha(q, k, v, L, L, C, d.theads, m);
      Vec o = linear(a, L, b + "attention.output.dense", C, C);
      for (size_t i = 0; i < x.size(); ++i) o[i] += x[i];
      Vec x1 = layernorm(o, L, b + "attention.output.LayerNorm", 1e-12);
      Vec f = linear(x1, L, b + "intermediate.dense", d.inter, C);
      for (auto& e : f) e = gelu(e);
      Vec o2 = linear(f, L, b + "output.dense", C, d.inter);
      for (size_t i = 0; i < x1.size(); ++i) o2[i] += x1[i];
      x = layernorm(o2, L, b + "output.LayerNorm", 1e-12);
      outs.push_back(x);
    }
    return outs;
  }

  // Spec 3.4 as the original writes it (per layer, bank of vectors), then summed over layers.
  void aggregate(const std::vector<Vec>& layers, const uint8_t* kinds, int64_t L, Vec* words, Vec* sentence) const {
    const int64_t C = d.C;
    words->assign(static_cast<size_t>(L * C), 0.0);
    sentence->assign(static_cast<size_t>(C), 0.0);
    for (int64_t l = d.tdepth - d.tlast; l < d.tdepth; ++l) {
      const Vec& h = layers[l];
      std::vector<Vec> entries;
      std::vector<Vec> bank;
      auto flush = [&] {
        Vec s(static_cast<size_t>(C), 0.0);
        for (const auto& e : bank)
          for (int64_t c = 0; c < C; ++c) s[c] += e[c];
        entries.push_back(s);
      };
      for (int64_t t = 0; t < L; ++t) {
        Vec tok(h.begin() + t * C, h.begin() + (t + 1) * C);
        if (kinds[t] == 2) {
          flush();
          entries.push_back(tok);
          break;
        }
        if (kinds[t] == 3) break;
        if (kinds[t] == 0) {
          if (!bank.empty()) flush();
          bank.assign(1, tok);
        } else {
          bank.push_back(tok);
        }
      }
      while (static_cast<int64_t>(entries.size()) < L) entries.emplace_back(static_cast<size_t>(C), 0.0);
      for (int64_t j = 0; j < L; ++j)
        for (int64_t c = 0; c < C; ++c) {
          (*words)[j * C + c] += entries[j][c];
          (*sentence)[c] += entries[j][c] / static_cast<double>(L);
        }
    }
  }

  // head(memory M (S, C), query (C)) -> logit; probs (layers, NH, S) optional.
  double head(const Vec& M, int64_t S, const Vec& q, std::vector<Vec>* probs = nullptr) const {
    const int64_t C = d.C;
    const std::string h = "fusion_module.";
    Vec m = layernorm(M, S, h + "decoder_norm", 1e-5);
    Vec t = layernorm(q, 1, h + "decoder_norm", 1e-5);
    for (int64_t l = 0; l < d.hdepth; ++l) {
      const std::string b = h + "decoder.layers." + std::to_string(l) + ".";
      const std::string wn = b + "multihead_attn.in_proj_weight", bn = b + "multihead_attn.in_proj_bias";
      Vec n2 = layernorm(t, 1, b + "norm2", 1e-5);
      Vec Qp = linear(n2, 1, "", C, C, 0, wn, bn);
      Vec Kp = linear(m, S, "", C, C, C, wn, bn);
      Vec Vp = linear(m, S, "", C, C, 2 * C, wn, bn);
      Vec pr;
      Vec a = mha(Qp, Kp, Vp, 1, S, C, d.hheads, {}, &pr);
      if (probs) probs->push_back(pr);
      Vec o = linear(a, 1, b + "multihead_attn.out_proj", C, C);
      for (int64_t c = 0; c < C; ++c) t[c] += o[c];
      Vec n3 = layernorm(t, 1, b + "norm3", 1e-5);
      Vec f = linear(n3, 1, b + "linear1", d.ffn, C);
      for (auto& e : f) e = std::max(e, 0.0);
      Vec f2 = linear(f, 1, b + "linear2", C, d.ffn);
      for (int64_t c = 0; c < C; ++c) t[c] += f2[c];
    }
    Vec x = layernorm(t, 1, h + "decoder_norm", 1e-5);
    int64_t in = C;
    for (size_t k = 0; k < d.mlp.size(); ++k) {
      x = linear(x, 1, h + "mlp_head." + std::to_string(3 * k), d.mlp[k], in);
      if (k + 1 < d.mlp.size())
        for (auto& e : x) e = std::max(e, 0.0);
      in = d.mlp[k];
    }
    return x[0];
  }
};

}  // namespace tiny
