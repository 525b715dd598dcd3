// dicom_jpeg_segments.h: walking the marker segments of a JPEG-family stream (T.81 B.1.1.4, and
// T.87 for JPEG-LS), shared by our own decoders (dicom_jpeg_lossless.cpp, dicom_jpeg12.cpp,
// dicom_jpegls.cpp): fill bytes skipped, standalone markers passed over, every length checked
// against the frame, EOI before a scan refused.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/status.h"

namespace carzero {
namespace img {

struct JpegSegment {
  uint8_t marker;
  const uint8_t* s;  // the payload (after the 2-byte length)
  size_t sl;         // payload bytes
  size_t seg;        // the length field's value (payload + 2)
};

// The next segment from d[pos] (a marker's FF). On return pos is at the segment's length field
// (the caller adds `seg` to move past it). Standalone markers skipped: SOI, and for T.81 streams
// also RSTn and TEM. `kind` names the stream in errors ("JPEG", "JPEG-LS").
inline JpegSegment next_jpeg_segment(const uint8_t* d, size_t n, size_t& pos, const char* label, const char* kind,
                                     bool t81) {
  for (;;) {
    if (pos >= n) throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: %s stream ends before its scan)", label, kind);
    if (d[pos] != 0xff)
      throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: corrupt %s marker structure at byte %zu)", label, kind, pos);
    while (pos < n && d[pos] == 0xff) pos++;
    if (pos >= n) throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: %s stream ends before its scan)", label, kind);
    const uint8_t m = d[pos++];
    if (m == 0xd8 || (t81 && ((m >= 0xd0 && m <= 0xd7) || m == 0x01))) continue;
    if (m == 0xd9) throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: %s stream without a scan)", label, kind);
    if (pos + 2 > n) throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: truncated %s marker segment)", label, kind);
    const size_t seg = size_t(d[pos]) << 8 | d[pos + 1];
    if (seg < 2 || seg > n - pos)
      throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: %s marker segment FF%02X runs past the end of the frame)", label,
                  kind, m);
    return {m, d + pos + 2, seg - 2, seg};
  }
}

}  // namespace img
}  // namespace carzero
