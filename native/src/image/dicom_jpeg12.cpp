// dicom_jpeg12.cpp: 12-bit JPEG extended sequential (T.81 process 4: SOF1, also SOF0 with P = 12),
// Huffman coded, one component: our own decoder for DICOM 1.2.840.10008.1.2.4.51 12-bit frames,
// since the libjpeg-turbo 2.1 we link is built for 8-bit samples only.
//
// Decoding follows T.81: DQT (8- or 16-bit tables, zig-zag order), DHT (DC and AC tables), DRI
// restart intervals, one sequential scan (Ss 0, Se 63, no successive approximation); per 8x8 block:
// DC difference + run-length coded AC coefficients, dequantisation, inverse DCT, level shift +2048
// and clamp to 0..4095.
// The inverse DCT is the accurate integer algorithm that the IJG reference decoder uses by default
// (and dcmtk's 12-bit codec with it): the Loeffler-Ligtenberg-Moschytz factorisation, 13-bit fixed
// point constants, one extra bit of precision between the column and row passes at 12 bits, so our
// output equals dcmdjpeg's sample for sample (test/fixtures/dicom *-jpeg-extended). Its final clamp
// reproduces IJG's range-limit table, wrap-around for out-of-range values included.
// A corrupt or truncated scan is CZ_ERR_FORMAT (libjpeg would warn and fill with grey).
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
using jpegh::Huffman;

const uint8_t kNatural[64] = {0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,  12, 19, 26, 33, 40, 48,
                              41, 34, 27, 20, 13, 6,  7,  14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23,
                              30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63};

constexpr int kConstBits = 13;
constexpr int kPass1Bits = 1;  // 12-bit samples
constexpr int64_t FIX_0_298631336 = 2446, FIX_0_390180644 = 3196, FIX_0_541196100 = 4433, FIX_0_765366865 = 6270,
                  FIX_0_899976223 = 7373, FIX_1_175875602 = 9633, FIX_1_501321110 = 12299, FIX_1_847759065 = 15137,
                  FIX_1_961570560 = 16069, FIX_2_053119869 = 16819, FIX_2_562915447 = 20995, FIX_3_072711026 = 25172;

inline int64_t descale(int64_t x, int n) { return (x + (int64_t(1) << (n - 1))) >> n; }

// IJG's post-IDCT range limit for 12 bits: index x & 16383 of a table that level-shifts by 2048,
// clamps to 0..4095 and wraps far outliers.
inline uint32_t range_limit(int64_t x) {
  const int v = int(x) & 16383;
  return v < 2048 ? uint32_t(v + 2048) : v < 8192 ? 4095u : v < 14336 ? 0u : uint32_t(v - 14336);
}

// One block: coef (natural order, int16 as stored) * quant (natural order) -> 64 samples.
void idct_islow(const int16_t coef[64], const uint16_t quant[64], uint32_t out[64]) {
  int32_t ws[64];
  for (int c = 0; c < 8; c++) {  // pass 1: columns
    const int16_t* in = coef + c;
    const uint16_t* q = quant + c;
    auto dq = [&](int k) { return int64_t(in[8 * k]) * int64_t(q[8 * k]); };
    int64_t z2 = dq(2), z3 = dq(6);
    int64_t z1 = (z2 + z3) * FIX_0_541196100;
    int64_t tmp2 = z1 + z3 * (-FIX_1_847759065);
    int64_t tmp3 = z1 + z2 * FIX_0_765366865;
    z2 = dq(0);
    z3 = dq(4);
    int64_t tmp0 = (z2 + z3) * (int64_t(1) << kConstBits);
    int64_t tmp1 = (z2 - z3) * (int64_t(1) << kConstBits);
    const int64_t tmp10 = tmp0 + tmp3, tmp13 = tmp0 - tmp3, tmp11 = tmp1 + tmp2, tmp12 = tmp1 - tmp2;
    tmp0 = dq(7);
    tmp1 = dq(5);
    tmp2 = dq(3);
    tmp3 = dq(1);
    z1 = tmp0 + tmp3;
    z2 = tmp1 + tmp2;
    z3 = tmp0 + tmp2;
    int64_t z4 = tmp1 + tmp3;
    const int64_t z5 = (z3 + z4) * FIX_1_175875602;
    tmp0 *= FIX_0_298631336;
    tmp1 *= FIX_2_053119869;
    tmp2 *= FIX_3_072711026;
    tmp3 *= FIX_1_501321110;
    z1 *= -FIX_0_899976223;
    z2 *= -FIX_2_562915447;
    z3 *= -FIX_1_961570560;
    z4 *= -FIX_0_390180644;
    z3 += z5;
    z4 += z5;
    tmp0 += z1 + z3;
    tmp1 += z2 + z4;
    tmp2 += z2 + z3;
    tmp3 += z1 + z4;
    const int n = kConstBits - kPass1Bits;
    ws[c + 0] = int32_t(descale(tmp10 + tmp3, n));
    ws[c + 56] = int32_t(descale(tmp10 - tmp3, n));
    ws[c + 8] = int32_t(descale(tmp11 + tmp2, n));
    ws[c + 48] = int32_t(descale(tmp11 - tmp2, n));
    ws[c + 16] = int32_t(descale(tmp12 + tmp1, n));
    ws[c + 40] = int32_t(descale(tmp12 - tmp1, n));
    ws[c + 24] = int32_t(descale(tmp13 + tmp0, n));
    ws[c + 32] = int32_t(descale(tmp13 - tmp0, n));
  }
  for (int r = 0; r < 8; r++) {  // pass 2: rows
    const int32_t* w = ws + 8 * r;
    uint32_t* o = out + 8 * r;
    int64_t z2 = w[2], z3 = w[6];
    int64_t z1 = (z2 + z3) * FIX_0_541196100;
    int64_t tmp2 = z1 + z3 * (-FIX_1_847759065);
    int64_t tmp3 = z1 + z2 * FIX_0_765366865;
    int64_t tmp0 = (int64_t(w[0]) + w[4]) * (int64_t(1) << kConstBits);
    int64_t tmp1 = (int64_t(w[0]) - w[4]) * (int64_t(1) << kConstBits);
    const int64_t tmp10 = tmp0 + tmp3, tmp13 = tmp0 - tmp3, tmp11 = tmp1 + tmp2, tmp12 = tmp1 - tmp2;
    tmp0 = w[7];
    tmp1 = w[5];
    tmp2 = w[3];
    tmp3 = w[1];
    z1 = tmp0 + tmp3;
    z2 = tmp1 + tmp2;
    z3 = tmp0 + tmp2;
    int64_t z4 = tmp1 + tmp3;
    const int64_t z5 = (z3 + z4) * FIX_1_175875602;
    tmp0 *= FIX_0_298631336;
    tmp1 *= FIX_2_053119869;
    tmp2 *= FIX_3_072711026;
    tmp3 *= FIX_1_501321110;
    z1 *= -FIX_0_899976223;
    z2 *= -FIX_2_562915447;
    z3 *= -FIX_1_961570560;
    z4 *= -FIX_0_390180644;
    z3 += z5;
    z4 += z5;
    tmp0 += z1 + z3;
    tmp1 += z2 + z4;
    tmp2 += z2 + z3;
    tmp3 += z1 + z4;
    const int n = kConstBits + kPass1Bits + 3;
    o[0] = range_limit(descale(tmp10 + tmp3, n));
    o[7] = range_limit(descale(tmp10 - tmp3, n));
    o[1] = range_limit(descale(tmp11 + tmp2, n));
    o[6] = range_limit(descale(tmp11 - tmp2, n));
    o[2] = range_limit(descale(tmp12 + tmp1, n));
    o[5] = range_limit(descale(tmp12 - tmp1, n));
    o[3] = range_limit(descale(tmp13 + tmp0, n));
    o[4] = range_limit(descale(tmp13 - tmp0, n));
  }
}

uint16_t be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }

}  // namespace

void jpeg12_decode_frame(const uint8_t* d, size_t n, const FrameSpec& f, uint32_t* out) {
  const char* label = f.ts_label;
  if (n < 4 || d[0] != 0xff || d[1] != 0xd8)
    throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: the frame does not start with a JPEG SOI marker)", label);
  Huffman dc[4], ac[4];
  uint16_t quant[4][64];
  bool quant_defined[4] = {false, false, false, false};
  int width = 0, height = 0, comp_id = -1, comp_tq = 0;
  uint32_t restart_interval = 0;
  size_t pos = 2;
  while (true) {
    const JpegSegment g = next_jpeg_segment(d, n, pos, label, "JPEG", true);
    const uint8_t m = g.marker;
    const size_t seg = g.seg;
    const uint8_t* s = g.s;
    const size_t sl = g.sl;
    if (m == 0xc0 || m == 0xc1) {
      if (sl < 9) throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: short SOF segment)", label);
      if (s[0] != 12)
        throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG precision %d in the 12-bit decoder)", label, s[0]);
      height = be16(s + 1);
      width = be16(s + 3);
      if (s[5] != 1)
        throw_error(CZ_ERR_UNSUPPORTED, "unsupported DICOM %s frame: 12-bit JPEG with %d components (1 is read)", label,
                    s[5]);
      comp_id = s[6];
      comp_tq = s[8];
      if (comp_tq > 3) throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: quantisation table id %d)", label, comp_tq);
      if (height == 0)
        throw_error(CZ_ERR_UNSUPPORTED, "unsupported DICOM %s frame: JPEG height defined by a DNL marker", label);
      if (width != f.cols || height != f.rows)
        throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG frame is %d x %d, the DICOM header says %d x %d)", label,
                    width, height, f.cols, f.rows);
    } else if (m >= 0xc2 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
      throw_error(CZ_ERR_UNSUPPORTED,
                  "unsupported DICOM %s frame: JPEG process SOF%d (12-bit sequential Huffman is read)", label,
                  m - 0xc0);
    } else if (m == 0xdb) {
      size_t i = 0;
      while (i < sl) {
        const int pq = s[i] >> 4, tq = s[i] & 15;
        const size_t need = 1 + 64 * size_t(pq ? 2 : 1);
        if (pq > 1 || tq > 3 || sl - i < need)
          throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: corrupt DQT segment)", label);
        for (int k = 0; k < 64; k++) quant[tq][kNatural[k]] = pq ? be16(s + i + 1 + 2 * k) : s[i + 1 + k];
        quant_defined[tq] = true;
        i += need;
      }
    } else if (m == 0xc4) {
      size_t i = 0;
      while (i < sl) {
        if (sl - i < 17) throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: short DHT segment)", label);
        const int tc = s[i] >> 4, th = s[i] & 15;
        if (tc > 1 || th > 3)
          throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: Huffman table class %d id %d)", label, tc, th);
        int total = 0;
        for (int k = 0; k < 16; k++) total += s[i + 1 + k];
        if (total > 256 || sl - i - 17 < size_t(total))
          throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: corrupt DHT segment)", label);
        jpegh::build_huffman(tc ? &ac[th] : &dc[th], s + i + 1, s + i + 17, total, label);
        i += 17 + size_t(total);
      }
    } else if (m == 0xdd) {
      if (sl < 2) throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: short DRI segment)", label);
      restart_interval = be16(s);
    } else if (m == 0xda) {
      if (width == 0) throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG scan before its frame header)", label);
      if (sl < 6 || s[0] != 1)
        throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG scan must have one component)", label);
      if (s[1] != comp_id)
        throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG scan component %d is not the frame's %d)", label, s[1],
                    comp_id);
      const int td = s[2] >> 4, ta = s[2] & 15;
      if (s[3] != 0 || s[4] != 63 || s[5] != 0)
        throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: sequential JPEG scan with Ss %d Se %d Ah/Al %d)", label, s[3],
                    s[4], s[5]);
      if (td > 3 || ta > 3 || !dc[td].defined || !ac[ta].defined)
        throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG scan uses undefined Huffman tables)", label);
      if (!quant_defined[comp_tq])
        throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG quantisation table %d undefined)", label, comp_tq);
      const Huffman& hd = dc[td];
      const Huffman& ha = ac[ta];
      BitReader br(d, n, pos + seg);
      const int bw = (width + 7) / 8, bh = (height + 7) / 8;
      int64_t last_dc = 0;  // int64: a corrupt stream cannot overflow it
      int64_t until_restart = restart_interval;
      int16_t coef[64];
      uint32_t block[64];
      for (int by = 0; by < bh; by++) {
        for (int bx = 0; bx < bw; bx++) {
          if (restart_interval && until_restart == 0) {
            if (!br.restart())
              throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: corrupt JPEG data: restart marker missing)", label);
            until_restart = restart_interval;
            last_dc = 0;
          }
          std::memset(coef, 0, sizeof coef);
          int t = jpegh::decode_symbol(br, hd, label);
          if (t > 15) throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: corrupt JPEG data: DC category %d)", label, t);
          int32_t diff = 0;
          if (t) {
            const int32_t v = int32_t(br.get(t));
            diff = v < (1 << (t - 1)) ? v - (1 << t) + 1 : v;
          }
          last_dc += diff;
          coef[0] = int16_t(int32_t(last_dc));  // JCOEF is 16-bit in IJG
          for (int k = 1; k < 64; k++) {
            const int rs = jpegh::decode_symbol(br, ha, label);
            const int r = rs >> 4, sz = rs & 15;
            if (sz) {
              k += r;
              if (k > 63)
                throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: corrupt JPEG data: AC run past the block)", label);
              const int32_t v = int32_t(br.get(sz));
              coef[kNatural[k]] = int16_t(v < (1 << (sz - 1)) ? v - (1 << sz) + 1 : v);
            } else if (r == 15) {
              k += 15;
            } else {
              break;
            }
          }
          if (br.overrun())
            throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG data truncated at block row %d of %d)", label, by, bh);
          idct_islow(coef, quant[comp_tq], block);
          for (int y = 0; y < 8; y++) {
            const int iy = by * 8 + y;
            if (iy >= height) break;
            for (int x = 0; x < 8; x++) {
              const int ix = bx * 8 + x;
              if (ix >= width) break;
              out[size_t(iy) * size_t(width) + size_t(ix)] = block[8 * y + x];
            }
          }
          if (restart_interval) until_restart--;
        }
      }
      return;
    }
    pos += seg;
  }
}

}  // namespace img
}  // namespace carzero
