// test_resize.cpp: the native INTER_AREA resize and CARZero preprocessing (image.h) against
// OpenCV 4.6 and the original resize_img arithmetic.
//   (a) every case of test/fixtures/image/resize.bin (small random images, every resize path),
//       bit-exact with cv2;
//   (b) test/fixtures/image/resize-large.bin (tools/fixtures-resize-large.py): CARZero-sized
//       resizes of large images; the sources are regenerated here from the generator's integer
//       formula, only cv2's outputs are stored; also the full preprocess of three of them;
//   (c) pad_layout for every W, H in 1..4096 against resize_img's double arithmetic;
//   (d) placement: every 256xk and kx256 image lands whole at its offsets with zeros around it,
//       over a buffer that held garbage, and the crop is the table lookup of the padded square;
//   (e) normalise_table against the float32 formula; errors are thrown, not crashes.
// Prints "N passed, M failed" last and exits non-zero on any failure.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "image/image.h"
#include "resize_source.h"

using namespace carzero;
using namespace carzero::img;

namespace {

int g_passed = 0, g_failed = 0;

void check(bool ok, const std::string& what) {
  if (ok) {
    g_passed++;
  } else {
    g_failed++;
    std::printf("FAIL: %s\n", what.c_str());
  }
}

std::vector<uint8_t> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

uint32_t u32le(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

// First differing byte of two w*h images, as a message, or "" when equal.
std::string first_diff(const uint8_t* got, const uint8_t* want, int w, int h) {
  size_t ndiff = 0, first = 0;
  for (size_t i = 0; i < size_t(w) * size_t(h); i++)
    if (got[i] != want[i] && ndiff++ == 0) first = i;
  if (!ndiff) return "";
  char buf[160];
  std::snprintf(buf, sizeof buf, "%zu bytes differ, first at (x %d, y %d): got %d want %d", ndiff,
                int(first % size_t(w)), int(first / size_t(w)), got[first], want[first]);
  return buf;
}

std::string size_str(int w, int h, int dw, int dh) {
  char buf[80];
  std::snprintf(buf, sizeof buf, "%dx%d -> %dx%d", w, h, dw, dh);
  return buf;
}

// (a) ------------------------------------------------------------------------------------------
void test_small_fixture() {
  const std::string path = std::string(CZ_FIXTURE_DIR) + "/image/resize.bin";
  const std::vector<uint8_t> f = slurp(path);
  check(!f.empty(), "read " + path);
  size_t pos = 0;
  int cases = 0, bad = 0;
  while (pos + 16 <= f.size()) {
    const int w = int(u32le(&f[pos])), h = int(u32le(&f[pos + 4]));
    const int dw = int(u32le(&f[pos + 8])), dh = int(u32le(&f[pos + 12]));
    pos += 16;
    const size_t ns = size_t(w) * h, nd = size_t(dw) * dh;
    if (pos + ns + nd > f.size()) {
      check(false, "resize.bin truncated");
      return;
    }
    std::vector<uint8_t> got(nd, 0xCD);
    resize_area(&f[pos], w, h, got.data(), dw, dh);
    const std::string d = first_diff(got.data(), &f[pos + ns], dw, dh);
    check(d.empty(), "resize.bin case " + std::to_string(cases) + " " + size_str(w, h, dw, dh) + ": " + d);
    if (!d.empty()) bad++;
    pos += ns + nd;
    cases++;
  }
  check(pos == f.size() && cases > 0, "resize.bin parsed to its end");
  std::printf("resize.bin: %d cases, %d mismatched\n", cases, bad);
}

struct LargeCase {
  int w, h, dw, dh;
  uint32_t seed;
  const uint8_t* want;
};

std::vector<LargeCase> read_large(const std::vector<uint8_t>& f) {
  std::vector<LargeCase> out;
  size_t pos = 0;
  uint32_t seed = 0;
  while (pos + 16 <= f.size()) {
    LargeCase c;
    c.w = int(u32le(&f[pos]));
    c.h = int(u32le(&f[pos + 4]));
    c.dw = int(u32le(&f[pos + 8]));
    c.dh = int(u32le(&f[pos + 12]));
    c.seed = seed++;
    pos += 16;
    if (pos + size_t(c.dw) * c.dh > f.size()) break;
    c.want = &f[pos];
    pos += size_t(c.dw) * c.dh;
    out.push_back(c);
  }
  check(pos == f.size(), "resize-large.bin parsed to its end");
  return out;
}

void test_large_fixture() {
  const std::string path = std::string(CZ_FIXTURE_DIR) + "/image/resize-large.bin";
  const std::vector<uint8_t> f = slurp(path);
  check(!f.empty(), "read " + path);
  const std::vector<LargeCase> cases = read_large(f);
  check(cases.size() >= 10, "resize-large.bin has its cases");
  int bad = 0;
  for (const LargeCase& c : cases) {
    const std::vector<uint8_t> src = resize_source(c.w, c.h, c.seed);
    std::vector<uint8_t> got(size_t(c.dw) * c.dh, 0xCD);
    resize_area(src.data(), c.w, c.h, got.data(), c.dw, c.dh);
    const std::string d = first_diff(got.data(), c.want, c.dw, c.dh);
    check(d.empty(), "resize-large " + size_str(c.w, c.h, c.dw, c.dh) + ": " + d);
    if (!d.empty()) bad++;

    // Full preprocess for the CARZero-sized cases: the padded square is the cv2 output placed at
    // pad_layout's offsets, the crop its normalised centre.
    const PadLayout l = pad_layout(c.w, c.h, 256);
    if (l.width != c.dw || l.height != c.dh) continue;
    Gray8 g;
    g.width = c.w;
    g.height = c.h;
    g.data = src;
    std::vector<uint8_t> padded(256 * 256, 0x5A);
    std::vector<float> crop(224 * 224, -1e9f);
    const PadLayout r = preprocess(g, PreprocessOptions{}, padded.data(), crop.data());
    std::vector<uint8_t> want(256 * 256, 0);
    for (int y = 0; y < c.dh; y++)
      std::memcpy(&want[size_t(l.top + y) * 256 + l.left], c.want + size_t(y) * c.dw, size_t(c.dw));
    const std::string pd = first_diff(padded.data(), want.data(), 256, 256);
    check(r.width == l.width && r.height == l.height && r.left == l.left && r.top == l.top,
          "preprocess layout " + size_str(c.w, c.h, c.dw, c.dh));
    check(pd.empty(), "preprocess padded " + size_str(c.w, c.h, c.dw, c.dh) + ": " + pd);
    float table[256];
    normalise_table(0.4978f, 0.2449f, table);
    bool crop_ok = true;
    for (int y = 0; y < 224 && crop_ok; y++)
      for (int x = 0; x < 224; x++)
        if (std::memcmp(&crop[size_t(y) * 224 + x], &table[want[size_t(y + 16) * 256 + x + 16]], 4)) {
          crop_ok = false;
          break;
        }
    check(crop_ok, "preprocess crop " + size_str(c.w, c.h, c.dw, c.dh));
  }
  std::printf("resize-large.bin: %zu cases, %d mismatched\n", cases.size(), bad);
}

// (c) ------------------------------------------------------------------------------------------
void test_pad_layout() {
  long bad = 0;
  for (int h = 1; h <= 4096; h++) {
    for (int w = 1; w <= 4096; w++) {
      // resize_img: size = (H, W); max_ind = argmax -> 0 (height) on a tie.
      int rw, rh;
      if (h >= w) {
        rh = 256;
        rw = int(std::trunc(w * (256.0 / h)));
      } else {
        rw = 256;
        rh = int(std::trunc(h * (256.0 / w)));
      }
      const int left = int(std::floor((256 - rw) / 2.0)), top = int(std::floor((256 - rh) / 2.0));
      const PadLayout l = pad_layout(w, h, 256);
      if (l.width != rw || l.height != rh || l.left != left || l.top != top) {
        if (bad++ < 5)
          std::printf("  pad_layout(%d, %d) = %dx%d at (%d, %d), want %dx%d at (%d, %d)\n", w, h, l.width, l.height,
                      l.left, l.top, rw, rh, left, top);
      }
    }
  }
  check(bad == 0, "pad_layout over 1..4096 squared (" + std::to_string(bad) + " wrong)");
  // Known values from the TypeScript side and resize_img itself.
  PadLayout l = pad_layout(1745, 1745);
  check(l.width == 255 && l.height == 256 && l.left == 0 && l.top == 0, "pad_layout 1745 square -> 255x256 at 0");
  l = pad_layout(2048, 2500);
  check(l.width == 209 && l.height == 256 && l.left == 23 && l.top == 0, "pad_layout 2048x2500 -> 209x256 at left 23");
  l = pad_layout(2500, 2048);
  check(l.width == 256 && l.height == 209 && l.left == 0 && l.top == 23, "pad_layout 2500x2048 -> 256x209 at top 23");
  l = pad_layout(100, 100, 224);
  check(l.width == 224 && l.height == 224, "pad_layout with scale 224");
}

// (d) ------------------------------------------------------------------------------------------
void test_placement() {
  float table[256];
  normalise_table(0.4978f, 0.2449f, table);
  int bad = 0;
  std::vector<uint8_t> padded(256 * 256);
  std::vector<float> crop(224 * 224);
  for (int k = 1; k <= 256; k++) {
    for (int orient = 0; orient < 2; orient++) {
      const int w = orient ? k : 256, h = orient ? 256 : k;
      Gray8 g;
      g.width = w;
      g.height = h;
      g.data.resize(size_t(w) * h);
      // Never 0, so a pixel that went missing or moved shows against the zero padding.
      for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) g.data[size_t(y) * w + x] = uint8_t(1 + (x * 7 + y * 13 + k) % 255);
      std::memset(padded.data(), 0xEE, padded.size());  // garbage from a previous image
      std::fill(crop.begin(), crop.end(), 12345.f);
      const PadLayout l = preprocess(g, PreprocessOptions{}, padded.data(), crop.data());
      const int left = (256 - w) / 2, top = (256 - h) / 2;
      bool ok = l.width == w && l.height == h && l.left == left && l.top == top;
      for (int y = 0; y < 256 && ok; y++) {
        for (int x = 0; x < 256; x++) {
          const bool inside = x >= left && x < left + w && y >= top && y < top + h;
          const uint8_t want = inside ? g.data[size_t(y - top) * w + (x - left)] : 0;
          if (padded[size_t(y) * 256 + x] != want) {
            ok = false;
            break;
          }
        }
      }
      for (int y = 0; y < 224 && ok; y++)
        for (int x = 0; x < 224; x++)
          if (std::memcmp(&crop[size_t(y) * 224 + x], &table[padded[size_t(y + 16) * 256 + x + 16]], 4)) {
            ok = false;
            break;
          }
      if (!ok && bad++ < 5) std::printf("  placement of a %dx%d image is wrong\n", w, h);
      // The same without a caller-provided padded buffer: the crop must not change.
      if (ok && (k % 17 == 0 || k == 255)) {
        std::vector<float> crop2(224 * 224, -7.f);
        preprocess(g, PreprocessOptions{}, nullptr, crop2.data());
        if (std::memcmp(crop2.data(), crop.data(), crop.size() * 4) && bad++ < 5)
          std::printf("  crop without padded buffer differs for %dx%d\n", w, h);
      }
    }
  }
  check(bad == 0, "placement of every 256xk and kx256 image (" + std::to_string(bad) + " wrong)");
  // Options other than the default: an odd difference rounds half up (Math.round), 2.5 -> 3.
  Gray8 g;
  g.width = g.height = 10;
  g.data.resize(100);
  for (int i = 0; i < 100; i++) g.data[size_t(i)] = uint8_t(i);
  PreprocessOptions o;
  o.resize = 10;
  o.crop = 5;
  std::vector<uint8_t> pd(100);
  std::vector<float> cr(25);
  preprocess(g, o, pd.data(), cr.data());
  float t[256];
  normalise_table(o.mean, o.std, t);
  // torchvision: int(round(2.5)) with Python's round (half to even) = 2
  check(std::memcmp(&cr[0], &t[22], 4) == 0 && std::memcmp(&cr[24], &t[66], 4) == 0,
        "crop offset int(round((10 - 5) / 2.0)) == 2");
}

// (e) ------------------------------------------------------------------------------------------
void test_normalise() {
  const float means[] = {0.4978f, 0.5f, 0.f, 0.485f};
  const float stds[] = {0.2449f, 0.5f, 1.f, 0.229f};
  int bad = 0;
  for (int i = 0; i < 4; i++) {
    float t[256];
    normalise_table(means[i], stds[i], t);
    for (int v = 0; v < 256; v++) {
      volatile float x = float(double(v) / 255.0);  // volatile: one float rounding per step
      volatile float c = x - means[i];
      volatile float want = c / stds[i];
      if (std::memcmp(&t[v], (const void*)&want, 4)) bad++;
    }
  }
  check(bad == 0, "normalise_table matches the float32 formula");
  float t[256];
  normalise_table(0.4978f, 0.2449f, t);
  // A value checked by hand: (0 - 0.4978) / 0.2449 in float32.
  check(std::fabs(t[0] - (-0.4978f / 0.2449f)) < 1e-6f && t[255] > 2.05f && t[255] < 2.06f,
        "normalise_table default values");
}

void expect_throw(const std::string& what, const std::function<void()>& fn, const char* needle = nullptr) {
  try {
    fn();
    check(false, what + ": no error thrown");
  } catch (const Error& e) {
    const bool ok = e.code() == CZ_ERR_INVALID_ARGUMENT && (!needle || std::strstr(e.what(), needle));
    check(ok, what + ": got code " + std::to_string(int(e.code())) + " \"" + e.what() + "\"");
  } catch (const std::exception& e) {
    check(false, what + ": wrong exception type: " + e.what());
  }
}

void test_errors() {
  auto image = [](int w, int h) {
    Gray8 g;
    g.width = w;
    g.height = h;
    g.data.assign(size_t(w) * size_t(h), 100);
    return g;
  };
  std::vector<uint8_t> pd(256 * 256);
  std::vector<float> cr(224 * 224);
  expect_throw(
      "65535x40 resizes to 256x0", [&] { preprocess(image(65535, 40), {}, pd.data(), cr.data()); },
      "a 65535x40 image resizes to 256x0");
  expect_throw(
      "1x300 resizes to 0x256", [&] { preprocess(image(1, 300), {}, pd.data(), cr.data()); }, "resizes to 0x256");
  PreprocessOptions o;
  o.resize = 0;
  expect_throw(
      "resize 0", [&] { preprocess(image(10, 10), o, nullptr, nullptr); }, "resize");
  o = {};
  o.crop = 0;
  expect_throw(
      "crop 0", [&] { preprocess(image(10, 10), o, nullptr, nullptr); }, "crop");
  o = {};
  o.crop = 257;
  expect_throw(
      "crop > resize", [&] { preprocess(image(10, 10), o, nullptr, nullptr); }, "crop");
  Gray8 empty;
  empty.width = 10;
  empty.height = 10;
  expect_throw("no pixel data", [&] { preprocess(empty, {}, nullptr, nullptr); });
  Gray8 small = image(10, 10);
  small.data.resize(99);
  expect_throw("data size mismatch", [&] { preprocess(small, {}, nullptr, nullptr); });
  Gray8 zero;
  expect_throw("0x0 image", [&] { preprocess(zero, {}, nullptr, nullptr); });
  Gray8 neg = image(4, 4);
  neg.width = -4;
  expect_throw("negative width", [&] { preprocess(neg, {}, nullptr, nullptr); });
  uint8_t px[4] = {1, 2, 3, 4}, outp[4];
  expect_throw("resize_area to 0 wide", [&] { resize_area(px, 2, 2, outp, 0, 2); });
  expect_throw("resize_area null src", [&] { resize_area(nullptr, 2, 2, outp, 1, 1); });
  expect_throw("pad_layout 0 wide", [&] { pad_layout(0, 5); });
  // Nothing thrown for the smallest valid input.
  bool ok = true;
  try {
    preprocess(image(1, 1), {}, pd.data(), cr.data());
  } catch (...) {
    ok = false;
  }
  check(ok && pd[0] == 100 && pd[256 * 256 - 1] == 100, "1x1 image enlarges to a full square");
}

// Runs this executable again with CARZERO_CPU=generic, so the scalar fallback of the kernels
// (chosen once per process) is tested too; echoes its output and adds its counts.
void run_generic_child(const char* self) {
  const std::string cmd = std::string("CARZERO_CPU=generic '") + self + "' 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    check(false, "could not run the CARZERO_CPU=generic pass");
    return;
  }
  char line[512];
  int passed = -1, failed = -1;
  while (std::fgets(line, sizeof line, p)) {
    std::printf("  [generic] %s", line);
    std::sscanf(line, "%d passed, %d failed", &passed, &failed);
  }
  const int rc = pclose(p);
  if (passed < 0 || failed < 0) {
    check(false, "CARZERO_CPU=generic pass printed no summary (exit status " + std::to_string(rc) + ")");
    return;
  }
  g_passed += passed;
  g_failed += failed;
}

}  // namespace

int main(int argc, char** argv) {
  (void)argc;
  const std::pair<const char*, void (*)()> tests[] = {
      {"small fixture", test_small_fixture}, {"large fixture", test_large_fixture}, {"pad_layout", test_pad_layout},
      {"placement", test_placement},         {"normalise", test_normalise},         {"errors", test_errors},
  };
  const char* isa = std::getenv("CARZERO_CPU");
  std::printf("kernels: %s\n", isa ? isa : "default (CPUID)");
  for (const auto& t : tests) {
    try {
      t.second();
    } catch (const std::exception& e) {
      check(false, std::string(t.first) + ": unexpected exception: " + e.what());
    }
  }
  if (!isa) run_generic_child(argv[0]);
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}
