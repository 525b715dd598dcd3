// bench_cuda.cpp: GPU op benchmarks. GEMM TFLOP/s through the op table against cuBLAS called
// directly (same types, same shapes), and attention forward/backward TFLOP/s for the three model
// shapes (ViT self-attention, BERT with key padding, the alignment head's cross-attention).
//   bench_cuda [--json <path>] [--quick]
// Prints a table and writes JSON (default: $OUT/bench_cuda.json, else bench/out/bench_cuda.json).
// Without a usable GPU it prints why and exits 0.
#include <algorithm>
#include <cmath>
#include <functional>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/settings.h"

#ifdef CARZERO_WITH_CUDA
#include <cuda_runtime.h>

#include "cuda/cublas_loader.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_ops.h"
#endif

namespace {

std::string default_json_path() {
  if (const char* o = std::getenv("OUT"); o && *o) return std::string(o) + "/bench_cuda.json";
  return "bench/out/bench_cuda.json";
}

void write_file(const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) {
    std::fprintf(stderr, "bench_cuda: cannot write %s\n", path.c_str());
    return;
  }
  std::fputs(text.c_str(), f);
  std::fclose(f);
  std::printf("wrote %s\n", path.c_str());
}

}  // namespace

#ifdef CARZERO_WITH_CUDA
namespace {

using namespace carzero;
using namespace carzero::cuda;

struct Row {
  std::string group, name, impl, dtype;
  double ms = 0, tflops = 0;
  std::string note;
};

#define BENCH_CHECK(call)                                                                     \
  do {                                                                                        \
    cudaError_t e_ = (call);                                                                  \
    if (e_ != cudaSuccess) throw_error(CZ_ERR_CUDA, "%s: %s", #call, cudaGetErrorString(e_)); \
  } while (0)

// Mean milliseconds per call of fn over iters calls after warmup calls.
template <class F>
double time_ms(cudaStream_t st, int warmup, int iters, F&& fn) {
  for (int i = 0; i < warmup; ++i) fn();
  cudaEvent_t a, b;
  BENCH_CHECK(cudaEventCreate(&a));
  BENCH_CHECK(cudaEventCreate(&b));
  BENCH_CHECK(cudaEventRecord(a, st));
  for (int i = 0; i < iters; ++i) fn();
  BENCH_CHECK(cudaEventRecord(b, st));
  BENCH_CHECK(cudaEventSynchronize(b));
  float ms = 0;
  BENCH_CHECK(cudaEventElapsedTime(&ms, a, b));
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return ms / iters;
}

// Fills n elements (f32 or bf16) with small pseudo-random values through convert (no host copy of
// the large buffers).
void fill(CudaBackend& be, void* dst, DType t, int64_t n, uint32_t seed) {
  std::vector<float> h(static_cast<size_t>(std::min<int64_t>(n, 1 << 20)));
  uint32_t x = seed * 2654435761u + 1;
  for (auto& v : h) {
    x = x * 1664525u + 1013904223u;
    v = static_cast<float>((x >> 9) & 0x3fff) / 16384.0f - 0.5f;
  }
  void* tmp = be.alloc(h.size() * 4);
  be.upload(tmp, h.data(), h.size() * 4);
  const size_t es = dtype_size(t);
  for (int64_t off = 0; off < n; off += static_cast<int64_t>(h.size())) {
    const int64_t cnt = std::min<int64_t>(static_cast<int64_t>(h.size()), n - off);
    cuda::convert(be.exec(), static_cast<char*>(dst) + off * es, t, tmp, DType::F32, cnt);
  }
  be.synchronize();
  be.free(tmp);
}

void bench_gemm(CudaBackend& be, std::vector<Row>& rows, bool quick) {
  const CublasApi& api = cublas_api();
  CudaState& s = be.state();
  cublasHandle_t h = nullptr;
  check_cublas(api.create(&h), "cublasCreate");
  check_cublas(api.set_stream(h, s.stream), "cublasSetStream");
  void* ws = be.alloc(32u << 20);
  if (api.set_workspace) check_cublas(api.set_workspace(h, ws, 32u << 20), "cublasSetWorkspace");
  struct Shape {
    const char* name;
    int64_t m, n, k;
  };
  // ViT-B/16 at batch 256: 256 * 197 = 50432 token rows; nn.Linear layout (y = x W^T).
  std::vector<Shape> shapes = {{"vit.qkv 50432x2304x768", 50432, 2304, 768},
                               {"vit.fc1 50432x3072x768", 50432, 3072, 768},
                               {"vit.fc2 50432x768x3072", 50432, 768, 3072},
                               {"square 4096", 4096, 4096, 4096}};
  if (quick) shapes.resize(2);
  for (DType dt : {DType::BF16, DType::F32}) {
    for (const auto& sh : shapes) {
      void* A = be.alloc(static_cast<size_t>(sh.m * sh.k) * dtype_size(dt));
      void* B = be.alloc(static_cast<size_t>(sh.n * sh.k) * dtype_size(dt));
      float* C = static_cast<float*>(be.alloc(static_cast<size_t>(sh.m * sh.n) * 4));
      fill(be, A, dt, sh.m * sh.k, 1);
      fill(be, B, dt, sh.n * sh.k, 2);
      GemmArgs g;
      g.a_type = g.b_type = g.compute = dt;
      g.trans_b = true;
      g.m = sh.m, g.n = sh.n, g.k = sh.k;
      g.a = A, g.lda = sh.k, g.b = B, g.ldb = sh.k, g.c = C, g.ldc = sh.n;
      const double flop = 2.0 * sh.m * sh.n * sh.k;
      const int iters = dt == DType::F32 ? 5 : 20;
      const double ours = time_ms(s.stream, 2, iters, [&] { cuda::gemm(be.exec(), g); });
      const int ct = dt == DType::F32 ? CUDA_R_32F_ : CUDA_R_16BF_;
      const float alpha = 1.0f, beta = 0.0f;
      const double ref = time_ms(s.stream, 2, iters, [&] {
        check_cublas(api.gemm_strided_batched_ex(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)sh.n, (int)sh.m, (int)sh.k, &alpha,
                                                 B, ct, (int)sh.k, 0, A, ct, (int)sh.k, 0, &beta, C, CUDA_R_32F_,
                                                 (int)sh.n, 0, 1, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                     "cublasGemmStridedBatchedEx");
      });
      rows.push_back({"gemm", sh.name, "carzero(op table)", dtype_name(dt), ours, flop / ours / 1e9, ""});
      rows.push_back({"gemm", sh.name, "cublas(direct)", dtype_name(dt), ref, flop / ref / 1e9, ""});
      be.free(A), be.free(B), be.free(C);
    }
  }
  be.synchronize();
  api.destroy(h);
  be.free(ws);
}

struct AttnShape {
  const char* name;
  int64_t B, NH, Tq, Tk, HS;
  bool mask, kshared;
};

void bench_attention(CudaBackend& be, std::vector<Row>& rows, bool quick) {
  CudaState& s = be.state();
  std::vector<AttnShape> shapes = {{"vit B=256 T=197 12x64", 256, 12, 197, 197, 64, false, false},
                                   {"bert B=256 T=97 mask 12x64", 256, 12, 97, 97, 64, true, false},
                                   {"head B=1024 Tq=1 Tk=197 shared 4x192", 1024, 4, 1, 197, 192, false, true},
                                   {"head B=256 Tq=64 Tk=197 4x192", 256, 4, 64, 197, 192, false, false}};
  for (const auto& sh : shapes) {
    const int64_t C = sh.NH * sh.HS, Bk = sh.kshared ? 1 : sh.B;
    const int64_t nq = sh.B * sh.Tq * C, nk = Bk * sh.Tk * C;
    std::vector<uint8_t> mask;
    if (sh.mask) {  // padded lengths between Tk/2 and Tk
      mask.assign(sh.B * sh.Tk, 0);
      for (int64_t b = 0; b < sh.B; ++b) {
        const int64_t len = sh.Tk / 2 + (b * 37) % (sh.Tk - sh.Tk / 2 + 1);
        for (int64_t j = 0; j < len && j < sh.Tk; ++j) mask[b * sh.Tk + j] = 1;
      }
    }
    uint8_t* dmask = nullptr;
    if (sh.mask) {
      dmask = static_cast<uint8_t*>(be.alloc(mask.size()));
      be.upload(dmask, mask.data(), mask.size());
    }
    const double fwd_flop = 4.0 * sh.B * sh.NH * sh.Tq * sh.Tk * sh.HS;
    for (DType dt : {DType::BF16, DType::F16, DType::F32}) {
      const size_t es = dtype_size(dt);
      void* q = be.alloc(nq * es);
      void* k = be.alloc(nk * es);
      void* v = be.alloc(nk * es);
      void* o = be.alloc(nq * es);
      float* lse = static_cast<float*>(be.alloc(sh.B * sh.NH * sh.Tq * 4));
      fill(be, q, dt, nq, 3), fill(be, k, dt, nk, 4), fill(be, v, dt, nk, 5);
      AttnArgs a;
      a.B = sh.B, a.NH = sh.NH, a.Tq = sh.Tq, a.Tk = sh.Tk, a.HS = sh.HS;
      a.q = q, a.k = k, a.v = v;
      a.out = o;
      a.ldq = a.ldk = a.ldv = a.ldo = C;
      a.q_bs = a.o_bs = sh.Tq * C;
      a.k_bs = a.v_bs = sh.kshared ? 0 : sh.Tk * C;
      a.key_mask = dmask, a.mask_bs = sh.Tk;
      a.scale = 1.0f / std::sqrt(static_cast<float>(sh.HS));
      a.lse = lse;
      const int iters = quick ? 3 : 10;
      a.dtype = dt;
      const bool bf = dt != DType::F32;  // 16-bit storage: the tensor-core kernels
      const bool tc = bf && attention_bf16_supported(sh.HS);
      const double ms = time_ms(s.stream, bf ? 2 : 1, iters, [&] { cuda::attention_forward(be.exec(), a); });
      const char* dn = dtype_name(dt);
      rows.push_back({"attention", sh.name, "carzero fwd", dn, ms, fwd_flop / ms / 1e9,
                      bf ? cuda::attention_forward_bf16_plan(be.exec(), a) : std::string()});
      if (!bf) {  // fp32 storage at precision tf32: the TF32 tensor-core forward
        a.tf32 = true;
        const double ms2 = time_ms(s.stream, 2, iters, [&] { cuda::attention_forward(be.exec(), a); });
        rows.push_back({"attention", sh.name, "carzero fwd", "tf32", ms2, fwd_flop / ms2 / 1e9,
                        attention_bf16_supported(sh.HS) ? "TF32 tensor cores (tiled)" : "fp32 kernel"});
        a.tf32 = false;
      }
      if (tc && sh.HS == 64 && dt == DType::BF16) {  // the other forward kernels at head size 64
        for (const char* kern : {"persist", "tiled", "wide", "wide8", "lean", "pwide"}) {
          setenv("CARZERO_ATTN_KERNEL", kern, 1);
          carzero::reload_settings();
          try {  // (a kernel the device cannot hold, e.g. pwide's 160 KB of shared memory on sm_86)
            const double ms2 = time_ms(s.stream, 2, iters, [&] { cuda::attention_forward(be.exec(), a); });
            const std::string plan = cuda::attention_forward_bf16_plan(be.exec(), a);
            rows.push_back({"attention", sh.name, std::string("carzero fwd ") + kern, "bf16", ms2, fwd_flop / ms2 / 1e9,
                            plan + " (opt-in)"});
          } catch (const std::exception& e) {
            rows.push_back({"attention", sh.name, std::string("carzero fwd ") + kern, "bf16", 0, 0,
                            std::string("not run: ") + e.what()});
          }
          unsetenv("CARZERO_ATTN_KERNEL");
          carzero::reload_settings();
        }
      }
      // backward: fp32 gradients whatever the storage
      AttnGrads g;
      void* dout = be.alloc(nq * 4);
      fill(be, dout, DType::F32, nq, 6);
      void* dq = be.alloc(nq * 4);
      void* dk = be.alloc(nk * 4);
      void* dv = be.alloc(nk * 4);
      g.dout = static_cast<float*>(dout);
      g.dq = static_cast<float*>(dq), g.dk = static_cast<float*>(dk), g.dv = static_cast<float*>(dv);
      const double bms = time_ms(s.stream, 1, iters, [&] { cuda::attention_backward(be.exec(), a, g); });
      const char* bnote = !bf                          ? ""
                          : sh.HS == 64 && !sh.kshared ? "tensor cores, whole-sequence kernel (fp32 grads)"
                                                       : "widened to the fp32 kernel (fp32 grads)";
      rows.push_back({"attention", sh.name, "carzero bwd", dn, bms, 2.5 * fwd_flop / bms / 1e9, bnote});
      be.free(dout), be.free(dq), be.free(dk), be.free(dv);
      be.free(q), be.free(k), be.free(v), be.free(o), be.free(lse);
    }
    if (dmask) be.free(dmask);
  }
}

// The ops of one ViT-B/16 layer at batch 256 on the GPU bf16 inference path (vit.cpp), one row
// each (TFLOP/s column: GB/s of the bytes the op must move, for the memory-bound ones), so the
// model's time can be accounted for op by op. "layer total" runs them in sequence.
void bench_vit_ops(CudaBackend& be, std::vector<Row>& rows, bool quick) {
  CudaState& s = be.state();
  Exec& ex = be.exec();
  const int64_t B = 256, T = 197, P = 196, C = 768, F = 3072, BT = B * T, NH = 12, HS = 64;
  const int iters = quick ? 3 : 10;
  float* x = static_cast<float*>(be.alloc(BT * C * 4));
  void* ln = be.alloc(BT * C * 2);
  void* qkv = be.alloc(BT * 3 * C * 2);
  void* att = be.alloc(BT * C * 2);
  void* h = be.alloc(BT * F * 2);
  void* wqkv = be.alloc(3 * C * C * 2);
  void* wproj = be.alloc(C * C * 2);
  void* wfc1 = be.alloc(F * C * 2);
  void* wfc2 = be.alloc(C * F * 2);
  float* bias = static_cast<float*>(be.alloc(F * 4));
  float* lnw = static_cast<float*>(be.alloc(C * 4));
  float* img = static_cast<float*>(be.alloc(B * 224 * 224 * 4));
  float* pw = static_cast<float*>(be.alloc(C * 256 * 4));
  float* patches = static_cast<float*>(be.alloc(B * P * C * 4));
  fill(be, x, DType::F32, BT * C, 11);
  fill(be, wqkv, DType::BF16, 3 * C * C, 12), fill(be, wproj, DType::BF16, C * C, 13);
  fill(be, wfc1, DType::BF16, F * C, 14), fill(be, wfc2, DType::BF16, C * F, 15);
  fill(be, bias, DType::F32, F, 16), fill(be, lnw, DType::F32, C, 17);
  fill(be, img, DType::F32, B * 224 * 224, 18), fill(be, pw, DType::F32, C * 256, 19);
  auto lin = [&](const void* a, void* w, int64_t n, int64_t k, void* c, DType ct, Act act, float beta) {
    GemmArgs g;
    g.a_type = g.b_type = g.compute = DType::BF16;
    g.trans_b = true;
    g.m = BT, g.n = n, g.k = k;
    g.a = a, g.lda = k, g.b = w, g.ldb = k;
    g.c = c, g.c_type = ct, g.ldc = n;
    g.bias = bias, g.act = act, g.beta = beta;
    cuda::gemm(ex, g);
  };
  AttnArgs at;
  at.B = B, at.NH = NH, at.Tq = T, at.Tk = T, at.HS = HS, at.dtype = DType::BF16;
  at.q = qkv, at.k = static_cast<uint16_t*>(qkv) + C, at.v = static_cast<uint16_t*>(qkv) + 2 * C;
  at.ldq = at.ldk = at.ldv = 3 * C, at.q_bs = at.k_bs = at.v_bs = T * 3 * C;
  at.out = att, at.ldo = C, at.o_bs = T * C, at.scale = 0.125f;
  struct Op {
    const char* name;
    double gbytes;
    std::function<void()> fn;
  };
  const double G = 1e-9;
  std::vector<Op> ops = {
      {"add_layernorm f32->bf16 50432x768", (BT * C * 6.0) * G,
       [&] {
         cuda::add_layernorm_forward(ex, nullptr, ln, DType::BF16, nullptr, nullptr, x, nullptr, lnw, lnw, BT, C,
                                     1e-6f);
       }},
      {"gemm qkv bf16 C +bias", 0, [&] { lin(ln, wqkv, 3 * C, C, qkv, DType::BF16, Act::None, 0.0f); }},
      {"attention bf16 (tensor cores)", 0, [&] { cuda::attention_forward(ex, at); }},
      {"gemm proj f32 C beta=1 +bias", 0, [&] { lin(att, wproj, C, C, x, DType::F32, Act::None, 1.0f); }},
      {"gemm fc1 bf16 C +bias +gelu", 0, [&] { lin(ln, wfc1, F, C, h, DType::BF16, Act::Gelu, 0.0f); }},
      {"gemm fc2 f32 C beta=1 +bias", 0, [&] { lin(h, wfc2, C, F, x, DType::F32, Act::None, 1.0f); }},
      {"patch_embed 1ch B=256 (per model, not layer)", 0,
       [&] { cuda::patch_embed_forward(ex, patches, img, pw, bias, B, 1, 224, 224, C, 16); }},
      {"copy2d x0 assembly (per model)", (B * P * C * 8.0) * G,
       [&] { cuda::copy2d(ex, x + C, T * C, patches, P * C, lnw, 0, P * C, B); }},
  };
  const double flop_qkv = 2.0 * BT * 3 * C * C, flop_proj = 2.0 * BT * C * C, flop_fc = 2.0 * BT * F * C,
               flop_att = 4.0 * B * NH * T * T * HS;
  const double flops[] = {0, flop_qkv, flop_att, flop_proj, flop_fc, flop_fc, 2.0 * B * P * C * 256, 0};
  double layer = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    const double ms = time_ms(s.stream, 2, iters, ops[i].fn);
    if (i < 6) layer += ms;
    const double rate = flops[i] ? flops[i] / ms / 1e9 : ops[i].gbytes / (ms * 1e-3);
    rows.push_back(
        {"vit-op", ops[i].name, "carzero", "bf16", ms, rate, flops[i] ? "TFLOP/s" : "GB/s in the TFLOP/s column"});
  }
  const double both = time_ms(s.stream, 2, iters, [&] {
    for (int i = 0; i < 6; ++i) ops[i].fn();
    ops[0].fn();  // LN2
  });
  rows.push_back({"vit-op", "one layer (6 ops + LN2), in sequence", "carzero", "bf16", both, 0,
                  "x12 layers + patch embed ~ embed_images"});
  // the opt-in vectorised bf16 rounding after the fp32 product (CARZERO_GEMM_NARROW=vec)
  setenv("CARZERO_GEMM_NARROW", "vec", 1);
  carzero::reload_settings();
  for (int i : {1, 4}) {
    const double ms = time_ms(s.stream, 2, iters, ops[i].fn);
    rows.push_back({"vit-op", std::string(ops[i].name) + ", CARZERO_GEMM_NARROW=vec", "carzero", "bf16", ms,
                    flops[i] / ms / 1e9, "TFLOP/s (opt-in 8-column rounding kernel)"});
  }
  unsetenv("CARZERO_GEMM_NARROW");
  carzero::reload_settings();
  (void)layer;
  for (void* p :
       {static_cast<void*>(x), ln, qkv, att, h, wqkv, wproj, wfc1, wfc2, static_cast<void*>(bias),
        static_cast<void*>(lnw), static_cast<void*>(img), static_cast<void*>(pw), static_cast<void*>(patches)})
    be.free(p);
}

}  // namespace
#endif

int main(int argc, char** argv) {
  std::string json = default_json_path();
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json" && i + 1 < argc)
      json = argv[++i];
    else if (a == "--quick")
      quick = true;
  }
  const carzero::CudaStatus& cs = carzero::cuda_status();
  if (!cs.available) {
    std::printf("bench_cuda: CUDA unavailable (%s); nothing to measure\n", cs.reason.c_str());
    return 0;
  }
#ifdef CARZERO_WITH_CUDA
  try {
    carzero::cuda::CudaBackend be(0);
    cudaDeviceProp prop{};
    cudaGetDeviceProperties(&prop, 0);
    std::printf("device: %s (sm_%d%d, %d SMs), cuBLAS %s\n", prop.name, prop.major, prop.minor,
                prop.multiProcessorCount, cs.cublas_path.c_str());
    std::vector<Row> rows;
    bench_gemm(be, rows, quick);
    bench_attention(be, rows, quick);
    bench_vit_ops(be, rows, quick);
    std::printf("%-10s %-40s %-20s %-5s %10s %9s\n", "group", "shape", "impl", "dtype", "ms", "TFLOP/s");
    std::string j = "{\"device\":\"" + std::string(prop.name) + "\",\"results\":[";
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      std::printf("%-10s %-40s %-20s %-5s %10.4f %9.1f %s\n", r.group.c_str(), r.name.c_str(), r.impl.c_str(),
                  r.dtype.c_str(), r.ms, r.tflops, r.note.c_str());
      char buf[512];
      std::snprintf(buf, sizeof buf,
                    "%s{\"group\":\"%s\",\"shape\":\"%s\",\"impl\":\"%s\",\"dtype\":\"%s\","
                    "\"ms\":%.5f,\"tflops\":%.2f,\"note\":\"%s\"}",
                    i ? "," : "", r.group.c_str(), r.name.c_str(), r.impl.c_str(), r.dtype.c_str(), r.ms, r.tflops,
                    r.note.c_str());
      j += buf;
    }
    j += "]}\n";
    write_file(json, j);
  } catch (const std::exception& e) {
    std::printf("bench_cuda: failed: %s\n", e.what());
    return 1;
  }
#endif
  return 0;
}
