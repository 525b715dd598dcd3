// bench_image.cpp: the native image preprocessing on one thread: resize_area 2048x2500 -> 209x256
// (the general INTER_AREA path a typical portrait chest X-ray takes) and the full preprocess
// (resize + pad + centre crop + normalise) of the same decoded grey image. Medians of --reps runs.
//
// With --cv2 it also runs cv2's time on the same image in the same session, from
// tools/fixtures-resize-large.py --bench (Debian's /usr/bin/python3 with OpenCV 4.6,
// cv2.setNumThreads(1)), between two rounds of ours so both see the same machine load.
// The image is that script's deterministic `source(2048, 2500, 0)`, so the two time equal inputs.
//
// Usage (from the repository root): bench_image [--reps N] [--cv2] [--python PATH]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "image/image.h"
#include "../tests/image/resize_source.h"

using namespace carzero;
using namespace carzero::img;

namespace {

struct Timing {
  double median, min;
};

template <class F>
Timing time_ms(int reps, F&& fn) {
  fn();  // warm-up: page in the buffers, build nothing lazily inside the timing
  std::vector<double> t;
  for (int i = 0; i < reps; i++) {
    const auto a = std::chrono::steady_clock::now();
    fn();
    const auto b = std::chrono::steady_clock::now();
    t.push_back(std::chrono::duration<double, std::milli>(b - a).count());
  }
  std::sort(t.begin(), t.end());
  return {t[t.size() / 2], t[0]};
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 15;
  bool with_cv2 = false;
  std::string python = "/usr/bin/python3";
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--reps" && i + 1 < argc)
      reps = std::max(7, std::atoi(argv[++i]));
    else if (a == "--cv2")
      with_cv2 = true;
    else if (a == "--python" && i + 1 < argc)
      python = argv[++i];
    else {
      std::fprintf(stderr, "usage: bench_image [--reps N >= 7] [--cv2] [--python PATH]\n");
      return 2;
    }
  }
  const int w = 2048, h = 2500;
  Gray8 g;
  g.width = w;
  g.height = h;
  g.data = resize_source(w, h, 0);
  const PadLayout l = pad_layout(w, h);
  std::vector<uint8_t> small(size_t(l.width) * l.height), padded(256 * 256);
  std::vector<float> crop(224 * 224);

  std::printf("cpu: %s (kernels: %s)\n", cpu_features().brand.c_str(), cpu_isa_name(cpu_isa()));
  auto ours = [&](const char* round) {
    const Timing r = time_ms(reps, [&] { resize_area(g.data.data(), w, h, small.data(), l.width, l.height); });
    const Timing p = time_ms(reps, [&] { preprocess(g, PreprocessOptions{}, padded.data(), crop.data()); });
    std::printf(
        "ours %s: resize_area %dx%d -> %dx%d median %.3f ms, min %.3f ms; preprocess "
        "(resize+pad+crop+normalise) median %.3f ms, min %.3f ms (%d runs, 1 thread)\n",
        round, w, h, l.width, l.height, r.median, r.min, p.median, p.min, reps);
    std::fflush(stdout);
  };
  ours("round 1");
  if (with_cv2) {
    const std::string cmd = python + " tools/fixtures-resize-large.py --bench";
    std::fflush(stdout);
    const int rc = std::system(cmd.c_str());
    if (rc != 0) std::printf("(cv2 timing failed: `%s` returned %d; run from the repository root)\n", cmd.c_str(), rc);
    ours("round 2");
  }
  return 0;
}
