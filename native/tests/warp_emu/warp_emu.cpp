// warp_emu.cpp: the fiber scheduler and the lane-level semantics of the primitives declared in
// warp_emu.h (PTX ISA: mma.m16n8k16 fragment layouts, ldmatrix .x4 [.trans], cp.async groups).
#include "warp_emu.h"

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#include <algorithm>
#include <cstdio>
#include <deque>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

// Fiber switching. On x86-64 a minimal switch of the callee-saved registers and the stack pointer
// (swapcontext also saves the signal mask with a system call per switch: ~20x slower here);
// elsewhere ucontext.
#if defined(__x86_64__)
extern "C" void cz_emu_switch(void** save_sp, void* load_sp);
asm(R"(
.text
.globl cz_emu_switch
.type cz_emu_switch,@function
cz_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size cz_emu_switch,.-cz_emu_switch
.section .note.GNU-stack,"",@progbits
.text
)");
#define CZ_EMU_ASM_SWITCH 1
#endif

namespace cz_emu {
namespace {

constexpr size_t kStack = 256 * 1024;

struct Copy {
  unsigned char* dst;
  const unsigned char* src;  // null: zero-fill
};

struct Fiber {
#ifdef CZ_EMU_ASM_SWITCH
  void* sp = nullptr;
#else
  ucontext_t ctx{};
#endif
  unsigned char* stack = nullptr;
  Dim3 tid;
  int lin = 0;  // linear thread index in the block
  bool done = false;
  std::vector<Copy> open;                // cp.async since the last commit
  std::deque<std::vector<Copy>> groups;  // committed, not yet waited for
};

struct Warp {
  int arrived = 0;
  uint64_t gen = 0;
  const char* what = nullptr;
  float f[32];
  const void* ptr[32];
  uint32_t a[32][4];
  uint32_t b[32][2];
};

struct Block {
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  int bar_arrived = 0;
  uint64_t bar_gen = 0;
  std::vector<unsigned char> smem_store;
  unsigned char* smem = nullptr;
  size_t smem_size = 0;
  Dim3 idx;
};

Dim3 g_grid, g_block;
Block* g_blk = nullptr;
Fiber* g_cur = nullptr;
#ifdef CZ_EMU_ASM_SWITCH
void* g_sched_sp = nullptr;
#else
ucontext_t g_sched;
#endif
const std::function<void()>* g_body = nullptr;
uint64_t g_progress = 0, g_collectives = 0, g_ldsm = 0, g_ldsm_extra = 0;
std::string g_error;
std::map<uintptr_t, size_t> g_global;  // tracked global ranges: start -> bytes
Work g_work;

#ifdef CZ_EMU_ASM_SWITCH
void to_scheduler() { cz_emu_switch(&g_cur->sp, g_sched_sp); }
void to_fiber(Fiber& f) { cz_emu_switch(&g_sched_sp, f.sp); }
#else
void to_scheduler() { swapcontext(&g_cur->ctx, &g_sched); }
void to_fiber(Fiber& f) { swapcontext(&g_sched, &f.ctx); }
#endif
void yield() { to_scheduler(); }

// Records the first error and leaves the fiber for good (the scheduler stops the launch).
[[noreturn]] void fail(const std::string& msg) {
  if (g_error.empty()) {
    char where[96];
    std::snprintf(where, sizeof where, " (block %u,%u,%u thread %d)", g_blk->idx.x, g_blk->idx.y, g_blk->idx.z,
                  g_cur->lin);
    g_error = msg + where;
  }
  to_scheduler();
  for (;;) {
  }  // never resumed
}

Warp& my_warp() { return g_blk->warps[g_cur->lin / 32]; }
int my_lane() { return g_cur->lin % 32; }

// Arrive at the warp collective `what` and wait until all 32 lanes have arrived at it.
void warp_arrive(const char* what) {
  Warp& w = my_warp();
  if (w.arrived == 0)
    w.what = what;
  else if (std::strcmp(w.what, what) != 0)
    fail(std::string("lanes of one warp at different collectives: ") + w.what + " and " + what);
  const uint64_t gen = w.gen;
  ++g_progress;
  if (++w.arrived == 32) {
    w.arrived = 0;
    ++w.gen;
    ++g_collectives;
    return;
  }
  while (w.gen == gen) yield();
}

void check_smem(const void* p, size_t bytes, const char* what) {
  const auto* c = static_cast<const unsigned char*>(p);
  if (c < g_blk->smem || c + bytes > g_blk->smem + g_blk->smem_size) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s: shared address out of bounds (offset %lld, %zu bytes of %zu)", what,
                  static_cast<long long>(c - g_blk->smem), bytes, g_blk->smem_size);
    fail(buf);
  }
  if ((reinterpret_cast<uintptr_t>(c) & 15) != 0) fail(std::string(what) + ": shared address not 16-byte aligned");
}

void fiber_entry() {
  (*g_body)();
  g_cur->done = true;
  ++g_progress;
#ifdef CZ_EMU_ASM_SWITCH
  to_scheduler();  // a finished fiber is never resumed (there is no frame to return to)
  for (;;) {
  }
#endif
}

// Prepares f to start in fiber_entry on its stack at the next switch to it.
void start_fiber(Fiber& f) {
#ifdef CZ_EMU_ASM_SWITCH
  auto top = reinterpret_cast<uintptr_t>(f.stack + kStack) & ~uintptr_t{15};
  auto* w = reinterpret_cast<void**>(top);
  *--w = nullptr;                                // fiber_entry's "return address"
  *--w = reinterpret_cast<void*>(&fiber_entry);  // popped by the switch's ret
  for (int i = 0; i < 6; ++i) *--w = nullptr;    // rbp rbx r12 r13 r14 r15
  f.sp = w;
#else
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = f.stack;
  f.ctx.uc_stack.ss_size = kStack;
  f.ctx.uc_link = &g_sched;
  makecontext(&f.ctx, fiber_entry, 0);
#endif
}

uint16_t half_of(uint32_t r, int hi) { return static_cast<uint16_t>(hi ? r >> 16 : r & 0xffffu); }
float bf(uint16_t b) { return __bfloat162float(__nv_bfloat16{b}); }
float hf(uint16_t b) { return carzero::f16_to_f32(b); }

}  // namespace

void track_global(const void* p, size_t bytes) { g_global[reinterpret_cast<uintptr_t>(p)] = bytes; }
void untrack_global(const void* p) { g_global.erase(reinterpret_cast<uintptr_t>(p)); }
void check_global_read(const void* p, size_t bytes, const char* what) {
  if (std::strcmp(what, "__ldg") == 0) g_work.global_read_bytes += bytes;
  if (g_global.empty() || !g_cur) return;
  const auto a = reinterpret_cast<uintptr_t>(p);
  auto it = g_global.upper_bound(a);
  if (it != g_global.begin()) {
    --it;
    if (a >= it->first && a + bytes <= it->first + it->second) return;
  }
  fail(std::string(what) + ": global read outside every allocation");
}

const Dim3& thread_idx() { return g_cur->tid; }
const Dim3& block_idx() { return g_blk->idx; }
const Dim3& block_dim() { return g_block; }
const Dim3& grid_dim() { return g_grid; }
unsigned char* dyn_smem() { return g_blk->smem; }
uint64_t collectives() { return g_collectives; }
uint64_t ldmatrix_extra_wavefronts() { return g_ldsm_extra; }
uint64_t ldmatrix_count() { return g_ldsm; }
const Work& work() { return g_work; }
float ex2(float x) {
  ++g_work.ex2;
  return std::exp2(x);
}

void cp_async16(void* dst, const void* src, bool valid, bool aligned) {
  check_smem(dst, 16, "cp.async");
  if (!aligned) {  // the kernels' element-wise path: a plain synchronous copy
    if (valid)
      std::memcpy(dst, src, 16);
    else
      std::memset(dst, 0, 16);
    return;
  }
  if (valid && (reinterpret_cast<uintptr_t>(src) & 15) != 0) fail("cp.async: global address not 16-byte aligned");
  if (valid) check_global_read(src, 16, "cp.async"), g_work.global_read_bytes += 16;
  g_cur->open.push_back({static_cast<unsigned char*>(dst), valid ? static_cast<const unsigned char*>(src) : nullptr});
}

void cp_commit() {
  g_cur->groups.push_back(std::move(g_cur->open));
  g_cur->open.clear();
}

void cp_wait(int pending) {
  while (static_cast<int>(g_cur->groups.size()) > pending) {
    for (const Copy& c : g_cur->groups.front()) {
      if (c.src)
        std::memcpy(c.dst, c.src, 16);
      else
        std::memset(c.dst, 0, 16);
    }
    g_cur->groups.pop_front();
  }
}

// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: lane l gives the address of row l % 8 of
// matrix l / 8. Without .trans, lane l receives row l / 4, columns 2 (l % 4) and 2 (l % 4) + 1 of
// each matrix; with .trans, column l / 4 of rows 2 (l % 4) and 2 (l % 4) + 1.
void ldmatrix_x4(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3, const void* p, bool trans) {
  check_smem(p, 16, trans ? "ldmatrix.trans" : "ldmatrix");
  Warp& w = my_warp();
  const int lane = my_lane();
  w.ptr[lane] = p;
  warp_arrive(trans ? "ldmatrix.trans" : "ldmatrix");
  if (lane == 0) {  // bank conflicts: per matrix, the most rows sharing one 16-byte bank group
    ++g_ldsm;
    for (int m = 0; m < 4; ++m) {
      int count[8] = {0}, worst = 0;
      for (int r8 = 0; r8 < 8; ++r8) {
        // (offset from the block's shared memory, which a GPU aligns to at least 128 bytes)
        const auto off = static_cast<const unsigned char*>(w.ptr[m * 8 + r8]) - g_blk->smem;
        const int grp = static_cast<int>((off >> 4) & 7);
        worst = std::max(worst, ++count[grp]);
      }
      g_ldsm_extra += static_cast<uint64_t>(worst - 1);
    }
  }
  uint32_t r[4];
  for (int m = 0; m < 4; ++m) {
    uint16_t lo, hi;
    if (!trans) {
      const auto* row = static_cast<const uint16_t*>(w.ptr[m * 8 + lane / 4]);
      lo = row[2 * (lane % 4)];
      hi = row[2 * (lane % 4) + 1];
    } else {
      lo = static_cast<const uint16_t*>(w.ptr[m * 8 + 2 * (lane % 4)])[lane / 4];
      hi = static_cast<const uint16_t*>(w.ptr[m * 8 + 2 * (lane % 4) + 1])[lane / 4];
    }
    r[m] = static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
  }
  warp_arrive(trans ? "ldmatrix.trans/2" : "ldmatrix/2");
  r0 = r[0], r1 = r[1], r2 = r[2], r3 = r[3];
}

// What the mma emulations share: each lane publishes its fragments and waits for the warp; then
// D (16 x 8) += A (16 x K) B (K x 8) for this lane's four elements, the operands read from the
// published fragments by elem_a(w, r, k) and elem_b(w, k, n); a second wait (no lane overwrites its
// fragments before every lane has read them), then d is stored. C and D, with g = lane / 4 and
// t = lane % 4: d0, d1 = (g, 2t..2t+1), d2, d3 = (g + 8, 2t..2t+1).
template <int K, class EA, class EB>
void warp_mma(float* d, const uint32_t* a, uint32_t b0, uint32_t b1, const char* what, const char* what2, EA elem_a,
              EB elem_b) {
  Warp& w = my_warp();
  const int lane = my_lane();
  for (int i = 0; i < 4; ++i) w.a[lane][i] = a[i];
  w.b[lane][0] = b0, w.b[lane][1] = b1;
  warp_arrive(what);
  if (lane == 0) ++g_work.mma;
  const int g = lane / 4, t = lane % 4;
  float out[4];
  for (int i = 0; i < 4; ++i) {
    const int r = g + 8 * (i / 2), n = 2 * t + (i % 2);
    float acc = d[i];
    for (int k = 0; k < K; ++k) acc += elem_a(w, r, k) * elem_b(w, k, n);
    out[i] = acc;
  }
  warp_arrive(what2);
  for (int i = 0; i < 4; ++i) d[i] = out[i];
}

// mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}.{bf16,f16}.f32, with g = lane / 4, t = lane % 4:
// A (16 x 16): a0 = (g, 2t..2t+1), a1 = (g + 8, 2t..), a2 = (g, 2t + 8..), a3 = (g + 8, 2t + 8..);
// B (16 x 8):  b0 = (k 2t..2t+1, n g), b1 = (k 2t + 8.., n g). Low halves hold the lower index.
void mma_m16n8k16(float* d, const uint32_t* a, uint32_t b0, uint32_t b1, bool f16) {
  warp_mma<16>(
      d, a, b0, b1, f16 ? "mma.f16" : "mma.bf16", f16 ? "mma.f16/2" : "mma.bf16/2",
      [f16](const Warp& w, int r, int k) {
        const uint16_t v = half_of(w.a[(r % 8) * 4 + (k % 8) / 2][r / 8 + 2 * (k / 8)], k % 2);
        return f16 ? hf(v) : bf(v);
      },
      [f16](const Warp& w, int k, int n) {
        const uint16_t v = half_of(w.b[n * 4 + (k % 8) / 2][k / 8], k % 2);
        return f16 ? hf(v) : bf(v);
      });
}

// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32, with g = lane / 4, t = lane % 4:
// A (16 x 8): a0 = (g, t), a1 = (g + 8, t), a2 = (g, t + 4), a3 = (g + 8, t + 4);
// B (8 x 8):  b0 = (k t, n g), b1 = (k t + 4, n g).
// Each operand keeps its sign, exponent and top 10 mantissa bits.
void mma_m16n8k8_tf32(float* d, const uint32_t* a, uint32_t b0, uint32_t b1) {
  auto tf = [](uint32_t bits) {
    bits &= 0xffffe000u;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  };
  warp_mma<8>(
      d, a, b0, b1, "mma.tf32", "mma.tf32/2",
      [&](const Warp& w, int r, int k) { return tf(w.a[(r % 8) * 4 + k % 4][r / 8 + 2 * (k / 4)]); },
      [&](const Warp& w, int k, int n) { return tf(w.b[n * 4 + k % 4][k / 4]); });
}

float round_tf32(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) {  // finite: add half an ulp of TF32 to the magnitude, truncate
    u += 0x1000u;
    u &= 0xffffe000u;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

float shfl_xor(float v, int lane_mask) {
  Warp& w = my_warp();
  const int lane = my_lane();
  w.f[lane] = v;
  warp_arrive("shfl.xor");
  const float r = w.f[(lane ^ lane_mask) & 31];
  warp_arrive("shfl.xor/2");
  return r;
}

void syncthreads() {
  Block& b = *g_blk;
  const uint64_t gen = b.bar_gen;
  ++b.bar_arrived;
  ++g_progress;
  for (;;) {
    if (b.bar_gen != gen) return;
    int live = 0;
    for (const Fiber& f : b.fibers) live += f.done ? 0 : 1;
    if (b.bar_arrived >= live) {  // every live thread is here (exited threads count as arrived)
      b.bar_arrived = 0;
      ++b.bar_gen;
      return;
    }
    yield();
  }
}

void launch(Dim3 grid, Dim3 block, size_t smem, const std::function<void()>& body) {
  const unsigned nthreads = block.x * block.y * block.z;
  if (nthreads == 0 || nthreads % 32 != 0 || nthreads > 1024)
    throw std::runtime_error("warp_emu: block size must be a positive multiple of 32, at most 1024");
  g_grid = grid, g_block = block, g_body = &body, g_error.clear();
  std::vector<std::unique_ptr<unsigned char[]>> stacks(nthreads);  // reused by every block
  for (auto& st : stacks) st.reset(new unsigned char[kStack]);
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        Block b;
        b.idx = {bx, by, bz};
        b.smem_size = smem;
        b.smem_store.assign(smem + 16, 0xff);  // NaN bytes: unloaded data shows in the results
        b.smem = b.smem_store.data() + (16 - (reinterpret_cast<uintptr_t>(b.smem_store.data()) & 15)) % 16;
        b.warps.resize(nthreads / 32);
        b.fibers.resize(nthreads);
        g_blk = &b;
        for (unsigned t = 0; t < nthreads; ++t) {
          Fiber& f = b.fibers[t];
          f.lin = static_cast<int>(t);
          f.tid = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
          f.stack = stacks[t].get();
          start_fiber(f);
        }
        for (;;) {
          bool all_done = true;
          const uint64_t before = g_progress;
          for (Fiber& f : b.fibers) {
            if (f.done) continue;
            all_done = false;
            g_cur = &f;
            to_fiber(f);
            if (!g_error.empty()) {
              g_blk = nullptr, g_cur = nullptr;
              throw std::runtime_error("warp_emu: " + g_error);
            }
          }
          if (all_done) break;
          if (g_progress == before) {
            char buf[128];
            std::snprintf(buf, sizeof buf,
                          "warp_emu: deadlock in block %u,%u,%u (a barrier or collective some threads never reach)", bx,
                          by, bz);
            g_blk = nullptr, g_cur = nullptr;
            throw std::runtime_error(buf);
          }
        }
        for (const Fiber& f : b.fibers) {
          bool pending = !f.open.empty();
          for (const auto& grp : f.groups) pending = pending || !grp.empty();  // empty groups are complete
          if (pending) {
            g_blk = nullptr;
            throw std::runtime_error("warp_emu: a thread ended with cp.async copies it never waited for");
          }
        }
        g_blk = nullptr, g_cur = nullptr;
      }
}

}  // namespace cz_emu
