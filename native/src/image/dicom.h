// dicom.h: internals of the native DICOM decoder (dicom.cpp and its codecs dicom_*.cpp), exposed
// for native/tests/image/test_dicom.cpp. The public interface is image.h (decode_dicom,
// dicom_frame_count, dicom_transfer_syntaxes).
//
// decode_dicom = dicom_decode_raw (parse, pick the frame, decompress, BitsStored masking and sign
// extension) + dicom_to_gray8 (the rescale and window rule of src/image/dicom.ts, bit for bit).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "image/image.h"

namespace carzero {
namespace img {

// One decoded frame's stored values and the header fields the 8-bit mapping needs.
struct DicomRaw {
  int32_t rows = 0, cols = 0, frames = 1;
  int32_t bits_allocated = 16, bits_stored = 16, pixel_rep = 0, samples = 1;
  std::string ts;           // transfer syntax UID
  std::string photometric;  // upper case, e.g. MONOCHROME2
  // Stored values of the requested frame, row-major: masked to BitsStored and sign-extended
  // when PixelRepresentation is 1 (the x of the rescale y = x * slope + intercept).
  std::vector<int32_t> values;
  double slope = 1, intercept = 0;
  bool has_window = false;  // first WindowCenter / WindowWidth present (any width)
  double window_center = 0, window_width = 0;
};

DicomRaw dicom_decode_raw(const uint8_t* buf, size_t len, const DecodeOptions& o);
// The 8-bit mapping of src/image/dicom.ts (rescale, window or min-max, MONOCHROME1 inversion).
Gray8 dicom_to_gray8(const DicomRaw& r);

// ---- codecs (one encoded frame -> stored bit patterns) ----

// What a codec needs to know of the frame it decodes.
struct FrameSpec {
  int32_t rows = 0, cols = 0;
  int32_t bits_allocated = 16, bits_stored = 16, pixel_rep = 0;
  const char* ts_label = "";  // "1.2.840.10008.1.2.5 (RLE lossless)", for messages
};

// Each writes rows * cols values: the sample's bit pattern in the low bits_allocated bits
// (dicom.cpp masks to BitsStored and sign-extends). Corrupt or truncated data throws
// carzero::Error(CZ_ERR_FORMAT); a feature the codec does not implement, CZ_ERR_UNSUPPORTED.
void rle_decode_frame(const uint8_t* data, size_t len, const FrameSpec& f, uint32_t* out);
void jpeg_lossless_decode_frame(const uint8_t* data, size_t len, const FrameSpec& f, uint32_t* out);
// JPEG baseline / extended: 8-bit through libjpeg (CZ_HAVE_JPEG), 12-bit through jpeg12_decode_frame.
void jpeg_dct_decode_frame(const uint8_t* data, size_t len, const FrameSpec& f, uint32_t* out);
// 12-bit JPEG extended sequential (Huffman, one component), our own decoder (dicom_jpeg12.cpp);
// jpeg_dct_decode_frame sends 12-bit frames here.
void jpeg12_decode_frame(const uint8_t* data, size_t len, const FrameSpec& f, uint32_t* out);
// JPEG 2000 (J2K codestream or JP2 file) through OpenJPEG (CZ_HAVE_OPENJPEG).
void j2k_decode_frame(const uint8_t* data, size_t len, const FrameSpec& f, uint32_t* out);
// JPEG-LS lossless / near-lossless (ITU-T T.87), our own decoder.
void jpegls_decode_frame(const uint8_t* data, size_t len, const FrameSpec& f, uint32_t* out);

// The sample precision of a JPEG stream's SOF (0 when none is found), and its SOF marker.
int jpeg_sof_precision(const uint8_t* data, size_t len, int* sof_marker);

}  // namespace img
}  // namespace carzero
