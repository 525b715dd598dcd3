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
  float* x_in = nullptr;                           // (Q, L, C) layer input
  float* qkv = nullptr;                            // (Q, L, 3C)
  float* att = nullptr;                            // (Q, L, C)
  float* att_lse = nullptr;                        // (Q, NH, L) *
  float* res1 = nullptr;                           // (Q, L, C) x_in + attention.output.dense(att) (pre-LN)
  float* x1 = nullptr;                             // (Q, L, C) attention.output.LayerNorm(res1)
  float *ln1_mean = nullptr, *ln1_rstd = nullptr;  // (Q*L) *
  float* inter_pre = nullptr;                      // (Q, L, I) *
  float* inter = nullptr;                          // (Q, L, I) GELU output
  float* res2 = nullptr;                           // (Q, L, C) x1 + output.dense(inter)
  float* out = nullptr;                            // (Q, L, C) output.LayerNorm(res2): the layer's hidden state
  float *ln2_mean = nullptr, *ln2_rstd = nullptr;  // *
};

struct BertActs {
  int64_t Q = 0, L = 0;
  bool keep = false;
  // keep + recompute: each layer keeps only its output (the next layer's input); the other
  // activations are one shared set, refilled by re-running a layer before its backward.
  bool recompute = false;
  float* postype = nullptr;                        // (L, C) position + type-0 embeddings (training layout)
  float* emb = nullptr;                            // (Q, L, C) word + position + type embeddings (pre-LN)
  float *emb_mean = nullptr, *emb_rstd = nullptr;  // *
  std::vector<BertLayerActs> layers;
  float* hsum = nullptr;  // (Q, L, C) sum of the last n layers' outputs
};

// Scratch activation gradients of the backward pass.
struct BertGrads {
  float *dx = nullptr, *dres = nullptr, *dt = nullptr, *datt = nullptr;  // (Q, L, C)
  float* dqkv = nullptr;                                                 // (Q, L, 3C)
  float* dinter = nullptr;                                               // (Q, L, I)
};

class BertEncoder {
 public:
  // training: the checkpoint tensors only (query/key/value declared as three consecutive
  // parameters that form the packed (3C, C) matrix; position and token-type tables as stored).
  void declare(ParamStore& ps, const TextConfig& cfg, DType wt, bool training = false);
  void bind(const ParamStore& ps);
  // Gives every Linear weight its prepacked CPU GEMM panels (inference only: call after bind(),
  // never with the training layout; bind() drops them).
  void prepack(const Context& ctx, WeightPacks& packs);
  BertActs plan(Bump& bump, int64_t Q, int64_t L, bool keep, bool recompute = false) const;
  BertGrads plan_backward(Bump& bump, int64_t Q, int64_t L) const;
  // ids (Q, L) i32, mask (Q, L) u8 (1 = real token) -> a.hsum. drop: training-mode hidden
  // dropout (embeddings, attention output, layer output). Attention-probability dropout is not
  // implemented: the fused attention never materialises the probabilities (see TRAINING.md).
  void forward(const Runner& r, const BertActs& a, const int32_t* ids, const uint8_t* mask,
               const Dropout* drop = nullptr) const;
  // Backward of forward() (keep, training layout) given dhsum (Q, L, C) = dL/d a.hsum:
  // accumulates every parameter gradient into ps's gradient arena.
  void backward(const Runner& r, const BertActs& a, const BertGrads& g, const ParamStore& ps, const int32_t* ids,
                const uint8_t* mask, const float* dhsum, const Dropout* drop = nullptr) const;
  const TextConfig& config() const { return cfg_; }
  // One layer's forward (without the last-n sum).
  void forward_layer(const Runner& r, size_t l, const BertActs& a, const uint8_t* mask, const Dropout* drop) const;

 private:
  struct Layer {
    Lin qkv, out_dense, inter, out2;
    LN ln1, ln2;
  };
  // One layer's parameter indices in the ParamStore (weight w, bias b), filled by declare().
  // qkv_w / qkv_b: the packed (3C, C) / (3C) q | k | v (training: the query parameter, which
  // key and value follow without a gap).
  struct LayerParams {
    int qkv_w = -1, qkv_b = -1, out_dense_w = -1, out_dense_b = -1, ln1_w = -1, ln1_b = -1;
    int inter_w = -1, inter_b = -1, out2_w = -1, out2_b = -1, ln2_w = -1, ln2_b = -1;
  };
  AttnArgs attn_args(const BertLayerActs& s, int64_t Q, int64_t L, const uint8_t* mask) const;
  TextConfig cfg_;
  bool training_ = false;
  int i_pos_ = -1, i_type_ = -1;
  const float* pos_ = nullptr;   // (max_position, C) training layout
  const float* type_ = nullptr;  // (type_vocab, C)
  int64_t C_ = 0, NH_ = 0, HS_ = 0, I_ = 0;
  int i_word_ = -1, i_postype_ = -1, i_ln_w_ = -1, i_ln_b_ = -1;
  std::vector<LayerParams> i_layers_;
  const float* word_ = nullptr;     // (V, C)
  const float* postype_ = nullptr;  // (max_position, C) position + token type 0
  LN emb_ln_;
  std::vector<Layer> layers_;
};

}  // namespace carzero::model
