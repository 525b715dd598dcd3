// gemm_internal.h: what the CPU GEMM driver (gemm.cpp) shares with its ISA-specific kernel files
// (gemm_avx2.cpp, gemm_avx512.cpp): the packed operand formats, the micro-kernel and packer
// signatures, the per-ISA kernel sets with their register tiles and cache blocks.
//
// Dimension letters: M rows of C, N columns of C, K the reduction; MR x NR the register tile,
// KC the K block, NC the column block of packed B kept in L2.
//
// Everything here is a declaration, a plain struct or constexpr integer arithmetic: the ISA files
// are compiled with different -m flags, so a non-trivial inline function defined here and used in
// two of them could be merged by the linker into the AVX-512 copy and run on a machine without it.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "ops.h"

namespace carzero::cpu::gemm_detail {

// Both operands are packed through the same view: a (rows x K) matrix X, where element (r, p) is
// X[r * ld + p] (row-major) or X[p * ld + r] (trans). op(A) (M, K) is the view of A as it is;
// op(B)^T (N, K) is the view of B, so B packs exactly like A with rows = columns of C.
struct PackSrc {
  const void* data = nullptr;  // element (0, 0) of this batch item
  int64_t ld = 0;
  bool trans = false;
  DType type = DType::F32;  // F32 or BF16 (uint16 bits)
};

// Packed formats. A "panel" holds W rows of the view (W = MR for A, NR for B) over a K block of
// kc: rows past the end of the matrix are zero, so kernels never test row bounds while looping.
enum class PackFmt : int {
  F32 = 0,        // kc x W floats, k-major: panel[k * W + w]
  F32Bf16 = 1,    // as F32, each value rounded to bf16 precision (round to nearest even): the
                  // exact emulation of bf16 compute on CPUs without a bf16 dot instruction
  Bf16Pairs = 2,  // ceil(kc/2) x W x 2 bf16: panel[(kp * W + w) * 2 + t] = X(w, 2 kp + t), the
                  // K pairs VDPBF16PS multiplies; an odd kc is padded with a zero
};

// Bytes of one packed panel of W rows over kc.
inline constexpr int64_t panel_bytes(int64_t kc, int64_t w, PackFmt f) {
  return f == PackFmt::Bf16Pairs ? ((kc + 1) / 2) * w * 4 : kc * w * 4;
}

// Packs rows [r0, r0 + rows) x K range [p0, p0 + kc) of the view into ceil(rows / W) consecutive
// panels at dst (each panel_bytes(kc, W, fmt) bytes).
using PackFn = void (*)(const PackSrc& src, int64_t r0, int64_t rows, int64_t p0, int64_t kc, int w, PackFmt fmt,
                        void* dst);

// What a micro-kernel does with its accumulated tile T = sum over this K block of A_panel x B_panel
// before storing it to C (the GEMM epilogue, fused so the tile is finished while in registers).
struct TileEpilogue {
  float alpha = 1.0f, beta = 0.0f;
  Act act = Act::None;
  bool first = true;            // first K block: C = alpha T + beta C (C is not read when beta == 0)
  bool last = true;             // last K block: then + bias, store preact, apply act
  const float* bias = nullptr;  // (NR) bias of the tile's columns, or null
  float* preact = nullptr;      // tile origin in preact (ldc layout), or null
};
// Otherwise (not first): C += alpha T.

// One register tile: C (m_valid x n_valid, row stride ldc) from one A panel (MR x kc) and one
// B panel (NR x kc). m_valid <= MR and n_valid <= NR; nothing outside them is read or written.
using MicroKernel = void (*)(int64_t kc, const void* a_panel, const void* b_panel, float* c, int64_t ldc,
                             int64_t m_valid, int64_t n_valid, const TileEpilogue& ep);

// A complete kernel choice: register tile, cache blocks, packed format, functions.
struct KernelSet {
  const char* name = "";
  int mr = 0, nr = 0;  // register tile MR x NR
  int64_t kc = 0;      // K block: an A panel (MR x KC) stays in L1 while B panels stream by
  int64_t nc = 0;      // column block: a packed B block (KC x NC) stays in L2 for a row chunk
  PackFmt fmt = PackFmt::F32;
  MicroKernel kernel = nullptr;
  PackFn pack = nullptr;
};

// Portable C++ (gemm.cpp).
KernelSet generic_kernels_f32();
void pack_generic(const PackSrc& src, int64_t r0, int64_t rows, int64_t p0, int64_t kc, int w, PackFmt fmt, void* dst);
// AVX2 + FMA (gemm_avx2.cpp). The caller has checked the CPU.
KernelSet avx2_kernels_f32();
// AVX-512 (gemm_avx512.cpp). bf16: VDPBF16PS, needs AVX512_BF16.
KernelSet avx512_kernels_f32();
KernelSet avx512_kernels_bf16();

}  // namespace carzero::cpu::gemm_detail
