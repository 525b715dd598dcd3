// bench_decode: median time of the native image decode (image.h decode()) of one file.
//   bench_decode FILE [N=30]
// Prints medians over N runs (after one warm-up) of decoding the bytes already in memory and of
// reading the file + decoding (what cv2.imread(path, IMREAD_GRAYSCALE) does), each as wall time
// and as this thread's CPU time (steadier than wall time on a shared, loaded machine). For a PNG
// it also times the two PNG paths against each other, interleaved run by run (png.cpp: the
// libdeflate fast path for 8/16-bit grey, and the libpng path every PNG can take), from memory
// and as read + decode + preprocess (bench/peers/cv2_decode.py `time` is cv2's counterpart). Compare
// with, in the same session (time.thread_time is the CPU-time counterpart):
//   /usr/bin/python3 -c 'import cv2,time,statistics as s,sys; cv2.setNumThreads(1); p=sys.argv[1];
//     t=[(time.perf_counter(),cv2.imread(p,0),time.perf_counter()) for _ in range(30)];
//     print(s.median((b-a)*1e3 for a,_,b in t))' FILE
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <ctime>
#include <string>
#include <vector>

#include "core/status.h"
#include "image/image.h"

namespace carzero {
namespace img {
// png.cpp's test hook: 0 = decode_png, 1 = the libpng path only, 2 = the fast path only.
Gray8 decode_png_path(const uint8_t* buf, size_t len, const DecodeOptions& o, int path);
}  // namespace img
}  // namespace carzero

namespace {

std::vector<uint8_t> read_file(const char* path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(std::string("cannot open ") + path);
  f.seekg(0, std::ios::end);
  const std::streamoff n = f.tellg();
  f.seekg(0);
  std::vector<uint8_t> b(size_t(n > 0 ? n : 0));
  f.read(reinterpret_cast<char*>(b.data()), std::streamsize(b.size()));
  return b;
}

// This thread's CPU time in ms.
double cpu_ms() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE [N=30]\n", argv[0]);
    return 2;
  }
  const int runs = argc > 2 ? std::max(1, std::atoi(argv[2])) : 30;
  using clk = std::chrono::steady_clock;
  try {
    const auto bytes = read_file(argv[1]);
    const auto first = carzero::img::decode(bytes.data(), bytes.size());  // warm-up
    std::vector<double> mem, file, mem_cpu, file_cpu;
    for (int i = 0; i < runs; ++i) {
      const auto t0 = clk::now();
      const double c0 = cpu_ms();
      const auto img = carzero::img::decode(bytes.data(), bytes.size());
      mem_cpu.push_back(cpu_ms() - c0);
      mem.push_back(std::chrono::duration<double, std::milli>(clk::now() - t0).count());
      if (img.width != first.width) return 1;
    }
    for (int i = 0; i < runs; ++i) {
      const auto t0 = clk::now();
      const double c0 = cpu_ms();
      const auto b = read_file(argv[1]);
      const auto img = carzero::img::decode(b.data(), b.size());
      file_cpu.push_back(cpu_ms() - c0);
      file.push_back(std::chrono::duration<double, std::milli>(clk::now() - t0).count());
      if (img.width != first.width) return 1;
    }
    std::printf("%s: %s %d x %d, %zu bytes; median of %d: decode %.3f ms (cpu %.3f), read+decode %.3f ms (cpu %.3f)\n",
                argv[1], carzero::img::format_name(carzero::img::detect_format(bytes.data(), bytes.size())),
                first.width, first.height, bytes.size(), runs, median(mem), median(mem_cpu), median(file),
                median(file_cpu));
    if (carzero::img::detect_format(bytes.data(), bytes.size()) == carzero::img::Format::png) {
      bool fast_ok = true;
      try {
        carzero::img::decode_png_path(bytes.data(), bytes.size(), {}, 2);
      } catch (const carzero::Error& e) {
        fast_ok = false;
        std::printf("  png fast path: not taken (%s)\n", e.what());
      }
      // full = 0: decode from memory; 1: read the file + decode + preprocess (resize to 256 + pad,
      // centre crop 224, normalise: the work of cv2_decode.py's `time` per image).
      std::vector<float> crop(224 * 224);
      for (int full = 0; full < 2; ++full) {
        std::vector<double> w[2], c[2];
        for (int i = 0; i < runs; ++i)
          for (int p = fast_ok ? 0 : 1; p < 2; ++p) {  // 0 = fast, 1 = libpng, alternating
            const auto t0 = clk::now();
            const double c0 = cpu_ms();
            carzero::img::Gray8 img;
            if (full) {
              const auto b = read_file(argv[1]);
              img = carzero::img::decode_png_path(b.data(), b.size(), {}, p == 0 ? 2 : 1);
              carzero::img::preprocess(img, {}, nullptr, crop.data());
            } else {
              img = carzero::img::decode_png_path(bytes.data(), bytes.size(), {}, p == 0 ? 2 : 1);
            }
            c[p].push_back(cpu_ms() - c0);
            w[p].push_back(std::chrono::duration<double, std::milli>(clk::now() - t0).count());
            if (img.data != first.data) {
              std::fprintf(stderr, "%s: the %s path gives other pixels\n", argv[1], p == 0 ? "fast" : "libpng");
              return 1;
            }
          }
        const char* what = full ? "read+decode+preprocess" : "decode from memory";
        if (fast_ok)
          std::printf(
              "  png paths, %s, median of %d interleaved: fast %.3f ms (cpu %.3f), libpng %.3f ms "
              "(cpu %.3f); fast/libpng cpu %.2f\n",
              what, runs, median(w[0]), median(c[0]), median(w[1]), median(c[1]), median(c[0]) / median(c[1]));
        else
          std::printf("  png libpng path, %s: %.3f ms (cpu %.3f)\n", what, median(w[1]), median(c[1]));
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[1], e.what());
    return 1;
  }
  return 0;
}
