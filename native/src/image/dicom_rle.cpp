// dicom_rle.cpp: DICOM RLE Lossless (PS3.5 Annex G), our own decoder.
//
// A frame is a 64-byte header (uint32 LE: the number of segments, then 15 segment offsets from the
// start of the frame) and one PackBits segment per byte plane: for 16-bit samples the most
// significant bytes first, then the least significant. PackBits: a header byte n; 0..127 copies
// the next n + 1 bytes, -127..-1 repeats the next byte 1 - n times, -128 does nothing. A segment
// must fill its plane (rows * columns bytes); bytes decoded beyond that are ignored (some encoders
// pad a segment to an even length with a run that overshoots).
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/status.h"
#include "image/dicom.h"

namespace carzero {
namespace img {

namespace {

uint32_t le32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

// Decodes one segment into plane (n bytes); returns how many bytes it produced (<= n).
size_t unpack_segment(const uint8_t* s, size_t len, uint8_t* plane, size_t n) {
  size_t i = 0, o = 0;
  while (i < len && o < n) {
    const int h = int8_t(s[i++]);
    if (h >= 0) {
      const size_t count = size_t(h) + 1;
      if (count > len - i) {  // literal run cut short: take what is there, then stop
        const size_t take = std::min(len - i, n - o);
        std::memcpy(plane + o, s + i, take);
        o += take;
        break;
      }
      const size_t take = std::min(count, n - o);
      std::memcpy(plane + o, s + i, take);
      o += take;
      i += count;
    } else if (h != -128) {
      if (i >= len) break;
      const size_t count = size_t(1 - h);
      const size_t take = std::min(count, n - o);
      std::memset(plane + o, s[i++], take);
      o += take;
    }
  }
  return o;
}

}  // namespace

void rle_decode_frame(const uint8_t* data, size_t len, const FrameSpec& f, uint32_t* out) {
  const size_t n = size_t(f.rows) * size_t(f.cols);
  const uint32_t bytes = uint32_t(f.bits_allocated / 8);
  if (len < 64)
    throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: frame of %zu bytes, shorter than the 64-byte RLE header)",
                f.ts_label, len);
  const uint32_t segments = le32(data);
  if (segments != bytes)
    throw_error(CZ_ERR_FORMAT,
                "invalid DICOM (%s: the RLE header declares %u segments, %u expected for %d-bit samples)", f.ts_label,
                segments, bytes, f.bits_allocated);
  uint32_t offs[16];
  for (uint32_t s = 0; s < segments; s++) {
    offs[s] = le32(data + 4 + 4 * s);
    if (offs[s] < 64 || offs[s] > len || (s > 0 && offs[s] < offs[s - 1]))
      throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: RLE segment %u offset %u outside the %zu-byte frame)", f.ts_label,
                  s, offs[s], len);
  }
  offs[segments] = uint32_t(len);
  std::vector<uint8_t> plane(n);
  for (size_t i = 0; i < n; i++) out[i] = 0;
  for (uint32_t s = 0; s < segments; s++) {
    const size_t got = unpack_segment(data + offs[s], offs[s + 1] - offs[s], plane.data(), n);
    if (got < n)
      throw_error(CZ_ERR_FORMAT,
                  "invalid DICOM (%s: RLE segment %u decodes to %zu bytes, %zu expected: truncated or corrupt)",
                  f.ts_label, s, got, n);
    const int shift = 8 * int(segments - 1 - s);  // most significant byte plane first
    for (size_t i = 0; i < n; i++) out[i] |= uint32_t(plane[i]) << shift;
  }
}

}  // namespace img
}  // namespace carzero
