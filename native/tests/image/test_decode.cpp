// test_decode.cpp: the native PNG/JPEG decoders (native/src/image/png.cpp, jpeg.cpp) against the
// fixtures written by OpenCV 4.6 (tools/fixtures-image.py, test/fixtures/image/jpeg-extra/make.py):
//   - every PNG/JPEG case of test/fixtures/image/index.json decodes bit-exactly to its
//     expect/<name>.decoded.png (= cv2.imread(src, IMREAD_GRAYSCALE), a plain 8-bit grey PNG that is
//     itself read with decode_png), through decode_png/decode_jpeg and through decode();
//   - every error case throws carzero::Error with a message (never a crash, never an image);
//   - jpeg-extra/<name>.jpg decodes to jpeg-extra/<name>.png (restart intervals, an early EOI,
//     luma-subsampled files);
//   - the limits: a crafted PNG declaring 30000 x 30000 and a JPEG declaring 60000 x 60000 are
//     refused with CZ_ERR_OUT_OF_MEMORY at once; tightened Limits refuse a real file;
//   - damaged files (every truncation point of a sample, byte flips, a bad IDAT CRC, a zero width,
//     an IDAT that inflates far past its rows) give an image or carzero::Error, nothing else;
//   - a PNG's eXIf orientation is applied, as imread does;
//   - concurrent decodes on four threads agree with single-threaded ones;
//   - detect_format on every fixture file;
//   - every PNG/JPEG of test/fixtures/preprocess/src decodes to the size its index.json gives;
//   - the PNG fast path (8/16-bit grey, not interlaced; libdeflate) against the libpng path: every
//     fixture PNG and every preprocess/src PNG decodes the same both ways (or fails both ways) and
//     the eligible ones do take the fast path; generated files with each filter type forced
//     (and mixed), widths 1..33 and wider, 8 and 16 bits; damaged files (truncated IDAT, bad IDAT
//     CRC, extra data, too little data, bad filter byte, bad Adler-32, chunks between IDATs, ...)
//     and byte flips / truncations: decode_png always agrees with the libpng path.
// Needs no Python; CZ_TEST_VERBOSE=1 prints every check. prints "N passed, M failed" last and exits non-zero on a
// failure.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/json.h"
#include "core/status.h"
#include "image/image.h"

#ifndef CZ_FIXTURE_DIR
#error "CZ_FIXTURE_DIR must name test/fixtures"
#endif

using carzero::Error;
namespace img = carzero::img;

namespace carzero {
namespace img {
// png.cpp's test hook: 0 = decode_png, 1 = the libpng path only, 2 = the libdeflate fast path only
// (CZ_ERR_UNSUPPORTED when it does not take the file).
Gray8 decode_png_path(const uint8_t* buf, size_t len, const DecodeOptions& o, int path);
}  // namespace img
}  // namespace carzero

#if CZ_HAVE_ZLIB
// zlib from the codec prefix (linked through carzero_core; its header is private to the core).
extern "C" int compress2(unsigned char* dest, unsigned long* dest_len, const unsigned char* source,
                         unsigned long source_len, int level);
extern "C" unsigned long compressBound(unsigned long source_len);
#endif

namespace {

int g_pass = 0, g_fail = 0;
const bool g_verbose = std::getenv("CZ_TEST_VERBOSE") != nullptr;  // print passes too

void check(bool ok, const std::string& what) {
  if (ok) {
    ++g_pass;
    if (g_verbose) std::printf("ok   %s\n", what.c_str());
  } else {
    ++g_fail;
    std::printf("FAIL %s\n", what.c_str());
  }
}

std::string fixture(const std::string& rel) { return std::string(CZ_FIXTURE_DIR) + "/" + rel; }

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  const std::string s = ss.str();
  return std::vector<uint8_t>(s.begin(), s.end());
}

bool has_codec(const std::string& kind) {
  static const img::Codecs c = img::codecs();
  return kind == "png" ? c.png : kind == "jpeg" ? c.jpeg : false;
}

// Result of one decode attempt: an image, or the Error's code and message.
struct Outcome {
  bool ok = false;
  bool other_exception = false;  // anything but carzero::Error (a bug)
  cz_status code = CZ_OK;
  std::string msg;
  img::Gray8 image;
};

template <class F>
Outcome attempt(F&& f) {
  Outcome r;
  try {
    r.image = f();
    r.ok = true;
  } catch (const Error& e) {
    r.code = e.code();
    r.msg = e.what();
  } catch (const std::exception& e) {
    r.other_exception = true;
    r.msg = e.what();
  }
  return r;
}

Outcome decode_kind(const std::string& kind, const std::vector<uint8_t>& b, const img::DecodeOptions& o = {}) {
  return attempt(
      [&] { return kind == "png" ? img::decode_png(b.data(), b.size(), o) : img::decode_jpeg(b.data(), b.size(), o); });
}

// First differing pixel, or "" when equal.
std::string compare(const img::Gray8& got, const img::Gray8& want) {
  if (got.width != want.width || got.height != want.height)
    return carzero::strfmt("size %dx%d, expected %dx%d", got.width, got.height, want.width, want.height);
  if (got.data.size() != size_t(got.width) * got.height) return "data size does not match width * height";
  size_t diff = 0, first = 0;
  for (size_t i = 0; i < got.data.size(); ++i)
    if (got.data[i] != want.data[i]) {
      if (!diff) first = i;
      ++diff;
    }
  if (!diff) return "";
  return carzero::strfmt("%zu pixels differ; first at (%zu, %zu): %d, expected %d", diff, first % got.width,
                         first / got.width, got.data[first], want.data[first]);
}

img::Gray8 expected_png(const std::string& rel) {
  const auto b = read_file(fixture("image/" + rel));
  return img::decode_png(b.data(), b.size(), {});
}

// ---- crafted files -----------------------------------------------------------------------------

uint32_t crc32(const uint8_t* p, size_t n, uint32_t crc = 0) {
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
  }
  return ~crc;
}

void put32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(uint8_t(x >> s));
}

void png_chunk(std::vector<uint8_t>& v, const char* type, const std::vector<uint8_t>& data) {
  put32(v, uint32_t(data.size()));
  const size_t at = v.size();
  v.insert(v.end(), type, type + 4);
  v.insert(v.end(), data.begin(), data.end());
  put32(v, crc32(v.data() + at, v.size() - at));
}

// An 8-bit grey PNG; `before`/`after` are whole chunks placed before/after IDAT.
std::vector<uint8_t> png_with(uint32_t w, uint32_t h, const std::vector<uint8_t>& zlib_stream,
                              const std::vector<uint8_t>& before = {}, const std::vector<uint8_t>& after = {}) {
  std::vector<uint8_t> v = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  std::vector<uint8_t> ihdr;
  put32(ihdr, w);
  put32(ihdr, h);
  ihdr.insert(ihdr.end(), {8, 0, 0, 0, 0});  // 8-bit grey, deflate, no filter method, no interlace
  png_chunk(v, "IHDR", ihdr);
  v.insert(v.end(), before.begin(), before.end());
  png_chunk(v, "IDAT", zlib_stream);
  v.insert(v.end(), after.begin(), after.end());
  png_chunk(v, "IEND", {});
  return v;
}

// A zlib stream of `raw` in stored (uncompressed) deflate blocks.
std::vector<uint8_t> zlib_stored(const std::vector<uint8_t>& raw) {
  std::vector<uint8_t> z = {0x78, 0x01};
  size_t off = 0;
  do {
    const size_t n = raw.size() - off < 65535 ? raw.size() - off : 65535;
    const bool last = off + n == raw.size();
    z.push_back(last ? 1 : 0);
    z.push_back(uint8_t(n));
    z.push_back(uint8_t(n >> 8));
    z.push_back(uint8_t(~n));
    z.push_back(uint8_t(~n >> 8));
    z.insert(z.end(), raw.begin() + off, raw.begin() + off + n);
    off += n;
  } while (off < raw.size());
  uint32_t a = 1, b = 0;
  for (uint8_t c : raw) {
    a = (a + c) % 65521;
    b = (b + a) % 65521;
  }
  put32(z, b << 16 | a);
  return z;
}

// A JPEG header: DQT, SOF0 (precision bits, h x w, nc components of 1x1 sampling), SOS, a few
// bytes of scan data, EOI. Enough for jpeg_read_header; not a decodable image.
std::vector<uint8_t> jpeg_sof(uint16_t w, uint16_t h, uint8_t nc = 1, uint8_t precision = 8) {
  std::vector<uint8_t> v = {0xff, 0xd8};
  v.insert(v.end(), {0xff, 0xdb, 0x00, 0x43, 0x00});  // DQT: table 0, all ones
  v.insert(v.end(), 64, 1);
  const uint16_t sof_len = uint16_t(8 + 3 * nc);
  v.insert(v.end(), {0xff, 0xc0, uint8_t(sof_len >> 8), uint8_t(sof_len), precision, uint8_t(h >> 8), uint8_t(h),
                     uint8_t(w >> 8), uint8_t(w), nc});
  for (uint8_t c = 1; c <= nc; ++c) v.insert(v.end(), {c, 0x11, 0x00});
  const uint16_t sos_len = uint16_t(6 + 2 * nc);
  v.insert(v.end(), {0xff, 0xda, uint8_t(sos_len >> 8), uint8_t(sos_len), nc});
  for (uint8_t c = 1; c <= nc; ++c) v.insert(v.end(), {c, 0x00});
  v.insert(v.end(), {0x00, 0x3f, 0x00});
  v.insert(v.end(), 32, 0x00);
  v.insert(v.end(), {0xff, 0xd9});
  return v;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// A decode of damaged data: an image of sane size or carzero::Error with a message.
void check_survives(const std::string& kind, const std::vector<uint8_t>& b, const std::string& what) {
  const Outcome r = decode_kind(kind, b);
  if (r.ok)
    check(r.image.width > 0 && r.image.height > 0 && r.image.data.size() == size_t(r.image.width) * r.image.height,
          what + ": image of consistent size");
  else
    check(!r.other_exception && !r.msg.empty(), what + ": carzero::Error with a message (got: " + r.msg + ")");
}

// ---- the sections --------------------------------------------------------------------------------

void test_index() {
  const auto text = read_file(fixture("image/index.json"));
  const auto index = carzero::json::parse(std::string(text.begin(), text.end()), "image/index.json");
  const auto* cases = index.find("cases");
  check(cases && cases->is_array(), "image/index.json has cases");
  if (!cases) return;
  int skipped = 0;
  for (const auto& c : cases->arr) {
    const std::string name = c.find("name")->str;
    const std::string kind = c.find("kind")->str;
    const std::string file = c.find("file")->str;
    const auto bytes = read_file(fixture("image/" + file));
    const bool is_error = c.find("error") != nullptr;

    // detect_format by magic bytes (error cases included: truncated files keep their magic)
    const img::Format f = img::detect_format(bytes.data(), bytes.size());
    const img::Format want_f = kind == "png"     ? img::Format::png
                               : kind == "jpeg"  ? img::Format::jpeg
                               : kind == "dicom" ? img::Format::dicom
                                                 : img::Format::unknown;
    check(f == want_f, name + ": detect_format " + img::format_name(f) + ", expected " + img::format_name(want_f));

    if (kind == "other") {
      // not an image / empty: decode() refuses, as do both decoders when called directly
      const Outcome d = attempt([&] { return img::decode(bytes.data(), bytes.size()); });
      check(!d.ok && !d.other_exception && !d.msg.empty(), name + ": decode() refuses (" + d.msg + ")");
      for (const char* k : {"png", "jpeg"}) {
        const Outcome r = decode_kind(k, bytes);
        check(!r.ok && !r.other_exception && !r.msg.empty(), name + ": decode_" + k + " refuses (" + r.msg + ")");
      }
      continue;
    }
    if (kind != "png" && kind != "jpeg") continue;  // DICOM: test_dicom
    if (!has_codec(kind)) {
      ++skipped;
      continue;
    }
    const Outcome r = decode_kind(kind, bytes);
    const Outcome d = attempt([&] { return img::decode(bytes.data(), bytes.size()); });
    if (is_error) {
      check(!r.ok && !r.other_exception && !r.msg.empty() && r.code == CZ_ERR_FORMAT,
            name + ": refused with CZ_ERR_FORMAT and a message (" + (r.ok ? "decoded!" : r.msg) + ")");
      check(!d.ok && !d.other_exception && !d.msg.empty(), name + ": decode() refuses too");
      continue;
    }
    if (!r.ok) {
      check(false, name + ": decode failed: " + r.msg);
      continue;
    }
    check(r.image.width == c.find("width")->as_int64("width") && r.image.height == c.find("height")->as_int64("height"),
          name + ": size matches the index");
    const img::Gray8 want = expected_png(c.find("decoded")->str);
    const std::string diff = compare(r.image, want);
    check(diff.empty(), name + ": bit-exact with cv2.imread(IMREAD_GRAYSCALE)" + (diff.empty() ? "" : ": " + diff));
    check(d.ok && compare(d.image, want).empty(), name + ": decode() dispatches to the same result");
  }
  if (skipped) std::printf("SKIP %d image/index.json cases: this build lacks their codec\n", skipped);
}

void test_jpeg_extra() {
  if (!has_codec("jpeg") || !has_codec("png")) {
    std::printf("SKIP jpeg-extra: this build lacks the JPEG or PNG decoder\n");
    return;
  }
  for (const char* n : {"grey-rst2", "colour-progressive-rst3", "grey-early-eoi", "luma-h1v1-of-h2v2",
                        "luma-h1v1-of-h2v1", "luma-h1v1-of-h1v2", "luma-h1v1-of-h3v1"}) {
    const std::string base = std::string("image/jpeg-extra/") + n;
    const auto b = read_file(fixture(base + ".jpg"));
    const Outcome r = decode_kind("jpeg", b);
    if (!r.ok) {
      check(false, std::string("jpeg-extra/") + n + ": decode failed: " + r.msg);
      continue;
    }
    const auto pb = read_file(fixture(base + ".png"));
    const std::string diff = compare(r.image, img::decode_png(pb.data(), pb.size(), {}));
    check(diff.empty(), std::string("jpeg-extra/") + n + ": bit-exact with cv2" + (diff.empty() ? "" : ": " + diff));
  }
}

void test_limits() {
  using clk = std::chrono::steady_clock;
  if (has_codec("png")) {
    // 30000 x 30000 declared, 1 byte of pixel data: refused from IHDR, before any allocation
    const auto big = png_with(30000, 30000, zlib_stored({0, 0}));
    const auto t0 = clk::now();
    const Outcome r = decode_kind("png", big);
    const double ms = ms_since(t0);
    check(!r.ok && r.code == CZ_ERR_OUT_OF_MEMORY && r.msg.find("30000 x 30000") != std::string::npos,
          "PNG 30000 x 30000 refused with CZ_ERR_OUT_OF_MEMORY (" + r.msg + ")");
    check(ms < 100, carzero::strfmt("PNG 30000 x 30000 refused at once (%.2f ms)", ms));
    // a side over max_side (70000 x 10: few pixels, long side)
    const Outcome s = decode_kind("png", png_with(70000, 10, zlib_stored({0, 0})));
    check(!s.ok && s.code == CZ_ERR_OUT_OF_MEMORY, "PNG 70000 x 10 refused by max_side (" + s.msg + ")");
    // tightened limits on a real file
    const auto b = read_file(fixture("image/src/grey8-512.png"));
    img::DecodeOptions o;
    o.limits.max_pixels = 512 * 512 - 1;
    const Outcome p = decode_kind("png", b, o);
    check(!p.ok && p.code == CZ_ERR_OUT_OF_MEMORY, "grey8-512.png refused with max_pixels = 512*512-1");
    o.limits.max_pixels = 512 * 512;
    check(decode_kind("png", b, o).ok, "grey8-512.png accepted with max_pixels = 512*512");
    o.limits.max_side = 511;
    check(decode_kind("png", b, o).code == CZ_ERR_OUT_OF_MEMORY, "grey8-512.png refused with max_side = 511");
  }
  if (has_codec("jpeg")) {
    const auto big = jpeg_sof(60000, 60000);
    const auto t0 = clk::now();
    const Outcome r = decode_kind("jpeg", big);
    const double ms = ms_since(t0);
    check(!r.ok && r.code == CZ_ERR_OUT_OF_MEMORY && r.msg.find("60000 x 60000") != std::string::npos,
          "JPEG 60000 x 60000 refused with CZ_ERR_OUT_OF_MEMORY (" + r.msg + ")");
    check(ms < 100, carzero::strfmt("JPEG 60000 x 60000 refused at once (%.2f ms)", ms));
    // outside what we decode: CZ_ERR_UNSUPPORTED (CMYK as src/image/jpeg.ts; 12-bit: libjpeg's 8-bit build)
    const Outcome cmyk = decode_kind("jpeg", jpeg_sof(64, 64, 4));
    check(!cmyk.ok && cmyk.code == CZ_ERR_UNSUPPORTED,
          "4-component (CMYK) JPEG refused as unsupported (" + cmyk.msg + ")");
    const Outcome p12 = decode_kind("jpeg", jpeg_sof(64, 64, 1, 12));
    check(!p12.ok && p12.code == CZ_ERR_UNSUPPORTED, "12-bit JPEG refused as unsupported (" + p12.msg + ")");
    const auto b = read_file(fixture("image/src/exif6.jpg"));  // 130 x 90 stored, 90 x 130 shown
    img::DecodeOptions o;
    o.limits.max_side = 129;
    check(decode_kind("jpeg", b, o).code == CZ_ERR_OUT_OF_MEMORY, "exif6.jpg refused with max_side = 129");
    o.limits.max_side = 130;
    o.limits.max_pixels = 130 * 90;
    check(decode_kind("jpeg", b, o).ok, "exif6.jpg accepted with max_pixels = 130*90");
  }
}

// cv2.imread applies the orientation of a PNG's eXIf chunk (OpenCV 4.6, checked with cv2: before
// IDAT, or else after it; the first one wins). A 3 x 2 image 1 2 3 / 4 5 6.
void test_png_exif() {
  if (!has_codec("png")) return;
  const std::vector<uint8_t> raw = {0, 1, 2, 3, 0, 4, 5, 6};  // filter byte 0 + 3 pixels, twice
  auto exif = [](uint8_t orientation, bool little) {
    std::vector<uint8_t> t = little ? std::vector<uint8_t>{'I', 'I', 42, 0, 8, 0,           0, 0, 1, 0, 0x12, 0x01, 3,
                                                           0,   1,   0,  0, 0, orientation, 0, 0, 0, 0, 0,    0,    0}
                                    : std::vector<uint8_t>{'M', 'M', 0, 42, 0, 0, 0,           8, 0, 1, 0x01, 0x12, 0,
                                                           3,   0,   0, 0,  1, 0, orientation, 0, 0, 0, 0,    0,    0};
    std::vector<uint8_t> c;
    png_chunk(c, "eXIf", t);
    return c;
  };
  struct Case {
    const char* what;
    std::vector<uint8_t> before, after;
    int w, h;
    std::vector<uint8_t> want;
  };
  const std::vector<Case> cases = {
      {"no eXIf", {}, {}, 3, 2, {1, 2, 3, 4, 5, 6}},
      {"eXIf 1", exif(1, false), {}, 3, 2, {1, 2, 3, 4, 5, 6}},
      {"eXIf 2 (mirror)", exif(2, true), {}, 3, 2, {3, 2, 1, 6, 5, 4}},
      {"eXIf 3 (180)", exif(3, false), {}, 3, 2, {6, 5, 4, 3, 2, 1}},
      {"eXIf 4 (flip)", exif(4, false), {}, 3, 2, {4, 5, 6, 1, 2, 3}},
      {"eXIf 5 (transpose)", exif(5, false), {}, 2, 3, {1, 4, 2, 5, 3, 6}},
      {"eXIf 6 (90 cw)", exif(6, false), {}, 2, 3, {4, 1, 5, 2, 6, 3}},
      {"eXIf 7 (transverse)", exif(7, true), {}, 2, 3, {6, 3, 5, 2, 4, 1}},
      {"eXIf 8 (90 ccw)", exif(8, false), {}, 2, 3, {3, 6, 2, 5, 1, 4}},
      {"eXIf 6 after IDAT", {}, exif(6, false), 2, 3, {4, 1, 5, 2, 6, 3}},
      {"eXIf 3 before + 6 after IDAT", exif(3, false), exif(6, false), 3, 2, {6, 5, 4, 3, 2, 1}},
  };
  for (const auto& c : cases) {
    const Outcome r = decode_kind("png", png_with(3, 2, zlib_stored(raw), c.before, c.after));
    check(r.ok && r.image.width == c.w && r.image.height == c.h && r.image.data == c.want,
          std::string("PNG ") + c.what + (r.ok ? "" : ": " + r.msg));
  }
}

void test_damage() {
  if (has_codec("png")) {
    const auto b = read_file(fixture("image/src/palette4.png"));
    // Every truncation point: a PNG cut anywhere before its IEND is complete is an error.
    int refused = 0, total = 0;
    for (size_t n = 0; n + 1 < b.size(); ++n) {
      std::vector<uint8_t> t(b.begin(), b.begin() + n);
      const Outcome r = decode_kind("png", t);
      ++total;
      if (!r.ok && !r.other_exception && !r.msg.empty()) ++refused;
    }
    check(refused == total, carzero::strfmt("palette4.png truncated at every point: %d of %d refused", refused, total));
    // Byte flips across the file: an image or an Error.
    const auto g = read_file(fixture("image/src/grey8-768x96.png"));
    for (size_t i = 8; i < g.size(); i += g.size() / 97 + 1) {
      auto t = g;
      t[i] ^= 0x5a;
      check_survives("png", t, carzero::strfmt("grey8-768x96.png byte %zu flipped", i));
    }
    // A bad CRC on IDAT (a critical chunk) is an error, as in imread.
    {
      auto t = g;
      size_t off = 8;
      while (off + 12 <= t.size() && std::memcmp(t.data() + off + 4, "IDAT", 4) != 0)
        off += 12 + (uint32_t(t[off]) << 24 | uint32_t(t[off + 1]) << 16 | uint32_t(t[off + 2]) << 8 | t[off + 3]);
      const size_t len = uint32_t(t[off]) << 24 | uint32_t(t[off + 1]) << 16 | uint32_t(t[off + 2]) << 8 | t[off + 3];
      t[off + 8 + len] ^= 1;
      const Outcome r = decode_kind("png", t);
      check(!r.ok && r.code == CZ_ERR_FORMAT, "PNG with a bad IDAT CRC refused (" + r.msg + ")");
    }
    // Zero width.
    {
      const Outcome r = decode_kind("png", png_with(0, 10, zlib_stored({0})));
      check(!r.ok && r.code == CZ_ERR_FORMAT && !r.msg.empty(), "PNG 0 x 10 refused (" + r.msg + ")");
    }
    // An IDAT that inflates to 4 MB for a 1 x 1 image: libpng stops at the declared row.
    {
      std::vector<uint8_t> raw(4 << 20, 0);
      raw[1] = 77;
      const auto t0 = std::chrono::steady_clock::now();
      const Outcome r = decode_kind("png", png_with(1, 1, zlib_stored(raw)));
      check(r.ok ? r.image.data.size() == 1 && r.image.data[0] == 77 : !r.other_exception,
            "PNG 1 x 1 with 4 MB of inflated data: " + (r.ok ? std::string("decoded its one pixel") : r.msg));
      check(ms_since(t0) < 2000, "... handled quickly");
    }
    // Signature only / garbage after the signature.
    check_survives("png", std::vector<uint8_t>(b.begin(), b.begin() + 8), "PNG signature only");
  }
  if (has_codec("jpeg")) {
    // Truncation points through a baseline and a progressive file.
    for (const char* f : {"image/src/grey.jpg", "image/src/colour444-progressive.jpg"}) {
      const auto b = read_file(fixture(f));
      int errors = 0, images = 0;
      for (size_t n = 0; n + 16 < b.size(); n += b.size() / 200 + 1) {  // up to the last 16 bytes
        std::vector<uint8_t> t(b.begin(), b.begin() + n);
        const Outcome r = decode_kind("jpeg", t);
        if (r.ok)
          ++images;
        else if (!r.other_exception && !r.msg.empty())
          ++errors;
        else
          check(false, carzero::strfmt("%s cut at %zu: %s", f, n, r.msg.c_str()));
      }
      // a baseline file cut inside its scan has no complete scan: always an error
      if (std::strstr(f, "grey.jpg"))
        check(images == 0, carzero::strfmt("%s: every truncation refused (%d decoded)", f, images));
      check(errors > 0, carzero::strfmt("%s truncations: %d errors, %d images", f, errors, images));
    }
    const auto b = read_file(fixture("image/src/colour420.jpg"));
    for (size_t i = 2; i < b.size(); i += b.size() / 97 + 1) {
      auto t = b;
      t[i] ^= 0x5a;
      check_survives("jpeg", t, carzero::strfmt("colour420.jpg byte %zu flipped", i));
    }
    check_survives("jpeg", {0xff, 0xd8, 0xff}, "JPEG SOI only");
  }
}

// The decoders keep no shared state: four threads decoding the same files concurrently get the
// single-threaded results.
void test_threads() {
  if (!has_codec("png") || !has_codec("jpeg")) return;
  const char* files[] = {"image/src/rgb-gama.png",
                         "image/src/grey16-portrait.png",
                         "image/src/palette4.png",
                         "image/src/colour420.jpg",
                         "image/src/colour444-progressive.jpg",
                         "image/src/exif6.jpg",
                         "image/src/truncated.png",
                         "image/src/truncated.jpg"};
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<Outcome> want;
  for (const char* f : files) {
    bytes.push_back(read_file(fixture(f)));
    want.push_back(attempt([&] { return img::decode(bytes.back().data(), bytes.back().size()); }));
  }
  std::vector<int> bad(4, 0);
  std::vector<std::thread> pool;
  for (int t = 0; t < 4; ++t)
    pool.emplace_back([&, t] {
      for (int round = 0; round < 5; ++round)
        for (size_t i = 0; i < bytes.size(); ++i) {
          const size_t k = (i + size_t(t)) % bytes.size();
          const Outcome r = attempt([&] { return img::decode(bytes[k].data(), bytes[k].size()); });
          if (r.ok != want[k].ok || r.msg != want[k].msg || (r.ok && r.image.data != want[k].image.data)) ++bad[t];
        }
    });
  for (auto& th : pool) th.join();
  check(bad[0] + bad[1] + bad[2] + bad[3] == 0, "4 threads decoding concurrently get the single-threaded results");
}

void test_preprocess_sizes() {
  const auto text = read_file(fixture("preprocess/index.json"));
  const auto index = carzero::json::parse(std::string(text.begin(), text.end()), "preprocess/index.json");
  int checked = 0, skipped = 0;
  for (const auto& c : index.find("cases")->arr) {
    const std::string file = c.find("file")->str;
    const std::string ext = file.substr(file.rfind('.') + 1);
    const std::string kind = ext == "png" ? "png" : ext == "jpg" ? "jpeg" : "";
    if (kind.empty()) continue;
    if (!has_codec(kind)) {
      ++skipped;
      continue;
    }
    const auto b = read_file(fixture("preprocess/" + file));
    const Outcome r = attempt([&] { return img::decode(b.data(), b.size()); });
    const int64_t w = c.find("width")->as_int64("width"), h = c.find("height")->as_int64("height");
    check(r.ok && r.image.width == w && r.image.height == h && r.image.data.size() == size_t(w * h),
          "preprocess/" + file + ": decodes to its size" + (r.ok ? "" : " (" + r.msg + ")"));
    ++checked;
  }
  std::printf("preprocess/src: %d files decoded%s\n", checked,
              skipped ? carzero::strfmt(", %d skipped (codec missing)", skipped).c_str() : "");
}

// ---- the PNG fast path ------------------------------------------------------------------------

// A grey PNG of any depth; `before`/`after` are whole chunks placed before/after IDAT; `idat_split`
// > 0 cuts the stream into IDAT chunks of that size.
std::vector<uint8_t> png_grey(uint32_t w, uint32_t h, int depth, const std::vector<uint8_t>& zs,
                              const std::vector<uint8_t>& before = {}, const std::vector<uint8_t>& after = {},
                              size_t idat_split = 0, bool iend = true) {
  std::vector<uint8_t> v = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  std::vector<uint8_t> ihdr;
  put32(ihdr, w);
  put32(ihdr, h);
  ihdr.insert(ihdr.end(), {uint8_t(depth), 0, 0, 0, 0});
  png_chunk(v, "IHDR", ihdr);
  v.insert(v.end(), before.begin(), before.end());
  if (idat_split == 0) idat_split = zs.size() ? zs.size() : 1;
  for (size_t off = 0; off < zs.size() || off == 0; off += idat_split) {
    const size_t n = std::min(idat_split, zs.size() - off);
    png_chunk(v, "IDAT", std::vector<uint8_t>(zs.begin() + off, zs.begin() + off + n));
    if (off + n >= zs.size()) break;
  }
  v.insert(v.end(), after.begin(), after.end());
  if (iend) png_chunk(v, "IEND", {});
  return v;
}

std::vector<uint8_t> zlib_of(const std::vector<uint8_t>& raw) {
#if CZ_HAVE_ZLIB
  unsigned long n = compressBound(raw.size());
  std::vector<uint8_t> z(n);
  if (compress2(z.data(), &n, raw.data(), raw.size(), 6) == 0) {
    z.resize(n);
    return z;
  }
#endif
  return zlib_stored(raw);
}

uint8_t paeth_ref(int a, int b, int c) {  // the PNG specification's predictor
  const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  return uint8_t(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
}

// The filtered image data (filter byte + row) for rows of `rowbytes` bytes; filter(y) picks each
// row's filter type.
template <class F>
std::vector<uint8_t> filter_rows(const std::vector<uint8_t>& px, size_t rowbytes, size_t h, int bpp, F filter) {
  std::vector<uint8_t> out;
  const std::vector<uint8_t> zero(rowbytes, 0);
  for (size_t y = 0; y < h; ++y) {
    const uint8_t* cur = px.data() + y * rowbytes;
    const uint8_t* up = y ? px.data() + (y - 1) * rowbytes : zero.data();
    const int f = filter(y);
    out.push_back(uint8_t(f));
    for (size_t i = 0; i < rowbytes; ++i) {
      const int a = i >= size_t(bpp) ? cur[i - bpp] : 0, b = up[i], c = i >= size_t(bpp) ? up[i - bpp] : 0;
      const int pred = f == 1 ? a : f == 2 ? b : f == 3 ? (a + b) / 2 : f == 4 ? paeth_ref(a, b, c) : 0;
      out.push_back(uint8_t(cur[i] - pred));
    }
  }
  return out;
}

// The three ways in: decode_png (0), libpng only (1), fast path only (2).
Outcome png_path(const std::vector<uint8_t>& b, int path) {
  return attempt([&] { return img::decode_png_path(b.data(), b.size(), {}, path); });
}

bool same_outcome(const Outcome& a, const Outcome& b) {
  if (a.other_exception || b.other_exception || a.ok != b.ok) return false;
  if (!a.ok) return a.code == b.code && !a.msg.empty() && !b.msg.empty();
  return compare(a.image, b.image).empty();
}

// decode_png and the fast path (when it takes the file) agree with the libpng path. Returns
// whether the fast path took it; expect_fast: 1 must take, 0 must not, -1 either.
bool check_paths(const std::vector<uint8_t>& b, const std::string& what, int expect_fast, bool quiet = false) {
  const Outcome d = png_path(b, 0), l = png_path(b, 1), f = png_path(b, 2);
  const bool agree =
      same_outcome(d, l) && (!f.ok || same_outcome(f, l)) &&
      (f.ok || (f.code == CZ_ERR_UNSUPPORTED || f.code == CZ_ERR_OUT_OF_MEMORY || f.code == CZ_ERR_FORMAT));
  const bool fast_ok = expect_fast < 0 || f.ok == (expect_fast == 1);
  if (!quiet || !agree || !fast_ok)
    check(agree && fast_ok, what + ": fast path " + (f.ok ? "taken" : "not taken") + ", decode_png " +
                                (d.ok ? "decoded" : "refused (" + d.msg + ")") + ", libpng " +
                                (l.ok ? "decoded" : "refused (" + l.msg + ")") + (agree ? "" : ": DISAGREE"));
  return f.ok;
}

// IHDR says 8/16-bit grey, not interlaced, and no eXIf chunk: what the fast path takes when the
// file is sound.
bool fast_eligible(const std::vector<uint8_t>& b) {
  if (b.size() < 33 || std::memcmp(b.data() + 12, "IHDR", 4) != 0) return false;
  if (b[25] != 0 || (b[24] != 8 && b[24] != 16) || b[28] != 0) return false;
  for (size_t i = 33; i + 4 <= b.size(); ++i)
    if (std::memcmp(b.data() + i, "eXIf", 4) == 0) return false;
  return true;
}

void test_png_fast() {
  if (!has_codec("png")) return;
  {
    const auto probe = read_file(fixture("image/src/grey8-512.png"));
    if (!png_path(probe, 2).ok) {
      std::printf("SKIP PNG fast path: this build has no libdeflate (CZ_HAVE_LIBDEFLATE off)\n");
      return;
    }
  }
  // Every PNG of image/index.json: the same both ways; the sound eligible ones take the fast path.
  {
    const auto text = read_file(fixture("image/index.json"));
    const auto index = carzero::json::parse(std::string(text.begin(), text.end()), "image/index.json");
    int fast = 0, all = 0;
    for (const auto& c : index.find("cases")->arr) {
      if (c.find("kind")->str != "png") continue;
      const std::string file = c.find("file")->str;
      const auto b = read_file(fixture("image/" + file));
      const bool error = c.find("error") != nullptr;
      ++all;
      fast += check_paths(b, "fast path: " + file, error ? 0 : fast_eligible(b) ? 1 : 0);
    }
    std::printf("fast path: %d of %d image/index.json PNGs take it\n", fast, all);
    check(fast >= 3, carzero::strfmt("fast path: taken by %d fixture PNGs (8- and 16-bit grey)", fast));
  }
  // Every PNG of preprocess/src.
  {
    const auto text = read_file(fixture("preprocess/index.json"));
    const auto index = carzero::json::parse(std::string(text.begin(), text.end()), "preprocess/index.json");
    int fast = 0, all = 0, eligible = 0;
    for (const auto& c : index.find("cases")->arr) {
      const std::string file = c.find("file")->str;
      if (file.size() < 4 || file.substr(file.size() - 4) != ".png") continue;
      const auto b = read_file(fixture("preprocess/" + file));
      ++all;
      eligible += fast_eligible(b);
      fast += check_paths(b, "fast path: preprocess/" + file, fast_eligible(b) ? 1 : 0, true);
    }
    std::printf("fast path: %d of %d preprocess/src PNGs take it (%d eligible)\n", fast, all, eligible);
    check(fast == eligible && fast > 0,
          carzero::strfmt("fast path: every eligible preprocess/src PNG takes it (%d)", fast));
  }
  // Generated: every filter type forced, and mixed; widths 1..33 and wider; 8 and 16 bits;
  // random bytes and a 4-level image (many Paeth ties).
  {
    uint32_t seed = 12345;
    auto rnd = [&] { return seed = seed * 1103515245u + 12345u, uint8_t(seed >> 16); };
    int cases = 0, bad = 0;
    std::vector<uint32_t> widths;
    for (uint32_t w = 1; w <= 33; ++w) widths.push_back(w);
    for (uint32_t w : {63u, 64u, 65u, 257u}) widths.push_back(w);
    for (int depth : {8, 16})
      for (uint32_t w : widths)
        for (int f = 0; f <= 5; ++f)  // 5: row y gets filter y % 5
          for (int levels : {256, 4}) {
            const int bpp = depth / 8;
            const uint32_t h = 7;
            const size_t rowbytes = size_t(w) * bpp;
            std::vector<uint8_t> px(rowbytes * h);
            for (auto& v : px) v = levels == 256 ? rnd() : uint8_t((rnd() & 3) * 85);
            const auto raw = filter_rows(px, rowbytes, h, bpp, [f](size_t y) { return f == 5 ? int(y % 5) : f; });
            const auto b = png_grey(w, h, depth, zlib_of(raw));
            const Outcome fo = png_path(b, 2), lo = png_path(b, 1);
            bool ok = fo.ok && lo.ok && compare(fo.image, lo.image).empty() && fo.image.width == int(w);
            if (ok)
              for (size_t y = 0; y < h && ok; ++y)
                for (size_t x = 0; x < w && ok; ++x) ok = fo.image.data[y * w + x] == px[y * rowbytes + x * bpp];
            ++cases;
            if (!ok) {
              ++bad;
              if (bad <= 5)
                check(false,
                      carzero::strfmt(
                          "fast path: %d-bit, width %u, filter %d, %d levels: %s", depth, w, f, levels,
                          fo.ok ? (lo.ok ? compare(fo.image, lo.image).c_str() : lo.msg.c_str()) : fo.msg.c_str()));
            }
          }
    check(bad == 0, carzero::strfmt("fast path: %d generated files (filters 0-4 and mixed, widths 1..33, 63-65, 257, "
                                    "8/16-bit) equal libpng and the source pixels (%d differ)",
                                    cases, bad));
  }
  // Damaged and unusual files, built around a 16-bit 40 x 30 and an 8-bit 37 x 9 image.
  for (int depth : {16, 8}) {
    const uint32_t w = depth == 16 ? 40 : 37, h = depth == 16 ? 30 : 9;
    const int bpp = depth / 8;
    const size_t rowbytes = size_t(w) * bpp;
    std::vector<uint8_t> px(rowbytes * h);
    for (size_t i = 0; i < px.size(); ++i) px[i] = uint8_t((i * 7 + (i / rowbytes) * 13) ^ (i >> 3));
    const auto raw = filter_rows(px, rowbytes, h, bpp, [](size_t y) { return int(y % 5); });
    const auto zs = zlib_of(raw);
    const std::string tag = carzero::strfmt("fast path %d-bit: ", depth);
    std::vector<uint8_t> text, exif, plte;
    png_chunk(text, "tEXt", {'a', 0, 'b'});
    png_chunk(plte, "PLTE", {1, 2, 3});
    png_chunk(exif, "eXIf", {'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0});
    check_paths(png_grey(w, h, depth, zs), tag + "plain", 1);
    check_paths(png_grey(w, h, depth, zs, {}, {}, 7), tag + "IDAT in 7-byte chunks", 1);
    check_paths(png_grey(w, h, depth, zs, text, text, 100), tag + "tEXt before and after IDAT", 1);
    {
      auto t = text;
      t.back() ^= 1;  // an ancillary CRC error: libpng warns, imread decodes
      check_paths(png_grey(w, h, depth, zs, t, t), tag + "tEXt with a bad CRC", 1);
    }
    {
      std::vector<uint8_t> b = png_grey(w, h, depth, std::vector<uint8_t>(zs.begin(), zs.begin() + zs.size() / 2));
      check_paths(b, tag + "IDAT data cut in half", 0);
      b = png_grey(w, h, depth, std::vector<uint8_t>(zs.begin(), zs.end() - 4));
      check_paths(b, tag + "zlib stream without its Adler-32", 0);
    }
    {
      auto z = zs;
      z.back() ^= 0x10;
      check_paths(png_grey(w, h, depth, z), tag + "bad Adler-32", -1);
    }
    {
      auto b = png_grey(w, h, depth, zs);
      b[b.size() - 12 - 1] ^= 1;  // the IDAT CRC (IEND is the last 12 bytes)
      check_paths(b, tag + "bad IDAT CRC", 0);
      const Outcome r = png_path(b, 0);
      check(!r.ok && r.code == CZ_ERR_FORMAT, tag + "bad IDAT CRC refused (" + r.msg + ")");
    }
    {
      auto b = png_grey(w, h, depth, zs);
      b[b.size() - 1] ^= 1;  // the IEND CRC
      check_paths(b, tag + "bad IEND CRC", 0);
    }
    {
      auto more = raw;
      more.insert(more.end(), raw.begin(), raw.begin() + 2 * (rowbytes + 1));  // two rows too many
      check_paths(png_grey(w, h, depth, zlib_of(more)), tag + "two extra rows of image data", 0);
      auto z = zs;
      z.insert(z.end(), {1, 2, 3, 4});
      check_paths(png_grey(w, h, depth, z), tag + "4 bytes after the zlib stream", 0);
      check_paths(png_grey(w, h, depth, zs, {},
                           [&] {
                             std::vector<uint8_t> c;
                             png_chunk(c, "IDAT", {0, 0, 0});
                             return c;
                           }()),
                  tag + "an extra IDAT after the stream (split by nothing)", -1);
    }
    {
      const std::vector<uint8_t> less(raw.begin(), raw.end() - rowbytes / 2);
      check_paths(png_grey(w, h, depth, zlib_of(less)), tag + "half a row too little data", 0);
      const std::vector<uint8_t> none(raw.begin(), raw.begin() + 1);
      check_paths(png_grey(w, h, depth, zlib_of(none)), tag + "one byte of image data", 0);
    }
    {
      auto r2 = raw;
      r2[3 * (rowbytes + 1)] = 5;  // filter type 5 on row 3
      check_paths(png_grey(w, h, depth, zlib_of(r2)), tag + "filter byte 5", 0);
    }
    {
      // IDAT, tEXt, IDAT: libpng needs the second IDAT's data and finds tEXt
      std::vector<uint8_t> b = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
      std::vector<uint8_t> ihdr;
      put32(ihdr, w);
      put32(ihdr, h);
      ihdr.insert(ihdr.end(), {uint8_t(depth), 0, 0, 0, 0});
      png_chunk(b, "IHDR", ihdr);
      png_chunk(b, "IDAT", std::vector<uint8_t>(zs.begin(), zs.begin() + zs.size() / 2));
      b.insert(b.end(), text.begin(), text.end());
      png_chunk(b, "IDAT", std::vector<uint8_t>(zs.begin() + zs.size() / 2, zs.end()));
      png_chunk(b, "IEND", {});
      check_paths(b, tag + "tEXt between two IDATs", 0);
    }
    check_paths(png_grey(w, h, depth, zs, plte), tag + "PLTE in a grey file", 0);
    if (depth == 16) {
      // libpng's chunk length limits (PNG_USER_CHUNK_MALLOC_MAX = 8000000): an ancillary chunk of
      // 8000001 bytes, and an IDAT chunk of 8000001 bytes whose stream decodes the image and is
      // padded with empty stored blocks
      std::vector<uint8_t> big;
      png_chunk(big, "tEXt", std::vector<uint8_t>(8000001, 'x'));
      check_paths(png_grey(w, h, depth, zs, big), tag + "tEXt of 8000001 bytes", -1);
      std::vector<uint8_t> small;
      png_chunk(small, "tEXt", std::vector<uint8_t>(8000000, 'x'));
      check_paths(png_grey(w, h, depth, zs, small), tag + "tEXt of 8000000 bytes", -1);
      {
        // stored blocks: [0 00 00 ff ff] is an empty non-final stored block (5 bytes)
        auto z = zlib_stored(raw);
        const size_t n_empty = (8000001 - z.size()) / 5 + 1;
        std::vector<uint8_t> pad;
        for (size_t k = 0; k < n_empty; ++k) pad.insert(pad.end(), {0, 0, 0, 0xff, 0xff});
        z.insert(z.begin() + 2, pad.begin(), pad.end());
        check_paths(png_grey(w, h, depth, z), tag + carzero::strfmt("IDAT of %zu bytes (padded stream)", z.size()), 0);
        check_paths(png_grey(w, h, depth, z, {}, {}, 4000000), tag + "the same stream in 4000000-byte IDATs", 1);
      }
    }
    check_paths(png_grey(w, h, depth, zs, exif), tag + "eXIf (orientation 6)", 0);
    check_paths(png_grey(w, h, depth, zs, {}, {}, 0, false), tag + "no IEND", 0);
    check_paths(png_grey(w, h, depth, {}), tag + "empty IDAT", 0);
    {
      // CINFO 0 (a 256-byte window) on stored blocks: no back-references, libpng decodes it; the
      // fast path leaves a window smaller than the data to libpng
      auto z = zlib_stored(raw);
      z[0] = 0x08;
      z[1] = uint8_t(31 - (0x08 * 256) % 31);
      check_paths(png_grey(w, h, depth, z), tag + "zlib window 256 bytes", 0);
    }
    // Every bit of the zlib stream flipped, the IDAT CRC made right again (so the damage reaches
    // the inflater): decode_png agrees with libpng (libdeflate and zlib must agree on what they
    // accept, or the fast path must leave the file to libpng).
    {
      int taken = 0, n = 0;
      for (size_t i = 0; i < zs.size(); ++i)
        for (int bit = 0; bit < 8; ++bit) {
          auto z = zs;
          z[i] ^= uint8_t(1 << bit);
          taken += check_paths(png_grey(w, h, depth, z), tag + carzero::strfmt("zlib byte %zu bit %d flipped", i, bit),
                               -1, true);
          ++n;
        }
      check(true,
            tag + carzero::strfmt("%d zlib-stream bit flips agree with libpng (%d taken by the fast path)", n, taken));
    }
    // Every truncation point and byte flips: decode_png agrees with libpng.
    {
      const auto b = png_grey(w, h, depth, zs, text, {}, 50);
      for (size_t n = 8; n < b.size(); n += (n < 60 || n + 40 > b.size()) ? 1 : 7)
        check_paths(std::vector<uint8_t>(b.begin(), b.begin() + n), tag + carzero::strfmt("cut at %zu", n), 0, true);
      for (size_t i = 8; i < b.size(); ++i)
        for (uint8_t m : {0x01, 0x80}) {
          auto t = b;
          t[i] ^= m;
          check_paths(t, tag + carzero::strfmt("byte %zu ^ 0x%02x", i, m), -1, true);
        }
    }
  }
  // Byte flips through a real fixture.
  {
    const auto g = read_file(fixture("image/src/grey8-768x96.png"));
    for (size_t i = 8; i < g.size(); i += g.size() / 211 + 1) {
      auto t = g;
      t[i] ^= 0x5a;
      check_paths(t, carzero::strfmt("fast path: grey8-768x96.png byte %zu flipped", i), -1, true);
    }
  }
  // The limits still apply before any allocation.
  {
    const Outcome r = png_path(png_grey(30000, 30000, 16, zlib_stored({0, 0})), 0);
    check(!r.ok && r.code == CZ_ERR_OUT_OF_MEMORY,
          "fast path: 16-bit 30000 x 30000 refused by the limits (" + r.msg + ")");
  }
}

}  // namespace

int main() {
  const img::Codecs c = img::codecs();
  std::printf("codecs: png %s, jpeg %s (%s)\n", c.png ? "yes" : "no", c.jpeg ? "yes" : "no", c.versions.c_str());
  if (!c.png) std::printf("SKIP PNG decoding checks: built without libpng (CZ_HAVE_PNG off)\n");
  if (!c.jpeg) std::printf("SKIP JPEG decoding checks: built without libjpeg (CZ_HAVE_JPEG off)\n");
  // Without a codec its decoder must refuse with CZ_ERR_UNSUPPORTED.
  for (const char* k : {"png", "jpeg"}) {
    if (has_codec(k)) continue;
    const auto b =
        read_file(fixture(std::string("image/src/") + (k == std::string("png") ? "grey8-512.png" : "grey.jpg")));
    check(decode_kind(k, b).code == CZ_ERR_UNSUPPORTED, std::string(k) + ": CZ_ERR_UNSUPPORTED without the codec");
  }
  try {
    test_index();
    test_jpeg_extra();
    test_limits();
    test_png_exif();
    test_damage();
    test_threads();
    test_preprocess_sizes();
    test_png_fast();
  } catch (const std::exception& e) {
    check(false, std::string("unexpected exception: ") + e.what());
  }
  std::printf("%d passed, %d failed\n", g_pass, g_fail);
  return g_fail ? 1 : 0;
}
