// dicom_jpegls.cpp: JPEG-LS (ITU-T T.87, LOCO-I) frames, DICOM 1.2.840.10008.1.2.4.80 (lossless)
// and .81 (near-lossless): our own decoder, as there is no CharLS static library on the build
// machines. One component (MONOCHROME), 2..16 bits, any NEAR, default or LSE-preset parameters.
//
// Per sample (T.87 Annex A): the gradients D1 = Rd - Rb, D2 = Rb - Rc, D3 = Rc - Ra of the causal
// neighbours (Ra left, Rb above, Rc above-left, Rd above-right; at a line start Ra = Rb and Rc is the
// previous line's Ra; at its end Rd = Rb; above the first line is 0) select
//   run mode when all |Di| <= NEAR: run lengths coded by J[RUNindex]-bit segments, ended by the line
//     end or by a run interruption sample (its own two contexts, 365 and 366);
//   regular mode otherwise: the quantised gradients give one of 365 contexts (with a sign), the
//     median edge detector predicts, the context's bias C corrects, the error is Golomb-Rice coded
//     with k from the context's A and N (escape after LIMIT - qbpp - 1 zeros), mapped back from
//     MErrval, scaled by 2 NEAR + 1, reduced modulo RANGE and clamped to 0..MAXVAL; then A, B, C, N
//     are updated (halved every RESET samples).
// The bit stream: after an FF byte only 7 bits follow (a stuffed 0 bit); FF followed by a byte with
// its top bit set is a marker and ends the scan. Running out of data before the image is complete,
// or an over-long unary code, is CZ_ERR_FORMAT. Restart markers, mapping tables and several
// components are refused (CZ_ERR_UNSUPPORTED): DICOM grey images do not use them.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/status.h"
#include "image/dicom_jpeg_segments.h"
#include "image/dicom.h"

namespace carzero {
namespace img {

namespace {

const int kJ[32] = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,  2,  3,  3,  3,  3,
                    4, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 11, 12, 13, 14, 15};

uint16_t be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }

// JPEG-LS bit reader: 7 bits after each FF byte; a marker ends the data (zeros are supplied and
// counted so an overrun is detected).
class LsBits {
 public:
  LsBits(const uint8_t* p, size_t n, size_t pos) : p_(p), n_(n), pos_(pos) {}
  void fill() {
    while (cnt_ <= 48) {
      if (end_ || pos_ >= n_) {
        acc_ <<= 8;
        cnt_ += 8;
        pad_ += 8;
        end_ = true;
        continue;
      }
      const uint8_t b = p_[pos_];
      if (prev_ff_) {
        if (b & 0x80) {  // a marker: the scan's data has ended
          end_ = true;
          continue;
        }
        acc_ = acc_ << 7 | b;
        cnt_ += 7;
      } else {
        acc_ = acc_ << 8 | b;
        cnt_ += 8;
      }
      prev_ff_ = b == 0xff;
      pos_++;
    }
  }
  uint32_t get(int k) {
    if (k == 0) return 0;
    if (cnt_ < k) fill();
    cnt_ -= k;
    return uint32_t(acc_ >> cnt_) & ((1u << k) - 1);
  }
  int bit() { return int(get(1)); }
  // Number of 0 bits before the next 1, which is consumed too (more than `max` zeros, or
  // running into the end of the data: max + 1).
  int zeros(int max) {
    int z = 0;
    while (true) {
      if (cnt_ <= 48) fill();
      const uint64_t bits = acc_ & ((uint64_t(1) << cnt_) - 1);  // cnt_ <= 56
      if (bits == 0) {                                           // all zeros so far (padding included): keep counting
        z += cnt_;
        cnt_ = 0;
        if (z > max || pad_ > 0) return max + 1;
        continue;
      }
      const int lead = __builtin_clzll(bits) - (64 - cnt_);
      z += lead;
      cnt_ -= lead + 1;
      return z > max ? max + 1 : z;
    }
  }
  bool overrun() const { return cnt_ < pad_; }

 private:
  const uint8_t* p_;
  size_t n_, pos_;
  uint64_t acc_ = 0;
  int cnt_ = 0;
  int64_t pad_ = 0;
  bool prev_ff_ = false, end_ = false;
};

struct LsParams {
  int maxval = 0, t1 = 0, t2 = 0, t3 = 0, reset = 0;
};

int clamp_t(int i, int j, int maxval) { return (i > maxval || i < j) ? j : i; }

}  // namespace

void jpegls_decode_frame(const uint8_t* d, size_t n, const FrameSpec& f, uint32_t* out) {
  const char* label = f.ts_label;
  if (n < 4 || d[0] != 0xff || d[1] != 0xd8)
    throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: the frame does not start with a JPEG SOI marker)", label);
  int precision = 0, width = 0, height = 0, comp_id = -1;
  LsParams preset;
  size_t pos = 2;
  while (true) {
    const JpegSegment g = next_jpeg_segment(d, n, pos, label, "JPEG-LS", false);
    const uint8_t m = g.marker;
    const size_t seg = g.seg;
    const uint8_t* s = g.s;
    const size_t sl = g.sl;
    if (m == 0xf7) {  // SOF55
      if (sl < 9) throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: short JPEG-LS SOF segment)", label);
      precision = s[0];
      height = be16(s + 1);
      width = be16(s + 3);
      if (s[5] != 1)
        throw_error(CZ_ERR_UNSUPPORTED, "unsupported DICOM %s frame: JPEG-LS with %d components (1 is read)", label,
                    s[5]);
      comp_id = s[6];
      if (precision < 2 || precision > 16)
        throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG-LS precision %d, 2..16 allowed)", label, precision);
      if (height == 0)
        throw_error(CZ_ERR_UNSUPPORTED, "unsupported DICOM %s frame: JPEG-LS height defined later in the stream",
                    label);
      if (width != f.cols || height != f.rows)
        throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG-LS frame is %d x %d, the DICOM header says %d x %d)", label,
                    width, height, f.cols, f.rows);
    } else if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
      throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG frame marker SOF%d in a JPEG-LS stream)", label, m - 0xc0);
    } else if (m == 0xf8) {  // LSE
      if (sl < 1) throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: short JPEG-LS LSE segment)", label);
      if (s[0] != 1)
        throw_error(CZ_ERR_UNSUPPORTED, "unsupported DICOM %s frame: JPEG-LS LSE type %d (mapping tables / extensions)",
                    label, s[0]);
      if (sl < 11) throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: short JPEG-LS preset parameters)", label);
      preset.maxval = be16(s + 1);
      preset.t1 = be16(s + 3);
      preset.t2 = be16(s + 5);
      preset.t3 = be16(s + 7);
      preset.reset = be16(s + 9);
    } else if (m == 0xdd) {
      throw_error(CZ_ERR_UNSUPPORTED, "unsupported DICOM %s frame: JPEG-LS restart intervals", label);
    } else if (m == 0xda) {
      if (precision == 0) throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG-LS scan before its frame header)", label);
      if (sl < 6 || s[0] != 1)
        throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG-LS scan must have one component)", label);
      if (s[1] != comp_id)
        throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG-LS scan component %d is not the frame's %d)", label, s[1],
                    comp_id);
      if (s[2] != 0)
        throw_error(CZ_ERR_UNSUPPORTED, "unsupported DICOM %s frame: JPEG-LS mapping table %d", label, s[2]);
      const int near = s[3];
      if ((s[5] & 15) != 0)
        throw_error(CZ_ERR_UNSUPPORTED, "unsupported DICOM %s frame: JPEG-LS point transform %d", label, s[5] & 15);

      // Parameters (C.2.4.1.1): MAXVAL, thresholds, RESET; derived RANGE, qbpp, bpp, LIMIT.
      const int maxval = preset.maxval ? preset.maxval : (1 << precision) - 1;
      if (maxval < 1 || maxval >= (1 << precision) || near > std::min(255, maxval / 2))
        throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG-LS MAXVAL %d / NEAR %d for precision %d)", label, maxval,
                    near, precision);
      int t1, t2, t3;
      if (maxval >= 128) {
        const int factor = (std::min(maxval, 4095) + 128) / 256;
        t1 = clamp_t(factor * (3 - 2) + 2 + 3 * near, near + 1, maxval);
        t2 = clamp_t(factor * (7 - 3) + 3 + 5 * near, t1, maxval);
        t3 = clamp_t(factor * (21 - 4) + 4 + 7 * near, t2, maxval);
      } else {
        const int factor = 256 / (maxval + 1);
        t1 = clamp_t(std::max(2, 3 / factor + 3 * near), near + 1, maxval);
        t2 = clamp_t(std::max(3, 7 / factor + 5 * near), t1, maxval);
        t3 = clamp_t(std::max(4, 21 / factor + 7 * near), t2, maxval);
      }
      if (preset.t1) t1 = preset.t1;
      if (preset.t2) t2 = preset.t2;
      if (preset.t3) t3 = preset.t3;
      const int reset = preset.reset ? preset.reset : 64;
      const int range = (maxval + 2 * near) / (2 * near + 1) + 1;
      int qbpp = 0;
      while ((1 << qbpp) < range) qbpp++;
      int bpp = 0;
      while ((1 << bpp) < maxval + 1) bpp++;
      bpp = std::max(2, bpp);
      const int limit = 2 * (bpp + std::max(8, bpp));
      const int step = 2 * near + 1;

      // Contexts: regular ones indexed 81 Q1 + 9 (Q2 + 4) + (Q3 + 4) with Q1 >= 0 after the sign
      // normalisation; the two run interruption contexts separately.
      const int a_init = std::max(2, (range + 32) / 64);
      std::vector<int32_t> A(405, a_init), B(405, 0), C(405, 0), N(405, 1);
      int32_t ra_A[2] = {a_init, a_init}, ra_N[2] = {1, 1}, ra_Nn[2] = {0, 0};
      int run_index = 0;

      auto quant = [&](int g) {
        if (g <= -t3) return -4;
        if (g <= -t2) return -3;
        if (g <= -t1) return -2;
        if (g < -near) return -1;
        if (g <= near) return 0;
        if (g < t1) return 1;
        if (g < t2) return 2;
        if (g < t3) return 3;
        return 4;
      };
      auto reconstruct = [&](int px, int err) {
        int rx = px + err * step;
        if (rx < -near)
          rx += range * step;
        else if (rx > maxval + near)
          rx -= range * step;
        return rx < 0 ? 0 : rx > maxval ? maxval : rx;
      };
      LsBits br(d, n, pos + seg);
      auto golomb = [&](int k, int glimit) -> int {
        const int max_prefix = glimit - qbpp - 1;
        const int z = br.zeros(max_prefix);
        if (z > max_prefix) throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: corrupt or truncated JPEG-LS data)", label);
        const int v = z == max_prefix ? int(br.get(qbpp)) + 1 : (z << k) + int(br.get(k));
        // A mapped error is below 2 RANGE in a valid stream; larger ones would overflow later.
        if (v > 2 * range + 2)
          throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: corrupt JPEG-LS data: error value out of range)", label);
        return v;
      };

      std::vector<int32_t> lines[2] = {std::vector<int32_t>(size_t(width) + 2, 0),
                                       std::vector<int32_t>(size_t(width) + 2, 0)};
      for (int y = 0; y < height; y++) {
        int32_t* pa = lines[(y + 1) & 1].data() + 1;  // previous line (zeros above the first)
        int32_t* ca = lines[y & 1].data() + 1;
        pa[width] = pa[width - 1];
        ca[-1] = pa[0];
        int x = 0;
        while (x < width) {
          const int ra = ca[x - 1], rb = pa[x], rc = pa[x - 1], rd = pa[x + 1];
          const int d1 = rd - rb, d2 = rb - rc, d3 = rc - ra;
          if (std::abs(d1) <= near && std::abs(d2) <= near && std::abs(d3) <= near) {
            // Run mode.
            const int run_val = ra;
            bool interrupted = false;
            while (x < width) {
              if (br.bit()) {
                const int cnt = 1 << kJ[run_index];
                const int take = std::min(cnt, width - x);
                for (int i = 0; i < take; i++) ca[x + i] = run_val;
                x += take;
                if (take == cnt && run_index < 31) run_index++;
              } else {
                const int cnt = int(br.get(kJ[run_index]));
                if (x + cnt >= width)
                  throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: corrupt JPEG-LS data: run past the line end)", label);
                for (int i = 0; i < cnt; i++) ca[x + i] = run_val;
                x += cnt;
                interrupted = true;
                break;
              }
              if (br.overrun())
                throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG-LS data truncated at line %d of %d)", label, y,
                            height);
            }
            if (!interrupted) break;  // the run reached the end of the line
            // Run interruption sample.
            const int rb2 = pa[x];
            const int ri_type = std::abs(run_val - rb2) <= near ? 1 : 0;
            const int q = ri_type;
            const int temp = ri_type ? ra_A[1] + (ra_N[1] >> 1) : ra_A[0];
            int k = 0;
            while ((ra_N[q] << k) < temp && k < 24) k++;
            const int em = golomb(k, limit - kJ[run_index] - 1);
            const int t = em + ri_type;
            const int map = t & 1;
            const int abs_err = (t + map) / 2;
            const bool negative = (k != 0 || 2 * ra_Nn[q] >= ra_N[q]) == bool(map);
            const int err = negative ? -abs_err : abs_err;
            int rx;
            if (ri_type)
              rx = reconstruct(run_val, err);
            else
              rx = reconstruct(rb2, rb2 < run_val ? -err : err);
            ca[x] = rx;
            // Update (A.7.2.3).
            if (err < 0) ra_Nn[q]++;
            ra_A[q] += (em + 1 - ri_type) >> 1;
            if (ra_N[q] == reset) {
              ra_A[q] >>= 1;
              ra_N[q] >>= 1;
              ra_Nn[q] >>= 1;
            }
            ra_N[q]++;
            if (run_index > 0) run_index--;
            x++;
          } else {
            // Regular mode.
            int q1 = quant(d1), q2 = quant(d2), q3 = quant(d3);
            int sign = 1;
            if (q1 < 0 || (q1 == 0 && (q2 < 0 || (q2 == 0 && q3 < 0)))) {
              sign = -1;
              q1 = -q1;
              q2 = -q2;
              q3 = -q3;
            }
            const int q = 81 * q1 + 9 * (q2 + 4) + (q3 + 4);
            int px;
            if (rc >= std::max(ra, rb))
              px = std::min(ra, rb);
            else if (rc <= std::min(ra, rb))
              px = std::max(ra, rb);
            else
              px = ra + rb - rc;
            px += sign * C[q];
            px = px < 0 ? 0 : px > maxval ? maxval : px;
            int k = 0;
            while ((N[q] << k) < A[q] && k < 24) k++;
            const int merr = golomb(k, limit);
            int err;
            if (near == 0 && k == 0 && 2 * B[q] <= -N[q])
              err = (merr & 1) ? (merr - 1) / 2 : -(merr / 2) - 1;
            else
              err = (merr & 1) ? -((merr + 1) / 2) : merr / 2;
            // Context update (A.6).
            B[q] += err * step;
            A[q] += std::abs(err);
            if (N[q] == reset) {
              A[q] >>= 1;
              B[q] >>= 1;
              N[q] >>= 1;
            }
            N[q]++;
            if (B[q] <= -N[q]) {
              B[q] += N[q];
              if (C[q] > -128) C[q]--;
              if (B[q] <= -N[q]) B[q] = -N[q] + 1;
            } else if (B[q] > 0) {
              B[q] -= N[q];
              if (C[q] < 127) C[q]++;
              if (B[q] > 0) B[q] = 0;
            }
            ca[x] = reconstruct(px, sign * err);
            x++;
          }
          if (br.overrun())
            throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG-LS data truncated at line %d of %d)", label, y, height);
        }
        for (int i = 0; i < width; i++) out[size_t(y) * size_t(width) + size_t(i)] = uint32_t(ca[i]);
      }
      return;
    }
    // APPn, COM and the rest: skipped.
    pos += seg;
  }
}

}  // namespace img
}  // namespace carzero
