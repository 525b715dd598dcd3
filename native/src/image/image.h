// image.h: the native image feed: file bytes -> 8-bit grey as cv2.imread(path, IMREAD_GRAYSCALE)
// gives it (DICOM: the windowing rule of src/image/dicom.ts), then CARZero's preprocessing
// (resize_img: INTER_AREA to a longer side of 256 + zero pad; centre crop 224; normalise),
// bit-exact with OpenCV 4.6 and torch (test/fixtures/image, test/fixtures/preprocess).
//
// Errors are carzero::Error (core/status.h) with CZ_ERR_FORMAT (malformed or truncated data),
// CZ_ERR_UNSUPPORTED (a format or transfer syntax this build does not decode) or
// CZ_ERR_OUT_OF_MEMORY (an image larger than Limits allows: refused from its header, before its
// pixels are allocated). Messages do not name the file; the caller prefixes the name.
// Every function is thread-safe (no shared state), so a decode pool can run them concurrently.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace carzero {
namespace img {

// Refusal limits, checked against a file's declared sizes before anything is allocated.
struct Limits {
  // Decoded pixels (width * height; all frames together when several are decoded).
  uint64_t max_pixels = uint64_t(1) << 28;  // 268 M: 16384 x 16384
  // Either side.
  uint64_t max_side = 65500;  // JPEG's own limit is 65500 per side
};

// One decoded grey image, row-major, stride == width.
struct Gray8 {
  int32_t width = 0;
  int32_t height = 0;
  std::vector<uint8_t> data;
};

enum class Format { unknown = 0, png, jpeg, dicom };
// By magic bytes only (PNG signature, FF D8 FF, DICOM "DICM" at 128 or a plausible group-0008
// element at 0), never the file name.
Format detect_format(const uint8_t* buf, size_t len);
const char* format_name(Format f);

struct DecodeOptions {
  Limits limits;
  // DICOM: frame to decode (0-based) of a multi-frame file.
  int32_t frame = 0;
};

// Which codecs this build has (compile-time: the static libraries found by cmake/codecs.cmake).
struct Codecs {
  bool png = false;
  bool jpeg = false;
  bool dicom = false;                       // native DICOM parsing (uncompressed syntaxes at least)
  std::string versions;                     // e.g. "libpng 1.6.39, libjpeg-turbo 2.1.5 (jpeg 6.2), zlib 1.2.13"
  std::vector<std::string> dicom_syntaxes;  // transfer syntax UIDs the DICOM decoder reads
};
Codecs codecs();

// The per-format decoders (png.cpp, jpeg.cpp, dicom.cpp). A build without a codec's library
// throws CZ_ERR_UNSUPPORTED from that decoder.
Gray8 decode_png(const uint8_t* buf, size_t len, const DecodeOptions& o);
Gray8 decode_jpeg(const uint8_t* buf, size_t len, const DecodeOptions& o);
Gray8 decode_dicom(const uint8_t* buf, size_t len, const DecodeOptions& o);
// Number of frames of a DICOM file (1 for a single-frame one); parses the header only.
int32_t dicom_frame_count(const uint8_t* buf, size_t len);
// Transfer syntax UIDs decode_dicom reads in this build.
std::vector<std::string> dicom_transfer_syntaxes();

// Dispatch by detect_format; CZ_ERR_UNSUPPORTED for an unrecognised format.
Gray8 decode(const uint8_t* buf, size_t len, const DecodeOptions& o = {});

// ---- preprocessing (preprocess.cpp, resize_area.cpp) ----

// Where the resized image sits in the padded square (src/image/preprocess.ts padLayout):
// the longer side becomes `scale`, the other int(side * (scale / longer)) in double precision
// (height counts as longer when equal), pad floor(pad / 2) before.
struct PadLayout {
  int32_t width = 0, height = 0, left = 0, top = 0;
};
PadLayout pad_layout(int32_t width, int32_t height, int32_t scale = 256);

// cv2.resize(src, (dw, dh), interpolation=cv2.INTER_AREA) on one-channel uint8, bit for bit
// (OpenCV 4.6: same-size copy, integer-factor fast area, general area, and the linear-like
// enlarging path). dst holds dw * dh bytes.
void resize_area(const uint8_t* src, int32_t w, int32_t h, uint8_t* dst, int32_t dw, int32_t dh);

struct PreprocessOptions {
  int32_t resize = 256;  // padded square side
  int32_t crop = 224;    // centre crop side
  float mean = 0.4978f;
  float std = 0.2449f;
};

// float32 ((v / 255) - mean) / std for v = 0..255, each step rounded to float32 (torch's
// ToTensor + Normalize).
void normalise_table(float mean, float std, float table[256]);

// Resize + pad into `padded` (resize * resize bytes; may be null when only the crop is wanted)
// and the normalised centre crop into `out` (crop * crop floats; may be null). Returns the layout.
// Throws CZ_ERR_INVALID_ARGUMENT when the image resizes to an empty side (an extreme aspect
// ratio) or the options are out of range.
PadLayout preprocess(const Gray8& img, const PreprocessOptions& o, uint8_t* padded, float* out);

// ---- files (feed.cpp) ----

// Reads a whole file with large sequential reads; CZ_ERR_IO ("cannot read (reason)") on failure.
std::vector<uint8_t> read_file(const std::string& path);

// The outcome of one file of a batch.
struct ItemStatus {
  int code = 0;  // cz_status: CZ_OK or why the file was skipped
  std::string message;
  int32_t width = 0, height = 0;
};

// One image, never a throw: the file at `path` (or, when `path` is empty, `bytes`) decoded and
// preprocessed into `padded` and/or `out` (either may be null), its layout into *layout when
// given. A failure is the status (code, and a message without the name); the bytes are freed as
// soon as they are decoded.
ItemStatus load_item(const std::string& path, std::vector<uint8_t>&& bytes, const DecodeOptions& dec,
                     const PreprocessOptions& pre, uint8_t* padded, float* out, PadLayout* layout);

// Reads, decodes and preprocesses `paths` on `threads` threads (<= 0: one per core) into
// out[i * crop * crop] (the normalised crop; a failed file's slot is zero-filled), in input
// order; never throws for a bad file (its status says why). Memory: one file and one decoded
// image per thread.
std::vector<ItemStatus> load_batch(const std::vector<std::string>& paths, int threads, const DecodeOptions& dec,
                                   const PreprocessOptions& pre, float* out);

}  // namespace img
}  // namespace carzero
