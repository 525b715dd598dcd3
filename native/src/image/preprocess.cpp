// preprocess.cpp: CARZero's inference preprocessing on a decoded grey image (image.h), the
// native twin of src/image/preprocess.ts: resize_img's layout (longer side -> scale, INTER_AREA,
// zero pad), torchvision's centre crop and ToTensor + Normalize in float32.
#include <cstring>
#include <vector>

#include "core/status.h"
#include "image/image.h"

namespace carzero {
namespace img {

PadLayout pad_layout(int32_t width, int32_t height, int32_t scale) {
  CZ_ARG(width >= 1 && height >= 1, "pad_layout: bad image size %dx%d", width, height);
  CZ_ARG(scale >= 1, "pad_layout: bad scale %d", scale);
  PadLayout l;
  // resize_img: size = (H, W), the longer side is the first maximum, so height wins a tie. The
  // other side is int(side * (scale / longer)) with the division first, in double, exactly as
  // the Python original evaluates it (a 1745 square gives 255, not 256: 256/1745*1745 < 256).
  if (height >= width) {
    l.height = scale;
    l.width = int32_t(double(width) * (double(scale) / double(height)));
  } else {
    l.width = scale;
    l.height = int32_t(double(height) * (double(scale) / double(width)));
  }
  // floor(pad / 2) before, the rest after (pad >= 0 here, so integer division is the floor).
  l.left = (scale - l.width) / 2;
  l.top = (scale - l.height) / 2;
  return l;
}

void normalise_table(float mean, float std, float table[256]) {
  for (int v = 0; v < 256; v++) {
    // ToTensor divides in float (the double quotient rounded once to float32 is the same value),
    // then Normalize subtracts and divides in float32.
    const float x = float(double(v) / 255.0);
    const float centred = x - mean;
    table[v] = centred / std;
  }
}

PadLayout preprocess(const Gray8& img, const PreprocessOptions& o, uint8_t* padded, float* out) {
  CZ_ARG(o.resize >= 1, "preprocess: option 'resize' must be a positive integer, got %d", o.resize);
  CZ_ARG(o.crop >= 1 && o.crop <= o.resize, "preprocess: option 'crop' must be an integer in 1..resize (%d), got %d",
         o.resize, o.crop);
  CZ_ARG(img.width >= 1 && img.height >= 1, "preprocess: bad image size %dx%d", img.width, img.height);
  CZ_ARG(!img.data.empty(), "preprocess: the image has no pixel data");
  const uint64_t npix = uint64_t(img.width) * uint64_t(img.height);
  CZ_ARG(uint64_t(img.data.size()) == npix, "preprocess: a %dx%d image needs %llu bytes, got %llu", img.width,
         img.height, (unsigned long long)npix, (unsigned long long)img.data.size());

  const int32_t scale = o.resize;
  const PadLayout l = pad_layout(img.width, img.height, scale);
  // An extreme aspect ratio leaves the shorter side empty (65535x40 -> 256x0).
  CZ_ARG(l.width >= 1 && l.height >= 1, "a %dx%d image resizes to %dx%d", img.width, img.height, l.width, l.height);

  std::vector<uint8_t> own;
  if (!padded) {
    own.resize(size_t(scale) * size_t(scale));
    padded = own.data();
  }
  if (l.width == scale && l.height == scale) {
    // A full square is the only case where the resized image's rows have the padded stride.
    resize_area(img.data.data(), img.width, img.height, padded, scale, scale);
  } else {
    // Narrower or shorter: resize into a tight buffer (row stride l.width), then place it at
    // (top, left) with row stride `scale`. Writing in place would shear the image.
    std::vector<uint8_t> tmp(size_t(l.width) * size_t(l.height));
    resize_area(img.data.data(), img.width, img.height, tmp.data(), l.width, l.height);
    std::memset(padded, 0, size_t(scale) * size_t(scale));
    for (int32_t y = 0; y < l.height; y++)
      std::memcpy(padded + size_t(l.top + y) * size_t(scale) + size_t(l.left), tmp.data() + size_t(y) * size_t(l.width),
                  size_t(l.width));
  }

  if (out) {
    float table[256];
    normalise_table(o.mean, o.std, table);
    // torchvision's CenterCrop offset, int(round((resize - crop) / 2.0)) with Python's round (half
    // to even), as centreCropOffset in preprocess.ts: 16 for 256/224, 16 (not 17) for 256/223.
    const int32_t d = scale - o.crop, k = d / 2;
    const int32_t off = (d % 2 == 0) ? k : k + (k % 2);
    for (int32_t y = 0; y < o.crop; y++) {
      const uint8_t* s = padded + size_t(off + y) * size_t(scale) + size_t(off);
      float* d = out + size_t(y) * size_t(o.crop);
      for (int32_t x = 0; x < o.crop; x++) d[x] = table[s[x]];
    }
  }
  return l;
}

}  // namespace img
}  // namespace carzero
