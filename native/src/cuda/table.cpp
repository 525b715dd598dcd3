// table.cpp: binds the CUDA implementations (cuda_ops.h) into the op table.
#include "cuda/cuda_ops.h"

namespace carzero::cuda {

const OpTable& cuda_op_table() {
  static const OpTable table = [] {
    OpTable t{};
    t.backend = "cuda";
    t.gemm = gemm;
    t.gemm_backward = gemm_backward;
    t.layernorm_forward = layernorm_forward;
    t.layernorm_backward = layernorm_backward;
    t.add_layernorm_forward = add_layernorm_forward;
    t.gelu_forward = gelu_forward;
    t.gelu_backward = gelu_backward;
    t.relu_forward = relu_forward;
    t.relu_backward = relu_backward;
    t.add_forward = add_forward;
    t.add_backward = add_backward;
    t.copy2d = copy2d;
    t.softmax_forward = softmax_forward;
    t.softmax_backward = softmax_backward;
    t.attention_forward = attention_forward;
    t.attention_backward = attention_backward;
    t.embedding_forward = embedding_forward;
    t.embedding_backward = embedding_backward;
    t.patch_embed_forward = patch_embed_forward;
    t.patch_embed_backward = patch_embed_backward;
    t.softmax_xent_forward = softmax_xent_forward;
    t.softmax_xent_backward = softmax_xent_backward;
    t.adam_update = adam_update;
    t.sum_squares = sum_squares;
    t.scale = scale;
    t.dropout_forward = dropout_forward;
    t.dropout_backward = dropout_backward;
    t.convert = convert;
    return t;
  }();
  return table;
}

}  // namespace carzero::cuda
