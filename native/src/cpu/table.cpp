// table.cpp: binds the CPU implementations (cpu_ops.h) into the op table.
#include "cpu/cpu_ops.h"

namespace carzero {

const OpTable& cpu_ops() {
  static const OpTable table = [] {
    OpTable t{};
    t.backend = "cpu";
    t.gemm = cpu::gemm;
    t.gemm_backward = cpu::gemm_backward;
    t.layernorm_forward = cpu::layernorm_forward;
    t.layernorm_backward = cpu::layernorm_backward;
    t.add_layernorm_forward = cpu::add_layernorm_forward;
    t.gelu_forward = cpu::gelu_forward;
    t.gelu_backward = cpu::gelu_backward;
    t.relu_forward = cpu::relu_forward;
    t.relu_backward = cpu::relu_backward;
    t.add_forward = cpu::add_forward;
    t.add_backward = cpu::add_backward;
    t.copy2d = cpu::copy2d;
    t.softmax_forward = cpu::softmax_forward;
    t.softmax_backward = cpu::softmax_backward;
    t.attention_forward = cpu::attention_forward;
    t.attention_backward = cpu::attention_backward;
    t.embedding_forward = cpu::embedding_forward;
    t.embedding_backward = cpu::embedding_backward;
    t.patch_embed_forward = cpu::patch_embed_forward;
    t.patch_embed_backward = cpu::patch_embed_backward;
    t.softmax_xent_forward = cpu::softmax_xent_forward;
    t.softmax_xent_backward = cpu::softmax_xent_backward;
    t.adam_update = cpu::adam_update;
    t.sum_squares = cpu::sum_squares;
    t.scale = cpu::scale;
    t.dropout_forward = cpu::dropout_forward;
    t.dropout_backward = cpu::dropout_backward;
    t.convert = cpu::convert;
    return t;
  }();
  return table;
}

}  // namespace carzero
