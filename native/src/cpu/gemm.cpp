// gemm.cpp: the CPU GEMM (see ops.h for the contract): cpu::gemm, cpu::gemm_with_isa,
// cpu::gemm_backward; argument validation; the blocked, threaded driver shared by every ISA; the
// portable C++ micro-kernel and packer.
//
// Dimension letters: M, N, K as in ops.h; MR x NR the register tile; KC the K block; NC the
// column block of packed B; a "row chunk" is the rows of C one task owns.
//
// Algorithm (GotoBLAS / BLIS): both operands are packed into panels (gemm_internal.h) that the
// micro-kernel reads with unit stride; an A panel (MR x KC) stays in L1 while the B panels of a
// (KC x NC) block, held in L2, stream past it. Packing also converts dtypes, applies transposes
// and rounds to bf16, so the kernels see one layout. Threads split C into (row chunk x column
// chunk) tasks that the pool hands out dynamically (the machine is shared; static halves would
// wait for the slower core). When several tasks use the same columns of B, B is packed once, in
// parallel, before them.
//
// Prepacked weights (cpu::PackedWeight, gemm_prepacked): B packed once per weight and kernel set,
// in exactly the shared-B layout, and reused by every call. Only data movement changes: each C
// tile is still one micro-kernel call per K block over the same K blocks, so the results are
// bit-identical to the per-call packing. (A finer grid with A packed once per call for one image's
// rows was tried and removed: interleaved, the ViT's batch-1 fp32 GEMMs took 108.6 ms with it
// against 102.6 ms without, bf16 54.9 / 55.1 ms; see bench/RESULTS.md.)
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <atomic>
#include <mutex>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "core/threadpool.h"
#include "cpu/cpu_ops.h"
#include "gemm_grad.h"
#include "ops_check.h"
#include "cpu/gemm_internal.h"
#include "core/settings.h"

namespace carzero::cpu {
using namespace gemm_detail;

namespace {

constexpr float kInvSqrt2 = 0.70710678118654752440f;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// ---- validation ---------------------------------------------------------------------------------

// ---- scratch buffers ----------------------------------------------------------------------------

// A growing, 64-byte-aligned buffer, one per thread (thread_local), reused across calls: packed
// operands of a large GEMM are megabytes, and a fresh allocation would page-fault on every call.
class Scratch {
 public:
  ~Scratch() { std::free(p_); }
  void* get(size_t bytes) {
    if (bytes > cap_) {
      std::free(p_);
      p_ = nullptr;
      cap_ = 0;
      size_t want = round_up(static_cast<int64_t>(bytes), 4096);
      p_ = std::aligned_alloc(64, want);
      CZ_REQUIRE(p_, CZ_ERR_OUT_OF_MEMORY, "gemm: cannot allocate %zu bytes of scratch", want);
      cap_ = want;
    }
    return p_;
  }

 private:
  void* p_ = nullptr;
  size_t cap_ = 0;
};

thread_local Scratch tl_pack_a;       // this thread's packed A row chunk (MR panels x KC)
thread_local Scratch tl_pack_b;       // this thread's packed B block when B is not shared
thread_local Scratch tl_shared_b;     // B packed once by the calling thread's GEMM for all tasks
thread_local Scratch tl_backward_dz;  // gemm_backward's dZ when act != None

// ---- scalar epilogue (portable kernel, K = 0) -------------------------------------------------

float act_scalar(float z, Act act) {
  if (act == Act::Relu) return z > 0.0f ? z : 0.0f;
  if (act == Act::Gelu) return 0.5f * z * (1.0f + std::erf(z * kInvSqrt2));
  return z;
}

// Finishes a tile held in acc (rows of stride acc_ld): see TileEpilogue.
void finish_tile_scalar(const float* acc, int64_t acc_ld, float* c, int64_t ldc, int64_t mv, int64_t nv,
                        const TileEpilogue& ep) {
  for (int64_t r = 0; r < mv; ++r) {
    float* cr = c + r * ldc;
    float* pr = ep.preact ? ep.preact + r * ldc : nullptr;
    for (int64_t j = 0; j < nv; ++j) {
      float z = ep.alpha * acc[r * acc_ld + j];
      if (!ep.first)
        z += cr[j];
      else if (ep.beta != 0.0f)
        z += ep.beta * cr[j];
      if (ep.last) {
        if (ep.bias) z += ep.bias[j];
        if (pr) pr[j] = z;
        z = act_scalar(z, ep.act);
      }
      cr[j] = z;
    }
  }
}

// ---- portable packer and micro-kernel -----------------------------------------------------------

float load_elem(const PackSrc& s, int64_t r, int64_t p) {
  int64_t idx = s.trans ? p * s.ld + r : r * s.ld + p;
  return s.type == DType::BF16 ? bf16_to_f32(static_cast<const uint16_t*>(s.data)[idx])
                               : static_cast<const float*>(s.data)[idx];
}

constexpr int kGenericMR = 4, kGenericNR = 16;

// C tile (4 x 16) from F32 panels; the inner loop over 16 columns vectorises with baseline SSE2.
void kernel_generic_4x16(int64_t kc, const void* a_panel, const void* b_panel, float* c, int64_t ldc, int64_t mv,
                         int64_t nv, const TileEpilogue& ep) {
  const float* a = static_cast<const float*>(a_panel);
  const float* b = static_cast<const float*>(b_panel);
  float acc[kGenericMR][kGenericNR] = {};
  for (int64_t p = 0; p < kc; ++p) {
    const float* bp = b + p * kGenericNR;
    for (int r = 0; r < kGenericMR; ++r) {
      const float av = a[p * kGenericMR + r];
      for (int j = 0; j < kGenericNR; ++j) acc[r][j] += av * bp[j];
    }
  }
  finish_tile_scalar(&acc[0][0], kGenericNR, c, ldc, mv, nv, ep);
}

}  // namespace

namespace gemm_detail {

void pack_generic(const PackSrc& s, int64_t r0, int64_t rows, int64_t p0, int64_t kc, int w, PackFmt fmt, void* dst) {
  const int64_t panels = ceil_div(rows, w);
  const int64_t pbytes = panel_bytes(kc, w, fmt);
  for (int64_t q = 0; q < panels; ++q) {
    char* panel = static_cast<char*>(dst) + q * pbytes;
    const int64_t base = r0 + q * w, valid = std::min<int64_t>(w, r0 + rows - base);
    if (fmt == PackFmt::Bf16Pairs) {
      uint16_t* out = reinterpret_cast<uint16_t*>(panel);
      const int64_t kp = (kc + 1) / 2;
      for (int64_t x = 0; x < w; ++x)
        for (int64_t pp = 0; pp < kp; ++pp)
          for (int t = 0; t < 2; ++t) {
            const int64_t p = 2 * pp + t;
            uint16_t v = 0;
            if (x < valid && p < kc) {
              if (s.type == DType::BF16) {
                const int64_t idx = s.trans ? (p0 + p) * s.ld + base + x : (base + x) * s.ld + p0 + p;
                v = static_cast<const uint16_t*>(s.data)[idx];
              } else {
                v = f32_to_bf16(load_elem(s, base + x, p0 + p));
              }
            }
            out[(pp * w + x) * 2 + t] = v;
          }
    } else {
      float* out = reinterpret_cast<float*>(panel);
      const bool rnd = fmt == PackFmt::F32Bf16;
      for (int64_t x = 0; x < w; ++x)
        for (int64_t p = 0; p < kc; ++p) {
          float v = x < valid ? load_elem(s, base + x, p0 + p) : 0.0f;
          if (rnd) v = bf16_to_f32(f32_to_bf16(v));
          out[p * w + x] = v;
        }
    }
  }
}

KernelSet generic_kernels_f32() {
  KernelSet k;
  k.name = "generic-f32-4x16";
  k.mr = kGenericMR;
  k.nr = kGenericNR;
  k.kc = 256;
  k.nc = 256;
  k.fmt = PackFmt::F32;
  k.kernel = kernel_generic_4x16;
  k.pack = pack_generic;
  return k;
}

}  // namespace gemm_detail

namespace {

// ---- the blocked driver -------------------------------------------------------------------------

PackSrc view_a(const GemmArgs& g, int64_t b) {
  PackSrc s;
  s.data = static_cast<const char*>(g.a) + b * g.stride_a * static_cast<int64_t>(dtype_size(g.a_type));
  s.ld = g.lda;
  s.trans = g.trans_a;
  s.type = g.a_type;
  return s;
}

// op(B)^T (N, K): B stored (N, K) (trans_b) is that view as it is.
PackSrc view_bt(const GemmArgs& g, int64_t b) {
  PackSrc s;
  s.data = static_cast<const char*>(g.b) + b * g.stride_b * static_cast<int64_t>(dtype_size(g.b_type));
  s.ld = g.ldb;
  s.trans = !g.trans_b;
  s.type = g.b_type;
  return s;
}

// B packed once for all tasks: K block q holds ceil(N / NR) panels over kc_q; blocks before the
// last are full KC, so block q starts at q * n_panels * panel_bytes(KC, NR).
struct SharedB {
  const char* data = nullptr;
  int64_t n_panels = 0;
};

// Which row chunk this thread's tl_pack_a holds, packed over every K block, for which run_gemm
// call (call ids are process-wide and never reused, so a stale entry never matches).
struct PackedRows {
  uint64_t call = 0;
  int64_t b = -1, i0 = -1, i1 = -1;
};
thread_local PackedRows tl_packed_rows;
std::atomic<uint64_t> g_gemm_call{0};

// A row chunk packed over all K blocks is kept for the thread's next task of the same call when
// it takes at most this much (one image's rows: 104 x 3072 fp32 = 1.2 MB).
constexpr int64_t kMaxKeptRowChunk = int64_t(2) << 20;

// One task: C[b] rows [i0, i1) x columns [j0, j1). j0 is a multiple of NR when shared B is used.
// call: run_gemm's call id; a thread whose previous task of the same call packed the same rows
// of A reuses them.
void run_task(const KernelSet& ks, const GemmArgs& g, int64_t b, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
              const SharedB* sb, uint64_t call) {
  const int64_t K = g.k, MR = ks.mr, NR = ks.nr;
  const int64_t rows = i1 - i0, a_panels = ceil_div(rows, MR);
  const PackSrc sa = view_a(g, b), sbt = view_bt(g, b);
  float* C = static_cast<float*>(g.c) + b * g.stride_c;
  float* P = g.act != Act::None && g.preact ? g.preact + b * g.stride_c : nullptr;
  const int64_t a_block = a_panels * panel_bytes(ks.kc, MR, ks.fmt);  // one K block of the row chunk
  const bool keep = ceil_div(K, ks.kc) * a_block <= kMaxKeptRowChunk;
  PackedRows& held = tl_packed_rows;
  const bool reuse = keep && held.call == call && held.b == b && held.i0 == i0 && held.i1 == i1;
  if (!reuse) held = PackedRows{};  // invalid until this task has packed every K block
  char* abuf = static_cast<char*>(tl_pack_a.get(keep ? ceil_div(K, ks.kc) * a_block : a_block));
  char* bbuf = sb ? nullptr : static_cast<char*>(tl_pack_b.get(ceil_div(ks.nc, NR) * panel_bytes(ks.kc, NR, ks.fmt)));
  TileEpilogue ep;
  ep.alpha = g.alpha;
  ep.beta = g.beta;
  ep.act = g.act;
  for (int64_t p0 = 0; p0 < K; p0 += ks.kc) {
    const int64_t kc = std::min(ks.kc, K - p0);
    const int64_t apb = panel_bytes(kc, MR, ks.fmt), bpb = panel_bytes(kc, NR, ks.fmt);
    char* ablock = keep ? abuf + (p0 / ks.kc) * a_block : abuf;
    if (!reuse) ks.pack(sa, i0, rows, p0, kc, ks.mr, ks.fmt, ablock);
    ep.first = p0 == 0;
    ep.last = p0 + kc == K;
    for (int64_t jb = j0; jb < j1; jb += ks.nc) {
      const int64_t nb = std::min(ks.nc, j1 - jb);
      const char* bblock;
      if (sb) {
        bblock = sb->data + (p0 / ks.kc) * sb->n_panels * panel_bytes(ks.kc, NR, ks.fmt) + (jb / NR) * bpb;
      } else {
        ks.pack(sbt, jb, nb, p0, kc, ks.nr, ks.fmt, bbuf);
        bblock = bbuf;
      }
      const int64_t b_panels = ceil_div(nb, NR);
      for (int64_t ir = 0; ir < a_panels; ++ir) {
        const int64_t i = i0 + ir * MR, mv = std::min(MR, i1 - i);
        for (int64_t jr = 0; jr < b_panels; ++jr) {
          const int64_t j = jb + jr * NR, nv = std::min(NR, jb + nb - j);
          ep.bias = g.bias ? g.bias + j : nullptr;
          ep.preact = P ? P + i * g.ldc + j : nullptr;
          ks.kernel(kc, ablock + ir * apb, bblock + jr * bpb, C + i * g.ldc + j, g.ldc, mv, nv, ep);
        }
      }
    }
  }
  if (keep && !reuse) held = PackedRows{call, b, i0, i1};
}

// All of op(B)^T (N x K) in the SharedB layout (K block q at q * n_panels * panel_bytes(KC, NR),
// each block's panels consecutive): what a shared or prepacked B holds. Packed in parallel over
// (K block, panel group); ks.kc is the call's (equalised) K block.
void pack_shared_b(Exec& ex, const KernelSet& ks, const GemmArgs& g, char* buf, int threads) {
  const PackSrc sbt = view_bt(g, 0);
  const int64_t N = g.n, K = g.k, NR = ks.nr;
  const int64_t n_panels = ceil_div(N, NR), k_blocks = ceil_div(K, ks.kc);
  const int64_t group = std::max<int64_t>(1, std::min<int64_t>(16, ceil_div(n_panels * k_blocks, threads * 4)));
  const int64_t groups = ceil_div(n_panels, group);
  auto pack_task = [&](int64_t t) {
    const int64_t q = t / groups, gi = t % groups;
    const int64_t p0 = q * ks.kc, kc = std::min(ks.kc, K - p0);
    const int64_t j = gi * group * NR, cols = std::min(group * NR, N - j);
    char* dst = buf + q * n_panels * panel_bytes(ks.kc, NR, ks.fmt) + gi * group * panel_bytes(kc, NR, ks.fmt);
    ks.pack(sbt, j, cols, p0, kc, ks.nr, ks.fmt, dst);
  };
  if (threads > 1 && k_blocks * groups > 1)
    ex.pool->run(k_blocks * groups, pack_task);
  else
    for (int64_t t = 0; t < k_blocks * groups; ++t) pack_task(t);
}

// The K block run_gemm uses for K: equal blocks, a multiple of 32 (bf16 pairs fill whole
// 16-pair vectors): K = 768 with KC = 512 would otherwise leave a 256 tail that reloads C for
// little work.
int64_t equal_kc(int64_t kc, int64_t k) { return std::min(kc, round_up(ceil_div(k, ceil_div(k, kc)), 32)); }

// The panels of pw for kernel set ks (kc already equalised for g.k), packed on first use.
const char* prepacked_panels(Exec& ex, const KernelSet& ks, const GemmArgs& g, PackedWeight& pw, int threads);

// K = 0: C = act(beta C + bias); nothing to multiply.
void run_k0(const GemmArgs& g) {
  for (int64_t b = 0; b < g.batch; ++b)
    for (int64_t i = 0; i < g.m; ++i) {
      float* c = static_cast<float*>(g.c) + b * g.stride_c + i * g.ldc;
      float* pre = g.act != Act::None && g.preact ? g.preact + b * g.stride_c + i * g.ldc : nullptr;
      for (int64_t j = 0; j < g.n; ++j) {
        float z = (g.beta != 0.0f ? g.beta * c[j] : 0.0f) + (g.bias ? g.bias[j] : 0.0f);
        if (pre) pre[j] = z;
        c[j] = act_scalar(z, g.act);
      }
    }
}

// pw: op(B) comes from its prepacked panels (the caller checked pw->matches(g)).
void run_gemm(Exec& ex, const GemmArgs& g, const KernelSet& kernels, PackedWeight* pw = nullptr) {
  if (g.batch == 0 || g.m == 0 || g.n == 0) return;
  if (g.k == 0) return run_k0(g);
  KernelSet ks = kernels;
  ks.kc = equal_kc(ks.kc, g.k);
  const int threads = ex.pool ? ex.pool->size() : 1;
  const int64_t MR = ks.mr, NR = ks.nr;
  const double macs = static_cast<double>(g.batch) * g.m * g.n * g.k;

  // Task grid: about 4 tasks per thread so a core slowed by a neighbour takes fewer; no task
  // smaller than 4 register tiles in either direction; tiny GEMMs run inline. Among grids of
  // rc row chunks x cc column chunks, take the one moving the least memory, counted in elements:
  // with one row chunk, each task packs its own columns of B straight from the source (K x N
  // once); with several, B is packed once into a shared buffer (read, written, then read again
  // by every row chunk); every column chunk packs its rows of A (M x K, strided reads and a
  // transpose: about 3x a streaming read, measured).
  // Prepacked B: nothing to pack; every row chunk streams its columns of the panels once.
  const bool prepacked = pw != nullptr;
  const bool b_shared = g.batch == 1 || g.stride_b == 0;
  int64_t target = macs < 1.0e5 || threads == 1 ? 1 : threads * 4;
  if (macs < 2.0e6) target = std::min<int64_t>(target, threads);
  int64_t rc = 1, cc = 1;
  if (g.batch < target) {
    const int64_t per_item = ceil_div(target, g.batch);
    const int64_t max_rc = std::max<int64_t>(1, ceil_div(g.m, 4 * MR));
    const int64_t max_cc = std::max<int64_t>(1, ceil_div(g.n, 4 * NR));
    const int64_t need = std::min(per_item, max_rc * max_cc);
    const double kn = static_cast<double>(g.k) * g.n, mk = static_cast<double>(g.m) * g.k;
    double best = -1;
    for (int64_t r = 1; r <= std::min(per_item, max_rc); ++r) {
      const int64_t c = std::min(max_cc, ceil_div(per_item, r));
      if (r * c < need) continue;
      const double b_cost = prepacked ? kn * r : r == 1 ? kn : b_shared ? kn * (2 + r) : 3.0 * kn * r;
      const double cost = b_cost + 3.0 * mk * c;
      if (best < 0 || cost < best) best = cost, rc = r, cc = c;
    }
  }
  const int64_t rows_per = round_up(ceil_div(g.m, rc), MR), cols_per = round_up(ceil_div(g.n, cc), NR);
  rc = ceil_div(g.m, rows_per);
  cc = ceil_div(g.n, cols_per);
  const int64_t per_item = rc * cc, n_tasks = g.batch * per_item;

  // Pack B once when several tasks use the same columns of it.
  const int64_t n_panels = ceil_div(g.n, NR), k_blocks = ceil_div(g.k, ks.kc);
  const int64_t shared_bytes = k_blocks * n_panels * panel_bytes(ks.kc, NR, ks.fmt);
  SharedB sb;
  sb.n_panels = n_panels;
  const bool use_shared = prepacked || (b_shared && (rc > 1 || g.batch > 1) && shared_bytes <= (int64_t(256) << 20));
  if (prepacked) {
    sb.data = prepacked_panels(ex, ks, g, *pw, threads);
  } else if (use_shared) {
    char* buf = static_cast<char*>(tl_shared_b.get(shared_bytes));
    sb.data = buf;
    pack_shared_b(ex, ks, g, buf, threads);
  }

  // Tasks of one row chunk are consecutive, so a thread taking several of them packs its rows of
  // A once (run_task keeps them when they are small).
  const uint64_t call = ++g_gemm_call;
  auto task = [&](int64_t t) {
    const int64_t b = t / per_item, r = (t % per_item) / cc, c = t % cc;
    const int64_t i0 = r * rows_per, j0 = c * cols_per;
    run_task(ks, g, b, i0, std::min(g.m, i0 + rows_per), j0, std::min(g.n, j0 + cols_per), use_shared ? &sb : nullptr,
             call);
  };
  if (n_tasks > 1 && threads > 1)
    ex.pool->run(n_tasks, task);
  else
    for (int64_t t = 0; t < n_tasks; ++t) task(t);
}

KernelSet select_kernels(CpuIsa isa, DType compute, bool bf16_dot) {
  if (compute == DType::BF16 && isa == CpuIsa::Avx512 && bf16_dot) return avx512_kernels_bf16();
  KernelSet ks = isa == CpuIsa::Avx512 ? avx512_kernels_f32()
                 : isa == CpuIsa::Avx2 ? avx2_kernels_f32()
                                       : generic_kernels_f32();
  // No bf16 dot instruction: round while packing and multiply in fp32 (products of two bf16
  // values are exact in fp32, so only the accumulation order differs from VDPBF16PS).
  if (compute == DType::BF16) ks.fmt = PackFmt::F32Bf16;
  return ks;
}

}  // namespace

void gemm_with_isa(Exec& ex, const GemmArgs& g, CpuIsa isa) {
  check_gemm_args(g, "gemm");
  CZ_REQUIRE(static_cast<int>(isa) <= static_cast<int>(cpu_isa_detected()), CZ_ERR_UNSUPPORTED,
             "gemm: ISA %s is not supported by this CPU (detected %s)", cpu_isa_name(isa),
             cpu_isa_name(cpu_isa_detected()));
  const bool bf16_dot = isa == CpuIsa::Avx512 && cpu_features().avx512_bf16;
  run_gemm(ex, g, select_kernels(isa, g.compute, bf16_dot));
}

namespace {

// The strided span of an operand (items x rows x cols, row stride ld, item stride) as fp32
// values rounded through IEEE half: what an fp16 GEMM multiplies.
std::vector<float> f16_rounded(Exec& ex, const void* p, DType t, int64_t rows, int64_t cols, int64_t ld, int64_t stride,
                               int64_t batch) {
  const int64_t items = stride > 0 ? batch : 1;
  const int64_t n = (rows == 0 || cols == 0) ? 0 : (items - 1) * stride + (rows - 1) * ld + cols;
  std::vector<float> v(static_cast<size_t>(n));
  ex.pool->run((n + 65535) / 65536, [&](int64_t c) {
    const int64_t e = std::min(n, (c + 1) * 65536);
    for (int64_t i = c * 65536; i < e; ++i) {
      const float x =
          t == DType::BF16 ? bf16_to_f32(static_cast<const uint16_t*>(p)[i]) : static_cast<const float*>(p)[i];
      v[i] = f16_to_f32(f32_to_f16(x));
    }
  });
  return v;
}

}  // namespace

namespace {

// select_kernels' choice for g on this machine at level isa.
KernelSet kernels_for(const GemmArgs& g, CpuIsa isa) {
  return select_kernels(isa, g.compute, isa == CpuIsa::Avx512 && cpu_features().avx512_bf16);
}

// The F32 / BF16 compute part of gemm() (F16 is rounded before): an F32 C directly; a BF16 C
// through a dense fp32 copy.
void gemm_run(Exec& ex, const GemmArgs& g, const KernelSet& ks, PackedWeight* pw) {
  if (g.c_type == DType::F32) return run_gemm(ex, g, ks, pw);
  // BF16 C: the fp32 GEMM into a dense fp32 copy of C (widened first when beta reads it), then
  // every element rounded once to bf16. The padding between C's rows is not touched.
  if (g.batch == 0 || g.m == 0 || g.n == 0) return;
  const int64_t items = g.batch, M = g.m, N = g.n;
  std::vector<float> tmp(static_cast<size_t>(items * M * N));
  uint16_t* c16 = static_cast<uint16_t*>(g.c);
  auto rows = [&](const std::function<void(int64_t, float*, uint16_t*)>& f) {
    ex.pool->run(items * M, [&](int64_t r) {
      const int64_t b = r / M, i = r % M;
      f(N, tmp.data() + r * N, c16 + b * g.stride_c + i * g.ldc);
    });
  };
  if (g.beta != 0.0f)
    rows([](int64_t n, float* t, uint16_t* c) {
      for (int64_t j = 0; j < n; ++j) t[j] = bf16_to_f32(c[j]);
    });
  GemmArgs f = g;
  f.c = tmp.data();
  f.c_type = DType::F32;
  f.ldc = N;
  f.stride_c = M * N;
  run_gemm(ex, f, ks, pw);
  rows([](int64_t n, float* t, uint16_t* c) {
    for (int64_t j = 0; j < n; ++j) c[j] = f32_to_bf16(t[j]);
  });
}

// CARZERO_GEMM_PREPACK=0 packs per call (A/B timing; a harness switches it with reload_settings()).
bool prepack_enabled() { return settings().gemm_prepack; }

}  // namespace

void gemm(Exec& ex, const GemmArgs& g) {
  check_gemm_args(g, "gemm");
  if (g.compute == DType::F16) {
    if (g.batch == 0 || g.m == 0 || g.n == 0) return;
    GemmArgs f = g;
    std::vector<float> a =
        f16_rounded(ex, g.a, g.a_type, g.trans_a ? g.k : g.m, g.trans_a ? g.m : g.k, g.lda, g.stride_a, g.batch);
    std::vector<float> b =
        f16_rounded(ex, g.b, g.b_type, g.trans_b ? g.n : g.k, g.trans_b ? g.k : g.n, g.ldb, g.stride_b, g.batch);
    f.a = a.data(), f.a_type = DType::F32;
    f.b = b.data(), f.b_type = DType::F32;
    f.compute = DType::F32;
    return gemm(ex, f);
  }
  gemm_run(ex, g, kernels_for(g, cpu_isa()), nullptr);
}

// ---- prepacked weights --------------------------------------------------------------------------

// One packed copy per kernel set: the micro-kernel, packer, format, register tile and K block
// identify the panel layout. Entries are only added (never moved or freed) while the object lives,
// so a panel pointer handed out stays valid after the lock is released.
struct PackedWeight::Store {
  struct Entry {
    MicroKernel kernel;
    PackFn pack;
    PackFmt fmt;
    int mr, nr;
    int64_t kc;
    void* data;
    size_t bytes;
  };
  std::mutex mu;
  std::vector<Entry> entries;
  ~Store() {
    for (Entry& e : entries) std::free(e.data);
  }
};

PackedWeight::PackedWeight(const void* w, DType wt, int64_t n, int64_t k)
    : w_(w), wt_(wt), n_(n), k_(k), store_(std::make_unique<Store>()) {
  CZ_ARG(wt == DType::F32 || wt == DType::BF16, "PackedWeight: dtype %s (F32 or BF16 only)", dtype_name(wt));
  CZ_ARG(n >= 0 && k >= 0, "PackedWeight: negative shape (%lld, %lld)", (long long)n, (long long)k);
}

PackedWeight::~PackedWeight() = default;

size_t PackedWeight::bytes() const {
  std::lock_guard<std::mutex> lk(store_->mu);
  size_t b = 0;
  for (const Store::Entry& e : store_->entries) b += e.bytes;
  return b;
}

bool PackedWeight::matches(const GemmArgs& g) const {
  return w_ != nullptr && g.b == w_ && g.trans_b && g.b_type == wt_ && g.n == n_ && g.k == k_ && g.ldb == k_ &&
         (g.batch == 1 || g.stride_b == 0) && (g.compute == DType::F32 || g.compute == DType::BF16);
}

namespace {

const char* prepacked_panels(Exec& ex, const KernelSet& ks, const GemmArgs& g, PackedWeight& pw, int threads) {
  PackedWeight::Store& st = *pw.store_for_gemm();
  std::lock_guard<std::mutex> lk(st.mu);
  for (const PackedWeight::Store::Entry& e : st.entries)
    if (e.kernel == ks.kernel && e.pack == ks.pack && e.fmt == ks.fmt && e.mr == ks.mr && e.nr == ks.nr &&
        e.kc == ks.kc)
      return static_cast<const char*>(e.data);
  const int64_t n_panels = ceil_div(g.n, ks.nr), k_blocks = ceil_div(g.k, ks.kc);
  const size_t bytes = static_cast<size_t>(round_up(k_blocks * n_panels * panel_bytes(ks.kc, ks.nr, ks.fmt), 64));
  void* data = std::aligned_alloc(64, bytes);
  CZ_REQUIRE(data, CZ_ERR_OUT_OF_MEMORY, "gemm: cannot allocate %zu bytes of prepacked weight", bytes);
  try {
    pack_shared_b(ex, ks, g, static_cast<char*>(data), threads);
    st.entries.push_back({ks.kernel, ks.pack, ks.fmt, ks.mr, ks.nr, ks.kc, data, bytes});
  } catch (...) {
    std::free(data);
    throw;
  }
  return static_cast<const char*>(data);
}

}  // namespace

void gemm_prepacked_with_isa(Exec& ex, const GemmArgs& g, PackedWeight& pw, CpuIsa isa) {
  check_gemm_args(g, "gemm");
  CZ_REQUIRE(static_cast<int>(isa) <= static_cast<int>(cpu_isa_detected()), CZ_ERR_UNSUPPORTED,
             "gemm: ISA %s is not supported by this CPU (detected %s)", cpu_isa_name(isa),
             cpu_isa_name(cpu_isa_detected()));
  if (!pw.matches(g) || !prepack_enabled()) {
    if (g.compute == DType::F16) return gemm(ex, g);  // rounds B to half: never prepacked
    return gemm_run(ex, g, kernels_for(g, isa), nullptr);
  }
  gemm_run(ex, g, kernels_for(g, isa), &pw);
}

void gemm_prepacked(Exec& ex, const GemmArgs& g, PackedWeight& pw) {
  if (!pw.matches(g) || !prepack_enabled()) return gemm(ex, g);
  check_gemm_args(g, "gemm");
  gemm_run(ex, g, kernels_for(g, cpu_isa()), &pw);
}

// ---- backward -----------------------------------------------------------------------------------
// Forward: Z = alpha op(A) op(B) + bias (beta = 0), C = act(Z), preact = Z.
// dZ = dC * act'(Z); dbias += sum over rows of dZ; d op(A) = alpha dZ op(B)^T;
// d op(B) = alpha op(A)^T dZ. Each is a forward GEMM with the transposes chosen so the result
// lands in A's (or B's) storage layout. dA is written (=), dB and dbias accumulate (+=); an
// operand shared by the batch (stride 0) gathers the gradients of every batch item.

namespace {

// act'(x): Relu 1[x > 0]; exact GELU Phi(x) + x phi(x).
float act_grad(float x, Act act) {
  if (act == Act::Relu) return x > 0.0f ? 1.0f : 0.0f;
  const float cdf = 0.5f * (1.0f + std::erf(x * kInvSqrt2));
  const float pdf = 0.39894228040143267794f * std::exp(-0.5f * x * x);
  return cdf + x * pdf;
}

}  // namespace

void gemm_backward(Exec& ex, const GemmArgs& f, const float* dc, float* da, float* db, float* dbias) {
  check_gemm_args(f, "gemm_backward");
  CZ_ARG(f.a_type == DType::F32 && f.b_type == DType::F32,
         "gemm_backward: only F32 operands are supported (a_type %s, b_type %s)", dtype_name(f.a_type),
         dtype_name(f.b_type));
  CZ_ARG(f.c_type == DType::F32, "gemm_backward: c_type %s: only an F32 C is supported", dtype_name(f.c_type));
  CZ_ARG(f.beta == 0.0f, "gemm_backward: beta (%g) must have been 0 in the forward", static_cast<double>(f.beta));
  const int64_t M = f.m, N = f.n, B = f.batch;
  if (B == 0 || M == 0 || N == 0) return;
  CZ_ARG(dc, "gemm_backward: dc is null with m (%lld) x n (%lld) > 0", (long long)M, (long long)N);
  CZ_ARG(f.act == Act::None || f.preact, "gemm_backward: preact is null but act is %d (the forward must store it)",
         static_cast<int>(f.act));
  const int threads = ex.pool ? ex.pool->size() : 1;

  // dZ (B, M, N): dC itself when there is no activation, else dC * act'(preact) in scratch.
  const float* dz = dc;
  int64_t ld_dz = f.ldc, stride_dz = f.stride_c;
  if (f.act != Act::None) {
    float* buf = static_cast<float*>(tl_backward_dz.get(static_cast<size_t>(B * M * N) * 4));
    auto rows_fn = [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t b = r / M, i = r % M;
        const float* d = dc + b * f.stride_c + i * f.ldc;
        const float* x = f.preact + b * f.stride_c + i * f.ldc;
        float* o = buf + r * N;
        for (int64_t j = 0; j < N; ++j) o[j] = d[j] * act_grad(x[j], f.act);
      }
    };
    if (threads > 1)
      ex.pool->parallel_for(B * M, 16, rows_fn);
    else
      rows_fn(0, B * M);
    dz = buf;
    ld_dz = N;
    stride_dz = M * N;
  }

  if (dbias) {
    // Column sums in double: a ViT batch sums tens of thousands of rows.
    auto cols_fn = [&](int64_t j0, int64_t j1) {
      std::vector<double> s(j1 - j0, 0.0);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < M; ++i) {
          const float* d = dz + b * stride_dz + i * ld_dz;
          for (int64_t j = j0; j < j1; ++j) s[j - j0] += d[j];
        }
      for (int64_t j = j0; j < j1; ++j) dbias[j] += static_cast<float>(s[j - j0]);
    };
    if (threads > 1)
      ex.pool->parallel_for(N, 64, cols_fn);
    else
      cols_fn(0, N);
  }
  gemm_backward_products(ex, gemm, f, dz, ld_dz, stride_dz, da, db);
}

}  // namespace carzero::cpu
