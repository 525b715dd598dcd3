// carzero.h: the CARZero model on one context: load a model directory (config.json +
// model.safetensors, docs/MODEL-FORMAT.md), embed images and texts, score every (image, text)
// pair in both directions, and produce grounding maps. The C ABI (cz_model_*) and the N-API class
// `Model` are thin wrappers over this class.
//
// Concurrency: calls on one model are serialised (one activation workspace per model); different
// models run independently. Inputs and outputs are Tensors on the model's context device.
// Large batches are processed in chunks (LoadOptions) so activation memory stays bounded.
#pragma once
#include <memory>
#include <mutex>
#include <string>

#include "core/context.h"
#include "model/align_head.h"
#include "model/bert.h"
#include "model/config.h"
#include "model/params.h"
#include "model/vit.h"

namespace carzero::model {

// TF32: fp32 weights and activations; on CUDA the fp32 GEMMs may use TF32 tensor cores
// (CUBLAS_COMPUTE_32F_FAST_TF32, as PyTorch's allow_tf32); the CPU has no TF32 and computes fp32.
enum class Precision { FP32 = 0, BF16 = 1, TF32 = 2 };
// "fp32" | "bf16" | "tf32"; false otherwise.
bool parse_precision(const std::string& s, Precision* out);
const char* precision_name(Precision p);

struct LoadOptions {
  Precision precision = Precision::FP32;
  int64_t max_images = 32;        // images per ViT chunk
  int64_t max_texts = 128;        // texts per BERT chunk
  int64_t max_score_images = 64;  // images per head chunk
  int64_t max_score_texts = 256;  // texts per head chunk
};

struct ImageEmbeddings {
  Tensor global;  // (B, C)
  Tensor local;   // (B, P, C)
};
struct TextEmbeddings {
  Tensor sentence;  // (Q, C)
  Tensor words;     // (Q, L, C)
};
struct ScoreResult {
  Tensor i2t;        // (B, Q)
  Tensor t2i;        // (Q, B)
  Tensor score;      // (B, Q) = (i2t + t2i^T) / 2, raw logits
  Tensor attention;  // (B, Q, P) when asked for, else undefined
};

// One training step's inputs (docs/TRAINING.md): N (image, sentence) pairs.
struct StepInputs {
  Tensor pixels;  // (N, 3 or 1, H, W) f32
  Tensor ids;     // (N, L) i32
  Tensor mask;    // (N, L) u8
  Tensor kinds;   // (N, L) u8
  float loss_scale = 1.0f;
  bool dropout = true;
  uint64_t step = 0;
  Tensor i2t_out, t2i_out;  // optional (N, N) f32 outputs: I and T
};
struct StepResult {
  double loss = 0, i2t_loss = 0, t2i_loss = 0;  // loss = ce(I) + ce(T)
};

class CarzeroModel {
 public:
  // Reads <dir>/config.json and mmaps <dir>/model.safetensors; validates every tensor.
  static std::shared_ptr<CarzeroModel> load(std::shared_ptr<Context> ctx, const std::string& dir,
                                            const LoadOptions& opts);
  // A model from tensors already at hand (tests, benchmarks). cfg is resolved against src.
  static std::shared_ptr<CarzeroModel> from_source(std::shared_ptr<Context> ctx, ModelConfig cfg,
                                                   std::shared_ptr<const TensorSource> src, const LoadOptions& opts);

  // pixels (B, 3 or 1, H, W) f32, normalised -> global (B, C), local (B, P, C).
  ImageEmbeddings embed_images(const Tensor& pixels);
  // ids (Q, L) i32, mask (Q, L) u8, kinds (Q, L) u8 -> sentence (Q, C), words (Q, L, C).
  TextEmbeddings embed_texts(const Tensor& ids, const Tensor& mask, const Tensor& kinds);
  // Every (image, text) pair; attention: also the grounding maps (B, Q, P).
  ScoreResult score(const Tensor& img_global, const Tensor& img_local, const Tensor& sentence, const Tensor& words,
                    bool attention);

  // The same, writing into caller-allocated outputs of exactly the shapes above (f32, on the
  // model's device): lets bindings allocate their result objects up front and callers reuse
  // buffers. Shapes of the outputs for given inputs: output_shapes_*().
  void embed_images_into(const Tensor& pixels, const ImageEmbeddings& out);
  void embed_texts_into(const Tensor& ids, const Tensor& mask, const Tensor& kinds, const TextEmbeddings& out);
  // out.attention undefined: no maps.
  void score_into(const Tensor& img_global, const Tensor& img_local, const Tensor& sentence, const Tensor& words,
                  const ScoreResult& out);
  // {global, local} for B images; {sentence, words} for Q texts of L positions;
  // {i2t, t2i, score, attention} for B images and Q texts.
  std::vector<std::vector<int64_t>> output_shapes_images(int64_t B) const;
  std::vector<std::vector<int64_t>> output_shapes_texts(int64_t Q, int64_t L) const;
  std::vector<std::vector<int64_t>> output_shapes_score(int64_t B, int64_t Q) const;

  const ModelConfig& config() const { return cfg_; }
  Precision precision() const { return opts_.precision; }
  const LoadOptions& options() const { return opts_; }
  void set_options(const LoadOptions& o);  // chunk sizes (precision is fixed at load)
  Context& context() const { return *ctx_; }
  const std::shared_ptr<Context>& context_ptr() const { return ctx_; }
  const ParamStore& params() const { return *params_; }
  size_t workspace_bytes() const { return ws_.capacity(); }
  // CPU inference: bytes of the GEMM weights packed into the kernels' panel layout (a copy of
  // each Linear weight, made on its first use and held until the model is freed or switches to
  // training); 0 on CUDA and for a training model.
  size_t packed_weight_bytes() const { return packs_.bytes(); }
  // Frees the activation workspace (it is re-created on the next call).
  void release_workspace();

  // ---- training (train.cpp, docs/TRAINING.md) ------------------------------------------------
  // Switches to the training layout: every checkpoint parameter copied into a writable arena
  // (no derived tensors), a zeroed f32 gradient arena mirroring it, dropout seeded with `seed`.
  // fp32 only. Calling it again only re-seeds.
  // compute: the GEMM precision of training steps (F32; BF16 or F16 = mixed precision: fp32
  // parameters, gradients and optimizer state, linear layers multiplying rounded operands).
  // recompute: keep only each ViT block's and BERT layer's input through the forward and re-run
  // the block before its backward (about a block's activations instead of all of them).
  void enable_training(uint64_t seed, DType compute = DType::F32, bool recompute = false);
  bool training() const { return training_; }
  void zero_grad();
  // Data parallel (one process per GPU): join the group as `rank` of `world` (the id from
  // collective_unique_id() in one process, given to all); then all_reduce_gradients() averages
  // the gradient arena over the ranks, and all_reduce_sum() sums any device floats.
  void init_collective(const std::vector<uint8_t>& id, int rank, int world);
  void all_reduce_gradients();
  void all_reduce_sum(float* p, int64_t n);
  int world_size() const { return world_; }
  // -1 leaves a flag unchanged. Frozen encoders get no gradients and keep no activations.
  void freeze(int vision, int text);
  bool vision_frozen() const { return frozen_vision_; }
  bool text_frozen() const { return frozen_text_; }
  // Forward and backward of the loss; parameter gradients ACCUMULATE (x loss_scale).
  StepResult forward_backward(const StepInputs& in);
  // The trainable (not frozen) parameters and their gradients, by checkpoint name, as tensors
  // viewing the arenas.
  std::vector<std::pair<std::string, Tensor>> parameters() const;
  std::vector<std::pair<std::string, Tensor>> gradients() const;

 private:
  CarzeroModel() = default;
  Runner runner() const;
  void check_input(const Tensor& t, const char* name, DType dt, const std::vector<int64_t>& shape) const;

  std::shared_ptr<Context> ctx_;
  ModelConfig cfg_;
  LoadOptions opts_;
  std::unique_ptr<ParamStore> params_;
  VisionTransformer vit_;
  BertEncoder bert_;
  AlignHead head_;
  bool trainable(const std::string& name) const;
  Workspace ws_;
  WeightPacks packs_;  // prepacked CPU GEMM weights (inference layout only)
  std::mutex mu_;
  bool training_ = false, frozen_vision_ = false, frozen_text_ = false;
  uint64_t seed_ = 0;
  DType train_compute_ = DType::F32;
  bool recompute_ = false;
  int world_ = 1;
};

}  // namespace carzero::model
