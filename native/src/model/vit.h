// vit.h: the image encoder, ViT-B/16 as in CARZero (spec 2): patch embedding, cls token and
// learned position embeddings, pre-norm blocks (LN eps from config), final LayerNorm.
// Dimension letters: B images, Cin input channels (3, or 1 for grey input), P patches,
// T = 1 + P tokens, C channels, NH heads, HS = C / NH, F mlp_dim.
#pragma once
#include <vector>

#include "model/config.h"
#include "model/graph.h"
#include "model/params.h"

namespace carzero::model {

// Per-block activations. Without keep, every block shares one set and the optional entries
// (marked *) are null; with keep, each block owns its buffers and everything a backward pass
// needs is stored.
struct VitBlockActs {
  float* x_in = nullptr;      // (B, T, C) block input (residual stream)
  float* ln1 = nullptr;       // (B, T, C)
  float* ln1_mean = nullptr;  // (B*T) *
  float* ln1_rstd = nullptr;  // (B*T) *
  float* qkv = nullptr;       // (B, T, 3C) packed q | k | v
  float* att = nullptr;       // (B, T, C) attention output (heads concatenated)
  float* att_lse = nullptr;   // (B, NH, T) *
  float* x_mid = nullptr;     // (B, T, C) after the attention residual
  float* ln2 = nullptr;       // (B, T, C)
  float* ln2_mean = nullptr;  // *
  float* ln2_rstd = nullptr;  // *
  float* fc1_pre = nullptr;   // (B, T, F) pre-GELU *
  float* h = nullptr;         // (B, T, F) GELU output
  float* x_out = nullptr;     // (B, T, C) block output
};

struct VitActs {
  int64_t B = 0;
  bool keep = false;
  float* patches = nullptr;  // (B, P, C)
  std::vector<VitBlockActs> blocks;
  float* norm_mean = nullptr;  // (B*T) * final LayerNorm statistics
  float* norm_rstd = nullptr;  // *
};

class VisionTransformer {
 public:
  // Declares every parameter (and the derived ones) in `ps`; wt is the GEMM weight dtype.
  void declare(ParamStore& ps, const VisionConfig& cfg, DType wt);
  // Resolves parameter pointers after ps.materialise().
  void bind(const ParamStore& ps);
  VitActs plan(Bump& bump, int64_t B, bool keep) const;
  // pixels (B, Cin, H, W) with Cin = 3 or 1 -> global (B, C) = LN(x)[:, 0], local (B, P, C).
  void forward(const Runner& r, const VitActs& a, const float* pixels, int64_t Cin, float* global,
               float* local) const;
  const VisionConfig& config() const { return cfg_; }

 private:
  struct Block {
    LN norm1, norm2;
    Lin qkv, proj, fc1, fc2;
  };
  VisionConfig cfg_;
  DType wt_ = DType::F32;
  int64_t C_ = 0, P_ = 0, T_ = 0, NH_ = 0, HS_ = 0, F_ = 0;
  // Parameter indices, then pointers.
  int i_patch_w_ = -1, i_patch_w1_ = -1, i_patch_b_ = -1, i_pos_ = -1, i_cls_pos_ = -1;
  int i_norm_w_ = -1, i_norm_b_ = -1;
  std::vector<std::vector<int>> i_blocks_;
  const float* patch_w_ = nullptr;   // (C, 3, ps, ps)
  const float* patch_w1_ = nullptr;  // (C, 1, ps, ps): summed over input channels
  const float* patch_b_ = nullptr;   // (C)
  const float* pos_ = nullptr;       // (T, C)
  const float* cls_pos_ = nullptr;   // (C) = cls_token + pos_embed[0]
  LN norm_;
  std::vector<Block> blocks_;
};

}  // namespace carzero::model
