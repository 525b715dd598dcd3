// test_warp_emu.cpp: the warp emulator's own checks (harness cases "warp_emu(...)"): its
// mma.sync/ldmatrix lane layouts against a plain matrix product, and that each error it is meant
// to catch (divergent collectives, deadlock, a read before cp.async.wait_group, shared memory out
// of bounds, bank conflicts) is caught. The kernels' cases (backend cuda-emu) rely on these.
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "harness.h"
#include "warp_emu.h"

namespace cztest {
namespace {

// Runs a one-block launch and returns the emulator's error message ("" when none).
std::string emu_error(unsigned threads, size_t smem, const std::function<void()>& body) {
  try {
    cz_emu::launch({1, 1, 1}, {threads, 1, 1}, smem, body);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

void mma_layout_case(Ctx& c, bool f16) {
  // A (16 x 16) row-major and B^T (8 x 16: the "col" B operand) in shared memory, as bf16/fp16.
  std::vector<float> A(256), Bt(128);
  for (auto& v : A) v = static_cast<float>(c.rng.normal());
  for (auto& v : Bt) v = static_cast<float>(c.rng.normal());
  auto to16 = [&](float x) { return f16 ? carzero::f32_to_f16(x) : carzero::f32_to_bf16(x); };
  auto from16 = [&](uint16_t h) { return f16 ? carzero::f16_to_f32(h) : carzero::bf16_to_f32(h); };
  std::vector<double> ref(128, 0.0), init(128);
  for (int r = 0; r < 16; ++r)
    for (int n = 0; n < 8; ++n) {
      init[r * 8 + n] = 0.25 * (r - n);
      double s = init[r * 8 + n];
      for (int k = 0; k < 16; ++k) s += double(from16(to16(A[r * 16 + k]))) * from16(to16(Bt[n * 16 + k]));
      ref[r * 8 + n] = s;
    }
  std::vector<float> out(128, NAN);
  const std::string err = emu_error(32, 768, [&] {
    auto* sm = reinterpret_cast<uint16_t*>(cz_emu::dyn_smem());
    const int lane = static_cast<int>(threadIdx.x);
    if (lane == 0) {
      for (int i = 0; i < 256; ++i) sm[i] = to16(A[i]);
      for (int i = 0; i < 128; ++i) sm[256 + i] = to16(Bt[i]);
    }
    __syncthreads();
    const int i4 = lane >> 3;
    uint32_t a[4], b[4];
    // A: matrices (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15, k 8-15)
    cz_emu::ldmatrix_x4(a[0], a[1], a[2], a[3], sm + ((i4 & 1) * 8 + (lane & 7)) * 16 + (i4 >> 1) * 8, false);
    // B: matrices (n 0-7, k 0-7), (n 0-7, k 8-15), twice
    cz_emu::ldmatrix_x4(b[0], b[1], b[2], b[3], sm + 256 + (lane & 7) * 16 + (i4 & 1) * 8, false);
    const int g = lane >> 2, t = lane & 3;
    float d[4] = {float(init[g * 8 + 2 * t]), float(init[g * 8 + 2 * t + 1]), float(init[(g + 8) * 8 + 2 * t]),
                  float(init[(g + 8) * 8 + 2 * t + 1])};
    cz_emu::mma_m16n8k16(d, a, b[0], b[1], f16);
    out[g * 8 + 2 * t] = d[0], out[g * 8 + 2 * t + 1] = d[1];
    out[(g + 8) * 8 + 2 * t] = d[2], out[(g + 8) * 8 + 2 * t + 1] = d[3];
  });
  c.expect(err.empty(), "emulator error: " + err);
  c.expect_close("d", out, ref, 1e-12);
}

void error_cases(Ctx& c) {
  // lanes of one warp at different collectives
  std::string e = emu_error(32, 64, [&] {
    auto* sm = cz_emu::dyn_smem();
    if (threadIdx.x < 16) {
      (void)__shfl_xor_sync(0xffffffffu, 1.0f, 1);
    } else {
      uint32_t r0, r1, r2, r3;
      cz_emu::ldmatrix_x4(r0, r1, r2, r3, sm, false);
    }
  });
  c.expect(e.find("different collectives") != std::string::npos, "divergent collectives not reported: '" + e + "'");
  // a collective half the warp never reaches
  e = emu_error(32, 64, [&] {
    if (threadIdx.x < 16) (void)__shfl_xor_sync(0xffffffffu, 1.0f, 1);
  });
  c.expect(e.find("deadlock") != std::string::npos, "deadlock not reported: '" + e + "'");
  // shared memory out of bounds, and misaligned
  e = emu_error(32, 64, [&] {
    uint32_t r0, r1, r2, r3;
    cz_emu::ldmatrix_x4(r0, r1, r2, r3, cz_emu::dyn_smem() + 64, false);
  });
  c.expect(e.find("out of bounds") != std::string::npos, "out-of-bounds ldmatrix not reported: '" + e + "'");
  e = emu_error(32, 64, [&] {
    uint32_t r0, r1, r2, r3;
    cz_emu::ldmatrix_x4(r0, r1, r2, r3, cz_emu::dyn_smem() + 8, false);
  });
  c.expect(e.find("16-byte aligned") != std::string::npos, "misaligned ldmatrix not reported: '" + e + "'");
  // cp.async data is there only after the issuing thread's wait
  alignas(16) static const uint16_t src[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  uint16_t before = 0, after = 0;
  e = emu_error(32, 64, [&] {
    auto* sm = reinterpret_cast<uint16_t*>(cz_emu::dyn_smem());
    if (threadIdx.x == 0) {
      cz_emu::cp_async16(sm, src, true, true);
      cz_emu::cp_commit();
      before = sm[3];
      cz_emu::cp_wait(0);
      after = sm[3];
    }
  });
  c.expect(e.empty(), "cp.async case: " + e);
  c.expect(before != 4 && after == 4,
           "cp.async landed before its wait (" + std::to_string(before) + ", then " + std::to_string(after) + ")");
  // bank conflicts: 8 rows 128 bytes apart share one 16-byte bank group (7 extra wavefronts per
  // matrix); rows 16 bytes apart do not
  const uint64_t x0 = cz_emu::ldmatrix_extra_wavefronts();
  e = emu_error(32, 4096, [&] {
    uint32_t r0, r1, r2, r3;
    const int lane = static_cast<int>(threadIdx.x);
    cz_emu::ldmatrix_x4(r0, r1, r2, r3, cz_emu::dyn_smem() + lane * 128, false);
    cz_emu::ldmatrix_x4(r0, r1, r2, r3, cz_emu::dyn_smem() + lane * 16, false);
  });
  c.expect(e.empty(), "bank case: " + e);
  c.expect(cz_emu::ldmatrix_extra_wavefronts() - x0 == 28,
           "bank conflicts counted " + std::to_string(cz_emu::ldmatrix_extra_wavefronts() - x0) + ", expected 28");
}

}  // namespace

void register_warp_emu_cases(Registry& r) {
  add_case(r, "warp_emu(mma.m16n8k16+ldmatrix layouts,bf16)", [](Ctx& c) { mma_layout_case(c, false); });
  add_case(r, "warp_emu(mma.m16n8k16+ldmatrix layouts,f16)", [](Ctx& c) { mma_layout_case(c, true); });
  add_case(r, "warp_emu(errors it reports)", [](Ctx& c) { error_cases(c); });
}

}  // namespace cztest
