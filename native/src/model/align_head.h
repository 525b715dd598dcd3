// align_head.h: CARZero's alignment head (spec 4; TQN without self-attention, `fusion_module`).
// One call scores every (memory item, query) pair of a batch:
//   memory i (S = 1 + R entries): [first_i ; rest_i], queries j: logit[i, j] = head(memory i, query j).
// For i2t, memory = images (first = global, rest = local patches, R = P), queries = sentences;
// for t2i, memory = texts (first = sentence, rest = words, R = L), queries = image globals.
// K and V of each memory item are computed once per layer (one GEMM over all Nm*S rows) and
// shared by its Nq queries through the attention op's batch strides; every per-pair part is a
// GEMM over all Nm*Nq rows. The first layer's query projection depends only on the query, so it
// runs on Nq rows and the attention reads it with batch stride 0.
// Dimension letters: Nm memory items, Nq queries, S memory entries, C channels, NH heads,
// HS = C / NH, F ffn.
#pragma once
#include <vector>

#include "model/config.h"
#include "model/graph.h"
#include "model/params.h"

namespace carzero::model {

struct HeadLayerActs {
  float* kv = nullptr;                           // (Nm, S, 2C) K | V of the memory
  float* t_in = nullptr;                         // (Nm*Nq, C) pair state entering the layer (layer 0: (Nq, C), shared)
  float* n2 = nullptr;                           // norm2(t): (Nm*Nq, C), or (Nq, C) in layer 0
  float *n2_mean = nullptr, *n2_rstd = nullptr;  // *
  float* qh = nullptr;                           // W_q n2, same rows as n2
  float* att = nullptr;                          // (Nm, Nq, C)
  float* att_lse = nullptr;                      // (Nm, NH, Nq) *
  float* probs = nullptr;                        // (Nm, NH, Nq, S) only when attention maps are asked for
  float* t_mid = nullptr;                        // (Nm*Nq, C) t + out_proj(att)
  float* n3 = nullptr;                           // norm3(t_mid)
  float *n3_mean = nullptr, *n3_rstd = nullptr;  // *
  float* f_pre = nullptr;                        // (Nm*Nq, F) linear1 pre-ReLU *
  float* f = nullptr;                            // (Nm*Nq, F)
  float* t_out = nullptr;                        // (Nm*Nq, C)
};

struct HeadActs {
  int64_t Nm = 0, Nq = 0, R = 0;
  bool keep = false, maps = false;
  float* mem = nullptr;                            // (Nm, S, C) LN_dec(memory)
  float *mem_mean = nullptr, *mem_rstd = nullptr;  // (Nm*S) *
  float* q0 = nullptr;                             // (Nq, C) LN_dec(queries)
  float *q0_mean = nullptr, *q0_rstd = nullptr;    // *
  std::vector<HeadLayerActs> layers;
  float* fin = nullptr;                            // (Nm*Nq, C) LN_dec(t)
  float *fin_mean = nullptr, *fin_rstd = nullptr;  // *
  std::vector<float*> mlp_pre;                     // per mlp layer (Nm*Nq, out) pre-ReLU * (last: the logits)
  std::vector<float*> mlp;                         // per mlp layer (Nm*Nq, out) after ReLU
  float* tmp = nullptr;                            // (Nm*Nq, C) scratch for the dropout sites *
};

// Scratch activation gradients of the backward pass.
struct HeadGrads {
  float *dt = nullptr, *dt2 = nullptr, *dn = nullptr, *datt = nullptr, *dqh = nullptr;  // (NP, C)
  float* df = nullptr;                                                                  // (NP, F)
  float* dkv = nullptr;                                                                 // (Nm, S, 2C)
  float *dmem = nullptr, *dmem_t = nullptr;                                             // (Nm, S, C)
  float *dq0 = nullptr, *dq0_t = nullptr;                                               // (Nq, C)
  float *dmlp_a = nullptr, *dmlp_b = nullptr;                                           // (NP, widest mlp layer)
};

class AlignHead {
 public:
  void declare(ParamStore& ps, const HeadConfig& cfg, DType wt);
  void bind(const ParamStore& ps);
  // Gives every Linear weight its prepacked CPU GEMM panels (inference only: call after bind(),
  // never with the training layout; bind() drops them).
  void prepack(const Context& ctx, WeightPacks& packs);
  // maps: store each layer's attention weights (for grounding maps).
  HeadActs plan(Bump& bump, int64_t Nm, int64_t Nq, int64_t R, bool keep, bool maps) const;
  HeadGrads plan_backward(Bump& bump, int64_t Nm, int64_t Nq, int64_t R) const;
  // first (Nm, C), rest (Nm, R, C), queries (Nq, C) -> logits (Nm, Nq) (row stride ld_logits,
  // 0 = Nq); attn_avg (Nm, Nq, R) when a.maps: the attention weights averaged over heads and
  // layers, the first memory entry dropped.
  // drop (training, needs keep): dropout after out_proj, after the FFN's ReLU, after linear2,
  // on the decoder output (dropout_feas) and after each mlp_head ReLU, at the sites of `module`
  // (Dropout::HeadI2T / HeadT2I). The MultiheadAttention's attention-probability dropout is not
  // implemented (the fused attention never materialises the probabilities).
  void forward(const Runner& r, const HeadActs& a, const float* first, const float* rest, const float* queries,
               float* logits, int64_t ld_logits, float* attn_avg, const Dropout* drop = nullptr,
               uint64_t module = 0) const;
  // Backward of forward() (keep) given dlogits (Nm, Nq) with row stride ld_dlogits (0 = Nq):
  // accumulates the head's parameter gradients into ps's gradient arena and (+=) dfirst (Nm, C),
  // drest (Nm, R, C), dqueries (Nq, C) (each nullable).
  void backward(const Runner& r, const HeadActs& a, const HeadGrads& g, const ParamStore& ps, const float* first,
                const float* rest, const float* queries, const float* dlogits, int64_t ld_dlogits, float* dfirst,
                float* drest, float* dqueries, const Dropout* drop = nullptr, uint64_t module = 0) const;
  const HeadConfig& config() const { return cfg_; }

 private:
  struct Layer {
    LN norm2, norm3;
    Lin in_proj, out_proj, linear1, linear2;
    Lin in_q, in_kv;  // in_proj's rows [0, C) (query) and [C, 3C) (key | value)
  };
  // One decoder layer's parameter indices in the ParamStore (weight w, bias b), filled by declare().
  struct LayerParams {
    int norm2_w = -1, norm2_b = -1, in_proj_w = -1, in_proj_b = -1, out_proj_w = -1, out_proj_b = -1;
    int norm3_w = -1, norm3_b = -1, linear1_w = -1, linear1_b = -1, linear2_w = -1, linear2_b = -1;
  };
  struct LinParams {  // one mlp_head Linear
    int w = -1, b = -1;
  };
  AttnArgs attn_args(const HeadActs& a, const HeadLayerActs& s, bool shared_q) const;
  HeadConfig cfg_;
  int64_t C_ = 0, NH_ = 0, HS_ = 0, F_ = 0;
  int i_dn_w_ = -1, i_dn_b_ = -1;
  std::vector<LayerParams> i_layers_;
  std::vector<LinParams> i_mlp_;
  LN dec_norm_;
  std::vector<Layer> layers_;
  std::vector<Lin> mlp_;
};

}  // namespace carzero::model
