// decode.cpp: format detection and dispatch for the native image decoders (image.h).
#include <cstring>

#include "core/status.h"
#include "image/image.h"

#if CZ_HAVE_PNG
#include <png.h>
#include <zlib.h>
#endif
#if CZ_HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif
#if CZ_HAVE_JPEG
#include <cstdio>  // jpeglib.h needs FILE
#include <jpeglib.h>
#endif

namespace carzero {
namespace img {

static bool looks_like_dicom(const uint8_t* b, size_t n) {
  if (n >= 132 && std::memcmp(b + 128, "DICM", 4) == 0) return true;
  // No preamble: a data set starting with a group 0x0002 or 0x0008 element (little endian) whose
  // explicit VR is two upper-case letters, or an implicit-VR length that fits the file.
  if (n >= 8 && b[1] == 0x00 && (b[0] == 0x02 || b[0] == 0x08) && b[3] == 0x00) {
    const bool vr = b[4] >= 'A' && b[4] <= 'Z' && b[5] >= 'A' && b[5] <= 'Z';
    if (vr) return true;
    const uint32_t len = uint32_t(b[4]) | uint32_t(b[5]) << 8 | uint32_t(b[6]) << 16 | uint32_t(b[7]) << 24;
    return len <= n - 8;
  }
  return false;
}

Format detect_format(const uint8_t* b, size_t n) {
  static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  if (n >= 8 && std::memcmp(b, png_sig, 8) == 0) return Format::png;
  if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return Format::jpeg;
  if (looks_like_dicom(b, n)) return Format::dicom;
  return Format::unknown;
}

const char* format_name(Format f) {
  switch (f) {
    case Format::png: return "PNG";
    case Format::jpeg: return "JPEG";
    case Format::dicom: return "DICOM";
    default: return "unknown";
  }
}

Codecs codecs() {
  Codecs c;
  std::string v;
#if CZ_HAVE_PNG
  c.png = true;
  v += std::string("libpng ") + PNG_LIBPNG_VER_STRING + ", zlib " + ZLIB_VERSION;
#if CZ_HAVE_LIBDEFLATE
  v += std::string(", libdeflate ") + LIBDEFLATE_VERSION_STRING;
#endif
#endif
#if CZ_HAVE_JPEG
  c.jpeg = true;
  if (!v.empty()) v += ", ";
#ifdef LIBJPEG_TURBO_VERSION
#define CZ_STR2(x) #x
#define CZ_STR(x) CZ_STR2(x)
  v += std::string("libjpeg-turbo ") + CZ_STR(LIBJPEG_TURBO_VERSION);
#else
  v += "libjpeg " + std::to_string(JPEG_LIB_VERSION);
#endif
#endif
  c.dicom_syntaxes = dicom_transfer_syntaxes();
  c.dicom = !c.dicom_syntaxes.empty();
  c.versions = v;
  return c;
}

Gray8 decode(const uint8_t* buf, size_t len, const DecodeOptions& o) {
  if (len == 0) throw_error(CZ_ERR_FORMAT, "empty file");
  switch (detect_format(buf, len)) {
    case Format::png: return decode_png(buf, len, o);
    case Format::jpeg: return decode_jpeg(buf, len, o);
    case Format::dicom: return decode_dicom(buf, len, o);
    default: throw_error(CZ_ERR_UNSUPPORTED, "unrecognised image format (not PNG, JPEG or DICOM by its first bytes)");
  }
}

}  // namespace img
}  // namespace carzero
