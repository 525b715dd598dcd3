// png.cpp: PNG -> 8-bit grey exactly as OpenCV 4.6's cv2.imread(path, IMREAD_GRAYSCALE), by making
// the same libpng calls OpenCV's PngDecoder makes for a one-channel 8-bit request, so the pixels are
// libpng's own (including its rgb_to_gray fixed-point weights and its gAMA handling), identical by
// construction rather than by re-implementation (src/image/png.ts documents what those rules are).
//
// OpenCV's sequence (grfmt_png.cpp, readHeader + readData), as followed here:
//   png_read_info; png_get_IHDR  (a tRNS chunk only changes OpenCV's idea of the channel count; for
//                                 a grey request it asks for no tRNS transform at all)
//   16-bit                        -> png_set_strip_16 (the high byte is kept)
//   fewer than 4 channels wanted  -> png_set_strip_alpha (palette + tRNS: the expanded alpha is
//                                    stripped again)
//   palette                       -> png_set_palette_to_rgb
//   grey below 8 bits             -> png_set_expand_gray_1_2_4_to_8
//   grey output                   -> png_set_rgb_to_gray(png, 1, 0.299, 0.587), unconditionally
//                                    (libpng ignores it for grey files; on colour files it also
//                                    brings in libpng's gamma handling when a gAMA/sRGB is present)
//   png_set_interlace_handling; png_read_update_info; png_read_image; png_read_end
// Then, like imread, the EXIF orientation of an eXIf chunk is applied (one before IDAT, or else
// one after it).
// An error anywhere up to and including png_read_end makes imread fail, so a truncated file, a bad
// CRC on a critical chunk or a missing IEND is an error here too (never a partial image). libpng's
// warnings (ancillary-chunk CRC errors, benign errors) are silenced, as imread ignores them.
//
// Error handling: libpng reports errors by longjmp. The libpng calls live in plain C-style functions
// (png_c_*) whose frames own no C++ objects; each sets its own setjmp, and the error callback copies
// libpng's message into a char array in the POD PngJob before jumping. The C++ wrapper (decode_png)
// owns the libpng structs through a guard object that sits *outside* every setjmp frame, checks
// the result codes and throws carzero::Error. No C++ exception passes through libpng either: the
// callbacks (read, error, warning) never throw.
#include <cstdio>
#include <cstring>
#include <new>  // std::bad_alloc

#include "core/status.h"
#include "image/image.h"

#if CZ_HAVE_PNG
#include <csetjmp>

#include <png.h>
#endif

namespace carzero {
namespace img {

#if CZ_HAVE_PNG

// EXIF orientation, shared with jpeg.cpp (defined there, not part of image.h): the orientation
// tag of a TIFF structure, and cv::ApplyExifOrientation on a grey image.
int exif_tiff_orientation(const uint8_t* tiff, size_t n);
void apply_exif_orientation(Gray8& img, int orientation);

namespace {

// Everything a png_c_* function touches: plain data only (it is live across longjmp).
struct PngJob {
  // input, read by png_c_read through png_set_read_fn
  const uint8_t* buf;
  size_t len;
  size_t pos;
  // libpng state, destroyed by PngGuard in the C++ wrapper
  png_structp png;
  png_infop info;
  png_infop end_info;  // chunks after IDAT, as OpenCV passes to png_read_end
  // header
  png_uint_32 width, height;
  int bit_depth, color_type, interlace;
  int orientation;  // EXIF orientation of an eXIf chunk before IDAT, 1 without
  // failure: libpng's (or our callback's) message
  char msg[200];
};

// libpng error callback: keep the message, jump back to the active png_c_* frame. Never returns.
void png_c_error(png_structp png, png_const_charp message) {
  PngJob* job = static_cast<PngJob*>(png_get_error_ptr(png));
  if (job) {
    std::snprintf(job->msg, sizeof job->msg, "%s", message ? message : "libpng error");
  }
  png_longjmp(png, 1);
}

// Warnings (ancillary CRC errors, benign errors, "extra compressed data"): imread ignores them and
// so do we; libpng would otherwise print them to stderr.
void png_c_warning(png_structp, png_const_charp) {}

// Reads from the in-memory file; running out of bytes is a truncated file (png_error jumps out).
void png_c_read(png_structp png, png_bytep out, png_size_t n) {
  PngJob* job = static_cast<PngJob*>(png_get_io_ptr(png));
  if (n > job->len - job->pos) {
    // libpng asks for whole chunk headers, chunk data and CRCs, so this is "inside a chunk".
    png_error(png, "truncated file (it ends inside a chunk)");
  }
  std::memcpy(out, job->buf + job->pos, n);
  job->pos += n;
}

// Phase 1: structs, header, transformations. Returns 0 on success, -1 with job->msg on failure.
// Leaves job->png/info set (even on failure) for the caller's guard to destroy.
int png_c_start(PngJob* job, png_uint_32 max_side) {
  job->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, job, png_c_error, png_c_warning);
  if (!job->png) {
    std::snprintf(job->msg, sizeof job->msg, "libpng could not be initialised (out of memory)");
    return -1;
  }
  job->info = png_create_info_struct(job->png);
  job->end_info = job->info ? png_create_info_struct(job->png) : nullptr;
  if (!job->info || !job->end_info) {
    std::snprintf(job->msg, sizeof job->msg, "libpng could not be initialised (out of memory)");
    return -1;
  }
  if (setjmp(png_jmpbuf(job->png))) return -1;
  png_set_read_fn(job->png, job, png_c_read);
  // A backstop for the caller's own IHDR check: libpng refuses larger sides by itself.
  png_set_user_limits(job->png, max_side, max_side);
  png_read_info(job->png, job->info);
  png_get_IHDR(job->png, job->info, &job->width, &job->height, &job->bit_depth, &job->color_type,
               &job->interlace, nullptr, nullptr);
  png_structp png = job->png;
  // The calls and their conditions of OpenCV's PngDecoder::readData for an 8-bit, 1-channel Mat.
  if (job->bit_depth == 16) png_set_strip_16(png);
  png_set_strip_alpha(png);
  if (job->color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if ((job->color_type & PNG_COLOR_MASK_COLOR) == 0 && job->bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  png_set_rgb_to_gray(png, 1, 0.299, 0.587);
  png_set_interlace_handling(png);
  png_read_update_info(png, job->info);
  // After those transformations every PNG type is one 8-bit channel: one byte per pixel.
  if (png_get_channels(png, job->info) != 1 || png_get_bit_depth(png, job->info) != 8 ||
      png_get_rowbytes(png, job->info) != job->width) {
    std::snprintf(job->msg, sizeof job->msg, "unexpected libpng output layout (%d channels, %d bits)",
                  int(png_get_channels(png, job->info)), int(png_get_bit_depth(png, job->info)));
    return -1;
  }
  return 0;
}

// Phase 2: every row straight into the caller's buffer (rows[y] = out + y * width; libpng runs the
// Adam7 passes over them for an interlaced file), then the chunks after IDAT up to IEND.
int png_c_finish(PngJob* job, png_bytepp rows) {
  if (setjmp(png_jmpbuf(job->png))) return -1;
  png_read_image(job->png, rows);
  png_read_end(job->png, job->end_info);
  // imread applies the orientation of an eXIf chunk, before IDAT or else after it (checked
  // against cv2 4.6 with both placements); done here, once libpng has seen every chunk.
  job->orientation = 1;
#ifdef PNG_eXIf_SUPPORTED
  png_uint_32 exif_len = 0;
  png_bytep exif = nullptr;
  png_infop where = png_get_valid(job->png, job->info, PNG_INFO_eXIf) ? job->info
                    : png_get_valid(job->png, job->end_info, PNG_INFO_eXIf) ? job->end_info : nullptr;
  if (where && png_get_eXIf_1(job->png, where, &exif_len, &exif) && exif)
    job->orientation = exif_tiff_orientation(exif, exif_len);
#endif
  return 0;
}

// Owns the libpng structs in the C++ frame (outside every setjmp frame).
struct PngGuard {
  PngJob* job;
  ~PngGuard() {
    if (job->png)
      png_destroy_read_struct(&job->png, job->info ? &job->info : nullptr, job->end_info ? &job->end_info : nullptr);
  }
};

uint32_t be32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

// The limits, checked on the declared size before anything is allocated for the pixels.
void check_limits(uint64_t w, uint64_t h, const Limits& lim) {
  if (w > lim.max_side || h > lim.max_side)
    throw_error(CZ_ERR_OUT_OF_MEMORY, "PNG declares %llu x %llu pixels, a side over the limit of %llu",
                (unsigned long long)w, (unsigned long long)h, (unsigned long long)lim.max_side);
  if (w * h > lim.max_pixels)
    throw_error(CZ_ERR_OUT_OF_MEMORY, "PNG declares %llu x %llu pixels (%llu M), more than the limit of %llu M",
                (unsigned long long)w, (unsigned long long)h, (unsigned long long)(w * h / 1000000),
                (unsigned long long)(lim.max_pixels / 1000000));
}

}  // namespace

Gray8 decode_png(const uint8_t* buf, size_t len, const DecodeOptions& o) {
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  if (len == 0) throw_error(CZ_ERR_FORMAT, "empty file");
  if (len < 8 || std::memcmp(buf, sig, 8) != 0) throw_error(CZ_ERR_FORMAT, "not a PNG file (no PNG signature)");
  if (len < 33) throw_error(CZ_ERR_FORMAT, "invalid PNG: truncated file (it ends inside the IHDR chunk)");
  // IHDR must be the first chunk (libpng errors otherwise); its declared size is checked against
  // the limits here, before libpng is even set up.
  if (be32(buf + 8) == 13 && std::memcmp(buf + 12, "IHDR", 4) == 0) check_limits(be32(buf + 16), be32(buf + 20), o.limits);

  PngJob job;
  std::memset(&job, 0, sizeof job);
  job.buf = buf;
  job.len = len;
  PngGuard guard{&job};
  const uint64_t side = o.limits.max_side < 0x7fffffffu ? o.limits.max_side : 0x7fffffffu;
  if (png_c_start(&job, png_uint_32(side)) != 0) throw_error(CZ_ERR_FORMAT, "invalid PNG: %s", job.msg);
  // libpng's parsed IHDR is what it decodes: check it as well (it equals the bytes checked above).
  check_limits(job.width, job.height, o.limits);

  Gray8 img;
  img.width = int32_t(job.width);
  img.height = int32_t(job.height);
  std::vector<png_bytep> rows;
  try {
    img.data.resize(size_t(job.width) * job.height);
    rows.resize(job.height);
  } catch (const std::bad_alloc&) {
    throw_error(CZ_ERR_OUT_OF_MEMORY, "out of memory for a %u x %u PNG", unsigned(job.width), unsigned(job.height));
  }
  for (png_uint_32 y = 0; y < job.height; ++y) rows[y] = img.data.data() + size_t(y) * job.width;
  if (png_c_finish(&job, rows.data()) != 0) throw_error(CZ_ERR_FORMAT, "invalid PNG: %s", job.msg);
  apply_exif_orientation(img, job.orientation);
  return img;
}

#else  // !CZ_HAVE_PNG

Gray8 decode_png(const uint8_t*, size_t, const DecodeOptions&) {
  throw_error(CZ_ERR_UNSUPPORTED, "this build has no native PNG decoder");
}

#endif

}  // namespace img
}  // namespace carzero
