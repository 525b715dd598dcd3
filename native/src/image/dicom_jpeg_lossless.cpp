// dicom_jpeg_lossless.cpp: JPEG lossless, process 14 (ITU-T T.81 Annex H), our own decoder, for
// DICOM's 1.2.840.10008.1.2.4.57 and .70 (SV1 = predictor 1). libjpeg-turbo 2.1 has no lossless
// mode, hence this file.
//
// What it reads: SOF3 with one component, precision 2..16; Huffman tables (DHT); restart intervals
// (DRI, RSTn); one scan with predictor 1..7 and point transform Pt. Reconstruction (H.1.2):
//   first sample of the image and of each restart interval: 2^(P - Pt - 1)
//   the first line (of the image and of each restart interval): Ra (the left neighbour)
//   the first sample of the other lines: Rb (the one above)
//   elsewhere the selected predictor of Ra, Rb, Rc; value = (prediction + difference) mod 2^16,
//   output sample = value << Pt.
// Differences: Huffman-coded magnitude category SSSS 0..16 then SSSS extra bits (16: 32768, no
// extra bits). A code that is not in the table, a category above 16, a missing restart marker or
// a scan that ends before the image does are CZ_ERR_FORMAT errors, never a crash or a read past
// the buffer.
#include <cstring>
#include <vector>

#include "core/status.h"
#include "image/dicom_jpeg_segments.h"
#include "image/dicom.h"
#include "image/dicom_jpeg_huffman.h"

namespace carzero {
namespace img {

namespace {

using jpegh::BitReader;
using jpegh::build_huffman;
using jpegh::decode_symbol;
using jpegh::Huffman;

uint16_t be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }

}  // namespace

int jpeg_sof_precision(const uint8_t* d, size_t n, int* sof_marker) {
  size_t pos = 2;
  if (n < 4 || d[0] != 0xff || d[1] != 0xd8) return 0;
  while (pos + 4 <= n) {
    if (d[pos] != 0xff) return 0;
    while (pos < n && d[pos] == 0xff) pos++;
    if (pos + 3 > n) return 0;
    const uint8_t m = d[pos++];
    if (m == 0xd8 || (m >= 0xd0 && m <= 0xd7) || m == 0x01) continue;
    const size_t seg = be16(d + pos);
    if (seg < 2 || pos + seg > n) return 0;
    if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
      if (seg < 3) return 0;
      if (sof_marker) *sof_marker = m;
      return d[pos + 2];
    }
    if (m == 0xda || m == 0xd9) return 0;
    pos += seg;
  }
  return 0;
}

void jpeg_lossless_decode_frame(const uint8_t* d, size_t n, const FrameSpec& f, uint32_t* out) {
  const char* label = f.ts_label;
  if (n < 4 || d[0] != 0xff || d[1] != 0xd8)
    throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: the frame does not start with a JPEG SOI marker)", label);
  Huffman tables[4];
  int precision = 0, width = 0, height = 0, comp_id = -1;
  uint32_t restart_interval = 0;
  size_t pos = 2;
  while (true) {
    const JpegSegment g = next_jpeg_segment(d, n, pos, label, "JPEG", true);
    const uint8_t m = g.marker;
    const size_t seg = g.seg;
    const uint8_t* s = g.s;
    const size_t sl = g.sl;
    if (m == 0xc3) {
      if (sl < 6) throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: short SOF3 segment)", label);
      precision = s[0];
      height = be16(s + 1);
      width = be16(s + 3);
      const int nf = s[5];
      if (nf != 1)
        throw_error(CZ_ERR_UNSUPPORTED, "unsupported DICOM %s frame: JPEG lossless with %d components (1 is read)",
                    label, nf);
      if (sl < 9) throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: short SOF3 segment)", label);
      comp_id = s[6];
      if (precision < 2 || precision > 16)
        throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG lossless precision %d, 2..16 allowed)", label, precision);
      if (height == 0)
        throw_error(CZ_ERR_UNSUPPORTED, "unsupported DICOM %s frame: JPEG height defined by a DNL marker", label);
      if (width != f.cols || height != f.rows)
        throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG frame is %d x %d, the DICOM header says %d x %d)", label,
                    width, height, f.cols, f.rows);
    } else if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
      throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG frame marker SOF%d where lossless SOF3 was expected)", label,
                  m - 0xc0);
    } else if (m == 0xc4) {
      size_t i = 0;
      while (i < sl) {
        if (sl - i < 17) throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: short DHT segment)", label);
        const int tc = s[i] >> 4, th = s[i] & 15;
        if (tc != 0 || th > 3)
          throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: Huffman table class %d id %d in a lossless JPEG)", label, tc,
                      th);
        int total = 0;
        for (int k = 0; k < 16; k++) total += s[i + 1 + k];
        if (total > 256 || sl - i - 17 < size_t(total))
          throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: corrupt DHT segment)", label);
        build_huffman(&tables[th], s + i + 1, s + i + 17, total, label);
        i += 17 + size_t(total);
      }
    } else if (m == 0xdd) {
      if (sl < 2) throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: short DRI segment)", label);
      restart_interval = be16(s);
    } else if (m == 0xda) {
      if (precision == 0)
        throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG scan before its SOF3 frame header)", label);
      if (sl < 1 || s[0] != 1 || sl < 6)
        throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG lossless scan must have one component)", label);
      if (s[1] != comp_id)
        throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG scan component %d is not the frame's %d)", label, s[1],
                    comp_id);
      const int td = s[2] >> 4;
      const int psv = s[3];
      const int pt = s[5] & 15;
      if (td > 3 || !tables[td].defined)
        throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG scan uses undefined Huffman table %d)", label, td);
      if (psv < 1 || psv > 7)
        throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG lossless predictor %d, 1..7 allowed)", label, psv);
      if (pt >= precision)
        throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: point transform %d for precision %d)", label, pt, precision);
      const Huffman& h = tables[td];
      BitReader br(d, n, pos + seg);
      const int32_t initial = 1 << (precision - pt - 1);
      std::vector<int32_t> prev(size_t(width), 0), cur(size_t(width), 0);
      int64_t until_restart = restart_interval;
      int restart_row = 0;
      bool first_sample = true;
      for (int y = 0; y < height; y++) {
        for (int x = 0; x < width; x++) {
          if (restart_interval && until_restart == 0) {
            if (!br.restart())
              throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: corrupt JPEG lossless data: restart marker missing)",
                          label);
            until_restart = restart_interval;
            first_sample = true;
            restart_row = y;
          }
          int32_t pred;
          if (first_sample) {
            pred = initial;
            first_sample = false;
          } else if (y == restart_row) {
            pred = cur[size_t(x) - 1];  // x > 0 here unless a restart fell mid-line (then Rb is stale: use Ra)
          } else if (x == 0) {
            pred = prev[0];
          } else {
            const int32_t ra = cur[size_t(x) - 1], rb = prev[size_t(x)], rc = prev[size_t(x) - 1];
            switch (psv) {
              case 1: pred = ra; break;
              case 2: pred = rb; break;
              case 3: pred = rc; break;
              case 4: pred = ra + rb - rc; break;
              case 5: pred = ra + ((rb - rc) >> 1); break;
              case 6: pred = rb + ((ra - rc) >> 1); break;
              default: pred = (ra + rb) >> 1; break;
            }
          }
          const int t = decode_symbol(br, h, label);
          int32_t diff;
          if (t == 0) {
            diff = 0;
          } else if (t == 16) {
            diff = 32768;
          } else if (t < 16) {
            const int32_t v = int32_t(br.get(t));
            diff = v < (1 << (t - 1)) ? v - (1 << t) + 1 : v;
          } else {
            throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: corrupt JPEG lossless data: difference category %d)", label,
                        t);
          }
          if (br.overrun())
            throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG lossless data truncated at row %d of %d)", label, y,
                        height);
          const int32_t v = (pred + diff) & 0xffff;
          cur[size_t(x)] = v;
          out[size_t(y) * size_t(width) + size_t(x)] = (uint32_t(v) << pt) & 0xffffu;
          if (restart_interval) until_restart--;
        }
        std::swap(prev, cur);
      }
      return;
    }
    // APPn, COM, DQT, DNL and the rest: skipped.
    pos += seg;
  }
}

}  // namespace img
}  // namespace carzero
