// dicom.cpp: the native DICOM decoder: Part 10 parsing (with or without the 128-byte preamble),
// the uncompressed syntaxes (implicit / explicit VR little endian, explicit VR big endian,
// deflated explicit VR little endian), encapsulated pixel data (Basic and Extended Offset Tables,
// frames over several fragments) dispatched to the codecs in dicom_*.cpp, and the 8-bit mapping of
// src/image/dicom.ts, which this file ports rule for rule:
//   x = stored value (masked to BitsStored, sign-extended when PixelRepresentation = 1)
//   y = x * RescaleSlope + RescaleIntercept (float64; defaults 1 and 0)
//   first WindowCenter / WindowWidth when both present and w >= 1: the DICOM linear VOI function
//   onto 0..255, rounded floor(v + 0.5); else min-max; MONOCHROME1 inverted afterwards.
// The parser is a port of the TypeScript Reader (same element walk, same sequence skipping, same
// messages), extended with big endian and encapsulated pixel data.
#include "image/dicom.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>

#include "core/status.h"

#if CZ_HAVE_ZLIB
#include <zlib.h>
#endif

namespace carzero {
namespace img {

namespace {

constexpr uint32_t kUndefined = 0xffffffffu;
constexpr uint32_t kTagTransferSyntax = 0x00020010;
constexpr uint32_t kTagSamplesPerPixel = 0x00280002;
constexpr uint32_t kTagPhotometric = 0x00280004;
constexpr uint32_t kTagNumberOfFrames = 0x00280008;
constexpr uint32_t kTagRows = 0x00280010;
constexpr uint32_t kTagColumns = 0x00280011;
constexpr uint32_t kTagBitsAllocated = 0x00280100;
constexpr uint32_t kTagBitsStored = 0x00280101;
constexpr uint32_t kTagPixelRepresentation = 0x00280103;
constexpr uint32_t kTagWindowCenter = 0x00281050;
constexpr uint32_t kTagWindowWidth = 0x00281051;
constexpr uint32_t kTagRescaleIntercept = 0x00281052;
constexpr uint32_t kTagRescaleSlope = 0x00281053;
constexpr uint32_t kTagExtendedOffsetTable = 0x7fe00001;
constexpr uint32_t kTagExtendedOffsetTableLengths = 0x7fe00002;
constexpr uint32_t kTagPixelData = 0x7fe00010;
constexpr uint32_t kTagItem = 0xfffee000;
constexpr uint32_t kTagItemDelim = 0xfffee00d;
constexpr uint32_t kTagSeqDelim = 0xfffee0dd;
// Nesting of sequences we follow before calling a file malformed (recursion stays bounded).
constexpr int kMaxDepth = 64;

const char* const kImplicitLE = "1.2.840.10008.1.2";
const char* const kExplicitLE = "1.2.840.10008.1.2.1";
const char* const kDeflatedLE = "1.2.840.10008.1.2.1.99";
const char* const kExplicitBE = "1.2.840.10008.1.2.2";
const char* const kJpegBaseline = "1.2.840.10008.1.2.4.50";
const char* const kJpegExtended = "1.2.840.10008.1.2.4.51";
const char* const kJpegLossless = "1.2.840.10008.1.2.4.57";
const char* const kJpegLosslessSV1 = "1.2.840.10008.1.2.4.70";
const char* const kJpegLS = "1.2.840.10008.1.2.4.80";
const char* const kJpegLSNear = "1.2.840.10008.1.2.4.81";
const char* const kJ2kLossless = "1.2.840.10008.1.2.4.90";
const char* const kJ2k = "1.2.840.10008.1.2.4.91";
const char* const kRle = "1.2.840.10008.1.2.5";

const char* ts_name(const std::string& ts) {
  static const std::pair<const char*, const char*> names[] = {
      {kImplicitLE, "implicit VR little endian"},
      {kExplicitLE, "explicit VR little endian"},
      {kDeflatedLE, "deflated explicit VR little endian"},
      {kExplicitBE, "explicit VR big endian"},
      {kJpegBaseline, "JPEG baseline"},
      {kJpegExtended, "JPEG extended"},
      {kJpegLossless, "JPEG lossless"},
      {kJpegLosslessSV1, "JPEG lossless SV1"},
      {kJpegLS, "JPEG-LS lossless"},
      {kJpegLSNear, "JPEG-LS near-lossless"},
      {kJ2kLossless, "JPEG 2000 lossless"},
      {kJ2k, "JPEG 2000"},
      {kRle, "RLE lossless"},
  };
  for (const auto& n : names)
    if (ts == n.first) return n.second;
  return nullptr;
}

std::string ts_label(const std::string& ts) {
  const char* n = ts_name(ts);
  return n ? ts + " (" + n + ")" : ts;
}

// Thrown (internally) by a tolerant parse of a partly inflated data set when it runs out of bytes.
struct OutOfData {};

struct Element {
  size_t offset = 0;  // value offset
  uint32_t length = 0;
  char vr[3] = {0, 0, 0};
};

bool is_long_vr(const char* vr) {
  static const char* const long_vrs[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"};
  for (const char* l : long_vrs)
    if (vr[0] == l[0] && vr[1] == l[1]) return true;
  return false;
}

std::string tag_str(uint32_t tag) { return strfmt("(%04x,%04x)", tag >> 16, tag & 0xffff); }

// Port of src/image/dicom.ts's Reader, with a byte order and a tolerant mode.
class Reader {
 public:
  Reader(const uint8_t* b, size_t n, bool explicit_vr, bool big_endian, bool tolerant = false)
      : b_(b), n_(n), explicit_(explicit_vr), big_(big_endian), tolerant_(tolerant) {}

  std::map<uint32_t, Element> els;
  uint32_t max_top_tag = 0;  // highest top-level tag whose header was read

  [[noreturn]] void fail(const std::string& msg) const {
    if (tolerant_) throw OutOfData{};
    throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s)", msg.c_str());
  }

  uint16_t u16(size_t o) const { return big_ ? uint16_t(b_[o] << 8 | b_[o + 1]) : uint16_t(b_[o] | b_[o + 1] << 8); }
  uint32_t u32(size_t o) const {
    return big_ ? (uint32_t(b_[o]) << 24 | uint32_t(b_[o + 1]) << 16 | uint32_t(b_[o + 2]) << 8 | b_[o + 3])
                : (uint32_t(b_[o]) | uint32_t(b_[o + 1]) << 8 | uint32_t(b_[o + 2]) << 16 | uint32_t(b_[o + 3]) << 24);
  }
  uint32_t tag_at(size_t o) const { return uint32_t(u16(o)) << 16 | u16(o + 2); }

  // Reads elements from off until end (or a delimiter when nested); returns the offset after.
  size_t read(size_t off, size_t end, bool top, int depth = 0) {
    if (depth > kMaxDepth) fail("sequences nested too deeply");
    while (off < end) {
      if (off + 8 > n_) fail("truncated element header");
      const uint32_t tag = tag_at(off);
      if (tag == kTagItemDelim || tag == kTagSeqDelim) return off + 8;
      Element e;
      uint32_t len;
      size_t hdr;
      if (tag == kTagItem) {
        len = u32(off + 4);
        hdr = 8;
      } else if (explicit_) {
        e.vr[0] = char(b_[off + 4]);
        e.vr[1] = char(b_[off + 5]);
        if (is_long_vr(e.vr)) {
          if (off + 12 > n_) fail("truncated element header");
          len = u32(off + 8);
          hdr = 12;
        } else {
          len = u16(off + 6);
          hdr = 8;
        }
      } else {
        len = u32(off + 4);
        hdr = 8;
      }
      if (top && tag != kTagItem && tag > max_top_tag) max_top_tag = tag;
      const size_t value = off + hdr;
      e.offset = value;
      e.length = len;
      if (len == kUndefined) {
        if (tag == kTagPixelData && top) {
          els[tag] = e;
          return n_;  // encapsulated pixel data: fragments follow (parsed by the caller)
        }
        // Undefined-length sequence or item: nested data sets up to the delimiter.
        off = skip_undefined(value, tag == kTagItem, depth + 1);
        continue;
      }
      if (len > n_ - value) {
        if (tag == kTagPixelData) fail(strfmt("pixel data truncated: %u bytes declared, %zu present", len, n_ - value));
        fail("element " + tag_str(tag) + " runs past the end of the file");
      }
      if (top && tag != kTagItem) els[tag] = e;
      off = value + len;
    }
    return off;
  }

  size_t skip_undefined(size_t off, bool is_item, int depth) {
    if (depth > kMaxDepth) fail("sequences nested too deeply");
    if (is_item) return read(off, n_, false, depth);
    // A sequence: items until the sequence delimiter.
    while (off + 8 <= n_) {
      const uint32_t tag = tag_at(off);
      const uint32_t len = u32(off + 4);
      if (tag == kTagSeqDelim) return off + 8;
      if (tag != kTagItem) fail("malformed sequence");
      if (len == kUndefined) {
        off = read(off + 8, n_, false, depth + 1);
      } else {
        if (len > n_ - (off + 8)) fail("sequence item runs past the end of the file");
        off = off + 8 + len;
      }
    }
    fail("truncated sequence");
  }

  const Element* get(uint32_t tag) const {
    auto it = els.find(tag);
    return it == els.end() ? nullptr : &it->second;
  }

  // Latin-1 value with trailing NULs/spaces removed, then trimmed (JS String.trim).
  bool str(uint32_t tag, std::string* out) const {
    const Element* e = get(tag);
    if (!e) return false;
    std::string s(reinterpret_cast<const char*>(b_ + e->offset), e->length);
    while (!s.empty() && (s.back() == '\0' || s.back() == ' ')) s.pop_back();
    auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
    size_t a = 0, z = s.size();
    while (a < z && ws(s[a])) a++;
    while (z > a && ws(s[z - 1])) z--;
    *out = s.substr(a, z - a);
    return true;
  }

  bool us(uint32_t tag, int32_t* out) const {
    const Element* e = get(tag);
    if (!e || e->length < 2) return false;
    *out = u16(e->offset);
    return true;
  }

  // First value of a DS/IS (backslash-separated decimal strings), finite only.
  bool num(uint32_t tag, double* out) const {
    std::string s;
    if (!str(tag, &s) || s.empty()) return false;
    s = s.substr(0, s.find('\\'));
    size_t a = 0, z = s.size();
    while (a < z && std::isspace(uint8_t(s[a]))) a++;
    while (z > a && std::isspace(uint8_t(s[z - 1]))) z--;
    s = s.substr(a, z - a);
    if (s.empty()) {  // JS Number("") is 0
      *out = 0;
      return true;
    }
    // Decimal only (no "inf"/"nan"/hex, which strtod would take).
    for (char c : s)
      if (!(std::isdigit(uint8_t(c)) || c == '+' || c == '-' || c == '.' || c == 'e' || c == 'E')) return false;
    char* endp = nullptr;
    const double v = std::strtod(s.c_str(), &endp);
    if (endp != s.c_str() + s.size() || !std::isfinite(v)) return false;
    *out = v;
    return true;
  }

  const uint8_t* data() const { return b_; }
  size_t size() const { return n_; }
  bool big_endian() const { return big_; }

 private:
  const uint8_t* b_;
  size_t n_;
  bool explicit_, big_, tolerant_;
};

// The header fields that size the pixel data.
struct Geometry {
  int32_t rows = 0, cols = 0, frames = 1, bits_allocated = 16, samples = 1;
};

Geometry geometry_of(const Reader& r) {
  Geometry g;
  r.us(kTagRows, &g.rows);
  r.us(kTagColumns, &g.cols);
  if (!r.us(kTagBitsAllocated, &g.bits_allocated)) g.bits_allocated = 16;
  if (!r.us(kTagSamplesPerPixel, &g.samples)) g.samples = 1;
  double nf = 1;
  if (r.num(kTagNumberOfFrames, &nf) && nf >= 1 && nf < 2147483647.0) g.frames = int32_t(nf);
  return g;
}

[[noreturn]] void refuse_size(uint64_t rows, uint64_t cols, uint64_t frames, const Limits& lim) {
  if (frames > 1)
    throw_error(
        CZ_ERR_OUT_OF_MEMORY,
        "DICOM image of %llu x %llu pixels x %llu frames exceeds the decoder's limits (%llu pixels, %llu per side)",
        (unsigned long long)cols, (unsigned long long)rows, (unsigned long long)frames,
        (unsigned long long)lim.max_pixels, (unsigned long long)lim.max_side);
  throw_error(CZ_ERR_OUT_OF_MEMORY,
              "DICOM image of %llu x %llu pixels exceeds the decoder's limits (%llu pixels, %llu per side)",
              (unsigned long long)cols, (unsigned long long)rows, (unsigned long long)lim.max_pixels,
              (unsigned long long)lim.max_side);
}

void check_limits(uint64_t rows, uint64_t cols, uint64_t frames, const Limits& lim) {
  if (rows > lim.max_side || cols > lim.max_side || rows * cols > lim.max_pixels ||
      rows * cols * frames > lim.max_pixels)
    refuse_size(rows, cols, frames, lim);
}

// A parsed file: the buffer (the caller's, or an inflated copy) and its data set.
struct Parsed {
  std::vector<uint8_t> inflated;  // meta + inflated data set when deflated
  const uint8_t* buf = nullptr;
  size_t len = 0;
  std::string ts;
  bool explicit_vr = true, big = false;
  size_t data_set = 0;  // offset of the data set
};

#if CZ_HAVE_ZLIB
// Inflates the deflated data set after the meta group, refusing output past what its declared
// image needs: before group 0028 is seen, 64 MiB of header at most; after it, the bytes so far +
// Rows x Columns x frames x samples x bytes + 16 MiB for the elements around the pixel data.
// A deflate bomb therefore stops after a few MB whatever it would inflate to.
void inflate_data_set(const uint8_t* buf, size_t len, size_t off, const Limits& lim, std::vector<uint8_t>* out) {
  constexpr uint64_t kHeaderCap = uint64_t(64) << 20;
  constexpr uint64_t kMargin = uint64_t(16) << 20;
  out->assign(buf, buf + off);
  z_stream zs;
  std::memset(&zs, 0, sizeof zs);
  if (inflateInit2(&zs, -15) != Z_OK) throw_error(CZ_ERR_OUT_OF_MEMORY, "zlib inflateInit2 failed");
  struct Guard {
    z_stream* z;
    ~Guard() { inflateEnd(z); }
  } guard{&zs};
  const uint8_t* in = buf + off;
  size_t in_left = len - off;
  uint64_t cap = kHeaderCap;
  bool geometry = false;
  size_t scanned_at = 0;
  const size_t chunk = size_t(1) << 18;
  int ret = Z_OK;
  while (ret != Z_STREAM_END) {
    const size_t have = out->size();
    if (have - off >= cap)
      throw_error(CZ_ERR_OUT_OF_MEMORY,
                  "deflated DICOM data set inflates past %llu bytes, more than its declared image needs; refused",
                  (unsigned long long)cap);
    const size_t grow = size_t(std::min<uint64_t>(chunk, cap - (have - off)));
    out->resize(have + grow);
    const uInt in_now = uInt(std::min<size_t>(in_left, size_t(1) << 30));
    zs.next_in = const_cast<Bytef*>(in);
    zs.avail_in = in_now;
    zs.next_out = out->data() + have;
    zs.avail_out = uInt(grow);
    ret = inflate(&zs, Z_NO_FLUSH);
    const size_t used = in_now - zs.avail_in;
    in += used;
    in_left -= used;
    out->resize(have + grow - zs.avail_out);
    if (ret == Z_STREAM_END) break;
    if (ret == Z_BUF_ERROR && in_left == 0)
      throw_error(CZ_ERR_FORMAT, "invalid DICOM (deflated data set: unexpected end of file)");
    if (ret != Z_OK && ret != Z_BUF_ERROR)
      throw_error(CZ_ERR_FORMAT, "invalid DICOM (deflated data set: %s)", zs.msg ? zs.msg : "corrupt deflate stream");
    if (in_left == 0 && zs.avail_out != 0)
      throw_error(CZ_ERR_FORMAT, "invalid DICOM (deflated data set: unexpected end of file)");
    // Once the prefix has doubled since the last look, look for the image geometry.
    if (!geometry && out->size() - off >= 2 * scanned_at + 4096) {
      scanned_at = out->size() - off;
      Reader r(out->data(), out->size(), true, false, true);
      bool complete = true;
      try {
        r.read(off, out->size(), true);
      } catch (const OutOfData&) {
        complete = false;
      }
      if (complete || r.max_top_tag > kTagBitsAllocated) {
        geometry = true;
        const Geometry g = geometry_of(r);
        if (g.rows > 0 && g.cols > 0) {
          check_limits(uint64_t(g.rows), uint64_t(g.cols), uint64_t(g.frames), lim);
          const uint64_t bytes = uint64_t(g.rows) * uint64_t(g.cols) * uint64_t(g.frames) *
                                 uint64_t(std::max(1, g.samples)) * uint64_t(std::max(8, g.bits_allocated) / 8);
          cap = std::min<uint64_t>(cap, uint64_t(out->size() - off) + bytes + kMargin);
        }
      }
    }
  }
}
#endif

Parsed parse_file(const uint8_t* buf, size_t len, const Limits& lim) {
  Parsed p;
  p.buf = buf;
  p.len = len;
  size_t off = 0;
  if (len >= 132 && std::memcmp(buf + 128, "DICM", 4) == 0) {
    off = 132;
  } else if (!(len >= 8 && buf[1] == 0 && buf[3] == 0)) {
    throw_error(CZ_ERR_FORMAT, "not a DICOM file (no \"DICM\" after the 128-byte preamble, no data set at byte 0)");
  }
  // File meta group: explicit VR little endian, group 0002, one element at a time.
  Reader meta(buf, len, true, false);
  size_t meta_end = off;
  while (meta_end + 8 <= len && (buf[meta_end] | buf[meta_end + 1] << 8) == 0x0002) {
    const size_t before = meta.els.size();
    meta_end = meta.read(meta_end, meta_end + 1, true);
    if (meta.els.size() == before) break;
  }
  std::string ts;
  if (!meta.str(kTagTransferSyntax, &ts)) {
    // No transfer syntax: explicit VR little endian (dicom.ts's default), unless there is no meta
    // group at all and the first element has no plausible VR (a bare implicit VR data set).
    const bool vr = meta_end + 6 <= len && buf[meta_end + 4] >= 'A' && buf[meta_end + 4] <= 'Z' &&
                    buf[meta_end + 5] >= 'A' && buf[meta_end + 5] <= 'Z';
    ts = (meta_end == off && !vr) ? kImplicitLE : kExplicitLE;
  }
  p.ts = ts;
  if (ts == kImplicitLE) {
    p.explicit_vr = false;
  } else if (ts == kExplicitBE) {
    p.big = true;
  }
  p.data_set = meta_end;
  if (ts == kDeflatedLE) {
#if CZ_HAVE_ZLIB
    inflate_data_set(buf, len, meta_end, lim, &p.inflated);
    p.buf = p.inflated.data();
    p.len = p.inflated.size();
#else
    throw_error(CZ_ERR_UNSUPPORTED, "unsupported DICOM transfer syntax %s: this build has no zlib",
                ts_label(ts).c_str());
#endif
  }
  return p;
}

bool supported(const std::string& ts) {
  if (ts == kImplicitLE || ts == kExplicitLE || ts == kExplicitBE || ts == kRle || ts == kJpegLossless ||
      ts == kJpegLosslessSV1 || ts == kJpegLS || ts == kJpegLSNear)
    return true;
#if CZ_HAVE_ZLIB
  if (ts == kDeflatedLE) return true;
#endif
#if CZ_HAVE_JPEG
  if (ts == kJpegBaseline || ts == kJpegExtended) return true;
#endif
#if CZ_HAVE_OPENJPEG
  if (ts == kJ2kLossless || ts == kJ2k) return true;
#endif
  return false;
}

struct Fragment {
  size_t offset;  // of the item tag
  size_t value;   // of the fragment bytes
  uint32_t length;
};

// The encoded bytes of frame `frame` of encapsulated pixel data starting at `off` (the first item).
std::vector<uint8_t> encapsulated_frame(const Reader& r, size_t off, int32_t frame, int32_t frames,
                                        const std::string& ts) {
  const uint8_t* b = r.data();
  const size_t n = r.size();
  std::vector<Fragment> frags;
  std::vector<uint32_t> bot;
  bool first = true;
  size_t first_frag = 0;
  while (true) {
    if (off == n) break;  // tolerated: no sequence delimiter at the end of the file
    if (off + 8 > n) throw_error(CZ_ERR_FORMAT, "invalid DICOM (truncated pixel data item header)");
    const uint32_t tag = r.tag_at(off);
    const uint32_t len = r.u32(off + 4);
    if (tag == kTagSeqDelim) break;
    if (tag != kTagItem)
      throw_error(CZ_ERR_FORMAT, "invalid DICOM (encapsulated pixel data: %s where a fragment item was expected)",
                  tag_str(tag).c_str());
    if (len == kUndefined || len > n - (off + 8))
      throw_error(
          CZ_ERR_FORMAT,
          "invalid DICOM (pixel data fragment %zu runs past the end of the file: %u bytes declared, %zu present)",
          frags.size(), len, n - (off + 8));
    if (first) {  // the Basic Offset Table
      for (uint32_t i = 0; i + 4 <= len; i += 4) bot.push_back(r.u32(off + 8 + i));
      first = false;
      first_frag = off + 8 + len;
    } else {
      frags.push_back({off, off + 8, len});
    }
    off += 8 + size_t(len);
  }
  if (first) throw_error(CZ_ERR_FORMAT, "invalid DICOM (encapsulated pixel data without a Basic Offset Table item)");
  if (frags.empty()) throw_error(CZ_ERR_FORMAT, "invalid DICOM (encapsulated pixel data without fragments)");

  // Fragment index range [a, z) of the frame.
  size_t a = 0, z = 0;
  auto by_offsets = [&](const std::vector<uint64_t>& offs, const char* what) {
    if (offs.size() < size_t(frames) && size_t(frame) >= offs.size())
      throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s has %zu entries for %d frames)", what, offs.size(), frames);
    const uint64_t start = offs[frame];
    const uint64_t end = size_t(frame) + 1 < offs.size() ? offs[frame + 1] : UINT64_MAX;
    if (end <= start) throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s is not increasing)", what);
    a = frags.size();
    for (size_t i = 0; i < frags.size(); i++) {
      const uint64_t rel = frags[i].offset - first_frag;
      if (rel == start) a = i;
      if (rel >= start && rel < end) z = i + 1;
    }
    if (a == frags.size() || z <= a)
      throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s entry %d points to no fragment)", what, frame);
  };
  const Element* eot = r.get(kTagExtendedOffsetTable);
  if (eot && eot->length >= 8 && eot->length % 8 == 0) {
    std::vector<uint64_t> offs;
    for (uint32_t i = 0; i < eot->length; i += 8) {
      const uint64_t lo = r.u32(eot->offset + i), hi = r.u32(eot->offset + i + 4);
      offs.push_back(hi << 32 | lo);
    }
    (void)kTagExtendedOffsetTableLengths;  // one fragment per frame: the item lengths suffice
    by_offsets(offs, "Extended Offset Table");
  } else if (!bot.empty() && frames > 1) {
    std::vector<uint64_t> offs(bot.begin(), bot.end());
    by_offsets(offs, "Basic Offset Table");
  } else if (frames == 1) {
    a = 0;
    z = frags.size();
  } else if (frags.size() == size_t(frames)) {
    a = size_t(frame);
    z = a + 1;
  } else {
    // No offset table and more fragments than frames: a frame starts with its codec's start
    // marker (JPEG SOI FFD8, JPEG 2000 SOC FF4F or a JP2 signature box).
    std::vector<size_t> starts;
    for (size_t i = 0; i < frags.size(); i++) {
      const uint8_t* f = b + frags[i].value;
      const uint32_t l = frags[i].length;
      const bool soi = l >= 2 && f[0] == 0xff && (f[1] == 0xd8 || f[1] == 0x4f);
      const bool jp2 = l >= 12 && std::memcmp(f, "\0\0\0\x0cjP  \r\n\x87\n", 12) == 0;
      const bool marker_ts = ts != kRle;
      if (marker_ts && (soi || jp2)) starts.push_back(i);
    }
    if (starts.size() != size_t(frames) || starts[0] != 0)
      throw_error(CZ_ERR_FORMAT,
                  "invalid DICOM (%zu fragments for %d frames and no offset table: cannot locate frame %d)",
                  frags.size(), frames, frame);
    a = starts[frame];
    z = size_t(frame) + 1 < starts.size() ? starts[frame + 1] : frags.size();
  }
  size_t total = 0;
  for (size_t i = a; i < z; i++) total += frags[i].length;
  std::vector<uint8_t> out;
  out.reserve(total);
  for (size_t i = a; i < z; i++) out.insert(out.end(), b + frags[i].value, b + frags[i].value + frags[i].length);
  return out;
}

}  // namespace

DicomRaw dicom_decode_raw(const uint8_t* buf, size_t len, const DecodeOptions& o) {
  Parsed p = parse_file(buf, len, o.limits);
  const std::string& ts = p.ts;
  if (!supported(ts)) {
    const char* name = ts_name(ts);
    if (name)
      throw_error(CZ_ERR_UNSUPPORTED, "unsupported DICOM transfer syntax %s: %s", ts_label(ts).c_str(),
                  (ts == kJ2k || ts == kJ2kLossless)             ? "this build has no OpenJPEG"
                  : (ts == kJpegBaseline || ts == kJpegExtended) ? "this build has no libjpeg"
                                                                 : "not decoded by this build");
    throw_error(CZ_ERR_UNSUPPORTED, "unsupported DICOM transfer syntax %s", ts.c_str());
  }
  Reader r(p.buf, p.len, p.explicit_vr, p.big);
  r.read(p.data_set, p.len, true);

  const Element* px = r.get(kTagPixelData);
  if (!px) throw_error(CZ_ERR_FORMAT, "invalid DICOM (no pixel data)");
  const bool encapsulated = px->length == kUndefined;
  const bool native_ts = ts == kImplicitLE || ts == kExplicitLE || ts == kExplicitBE || ts == kDeflatedLE;
  if (encapsulated && native_ts)
    throw_error(CZ_ERR_FORMAT, "invalid DICOM (encapsulated pixel data in the uncompressed transfer syntax %s)",
                ts_label(ts).c_str());
  if (!encapsulated && !native_ts)
    throw_error(CZ_ERR_FORMAT, "invalid DICOM (transfer syntax %s needs encapsulated pixel data)",
                ts_label(ts).c_str());

  DicomRaw d;
  d.ts = ts;
  int32_t spp = 1;
  if (!r.us(kTagSamplesPerPixel, &spp)) spp = 1;
  std::string photometric;
  if (!r.str(kTagPhotometric, &photometric)) photometric = "MONOCHROME2";
  for (char& c : photometric) c = char(std::toupper(uint8_t(c)));
  if (spp != 1 || (photometric != "MONOCHROME1" && photometric != "MONOCHROME2"))
    throw_error(CZ_ERR_UNSUPPORTED, "unsupported DICOM photometric interpretation %s with %d samples per pixel",
                photometric.c_str(), spp);
  d.photometric = photometric;
  d.samples = spp;
  int32_t rows = 0, cols = 0;
  r.us(kTagRows, &rows);
  r.us(kTagColumns, &cols);
  if (!rows || !cols) throw_error(CZ_ERR_FORMAT, "invalid DICOM (missing Rows/Columns)");
  int32_t ba = 16;
  if (!r.us(kTagBitsAllocated, &ba)) ba = 16;
  if (ba != 8 && ba != 16) throw_error(CZ_ERR_UNSUPPORTED, "unsupported DICOM BitsAllocated %d (8 or 16 are read)", ba);
  int32_t bs = ba;
  if (!r.us(kTagBitsStored, &bs) || bs == 0) bs = ba;
  bs = std::min(bs, ba);
  int32_t pr = 0;
  r.us(kTagPixelRepresentation, &pr);
  const bool is_signed = pr == 1;
  const Geometry g = geometry_of(r);
  d.rows = rows;
  d.cols = cols;
  d.frames = g.frames;
  d.bits_allocated = ba;
  d.bits_stored = bs;
  d.pixel_rep = is_signed ? 1 : 0;
  // Sizes before anything is allocated (the frame decoded; the inflated copy was capped already).
  check_limits(uint64_t(rows), uint64_t(cols), 1, o.limits);
  if (o.frame < 0 || o.frame >= g.frames)
    throw_error(CZ_ERR_INVALID_ARGUMENT, "DICOM frame %d out of range (the file has %d frame%s)", o.frame, g.frames,
                g.frames == 1 ? "" : "s");

  const size_t n = size_t(rows) * size_t(cols);
  // The codecs write bit patterns into the values' own storage (uint32 may alias int32), masked
  // and sign-extended in place below: one frame-sized buffer, not two.
  d.values.resize(n);
  uint32_t* bits = reinterpret_cast<uint32_t*>(d.values.data());
  if (!encapsulated) {
    const size_t bpp = size_t(ba / 8);
    const size_t frame_bytes = n * bpp;
    const uint64_t need = uint64_t(frame_bytes) * (uint64_t(o.frame) + 1);
    if (px->length < need) {
      if (o.frame == 0)
        throw_error(CZ_ERR_FORMAT, "invalid DICOM (pixel data has %u bytes, %dx%dx%d = %zu expected)", px->length, rows,
                    cols, ba / 8, frame_bytes);
      throw_error(CZ_ERR_FORMAT, "invalid DICOM (pixel data has %u bytes, frame %d needs %llu)", px->length, o.frame,
                  (unsigned long long)need);
    }
    const uint8_t* s = p.buf + px->offset + frame_bytes * size_t(o.frame);
    if (ba == 8) {
      for (size_t i = 0; i < n; i++) bits[i] = s[i];
    } else if (p.big) {
      for (size_t i = 0; i < n; i++) bits[i] = uint32_t(s[2 * i] << 8 | s[2 * i + 1]);
    } else {
      for (size_t i = 0; i < n; i++) bits[i] = uint32_t(s[2 * i] | s[2 * i + 1] << 8);
    }
  } else {
    const std::vector<uint8_t> enc = encapsulated_frame(r, px->offset, o.frame, g.frames, ts);
    FrameSpec f;
    f.rows = rows;
    f.cols = cols;
    f.bits_allocated = ba;
    f.bits_stored = bs;
    f.pixel_rep = d.pixel_rep;
    const std::string label = ts_label(ts);
    f.ts_label = label.c_str();
    if (ts == kRle) {
      rle_decode_frame(enc.data(), enc.size(), f, bits);
    } else if (ts == kJpegLossless || ts == kJpegLosslessSV1) {
      jpeg_lossless_decode_frame(enc.data(), enc.size(), f, bits);
    } else if (ts == kJpegBaseline || ts == kJpegExtended) {
      jpeg_dct_decode_frame(enc.data(), enc.size(), f, bits);
    } else if (ts == kJ2k || ts == kJ2kLossless) {
      j2k_decode_frame(enc.data(), enc.size(), f, bits);
    } else if (ts == kJpegLS || ts == kJpegLSNear) {
      jpegls_decode_frame(enc.data(), enc.size(), f, bits);
    } else {
      throw_error(CZ_ERR_INTERNAL, "no codec for %s", label.c_str());
    }
  }
  // Stored values: masked to BitsStored, sign-extended when signed.
  const uint32_t mask = bs >= 32 ? 0xffffffffu : (uint32_t(1) << bs) - 1;
  const int64_t sign_bit = int64_t(1) << (bs - 1);
  for (size_t i = 0; i < n; i++) {
    int64_t v = bits[i] & mask;
    if (is_signed && v >= sign_bit) v -= 2 * sign_bit;
    d.values[i] = int32_t(v);  // the same element as bits[i], read above
  }
  double slope = 1, intercept = 0;
  if (!r.num(kTagRescaleSlope, &slope)) slope = 1;
  if (!r.num(kTagRescaleIntercept, &intercept)) intercept = 0;
  d.slope = slope;
  d.intercept = intercept;
  double c = 0, w = 0;
  if (r.num(kTagWindowCenter, &c) && r.num(kTagWindowWidth, &w)) {
    d.has_window = true;
    d.window_center = c;
    d.window_width = w;
  }
  return d;
}

Gray8 dicom_to_gray8(const DicomRaw& d) {
  // The stored values span at most 2^16 levels, so the rule is evaluated once per level into a
  // lookup table: the same float64 expressions as dicom.ts per value, hence the same bytes. The
  // rescale is monotone in x (and so is its floating-point rounding), so min / max of y are the
  // rescaled min / max of x.
  const size_t n = d.values.size();
  Gray8 g;
  g.width = d.cols;
  g.height = d.rows;
  g.data.assign(n, 0);
  if (n == 0) return g;
  int32_t vmin = d.values[0], vmax = d.values[0];
  for (size_t i = 1; i < n; i++) {
    vmin = std::min(vmin, d.values[i]);
    vmax = std::max(vmax, d.values[i]);
  }
  auto rescale = [&](int32_t x) { return double(x) * d.slope + d.intercept; };
  const double ya = rescale(vmin), yb = rescale(vmax);
  const double mn = std::min(ya, yb), mx = std::max(ya, yb);
  auto clamp = [](double v) -> uint8_t { return v < 0 ? 0 : v > 255 ? 255 : uint8_t(v); };
  const bool mono1 = d.photometric == "MONOCHROME1";
  std::vector<uint8_t> lut(size_t(int64_t(vmax) - vmin + 1), 0);
  const bool window = d.has_window && d.window_width >= 1;
  const double c = d.window_center, w = d.window_width;
  const double lo = c - 0.5 - (w - 1) / 2;
  const double hi = c - 0.5 + (w - 1) / 2;
  const double range = mx - mn;
  for (int64_t x = vmin; x <= vmax; x++) {
    const double t = rescale(int32_t(x));
    uint8_t v = 0;
    if (window) {
      if (t <= lo)
        v = 0;
      else if (t > hi)
        v = 255;
      else
        v = clamp(std::floor(((t - (c - 0.5)) / (w - 1) + 0.5) * 255 + 0.5));
    } else if (mx > mn) {
      v = clamp(std::floor(((t - mn) / range) * 255 + 0.5));
    }
    lut[size_t(x - vmin)] = mono1 ? uint8_t(255 - v) : v;
  }
  uint8_t* out = g.data.data();
  const uint8_t* l = lut.data();
  for (size_t i = 0; i < n; i++) out[i] = l[d.values[i] - vmin];
  return g;
}

Gray8 decode_dicom(const uint8_t* buf, size_t len, const DecodeOptions& o) {
  return dicom_to_gray8(dicom_decode_raw(buf, len, o));
}

int32_t dicom_frame_count(const uint8_t* buf, size_t len) {
  Parsed p = parse_file(buf, len, Limits{});
  Reader r(p.buf, p.len, p.explicit_vr, p.big);
  r.read(p.data_set, p.len, true);
  return geometry_of(r).frames;
}

std::vector<std::string> dicom_transfer_syntaxes() {
  std::vector<std::string> out;
  for (const char* ts : {kImplicitLE, kExplicitLE, kExplicitBE, kDeflatedLE, kRle, kJpegLossless, kJpegLosslessSV1,
                         kJpegBaseline, kJpegExtended, kJ2kLossless, kJ2k, kJpegLS, kJpegLSNear})
    if (supported(ts)) out.push_back(ts);
  return out;
}

}  // namespace img
}  // namespace carzero
