// test_errors.cpp: error-path cases. Ops must throw carzero::Error (never exit/abort) with a
// message that names the bad argument; each case asserts on a substring of that message.
#include <limits>

#include "harness.h"

namespace cztest {

void register_error_cases(Registry& r) {
  add_case(r, "error(embedding,id out of range)", [](Ctx& c) {
    std::vector<int32_t> ids(16, 3);
    ids[12] = 30522;
    int32_t* d = c.in("ids", ids);
    float* table = c.in("table", std::vector<float>(30522 * 2, 1.0f));
    float* out = c.out_nan("out", 16 * 2);
    c.expect_throw(
        "embedding_forward", [&] { c.ops().embedding_forward(c.ex(), out, d, table, 16, 30522, 2); },
        "ids[12] = 30522 is outside [0, 30522)");
    ids[12] = 0, ids[3] = -1;
    int32_t* d2 = c.in("ids2", ids);
    c.expect_throw(
        "embedding_backward", [&] { c.ops().embedding_backward(c.ex(), out, out, d2, 16, 30522, 2); }, "ids[3] = -1");
    c.check("embedding errors");
  });
  add_case(r, "error(patch_embed,H not multiple of ps)", [](Ctx& c) {
    float* buf = c.out_nan("buf", 4096);
    c.expect_throw(
        "H", [&] { c.ops().patch_embed_forward(c.ex(), buf, buf, buf, nullptr, 1, 1, 20, 16, 2, 16); },
        "H = 20 is not a multiple of ps = 16");
    c.expect_throw(
        "W", [&] { c.ops().patch_embed_backward(c.ex(), buf, buf, nullptr, buf, buf, buf, 1, 1, 16, 17, 2, 16); },
        "W = 17");
    c.expect_throw(
        "ps", [&] { c.ops().patch_embed_forward(c.ex(), buf, buf, buf, nullptr, 1, 1, 16, 16, 2, 0); }, "ps = 0");
    c.check("patch_embed errors");
  });
  add_case(r, "error(gemm,bad leading dimensions and sizes)", [](Ctx& c) {
    float* buf = c.out("buf", std::vector<float>(256, 0.0f));
    GemmArgs g;
    g.m = 4, g.n = 4, g.k = 8;
    g.a = buf, g.b = buf, g.c = buf;
    g.lda = 4, g.ldb = 4, g.ldc = 4;  // lda < k
    c.expect_throw(
        "lda < k", [&] { c.ops().gemm(c.ex(), g); }, "lda");
    g.lda = 8, g.ldb = 2;  // ldb < n
    c.expect_throw(
        "ldb < n", [&] { c.ops().gemm(c.ex(), g); }, "ldb");
    g.ldb = 4, g.ldc = 3;  // ldc < n
    c.expect_throw(
        "ldc < n", [&] { c.ops().gemm(c.ex(), g); }, "ldc");
    g.ldc = 4, g.m = -1;
    c.expect_throw(
        "m < 0", [&] { c.ops().gemm(c.ex(), g); }, "m");
    g.m = 4, g.batch = -2;
    c.expect_throw(
        "batch < 0", [&] { c.ops().gemm(c.ex(), g); }, "batch");
    c.check("gemm errors");
  });
  add_case(r, "error(negative sizes)", [](Ctx& c) {
    float* buf = c.out_nan("buf", 64);
    c.expect_throw(
        "layernorm N",
        [&] { c.ops().layernorm_forward(c.ex(), buf, nullptr, nullptr, buf, nullptr, nullptr, -1, 4, 1e-5f); },
        "N = -1");
    c.expect_throw(
        "layernorm C", [&] { c.ops().layernorm_backward(c.ex(), buf, buf, buf, buf, buf, buf, buf, buf, 2, -3); },
        "C = -3");
    c.expect_throw(
        "gelu n", [&] { c.ops().gelu_forward(c.ex(), buf, buf, -5); }, "n = -5");
    c.expect_throw(
        "softmax cols", [&] { c.ops().softmax_forward(c.ex(), buf, buf, 2, -1); }, "cols = -1");
    c.expect_throw(
        "add n", [&] { c.ops().add_forward(c.ex(), buf, buf, buf, -1); }, "n = -1");
    c.expect_throw(
        "scale n", [&] { c.ops().scale(c.ex(), buf, -2, 1.0f); }, "n = -2");
    c.expect_throw(
        "sum_squares n", [&] { c.ops().sum_squares(c.ex(), buf, -2); }, "n = -2");
    c.expect_throw(
        "embedding C", [&] { c.ops().embedding_forward(c.ex(), buf, nullptr, buf, 1, 1, -4); }, "C = -4");
    c.check("negative sizes");
  });
  add_case(r, "error(attention,bad arguments)", [](Ctx& c) {
    float* buf = c.out_nan("buf", 4096);
    AttnArgs a;
    a.B = 1, a.NH = 2, a.Tq = 3, a.Tk = 3, a.HS = 4;
    a.q = a.k = a.v = buf, a.out = buf;
    a.ldq = 7, a.ldk = 8, a.ldv = 8, a.ldo = 8;
    c.expect_throw(
        "ldq", [&] { c.ops().attention_forward(c.ex(), a); }, "ldq = 7 is less than NH*HS = 8");
    a.ldq = 8, a.HS = -1;
    c.expect_throw(
        "HS", [&] { c.ops().attention_forward(c.ex(), a); }, "HS = -1");
    a.HS = 4;
    AttnGrads g;
    g.dout = buf, g.dq = buf;
    c.expect_throw(
        "lse", [&] { c.ops().attention_backward(c.ex(), a, g); }, "lse");
    a.k_bs = -8;
    c.expect_throw(
        "k_bs", [&] { c.ops().attention_forward(c.ex(), a); }, "k_bs = -8");
    c.check("attention errors");
  });
  add_case(r, "error(softmax_xent,axis and targets)", [](Ctx& c) {
    float* x = c.in("logits", std::vector<float>(12, 0.5f));
    int32_t* t = c.in("targets", std::vector<int32_t>{0, 1, 4});
    float* l = c.out_nan("losses", 4);
    c.expect_throw(
        "axis", [&] { c.ops().softmax_xent_forward(c.ex(), l, x, t, 3, 4, 2); }, "axis = 2");
    c.expect_throw(
        "targets", [&] { c.ops().softmax_xent_forward(c.ex(), l, x, t, 3, 4, 1); }, "targets[2] = 4 is outside [0, 4)");
    c.expect_throw(
        "targets axis 0", [&] { c.ops().softmax_xent_backward(c.ex(), x, l, x, t, 4, 3, 0); },
        "targets[2] = 4 is outside [0, 4)");
    c.check("softmax_xent errors");
  });
  add_case(r, "error(dropout,p outside [0,1])", [](Ctx& c) {
    float* buf = c.out_nan("buf", 16);
    c.expect_throw(
        "p > 1", [&] { c.ops().dropout_forward(c.ex(), buf, buf, 16, 1.5f, 0, 0); }, "p = 1.5");
    c.expect_throw(
        "p < 0", [&] { c.ops().dropout_backward(c.ex(), buf, buf, 16, -0.1f, 0, 0); }, "p = -0.1");
    c.expect_throw(
        "p nan", [&] { c.ops().dropout_forward(c.ex(), buf, buf, 16, std::numeric_limits<float>::quiet_NaN(), 0, 0); },
        "p = nan");
    c.check("dropout errors");
  });
  add_case(r, "error(convert,unsupported pairs)", [](Ctx& c) {
    float* buf = c.out_nan("buf", 16);
    c.expect_throw(
        "f32->i32", [&] { c.ops().convert(c.ex(), buf, DType::I32, buf, DType::F32, 4); }, "f32 -> i32");
    c.expect_throw(
        "f32->u8", [&] { c.ops().convert(c.ex(), buf, DType::U8, buf, DType::F32, 4); }, "f32 -> u8");
    c.expect_throw(
        "i32->u8", [&] { c.ops().convert(c.ex(), buf, DType::U8, buf, DType::I32, 4); }, "i32 -> u8");
    c.expect_throw(
        "n < 0", [&] { c.ops().convert(c.ex(), buf, DType::F32, buf, DType::F32, -1); }, "n = -1");
    c.check("convert errors");
  });
  add_case(r, "error(adam,bad hyperparameters)", [](Ctx& c) {
    float* buf = c.out("buf", std::vector<float>(16, 0.0f));
    AdamArgs a;
    a.step = 0;
    c.expect_throw(
        "step", [&] { c.ops().adam_update(c.ex(), buf, buf, buf, buf, 4, a); }, "step = 0");
    a.step = 1, a.beta1 = 1.0f;
    c.expect_throw(
        "beta1", [&] { c.ops().adam_update(c.ex(), buf, buf, buf, buf, 4, a); }, "beta1");
    c.check("adam errors");
  });
}

}  // namespace cztest
