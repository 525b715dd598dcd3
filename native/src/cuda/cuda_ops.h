// cuda_ops.h: the CUDA backend's implementations of every op in ops.h (same signatures, same
// contracts; see ops.h for shapes and semantics), bound into the table by cuda/table.cpp.
#pragma once
#include <cstdint>
#include <string>

#include "ops.h"

namespace carzero::cuda {

const OpTable& cuda_op_table();

void gemm(Exec&, const GemmArgs&);
void gemm_backward(Exec&, const GemmArgs& fwd, const float* dc, float* da, float* db, float* dbias);
void layernorm_forward(Exec&, float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t N, int64_t C, float eps);
void layernorm_backward(Exec&, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C);
void add_layernorm_forward(Exec&, float* sum_out, void* out, DType out_type, float* mean, float* rstd, const float* a,
                           const float* b, const float* weight, const float* bias, int64_t N, int64_t C, float eps);
void gelu_forward(Exec&, float* out, const float* inp, int64_t n);
void gelu_backward(Exec&, float* dinp, const float* inp, const float* dout, int64_t n);
void relu_forward(Exec&, float* out, const float* inp, int64_t n);
void relu_backward(Exec&, float* dinp, const float* inp, const float* dout, int64_t n);
void add_forward(Exec&, float* out, const float* a, const float* b, int64_t n);
void add_backward(Exec&, float* da, float* db, const float* dout, int64_t n);
void copy2d(Exec&, float* dst, int64_t dpitch, const float* src, int64_t spitch, const float* add, int64_t apitch,
            int64_t width, int64_t height);
void softmax_forward(Exec&, float* out, const float* inp, int64_t rows, int64_t cols);
void softmax_backward(Exec&, float* dinp, const float* out, const float* dout, int64_t rows, int64_t cols);
void attention_forward(Exec&, const AttnArgs&);
void attention_backward(Exec&, const AttnArgs&, const AttnGrads&);
void embedding_forward(Exec&, float* out, const int32_t* ids, const float* table, int64_t N, int64_t V, int64_t C);
void embedding_backward(Exec&, float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t V, int64_t C);
void patch_embed_forward(Exec&, float* out, const float* img, const float* weight, const float* bias, int64_t B,
                         int64_t Cin, int64_t H, int64_t W, int64_t OC, int64_t ps);
void patch_embed_backward(Exec&, float* dimg, float* dweight, float* dbias, const float* dout, const float* img,
                          const float* weight, int64_t B, int64_t Cin, int64_t H, int64_t W, int64_t OC, int64_t ps);
void softmax_xent_forward(Exec&, float* losses, const float* logits, const int32_t* targets, int64_t R, int64_t Cc,
                          int axis);
void softmax_xent_backward(Exec&, float* dlogits, const float* dlosses, const float* logits, const int32_t* targets,
                           int64_t R, int64_t Cc, int axis);
void adam_update(Exec&, float* param, const float* grad, float* m, float* v, int64_t n, const AdamArgs&);
double sum_squares(Exec&, const float* x, int64_t n);
void scale(Exec&, float* x, int64_t n, float s);
void dropout_forward(Exec&, float* out, const float* inp, int64_t n, float p, uint64_t seed, uint64_t offset);
void dropout_backward(Exec&, float* dinp, const float* dout, int64_t n, float p, uint64_t seed, uint64_t offset);
void convert(Exec&, void* dst, DType dst_type, const void* src, DType src_type, int64_t n);

// ---- 16-bit attention (attention_bf16.cu), reached through attention_forward/backward when
// AttnArgs::dtype is BF16 or F16 (arguments already validated) -------------------------------------
void attention_forward_bf16(Exec&, const AttnArgs&);
void attention_backward_bf16(Exec&, const AttnArgs&, const AttnGrads&);
// Whether the forward runs on the tensor-core kernel for this head size (32, 64, 128, 192);
// other sizes widen to the fp32 kernel.
bool attention_bf16_supported(int64_t HS);
// The kernel attention_forward would run for these bf16 arguments and its occupancy, in words
// (benchmark notes).
std::string attention_forward_bf16_plan(Exec&, const AttnArgs&);
// fp32 storage with AttnArgs::tf32: runs the TF32 tensor-core forward and returns true where it
// applies (tf32_forward_applies in attention_bf16_kernels.cuh); false: the fp32 kernel runs.
bool attention_forward_tf32(Exec&, const AttnArgs&);

}  // namespace carzero::cuda
