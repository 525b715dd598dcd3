// bert.h: the text encoder, BERT-base post-norm (spec 3.3), returning the sum of the hidden
// states of the last n layers (the input of CARZero's word aggregation, glue.h).
// Dimension letters: Q texts, L positions, C channels, NH heads, HS = C / NH, I intermediate.
#pragma once
#include <vector>

#include "model/config.h"
#include "model/graph.h"
#include "model/params.h"

namespace carzero::model {

// Per-layer activations (shared across layers without keep; * = only with keep).
struct BertLayerActs {
  float* x_in = nullptr;     // (Q, L, C) layer input
  float* qkv = nullptr;      // (Q, L, 3C)
  float* att = nullptr;      // (Q, L, C)
  float* att_lse = nullptr;  // (Q, NH, L) *
  float* res1 = nullptr;     // (Q, L, C) x_in + attention.output.dense(att) (pre-LN)
  float* x1 = nullptr;       // (Q, L, C) attention.output.LayerNorm(res1)
  float* ln1_mean = nullptr, *ln1_rstd = nullptr;  // (Q*L) *
  float* inter_pre = nullptr;  // (Q, L, I) *
  float* inter = nullptr;      // (Q, L, I) GELU output
  float* res2 = nullptr;       // (Q, L, C) x1 + output.dense(inter)
  float* out = nullptr;        // (Q, L, C) output.LayerNorm(res2): the layer's hidden state
  float* ln2_mean = nullptr, *ln2_rstd = nullptr;  // *
};

struct BertActs {
  int64_t Q = 0, L = 0;
  bool keep = false;
  float* emb = nullptr;  // (Q, L, C) word + position + type embeddings (pre-LN)
  float* emb_mean = nullptr, *emb_rstd = nullptr;  // *
  std::vector<BertLayerActs> layers;
  float* hsum = nullptr;  // (Q, L, C) sum of the last n layers' outputs
};

class BertEncoder {
 public:
  void declare(ParamStore& ps, const TextConfig& cfg, DType wt);
  void bind(const ParamStore& ps);
  BertActs plan(Bump& bump, int64_t Q, int64_t L, bool keep) const;
  // ids (Q, L) i32, mask (Q, L) u8 (1 = real token) -> a.hsum.
  void forward(const Runner& r, const BertActs& a, const int32_t* ids, const uint8_t* mask) const;
  const TextConfig& config() const { return cfg_; }

 private:
  struct Layer {
    Lin qkv, out_dense, inter, out2;
    LN ln1, ln2;
  };
  TextConfig cfg_;
  int64_t C_ = 0, NH_ = 0, HS_ = 0, I_ = 0;
  int i_word_ = -1, i_postype_ = -1, i_ln_w_ = -1, i_ln_b_ = -1;
  std::vector<std::vector<int>> i_layers_;
  const float* word_ = nullptr;     // (V, C)
  const float* postype_ = nullptr;  // (max_position, C) position + token type 0
  LN emb_ln_;
  std::vector<Layer> layers_;
};

}  // namespace carzero::model
