// test_dicom.cpp: the native DICOM decoder against test/fixtures/dicom (made by
// tools/fixtures-dicom.py with dcmtk / gdcm, an independent toolkit) and the DICOM cases of
// test/fixtures/image (the TypeScript decoder's rule). For every fixture and frame: the stored
// values (dicom_decode_raw) and the 8-bit output (decode_dicom) exactly; every corrupt file gives a
// carzero::Error with the expected code and message part; frame selection, dicom_frame_count,
// limits; and a mutation pass (truncations, byte flips) that must never crash.
// Prints one line per failure and ends with "N passed, M failed"; exits non-zero on failure.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/status.h"
#include "image/dicom.h"
#include "image/image.h"

using namespace carzero;
using namespace carzero::img;

namespace {

int g_pass = 0, g_fail = 0;
const std::string kDir = std::string(CZ_FIXTURE_DIR) + "/dicom/";
const std::string kImageDir = std::string(CZ_FIXTURE_DIR) + "/image/";

void check(bool ok, const std::string& what) {
  if (ok) {
    g_pass++;
  } else {
    g_fail++;
    std::printf("FAIL %s\n", what.c_str());
  }
}

std::vector<uint8_t> slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    std::printf("FAIL cannot read %s\n", path.c_str());
    g_fail++;
    return {};
  }
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

const char* code_name(cz_status c) {
  switch (c) {
    case CZ_ERR_INVALID_ARGUMENT: return "CZ_ERR_INVALID_ARGUMENT";
    case CZ_ERR_OUT_OF_MEMORY: return "CZ_ERR_OUT_OF_MEMORY";
    case CZ_ERR_FORMAT: return "CZ_ERR_FORMAT";
    case CZ_ERR_UNSUPPORTED: return "CZ_ERR_UNSUPPORTED";
    case CZ_ERR_INTERNAL: return "CZ_ERR_INTERNAL";
    default: return "other";
  }
}

std::string str_of(const json::Value& c, const char* key) {
  const json::Value* v = c.find(key);
  return v && v->is_string() ? v->str : std::string();
}
int64_t int_of(const json::Value& c, const char* key) {
  const json::Value* v = c.find(key);
  return v && v->is_number() ? v->as_int64(key) : -1;
}

bool has_syntax(const std::string& ts) {
  for (const auto& s : dicom_transfer_syntaxes())
    if (s == ts) return true;
  return false;
}

// Expects decoding to throw carzero::Error(code) with `part` in the message.
void expect_error(const std::string& name, const std::vector<uint8_t>& buf, const std::string& code,
                  const std::string& part, const DecodeOptions& o = {}) {
  try {
    Gray8 g = decode_dicom(buf.data(), buf.size(), o);
    check(false,
          name + ": decoded (" + std::to_string(g.width) + "x" + std::to_string(g.height) + "), expected " + code);
  } catch (const Error& e) {
    const bool ok = code == code_name(e.code()) && std::strstr(e.what(), part.c_str()) != nullptr;
    check(ok, name + ": got " + code_name(e.code()) + " \"" + e.what() + "\", expected " + code + " containing \"" +
                  part + "\"");
    if (ok) std::printf("ok   %-26s %s: %s\n", name.c_str(), code.c_str(), e.what());
  } catch (const std::exception& e) {
    check(false, name + ": std::exception " + e.what());
  }
}

// A case whose syntax (or 12-bit variant) this build refuses: it must be a clear UNSUPPORTED.
bool refused_as_declared(const std::string& name, const std::vector<uint8_t>& buf, const std::string& ts) {
  try {
    decode_dicom(buf.data(), buf.size(), {});
    return false;
  } catch (const Error& e) {
    if (e.code() == CZ_ERR_UNSUPPORTED && std::strstr(e.what(), ts.c_str())) {
      std::printf("skip %-26s refused as unsupported: %s\n", name.c_str(), e.what());
      g_pass++;
      return true;
    }
    return false;
  }
}

void run_case(const json::Value& c) {
  const std::string name = str_of(c, "name");
  const std::vector<uint8_t> buf = slurp(kDir + str_of(c, "file"));
  if (buf.empty()) return;
  const std::string ts = str_of(c, "ts");
  if (c.find("error")) {
    if (!has_syntax(ts))  // a build without the codec (zlib, libjpeg, OpenJPEG) refuses the syntax
      expect_error(name, buf, "CZ_ERR_UNSUPPORTED", ts);
    else
      expect_error(name, buf, str_of(c, "error"), str_of(c, "message"));
    return;
  }
  const int rows = int(int_of(c, "rows")), cols = int(int_of(c, "cols")), frames = int(int_of(c, "frames"));
  const int bits_stored = int(int_of(c, "bits_stored"));
  // A syntax this build lacks the codec for (zlib, libjpeg, OpenJPEG): a clear UNSUPPORTED.
  if (!has_syntax(ts)) {
    if (!refused_as_declared(name, buf, ts)) check(false, name + ": not refused as an unsupported syntax");
    return;
  }

  const std::vector<uint8_t> raw = slurp(kDir + str_of(c, "raw"));
  const std::string dtype = str_of(c, "raw_dtype");
  const size_t n = size_t(rows) * size_t(cols);
  const size_t bpp = dtype == "u8" ? 1 : 2;
  if (raw.size() != n * size_t(frames) * bpp) {
    check(false, name + ": expected raw file has the wrong size");
    return;
  }
  try {
    check(dicom_frame_count(buf.data(), buf.size()) == frames, name + ": dicom_frame_count");
    const json::Value* u8s = c.find("u8");
    bool all_ok = true;
    for (int k = 0; k < frames; k++) {
      DecodeOptions o;
      o.frame = k;
      const DicomRaw r = dicom_decode_raw(buf.data(), buf.size(), o);
      const std::string fk = name + " frame " + std::to_string(k);
      bool ok = r.rows == rows && r.cols == cols && r.frames == frames && r.ts == ts && r.bits_stored == bits_stored &&
                r.pixel_rep == int(int_of(c, "pixel_rep")) && r.photometric == str_of(c, "photometric") &&
                r.values.size() == n;
      check(ok, fk + ": header fields");
      if (!ok) {
        all_ok = false;
        continue;
      }
      size_t bad = 0, first_bad = 0;
      for (size_t i = 0; i < n; i++) {
        const size_t j = size_t(k) * n + i;
        int32_t e;
        if (dtype == "u8")
          e = raw[j];
        else if (dtype == "u16")
          e = int32_t(raw[2 * j] | raw[2 * j + 1] << 8);
        else
          e = int16_t(uint16_t(raw[2 * j] | raw[2 * j + 1] << 8));
        if (r.values[i] != e) {
          if (!bad) first_bad = i;
          bad++;
        }
      }
      check(bad == 0, fk + ": " + std::to_string(bad) + " stored values differ (first at " + std::to_string(first_bad) +
                          ": got " + (bad ? std::to_string(r.values[first_bad]) : "") + ")");
      const std::vector<uint8_t> exp = slurp(kDir + u8s->arr[size_t(k)].str);
      const Gray8 g = decode_dicom(buf.data(), buf.size(), o);
      size_t bad8 = 0;
      if (g.width == cols && g.height == rows && exp.size() == n)
        for (size_t i = 0; i < n; i++) bad8 += g.data[i] != exp[i];
      else
        bad8 = n;
      check(bad8 == 0, fk + ": " + std::to_string(bad8) + " 8-bit output pixels differ");
      all_ok = all_ok && bad == 0 && bad8 == 0;
    }
    if (all_ok) std::printf("ok   %-26s %s, %d frame%s\n", name.c_str(), ts.c_str(), frames, frames > 1 ? "s" : "");
    // Frame selection past the end.
    DecodeOptions past;
    past.frame = frames;
    expect_error(name + " frame past end", buf, "CZ_ERR_INVALID_ARGUMENT", "out of range", past);
  } catch (const Error& e) {
    check(false, name + ": " + code_name(e.code()) + " " + e.what());
  }
}

// Truncations and byte flips of a fixture: decoding may succeed or throw carzero::Error, nothing else.
void mutate(const std::string& file, int flips) {
  const std::vector<uint8_t> orig = slurp(kDir + file);
  if (orig.empty()) return;
  std::mt19937 rng(1234);
  int errors = 0, decoded = 0, others = 0;
  auto attempt = [&](const std::vector<uint8_t>& b) {
    try {
      decode_dicom(b.data(), b.size(), {});
      dicom_frame_count(b.data(), b.size());
      decoded++;
    } catch (const Error&) {
      errors++;
    } catch (...) {
      others++;
    }
  };
  for (size_t cut = 0; cut < orig.size(); cut += 1 + orig.size() / 97) {
    std::vector<uint8_t> b(orig.begin(), orig.begin() + long(cut));
    attempt(b);
  }
  for (int i = 0; i < flips; i++) {
    std::vector<uint8_t> b = orig;
    const int count = 1 + int(rng() % 4);
    for (int k = 0; k < count; k++) b[rng() % b.size()] ^= uint8_t(1 + rng() % 255);
    attempt(b);
  }
  check(others == 0, "mutations of " + file + ": " + std::to_string(others) + " non-carzero exceptions");
  std::printf("ok   mutations of %-16s %d decoded, %d carzero::Error\n", file.c_str(), decoded, errors);
}

}  // namespace

int main() {
  std::string text;
  {
    std::ifstream f(kDir + "index.json");
    std::stringstream ss;
    ss << f.rdbuf();
    text = ss.str();
  }
  json::Value index;
  try {
    index = json::parse(text, kDir + "index.json");
  } catch (const Error& e) {
    std::printf("FAIL %s\n0 passed, 1 failed\n", e.what());
    return 1;
  }
  std::printf("transfer syntaxes:");
  for (const auto& s : dicom_transfer_syntaxes()) std::printf(" %s", s.c_str());
  std::printf("\n");
  for (const auto& c : index.find("cases")->arr) run_case(c);

  // test/fixtures/image DICOM cases (the TypeScript decoder's expected outputs).
  for (const auto& c : index.find("image_cases")->arr) {
    const std::string name = str_of(c, "name");
    const std::vector<uint8_t> buf = slurp(kImageDir + "src/" + name + ".dcm");
    const std::vector<uint8_t> exp = slurp(kDir + str_of(c, "expected"));
    try {
      const Gray8 g = decode(buf.data(), buf.size());
      const bool ok = g.data == exp;
      check(ok, "image/" + name + ": output differs from expect/" + name + ".decoded.png");
      if (ok) std::printf("ok   image/%-20s %dx%d as the TypeScript decoder\n", name.c_str(), g.width, g.height);
    } catch (const Error& e) {
      check(false, "image/" + name + ": " + e.what());
    }
  }
  // Its corrupt cases: a fake JPEG frame and a truncated file.
  if (has_syntax("1.2.840.10008.1.2.4.50"))
    expect_error("image/dicom-jpeg", slurp(kImageDir + "src/dicom-jpeg.dcm"), "CZ_ERR_FORMAT", "");
  else
    expect_error("image/dicom-jpeg", slurp(kImageDir + "src/dicom-jpeg.dcm"), "CZ_ERR_UNSUPPORTED",
                 "1.2.840.10008.1.2.4.50");
  expect_error("image/truncated", slurp(kImageDir + "src/truncated.dcm"), "CZ_ERR_FORMAT", "truncated");
  {  // big endian is read natively now: same output as its little-endian twin's rule
    const std::vector<uint8_t> be = slurp(kImageDir + "src/dicom-bigendian.dcm");
    try {
      const Gray8 g = decode_dicom(be.data(), be.size(), {});
      check(g.width == 20 && g.height == 20, "image/dicom-bigendian: size");
    } catch (const Error& e) {
      check(false, std::string("image/dicom-bigendian: ") + e.what());
    }
  }
  // Limits: a small max_pixels refuses from the header.
  {
    DecodeOptions o;
    o.limits.max_pixels = 1000;
    expect_error("limits max_pixels", slurp(kDir + "u16-explicit.dcm"), "CZ_ERR_OUT_OF_MEMORY", "80 x 60", o);
    expect_error("limits max_pixels jpll", slurp(kDir + "u16-jpll-sv3.dcm"), "CZ_ERR_OUT_OF_MEMORY", "80 x 60", o);
    DecodeOptions s;
    s.limits.max_side = 50;
    expect_error("limits max_side", slurp(kDir + "u16-rle.dcm"), "CZ_ERR_OUT_OF_MEMORY", "80 x 60", s);
  }
  // Not DICOM at all.
  {
    const std::vector<uint8_t> junk = {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'};
    expect_error("not dicom", junk, "CZ_ERR_FORMAT", "not a DICOM");
    expect_error("empty", std::vector<uint8_t>(), "CZ_ERR_FORMAT", "");
  }
  // Robustness: truncations and random byte flips never crash.
  for (const char* f : {"u16-explicit.dcm", "s16-big.dcm", "multi-deflated.dcm", "u16-rle.dcm", "u16-jpll-sv3.dcm",
                        "multi-jpll-frag-nobot.dcm", "u12-j2k.dcm", "u8-j2k-lossy.dcm", "u8-jpeg-baseline.dcm",
                        "u12-jpeg-extended.dcm", "u16-jpls.dcm", "u12-jpls-near5.dcm", "flat-jpls.dcm"})
    mutate(f, 300);

  std::printf("%d passed, %d failed\n", g_pass, g_fail);
  return g_fail ? 1 : 0;
}
