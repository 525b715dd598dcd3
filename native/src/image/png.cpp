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
// Fast path (CZ_HAVE_LIBDEFLATE): the common radiology PNG, colour type 0 (grey), bit depth 8 or 16,
// not interlaced. For it the sequence above changes no pixel except png_set_strip_16 (the high byte
// of each sample): rgb_to_gray leaves grey rows alone, strip_alpha has no alpha to strip, and no
// call asks for tRNS, gAMA (no screen gamma is set, so libpng applies none), sBIT or bKGD handling
// (checked against cv2 4.6 with gAMA/sBIT/tRNS/bKGD chunks, 8- and 16-bit). So the fast path walks
// the chunks itself, checks the CRCs of IHDR, every IDAT and IEND, inflates the concatenated IDAT
// data with libdeflate into a buffer of exactly height * (1 + rowbytes) bytes, unfilters the rows
// and keeps the high byte of 16-bit samples. It only returns an image when libpng would return the
// same one; anything it does not fully vouch for falls back to the libpng path, which then gives
// its own pixels or its own error: a bad critical CRC, a zlib stream that is invalid, inflates to
// fewer or more bytes or leaves input over (libpng warns "Extra compressed data" and accepts), a bad
// filter byte, a critical chunk other than IHDR/IDAT/IEND (PLTE in grey included), IDAT chunks that
// are not consecutive, an eXIf chunk (orientation), an invalid chunk name, a reserved-bit chunk, a
// zlib window smaller than the data (zlib would check distances against it; libdeflate does not),
// a chunk over libpng's length limits (8000000 bytes; an IDAT may reach the rows' size), a file
// that ends before IEND, or an out-of-memory on the inflate buffer. One known difference is left:
// libdeflate accepts a dynamic block declaring 287/288 literal/length or 31/32 distance codes,
// which zlib refuses ("too many length or distance symbols"); no encoder writes those (RFC 1951
// allows at most 286 and 30), so only a hand-made stream decodes here where imread fails.
// Unfiltering: None/Up/Sub and the 16 -> 8 bit step with SSE2 (x86-64's baseline), Average and
// Paeth (serial per byte) in scalar code with the left neighbours in registers, Paeth branch-free.
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
#if CZ_HAVE_PNG && CZ_HAVE_LIBDEFLATE
#include <sys/mman.h>

#include <emmintrin.h>  // SSE2: x86-64's baseline

#include <cstdlib>

#include <libdeflate.h>
#define CZ_PNG_FAST 1
#else
#define CZ_PNG_FAST 0
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
  png_get_IHDR(job->png, job->info, &job->width, &job->height, &job->bit_depth, &job->color_type, &job->interlace,
               nullptr, nullptr);
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
  png_infop where = png_get_valid(job->png, job->info, PNG_INFO_eXIf)       ? job->info
                    : png_get_valid(job->png, job->end_info, PNG_INFO_eXIf) ? job->end_info
                                                                            : nullptr;
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

#if CZ_PNG_FAST
// ---- the fast path: 8/16-bit grey, not interlaced ----------------------------------------------

// Row unfiltering (PNG filter types 1..4) for bpp bytes per pixel, dst from the filtered bytes src
// and the unfiltered previous row prev (zeros for the first row). The serial filters keep the
// left neighbours in registers (a store-to-load round trip per byte would be the critical path).
// Sub: a running sum per byte lane of the pixel (mod 256), 16 bytes at a time with SSE2 (x86-64's
// baseline): a prefix sum within the vector by byte shifts, plus the last pixel of the previous
// vector broadcast.
template <int BPP>
void unfilter_sub(uint8_t* dst, const uint8_t* src, size_t n) {
  size_t i = 0;
  __m128i carry = _mm_setzero_si128();  // the previous pixel in every lane group
  for (; i + 16 <= n; i += 16) {
    __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    if (BPP == 1) x = _mm_add_epi8(x, _mm_slli_si128(x, 1));
    x = _mm_add_epi8(x, _mm_slli_si128(x, 2));
    x = _mm_add_epi8(x, _mm_slli_si128(x, 4));
    x = _mm_add_epi8(x, _mm_slli_si128(x, 8));
    x = _mm_add_epi8(x, carry);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), x);
    carry = BPP == 1 ? _mm_set1_epi8(char(dst[i + 15])) : _mm_shuffle_epi32(_mm_shufflehi_epi16(x, 0xff), 0xff);
  }
  uint8_t a[BPP] = {};
  if (i >= BPP)
    for (int k = 0; k < BPP; ++k) a[k] = dst[i - BPP + k];
  for (; i + BPP <= n; i += BPP)
    for (int k = 0; k < BPP; ++k) dst[i + k] = a[k] = uint8_t(src[i + k] + a[k]);
}

void unfilter_up(uint8_t* dst, const uint8_t* src, const uint8_t* prev, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                     _mm_add_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)),
                                  _mm_loadu_si128(reinterpret_cast<const __m128i*>(prev + i))));
  for (; i < n; ++i) dst[i] = uint8_t(src[i] + prev[i]);
}

// png_set_strip_16: the high (first) byte of each big-endian sample.
void strip16(uint8_t* dst, const uint8_t* src, size_t w) {
  size_t x = 0;
  const __m128i lo = _mm_set1_epi16(0x00ff);
  for (; x + 16 <= w; x += 16) {
    const __m128i a = _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * x)), lo);
    const __m128i b = _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * x + 16)), lo);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + x), _mm_packus_epi16(a, b));
  }
  for (; x < w; ++x) dst[x] = src[2 * x];
}

template <int BPP>
__attribute__((noinline)) void unfilter_avg(uint8_t* dst, const uint8_t* src, const uint8_t* prev, size_t n) {
  if (BPP == 1) {
    unsigned a = 0;
    for (size_t i = 0; i < n; ++i) {
      a = (src[i] + ((a + prev[i]) >> 1)) & 0xff;
      dst[i] = uint8_t(a);
    }
  } else {
    unsigned a0 = 0, a1 = 0;
    for (size_t i = 0; i + 2 <= n; i += 2) {
      a0 = (src[i] + ((a0 + prev[i]) >> 1)) & 0xff;
      a1 = (src[i + 1] + ((a1 + prev[i + 1]) >> 1)) & 0xff;
      dst[i] = uint8_t(a0);
      dst[i + 1] = uint8_t(a1);
    }
  }
}

// Paeth: libpng's png_read_filter_row_paeth_* choice (a when pa <= pb and pa <= pc, else b when
// pb <= pc, else c, with pa = |b - c|, pb = |a - c|, pc = |a + b - 2c|), with masks instead of
// branches (on noisy rows the branches mispredict about every other byte). |b - c| and b - c do
// not depend on the row being decoded and are computed for the whole row first (vectorised);
// the serial part per byte is then only what depends on a, the byte bpp to the left.
// The serial step: the predictor chosen for left neighbour a, given b, c, b - c and |b - c|.
inline int paeth_step(int a, int b, int c, int bc, int pa) {
  const int q = a - c;
  const int qm = q >> 31, pb = (q ^ qm) - qm;              // |a - c|
  const int s = q + bc, sm = s >> 31, pc = (s ^ sm) - sm;  // |a + b - 2c|
  const int m1 = -int(pb < pa);                            // b beats a
  const int r1 = a ^ ((a ^ b) & m1), p1 = pa ^ ((pa ^ pb) & m1);
  const int m2 = -int(pc < p1);  // c beats both
  return r1 ^ ((r1 ^ c) & m2);
}

template <int BPP>
__attribute__((noinline)) void unfilter_paeth(uint8_t* dst, const uint8_t* src, const uint8_t* prev, size_t n,
                                              int16_t* tmp) {
  int16_t* const bcv = tmp;      // b - c
  int16_t* const pav = tmp + n;  // |b - c|
  for (size_t i = 0; i < BPP && i < n; ++i) {
    bcv[i] = int16_t(prev[i]);
    pav[i] = int16_t(prev[i]);
  }
  for (size_t i = BPP; i < n; ++i) {  // vectorised by the compiler
    const int d = int(prev[i]) - int(prev[i - BPP]);
    bcv[i] = int16_t(d);
    pav[i] = int16_t(d < 0 ? -d : d);
  }
  if (BPP == 1) {
    int a = 0, c = 0;
    for (size_t i = 0; i < n; ++i) {
      const int b = prev[i];
      a = (src[i] + paeth_step(a, b, c, bcv[i], pav[i])) & 0xff;
      dst[i] = uint8_t(a);
      c = b;
    }
  } else {
    int a0 = 0, a1 = 0, c0 = 0, c1 = 0;
    for (size_t i = 0; i + 2 <= n; i += 2) {
      const int b0 = prev[i], b1 = prev[i + 1];
      a0 = (src[i] + paeth_step(a0, b0, c0, bcv[i], pav[i])) & 0xff;
      a1 = (src[i + 1] + paeth_step(a1, b1, c1, bcv[i + 1], pav[i + 1])) & 0xff;
      dst[i] = uint8_t(a0);
      dst[i + 1] = uint8_t(a1);
      c0 = b0;
      c1 = b1;
    }
  }
}

template <int BPP>
bool unfilter_row(int filter, uint8_t* dst, const uint8_t* src, const uint8_t* prev, size_t n, int16_t* tmp) {
  switch (filter) {
    case 0: std::memcpy(dst, src, n); return true;
    case 1: unfilter_sub<BPP>(dst, src, n); return true;
    case 2: unfilter_up(dst, src, prev, n); return true;
    case 3: unfilter_avg<BPP>(dst, src, prev, n); return true;
    case 4: unfilter_paeth<BPP>(dst, src, prev, n, tmp); return true;
    default: return false;  // libpng: "bad adaptive filter value"
  }
}

// Scratch memory for the concatenated IDAT data and the inflated rows, uninitialised. Large
// blocks are mapped directly with transparent huge pages requested (madvise; ignored where THP is
// off): the inflate writes every byte once, and on a VM a 4 KiB page fault per 4 KiB written
// costs more than the inflate itself.
struct Scratch {
  uint8_t* p = nullptr;
  void* map = nullptr;
  size_t map_len = 0;
  explicit Scratch(size_t n) {
    const size_t huge = size_t(2) << 20;
    if (n < huge) {
      p = static_cast<uint8_t*>(std::malloc(n ? n : 1));
      return;
    }
    map_len = n + huge;
    map = mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) {
      map = nullptr;
      return;
    }
    const uintptr_t a = (reinterpret_cast<uintptr_t>(map) + huge - 1) & ~uintptr_t(huge - 1);
#ifdef MADV_HUGEPAGE
    madvise(reinterpret_cast<void*>(a), (n + huge - 1) & ~(huge - 1), MADV_HUGEPAGE);
#endif
    p = reinterpret_cast<uint8_t*>(a);
  }
  ~Scratch() {
    if (map)
      munmap(map, map_len);
    else
      std::free(p);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

struct DeflateFree {
  libdeflate_decompressor* d;
  ~DeflateFree() {
    if (d) libdeflate_free_decompressor(d);
  }
};

bool chunk_name_ok(const uint8_t* t) {  // libpng's png_check_chunk_name: letters only
  for (int k = 0; k < 4; ++k) {
    const uint8_t ch = t[k];
    if (ch < 65 || ch > 122 || (ch > 90 && ch < 97)) return false;
  }
  return true;
}

bool crc_ok(const uint8_t* type, uint32_t n) {  // the CRC after type + data
  return libdeflate_crc32(0, type, size_t(n) + 4) == be32(type + 4 + n);
}

// Decodes an eligible file into img and returns 1; returns 0 (img untouched) for the libpng path:
// a file this path does not take, or one whose outcome libpng must decide.
int png_fast(const uint8_t* buf, size_t len, Gray8& img) {
  if (len < 33 || be32(buf + 8) != 13 || std::memcmp(buf + 12, "IHDR", 4) != 0 || !crc_ok(buf + 12, 13)) return 0;
  const uint32_t w = be32(buf + 16), h = be32(buf + 20);
  const int depth = buf[24];
  if (w == 0 || h == 0 || w > 0x7fffffffu || h > 0x7fffffffu) return 0;
  if (buf[25] != 0 || (depth != 8 && depth != 16) || buf[26] != 0 || buf[27] != 0 || buf[28] != 0) return 0;

  // The chunks up to IEND: IDAT data collected, ancillary chunks skipped (libpng only warns about
  // their CRCs and contents), anything libpng might refuse or act on left to libpng.
  struct Seg {
    const uint8_t* p;
    uint32_t n;
  };
  // libpng's png_check_chunk_length: a chunk longer than PNG_USER_CHUNK_MALLOC_MAX (8000000 here),
  // or an IDAT longer than that and than the rows' size plus deflate's stored-block overhead, is
  // "chunk data is too large" (an error): left to libpng.
  const uint64_t row_factor = uint64_t(w) * (depth / 8) + 1;
  uint64_t idat_limit = h > 0xffffffffu / row_factor ? 0x7fffffffu : h * row_factor;
  idat_limit += 6 + 5 * (idat_limit / (row_factor < 32566 ? row_factor : 32566) + 1);
  if (idat_limit > 0x7fffffffu) idat_limit = 0x7fffffffu;
  const uint64_t chunk_limit = 8000000, idat_chunk_limit = idat_limit > chunk_limit ? idat_limit : chunk_limit;
  std::vector<Seg> idat;
  size_t total = 0;
  int state = 0;  // 0 before IDAT, 1 in the IDAT run, 2 after it
  size_t pos = 33;
  for (;;) {
    if (len - pos < 12) return 0;  // ends before IEND
    const uint32_t n = be32(buf + pos);
    if (n > 0x7fffffffu || len - pos - 12 < n) return 0;
    const uint8_t* type = buf + pos + 4;
    if (!chunk_name_ok(type)) return 0;
    const bool is_idat = std::memcmp(type, "IDAT", 4) == 0;
    if (n > (is_idat ? idat_chunk_limit : chunk_limit)) return 0;
    if (is_idat) {
      if (state == 2 || !crc_ok(type, n)) return 0;
      state = 1;
      if (n) idat.push_back({type + 4, n});
      total += n;
    } else if (std::memcmp(type, "IEND", 4) == 0) {
      if (state == 0 || n != 0 || !crc_ok(type, n)) return 0;
      break;
    } else {
      if (state == 1) state = 2;
      // critical (IHDR again, PLTE, unknown: libpng errors or acts) or the reserved bit set
      if (!(type[0] & 0x20) || (type[2] & 0x20)) return 0;
      if (std::memcmp(type, "eXIf", 4) == 0) return 0;  // orientation: the libpng path applies it
    }
    pos += 12 + size_t(n);
  }
  if (total < 2) return 0;

  const size_t bps = size_t(depth / 8);
  const size_t rowbytes = size_t(w) * bps, stride = rowbytes + 1;
  const size_t need = size_t(h) * stride;
  // zlib checks back-references against the header's window; libdeflate always allows 32 KiB.
  // A window at least as large as the data makes the two the same.
  const unsigned cinfo = idat[0].p[0] >> 4;
  if (cinfo < 7 && need > (size_t(1) << (cinfo + 8))) return 0;
  // One block: the IDAT data (when it is split over several chunks), then the inflated rows.
  const size_t zlen = idat.size() == 1 ? 0 : (total + 63) & ~size_t(63);
  Scratch scratch(zlen + need);
  if (!scratch.p) return 0;  // out of memory: the libpng path needs less (no whole inflated image)
  const uint8_t* zp = idat[0].p;
  if (zlen) {
    size_t at = 0;
    for (const Seg& s : idat) {
      std::memcpy(scratch.p + at, s.p, s.n);
      at += s.n;
    }
    zp = scratch.p;
  }
  uint8_t* const rawp = scratch.p + zlen;
  std::vector<uint8_t> rows;
  std::vector<int16_t> tmp;  // Paeth's per-row terms
  try {
    img.data.resize(size_t(w) * h);
    rows.resize(depth == 16 ? 2 * rowbytes : 0);
    tmp.resize(2 * rowbytes);
  } catch (const std::bad_alloc&) {
    img.data = std::vector<uint8_t>();
    return 0;
  }
  DeflateFree dec{libdeflate_alloc_decompressor()};
  if (!dec.d) return 0;
  size_t in_used = 0, out_used = 0;
  const libdeflate_result r = libdeflate_zlib_decompress_ex(dec.d, zp, total, rawp, need, &in_used, &out_used);
  if (r != LIBDEFLATE_SUCCESS || out_used != need || in_used != total) {
    img.data = std::vector<uint8_t>();
    return 0;
  }
  const std::vector<uint8_t> zeros(rowbytes, 0);
  const uint8_t* prev = zeros.data();
  bool ok = true;
  if (depth == 8) {
    for (uint32_t y = 0; y < h && ok; ++y) {
      uint8_t* dst = img.data.data() + size_t(y) * w;
      ok = unfilter_row<1>(rawp[size_t(y) * stride], dst, rawp + size_t(y) * stride + 1, prev, rowbytes, tmp.data());
      prev = dst;
    }
  } else {
    for (uint32_t y = 0; y < h && ok; ++y) {
      uint8_t* cur = rows.data() + (y & 1) * rowbytes;
      ok = unfilter_row<2>(rawp[size_t(y) * stride], cur, rawp + size_t(y) * stride + 1, prev, rowbytes, tmp.data());
      uint8_t* dst = img.data.data() + size_t(y) * w;
      strip16(dst, cur, w);
      prev = cur;
    }
  }
  if (!ok) {
    img.data = std::vector<uint8_t>();
    return 0;
  }
  img.width = int32_t(w);
  img.height = int32_t(h);
  return 1;
}
#endif  // CZ_PNG_FAST

Gray8 decode_png_libpng(const uint8_t* buf, size_t len, const DecodeOptions& o);

}  // namespace

// Test hook (not in image.h; declared by test_decode.cpp): path 0 = as decode_png (fast path when
// it applies, else libpng), 1 = libpng only, 2 = fast path only (CZ_ERR_UNSUPPORTED when it does
// not take the file, or in a build without libdeflate).
Gray8 decode_png_path(const uint8_t* buf, size_t len, const DecodeOptions& o, int path) {
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  if (len == 0) throw_error(CZ_ERR_FORMAT, "empty file");
  if (len < 8 || std::memcmp(buf, sig, 8) != 0) throw_error(CZ_ERR_FORMAT, "not a PNG file (no PNG signature)");
  if (len < 33) throw_error(CZ_ERR_FORMAT, "invalid PNG: truncated file (it ends inside the IHDR chunk)");
  // IHDR must be the first chunk (libpng errors otherwise); its declared size is checked against
  // the limits here, before anything is allocated.
  if (be32(buf + 8) == 13 && std::memcmp(buf + 12, "IHDR", 4) == 0)
    check_limits(be32(buf + 16), be32(buf + 20), o.limits);
  if (path != 1) {
#if CZ_PNG_FAST
    try {
      Gray8 img;
      if (png_fast(buf, len, img)) return img;
    } catch (const std::bad_alloc&) {
      // out of memory in the fast path's bookkeeping: the libpng path decides
    }
#endif
    if (path == 2) throw_error(CZ_ERR_UNSUPPORTED, "the PNG fast path does not take this file");
  }
  return decode_png_libpng(buf, len, o);
}

Gray8 decode_png(const uint8_t* buf, size_t len, const DecodeOptions& o) { return decode_png_path(buf, len, o, 0); }

namespace {

// The libpng path (the caller has checked the signature, the length and the IHDR limits).
Gray8 decode_png_libpng(const uint8_t* buf, size_t len, const DecodeOptions& o) {
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

}  // namespace

#else  // !CZ_HAVE_PNG

Gray8 decode_png(const uint8_t*, size_t, const DecodeOptions&) {
  throw_error(CZ_ERR_UNSUPPORTED, "this build has no native PNG decoder");
}
Gray8 decode_png_path(const uint8_t*, size_t, const DecodeOptions&, int) {
  throw_error(CZ_ERR_UNSUPPORTED, "this build has no native PNG decoder");
}

#endif

}  // namespace img
}  // namespace carzero
