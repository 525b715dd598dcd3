// params.h: the parameters of one model: declared by checkpoint name with their expected shape
// and storage dtype, validated against a TensorSource, then materialised in ONE device
// allocation (the parameter arena) owned by the store. On the CPU, f32 tensors stored as f32 in an
// mmapped file are used in place (zero copy) when the target dtype is f32 too.
//
// Storage dtypes: F32 for everything the ops read as float (biases, LayerNorms, embeddings,
// patch kernel); F32 or BF16 for GEMM weights (the bf16 precision path stores them bf16 once,
// here, and the GEMMs compute in bf16 with fp32 accumulation). f16/bf16 sources are widened
// exactly; f32 -> bf16 rounds to nearest even.
//
// A gradient arena mirroring the parameters (f32, zeroed) can be allocated on demand for
// training: grad(i) has the shape of param(i).
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/context.h"
#include "ops.h"
#include "model/safetensors.h"

namespace carzero::model {

struct Param {
  std::string name;  // checkpoint name, or a derived name ("<name>#sum_channels")
  std::vector<int64_t> shape;
  DType dtype = DType::F32;    // storage dtype
  const void* data = nullptr;  // device pointer (valid after materialise())
  int64_t numel = 0;
  // Source: a checkpoint tensor, or host f32 values computed at load time (derived).
  const TensorView* src = nullptr;
  std::vector<float> derived;
  size_t offset = 0;  // in the arena (when not zero-copy)
  bool zero_copy = false;
  bool packed = false;  // placed right after the previous parameter (no alignment gap), in
                        // both arenas, so consecutive parameters form one matrix
};

class ParamStore {
 public:
  // `keep_alive` (the mmapped file) is held as long as the store, for zero-copy views.
  ParamStore(std::shared_ptr<Context> ctx, std::shared_ptr<const TensorSource> src);

  // Declares checkpoint tensor `name` with the expected shape, stored as `dtype`. Throws
  // Error(CZ_ERR_FORMAT) naming the tensor, the expected and actual shape and the file when it
  // is missing, mis-shaped or of a non-float dtype. Returns its index.
  int declare(const std::string& name, const std::vector<int64_t>& shape, DType dtype, bool packed = false);
  // A tensor computed at load time from others (host f32 values), stored as `dtype`.
  int declare_derived(const std::string& name, const std::vector<int64_t>& shape, DType dtype,
                      std::vector<float> values);
  // Host f32 copy of a source tensor (checked like declare()); for deriving tensors.
  std::vector<float> read_f32(const std::string& name, const std::vector<int64_t>& shape) const;
  // Allocates the arena and converts/uploads every declared tensor. zero_copy = false copies
  // every tensor into the (writable) arena: training updates the parameters in place.
  void materialise(bool zero_copy = true);

  const Param& param(int i) const { return params_.at(static_cast<size_t>(i)); }
  const float* f32(int i) const;  // throws unless stored f32
  const void* ptr(int i) const { return param(i).data; }
  int find(const std::string& name) const;  // -1 when absent
  size_t size() const { return params_.size(); }
  size_t arena_bytes() const { return arena_bytes_; }
  int64_t total_numel() const;

  // Gradient arena (f32, zero-filled), allocated on first call; grad(i) mirrors param(i).
  void allocate_grads();
  bool has_grads() const { return grads_.defined(); }
  float* grad(int i) const;
  void zero_grads();
  // The whole gradient arena as floats (padding between tensors is zero): one all-reduce.
  float* grad_arena() const { return static_cast<float*>(grads_.data()); }
  size_t grad_arena_floats() const { return grads_.defined() ? grads_.nbytes() / 4 : 0; }
  // Tensors viewing param(i) / grad(i) in the arenas (sharing their storage, so they stay valid
  // after the store is gone). param_tensor throws for zero-copy parameters.
  Tensor param_tensor(int i) const;
  Tensor grad_tensor(int i) const;

  const std::string& where() const { return src_->where(); }
  const std::shared_ptr<const TensorSource>& source() const { return src_; }

 private:
  std::shared_ptr<Context> ctx_;
  std::shared_ptr<const TensorSource> src_;
  std::vector<Param> params_;
  std::map<std::string, int> index_;
  Tensor arena_;
  size_t arena_bytes_ = 0;
  Tensor grads_;
  std::vector<size_t> grad_offsets_;
};

}  // namespace carzero::model
