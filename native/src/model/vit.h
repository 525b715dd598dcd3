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
  // keep + recompute: each block keeps only its input x_in; the other activations are one set
  // shared by every block, refilled by re-running a block's forward before its backward.
  bool recompute = false;
  float* pix3 = nullptr;     // (B, 3, H, W) grey input repeated over 3 channels (training layout)
  float* patches = nullptr;  // (B, P, C)
  std::vector<VitBlockActs> blocks;
  float* norm_mean = nullptr;  // (B*T) * final LayerNorm statistics
  float* norm_rstd = nullptr;  // *
};

// Scratch gradients of the backward pass (activation gradients; parameter gradients live in the
// ParamStore's gradient arena).
struct VitGrads {
  float* dx = nullptr;    // (B, T, C) residual stream
  float* dt = nullptr;    // (B, T, C)
  float* dt2 = nullptr;   // (B, T, C)
  float* dqkv = nullptr;  // (B, T, 3C)
  float* dh = nullptr;    // (B, T, F)
};

class VisionTransformer {
 public:
  // Declares every parameter (and the derived ones) in `ps`; wt is the GEMM weight dtype.
  // training: the checkpoint tensors only (cls_token declared, nothing derived), so the
  // parameters are exactly the trainable ones and a grey input runs through the 3-channel kernel.
  void declare(ParamStore& ps, const VisionConfig& cfg, DType wt, bool training = false);
  // Resolves parameter pointers after ps.materialise().
  void bind(const ParamStore& ps);
  // Gives every Linear weight its prepacked CPU GEMM panels (inference only: call after bind(),
  // never with the training layout; bind() drops them).
  void prepack(const Context& ctx, WeightPacks& packs);
  // Cin: the input's channel count (3 or 1).
  VitActs plan(Bump& bump, int64_t B, bool keep, int64_t Cin = 3, bool recompute = false) const;
  VitGrads plan_backward(Bump& bump, int64_t B) const;
  // pixels (B, Cin, H, W) with Cin = 3 or 1 -> global (B, C) = LN(x)[:, 0], local (B, P, C).
  void forward(const Runner& r, const VitActs& a, const float* pixels, int64_t Cin, float* global, float* local) const;
  // Backward of forward() (a planned with keep, in the training layout): accumulates every
  // parameter gradient into ps's gradient arena, given dglobal (B, C) and dlocal (B, P, C).
  void backward(const Runner& r, const VitActs& a, const VitGrads& g, const ParamStore& ps, const float* pixels,
                int64_t Cin, const float* dglobal, const float* dlocal) const;
  const VisionConfig& config() const { return cfg_; }

 private:
  struct Block {
    LN norm1, norm2;
    Lin qkv, proj, fc1, fc2;
  };
  // One block's parameter indices in the ParamStore (weight w, bias b), filled by declare().
  struct BlockParams {
    int norm1_w = -1, norm1_b = -1, qkv_w = -1, qkv_b = -1, proj_w = -1, proj_b = -1;
    int norm2_w = -1, norm2_b = -1, fc1_w = -1, fc1_b = -1, fc2_w = -1, fc2_b = -1;
  };
  AttnArgs attn_args(const VitBlockActs& s, int64_t B, float scale) const;
  // One block's forward at fp32 activations (the training / fp32 path).
  // training: activations kept for a backward (mixed-precision attention, graph.h)
  void forward_block(const Runner& r, size_t l, const VitBlockActs& s, int64_t B, bool training) const;
  // One block's forward at bf16 activations (GPU inference at bf16, see forward()): the
  // LayerNorm outputs, qkv, the attention output and the MLP hidden layer are bf16 in s's
  // buffers, the residual stream s.x_in stays fp32 and is updated in place (no keep).
  void forward_block_bf16(const Runner& r, size_t l, const VitBlockActs& s, int64_t B) const;
  VisionConfig cfg_;
  DType wt_ = DType::F32;
  int64_t C_ = 0, P_ = 0, T_ = 0, NH_ = 0, HS_ = 0, F_ = 0;
  // Parameter indices, then pointers.
  int i_patch_w_ = -1, i_patch_w1_ = -1, i_patch_b_ = -1, i_pos_ = -1, i_cls_pos_ = -1;
  int i_norm_w_ = -1, i_norm_b_ = -1, i_cls_ = -1;
  bool training_ = false;
  std::vector<BlockParams> i_blocks_;
  const float* patch_w_ = nullptr;   // (C, 3, ps, ps)
  const float* patch_w1_ = nullptr;  // (C, 1, ps, ps): summed over input channels
  const float* patch_b_ = nullptr;   // (C)
  const float* pos_ = nullptr;       // (T, C)
  const float* cls_pos_ = nullptr;   // (C) = cls_token + pos_embed[0] (inference layout)
  const float* cls_ = nullptr;       // (C) cls_token (training layout)
  LN norm_;
  std::vector<Block> blocks_;
};

}  // namespace carzero::model
