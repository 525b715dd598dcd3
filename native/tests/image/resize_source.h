// resize_source.h: the deterministic source images of test/fixtures/image/resize-large.bin, the
// same integer formula as `source` in tools/fixtures-resize-large.py (keep the two in step): a
// gradient, sharp-edged blocks and a hash term (full range for odd seeds). Shared by
// native/tests/image/test_resize.cpp and native/bench/bench_image.cpp.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

inline std::vector<uint8_t> resize_source(int w, int h, uint32_t seed) {
  std::vector<uint8_t> img(size_t(w) * size_t(h));
  for (uint32_t y = 0; y < uint32_t(h); y++)
    for (uint32_t x = 0; x < uint32_t(w); x++) {
      const uint32_t grad = (x * 200u) / uint32_t(w) + (y * 55u) / uint32_t(h);
      const uint32_t block = (x / 37u + y / 23u + seed) % 3u == 0 ? 64u : 0u;
      uint32_t hs = (x * 73856093u) ^ (y * 19349663u) ^ (seed * 83492791u);
      hs ^= hs >> 13;
      hs *= 0x5bd1e995u;
      hs ^= hs >> 15;
      img[size_t(y) * size_t(w) + x] = uint8_t((grad + block + (hs & (seed % 2 ? 255u : 31u))) & 255u);
    }
  return img;
}
