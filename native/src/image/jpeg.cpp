// jpeg.cpp: JPEG -> 8-bit grey exactly as OpenCV 4.6's cv2.imread(path, IMREAD_GRAYSCALE), by asking
// libjpeg(-turbo) for what OpenCV's JpegDecoder asks for a one-channel request:
// out_color_space = JCS_GRAYSCALE (grey files: the samples; YCbCr: the Y component, no colour
// conversion; RGB/Adobe-transform-0: libjpeg's own RGB -> grey), everything else left at libjpeg's
// defaults (islow IDCT, fancy upsampling, which matters when luma is itself subsampled). Then the
// EXIF orientation (tag 0x0112 of the first "Exif" APP1 before the first scan) is applied as
// imread does, found the way src/image/jpeg.ts finds it.
//
// Where we deliberately differ from imread (project rule: an error, never partial garbage):
//  - a file that ends inside a scan's entropy-coded data is an error. libjpeg would pad it with
//    zeros (grey) after a "premature end of data segment" warning and imread would return that.
//    Detection: our memory source hands libjpeg a fake EOI when the data runs out (as
//    jpeg_mem_src does); if the Huffman decoder then reports JWRN_HIT_MARKER (it needed bits past
//    that marker) the file was truncated mid-scan. A real marker inside the data (a damaged but
//    complete file) keeps libjpeg's zero-fill, as imread does; a file that ends cleanly after its
//    last complete scan (no EOI) still decodes, as in the TypeScript decoder.
//  - 4-component (CMYK/YCCK) files are refused with CZ_ERR_UNSUPPORTED, as src/image/jpeg.ts does
//    (imread would convert CMYK to grey with its own formula).
// Like imread, once every row has been read, errors that jpeg_finish_decompress finds later in
// the file (after the last scan used) are ignored.
//
// Error handling: libjpeg reports errors through error_exit, which must not return. The libjpeg
// calls live in plain C-style functions (jpeg_c_*) whose frames own no C++ objects, each with its
// own setjmp; error_exit formats libjpeg's message into a char array of the POD JpegJob and
// longjmps there. The C++ wrapper owns the decompressor through a guard outside every setjmp frame
// and throws carzero::Error from the result codes. Warnings and trace messages are swallowed
// (libjpeg would print them to stderr).
#include <cstring>
#include <new>  // std::bad_alloc

#include "core/status.h"
#include "image/image.h"

#if CZ_HAVE_JPEG
#include <csetjmp>
#include <cstdio>  // jpeglib.h needs FILE

#include <jpeglib.h>
#include <jerror.h>
#endif

namespace carzero {
namespace img {

// ---- EXIF orientation: shared with png.cpp (cv2.imread applies a PNG's eXIf orientation too) ----

// EXIF orientation (1..8) from a TIFF structure (EXIF's payload: "II"/"MM", 42, IFD0 offset), 1 when
// absent or unreadable: IFD0 tag 0x0112's value read as a 16-bit number. Bounds are checked against
// the n bytes given, step for step as src/image/jpeg.ts does inside the APP1 segment.
int exif_tiff_orientation(const uint8_t* t, size_t n) {
  if (n < 8) return 1;
  const bool le = t[0] == 0x49;
  auto u16 = [&](size_t p) -> uint32_t {
    return le ? uint32_t(t[p]) | uint32_t(t[p + 1]) << 8 : uint32_t(t[p]) << 8 | uint32_t(t[p + 1]);
  };
  const uint32_t ifd = le ? (u16(4) | u16(6) << 16) : (u16(4) << 16 | u16(6));
  if (ifd > n || ifd + size_t(2) > n) return 1;
  const uint32_t count = u16(ifd);
  for (uint32_t i = 0; i < count; ++i) {
    const size_t e = ifd + 2 + size_t(i) * 12;
    if (e + 12 > n) return 1;
    if (u16(e) == 0x0112) {
      const uint32_t v = u16(e + 8);
      return v >= 1 && v <= 8 ? int(v) : 1;
    }
  }
  return 1;
}

// cv::ApplyExifOrientation on a grey image (src/image/jpeg.ts applyOrientation): 2 flip
// horizontally, 3 rotate 180, 4 flip vertically, 5 transpose, 6 rotate 90 clockwise (transpose +
// flip horizontally), 7 transverse, 8 rotate 90 anticlockwise (transpose + flip vertically).
void apply_exif_orientation(Gray8& img, int orientation) {
  if (orientation <= 1 || orientation > 8) return;
  const size_t w = size_t(img.width), h = size_t(img.height);
  const bool transpose = orientation >= 5;
  const size_t W = transpose ? h : w, H = transpose ? w : h;
  const bool flip_x = orientation == 2 || orientation == 3 || orientation == 6 || orientation == 7;
  const bool flip_y = orientation == 3 || orientation == 4 || orientation == 7 || orientation == 8;
  std::vector<uint8_t> out(w * h);
  const uint8_t* src = img.data.data();
  for (size_t y = 0; y < H; ++y) {
    const size_t ty = flip_y ? H - 1 - y : y;
    uint8_t* row = out.data() + y * W;
    if (!transpose) {
      const uint8_t* s = src + ty * w;
      if (flip_x)
        for (size_t x = 0; x < W; ++x) row[x] = s[W - 1 - x];
      else
        std::memcpy(row, s, W);
    } else {
      // output (x, y) <- source (column ty, row tx)
      for (size_t x = 0; x < W; ++x) row[x] = src[(flip_x ? W - 1 - x : x) * w + ty];
    }
  }
  img.data.swap(out);
  img.width = int32_t(W);
  img.height = int32_t(H);
}

#if CZ_HAVE_JPEG

namespace {

// EXIF orientation of a JPEG file, 1 when absent: the first APP1 segment starting "Exif\0\0"
// before SOS/EOI (src/image/jpeg.ts jpegExifOrientation: marker segments are walked from offset 2
// while each starts with 0xFF; the TIFF data ends with the segment or the file).
int exif_orientation(const uint8_t* b, size_t n) {
  size_t off = 2;
  while (off + 4 <= n && b[off] == 0xff) {
    const uint8_t marker = b[off + 1];
    if (marker == 0xda || marker == 0xd9) break;
    const size_t len = size_t(b[off + 2]) << 8 | b[off + 3];
    if (marker == 0xe1 && len >= 8 && off + 10 <= n && std::memcmp(b + off + 4, "Exif\0\0", 6) == 0) {
      const size_t t = off + 10;  // TIFF header
      const size_t end = off + 2 + len < n ? off + 2 + len : n;
      return t < end ? exif_tiff_orientation(b + t, end - t) : 1;
    }
    off += 2 + len;
  }
  return 1;
}

// Everything a jpeg_c_* function touches: plain data only (it is live across longjmp).
struct JpegJob {
  jpeg_decompress_struct cinfo;
  jpeg_error_mgr err;
  jpeg_source_mgr src;
  std::jmp_buf jb;
  const uint8_t* buf;
  size_t len;
  int created;    // jpeg_create_decompress succeeded: the guard must destroy
  int eof_hits;   // times the source ran out of data (the first gets a fake EOI)
  int rows_done;  // every output row has been read: later errors are ignored (as imread)
  int msg_code;   // libjpeg's message code of the failure, -1 for ours
  char msg[JMSG_LENGTH_MAX + 80];
};

JpegJob* job_of(j_common_ptr c) { return static_cast<JpegJob*>(c->client_data); }

[[noreturn]] void jpeg_c_fail(JpegJob* job, const char* msg) {
  std::snprintf(job->msg, sizeof job->msg, "%s", msg);
  job->msg_code = -1;
  std::longjmp(job->jb, 1);
}

// libjpeg's fatal errors: keep the message, jump back to the active jpeg_c_* frame.
void jpeg_c_error_exit(j_common_ptr c) {
  JpegJob* job = job_of(c);
  char text[JMSG_LENGTH_MAX];
  (*c->err->format_message)(c, text);
  std::snprintf(job->msg, sizeof job->msg, "%s", text);
  job->msg_code = c->err->msg_code;
  std::longjmp(job->jb, 1);
}

// Warnings (level -1) and trace messages: silent, except the one that means "truncated mid-scan".
void jpeg_c_emit_message(j_common_ptr c, int level) {
  if (level >= 0) return;
  JpegJob* job = job_of(c);
  if (c->err->msg_code == JWRN_HIT_MARKER && job->eof_hits > 0)
    jpeg_c_fail(job, "truncated file (it ends inside the entropy-coded data of a scan)");
  c->err->num_warnings++;
}

void jpeg_c_output_message(j_common_ptr) {}

void jpeg_c_init_source(j_decompress_ptr) {}

// The whole file is in the buffer from the start, so this runs only when libjpeg wants bytes past
// the end: hand it an EOI marker once (it ends the image wherever it is read), refuse a second time.
boolean jpeg_c_fill_input_buffer(j_decompress_ptr d) {
  static const JOCTET fake_eoi[2] = {0xff, JPEG_EOI};
  JpegJob* job = job_of(reinterpret_cast<j_common_ptr>(d));
  if (job->eof_hits++ > 0) jpeg_c_fail(job, "truncated file (it ends inside a marker segment)");
  d->src->next_input_byte = fake_eoi;
  d->src->bytes_in_buffer = 2;
  return TRUE;
}

// Skipping past the end: the file ends inside the segment being skipped.
void jpeg_c_skip_input_data(j_decompress_ptr d, long num_bytes) {
  if (num_bytes <= 0) return;
  jpeg_source_mgr* s = d->src;
  if (size_t(num_bytes) > s->bytes_in_buffer)
    jpeg_c_fail(job_of(reinterpret_cast<j_common_ptr>(d)), "truncated file (it ends inside a marker segment)");
  s->next_input_byte += num_bytes;
  s->bytes_in_buffer -= size_t(num_bytes);
}

void jpeg_c_term_source(j_decompress_ptr) {}

// Phase 1: decompressor, memory source, header (markers up to the first SOS). 0 or -1 (job->msg).
int jpeg_c_start(JpegJob* job, long max_memory) {
  job->cinfo.err = jpeg_std_error(&job->err);
  job->err.error_exit = jpeg_c_error_exit;
  job->err.emit_message = jpeg_c_emit_message;
  job->err.output_message = jpeg_c_output_message;
  job->cinfo.client_data = job;
  if (setjmp(job->jb)) return -1;
  jpeg_create_decompress(&job->cinfo);
  job->created = 1;
  // A backstop for the caller's size check: libjpeg's large buffers (the whole-image coefficient
  // arrays of progressive and multi-scan files) may not exceed this.
  job->cinfo.mem->max_memory_to_use = max_memory;
  job->src.next_input_byte = job->buf;
  job->src.bytes_in_buffer = job->len;
  job->src.init_source = jpeg_c_init_source;
  job->src.fill_input_buffer = jpeg_c_fill_input_buffer;
  job->src.skip_input_data = jpeg_c_skip_input_data;
  job->src.resync_to_restart = jpeg_resync_to_restart;
  job->src.term_source = jpeg_c_term_source;
  job->cinfo.src = &job->src;
  jpeg_read_header(&job->cinfo, TRUE);
  return 0;
}

// Phase 2: grey output, rows straight into out (stride = width). 0 or -1 (job->msg).
int jpeg_c_finish(JpegJob* job, uint8_t* out) {
  if (setjmp(job->jb)) return job->rows_done ? 0 : -1;
  j_decompress_ptr d = &job->cinfo;
  d->out_color_space = JCS_GRAYSCALE;
  d->out_color_components = 1;
  jpeg_start_decompress(d);
  if (d->output_width != d->image_width || d->output_height != d->image_height || d->output_components != 1)
    jpeg_c_fail(job, "unexpected libjpeg output layout");
  const size_t w = d->output_width;
  while (d->output_scanline < d->output_height) {
    // Up to 16 rows a call (rec_outbuf_height is at most 4 with the default settings).
    JSAMPROW rows[16];
    const JDIMENSION first = d->output_scanline;
    JDIMENSION n = d->output_height - first;
    if (n > 16) n = 16;
    for (JDIMENSION i = 0; i < n; ++i) rows[i] = out + (size_t(first) + i) * w;
    if (jpeg_read_scanlines(d, rows, n) == 0) jpeg_c_fail(job, "libjpeg returned no rows");
  }
  job->rows_done = 1;
  jpeg_finish_decompress(d);
  return 0;
}

struct JpegGuard {
  JpegJob* job;
  ~JpegGuard() {
    if (job->created) jpeg_destroy_decompress(&job->cinfo);
  }
};

cz_status status_of(int msg_code) {
  switch (msg_code) {
    case JERR_BAD_PRECISION:    // 12-bit
    case JERR_SOF_UNSUPPORTED:  // lossless, hierarchical
    case JERR_NOT_COMPILED:
    case JERR_ARITH_NOTIMPL:
    case JERR_CONVERSION_NOTIMPL: return CZ_ERR_UNSUPPORTED;
    default: return CZ_ERR_FORMAT;
  }
}

[[noreturn]] void throw_jpeg_error(const JpegJob* job) {
  const cz_status code = status_of(job->msg_code);
  throw_error(code, "%s JPEG: %s", code == CZ_ERR_UNSUPPORTED ? "unsupported" : "invalid", job->msg);
}

void check_limits(uint64_t w, uint64_t h, const Limits& lim) {
  if (w > lim.max_side || h > lim.max_side)
    throw_error(CZ_ERR_OUT_OF_MEMORY, "JPEG declares %llu x %llu pixels, a side over the limit of %llu",
                (unsigned long long)w, (unsigned long long)h, (unsigned long long)lim.max_side);
  if (w * h > lim.max_pixels)
    throw_error(CZ_ERR_OUT_OF_MEMORY, "JPEG declares %llu x %llu pixels (%llu M), more than the limit of %llu M",
                (unsigned long long)w, (unsigned long long)h, (unsigned long long)(w * h / 1000000),
                (unsigned long long)(lim.max_pixels / 1000000));
}

}  // namespace

Gray8 decode_jpeg(const uint8_t* buf, size_t len, const DecodeOptions& o) {
  if (len == 0) throw_error(CZ_ERR_FORMAT, "empty file");
  if (len < 3 || buf[0] != 0xff || buf[1] != 0xd8) throw_error(CZ_ERR_FORMAT, "not a JPEG file (no SOI marker)");

  JpegJob job_storage;  // plain data, zeroed; lives in this (C++) frame, outside the setjmp frames
  std::memset(&job_storage, 0, sizeof job_storage);
  JpegJob* job = &job_storage;
  job->buf = buf;
  job->len = len;
  JpegGuard guard{job};

  // libjpeg's own ceiling: 8 bytes a pixel at the limit (a 4:4:4 colour progressive file's
  // coefficients take 6) plus 64 MB for everything else.
  const uint64_t px = o.limits.max_pixels < (uint64_t(1) << 40) ? o.limits.max_pixels : (uint64_t(1) << 40);
  const long max_memory = long(px * 8 + (uint64_t(64) << 20));
  if (jpeg_c_start(job, max_memory) != 0) throw_jpeg_error(job);

  const jpeg_decompress_struct& ci = job->cinfo;
  if (ci.num_components == 4) throw_error(CZ_ERR_UNSUPPORTED, "CMYK/YCCK JPEG (4 components) is not supported");
  check_limits(ci.image_width, ci.image_height, o.limits);

  Gray8 img;
  img.width = int32_t(ci.image_width);
  img.height = int32_t(ci.image_height);
  try {
    img.data.resize(size_t(ci.image_width) * ci.image_height);
  } catch (const std::bad_alloc&) {
    throw_error(CZ_ERR_OUT_OF_MEMORY, "out of memory for a %u x %u JPEG", unsigned(ci.image_width),
                unsigned(ci.image_height));
  }
  if (jpeg_c_finish(job, img.data.data()) != 0) throw_jpeg_error(job);
  apply_exif_orientation(img, exif_orientation(buf, len));
  return img;
}

#else  // !CZ_HAVE_JPEG

Gray8 decode_jpeg(const uint8_t*, size_t, const DecodeOptions&) {
  throw_error(CZ_ERR_UNSUPPORTED, "this build has no native JPEG decoder");
}

#endif

}  // namespace img
}  // namespace carzero
