// dicom_jpeg.cpp: DICOM JPEG baseline (1.2.840.10008.1.2.4.50) and JPEG extended (.51) frames
// through libjpeg from memory for 8-bit samples; libjpeg-turbo 2.1 is built for 8 bits, so 12-bit
// extended frames go to our own decoder (dicom_jpeg12.cpp).
//
// libjpeg reports errors by calling error_exit, which must not return: we longjmp out of it. The
// setjmp lives in a C-style function (decode_gray8_c) whose frame owns only plain data and raw
// pointers, so the longjmp crosses no C++ destructors; it returns an error code and message, and
// the C++ caller throws.
#include <cstring>
#include <vector>

#include "core/status.h"
#include "image/dicom.h"

#if CZ_HAVE_JPEG
#include <csetjmp>
#include <cstdio>  // jpeglib.h needs FILE
#include <jpeglib.h>
#endif

namespace carzero {
namespace img {

#if CZ_HAVE_JPEG
namespace {

struct JpegErr {
  jpeg_error_mgr pub;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

extern "C" void cz_dicom_jpeg_error_exit(j_common_ptr cinfo) {
  JpegErr* e = reinterpret_cast<JpegErr*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  longjmp(e->jump, 1);
}
extern "C" void cz_dicom_jpeg_output_message(j_common_ptr) {}
// Warnings (corrupt data libjpeg would paper over, e.g. a premature end of the data) are errors
// for us: a truncated frame must not decode to a half-grey image.
extern "C" void cz_dicom_jpeg_emit_message(j_common_ptr cinfo, int level) {
  if (level < 0) cz_dicom_jpeg_error_exit(cinfo);
}

enum class JpegResult { ok = 0, error, size_mismatch, components };

// C-style: no objects with destructors live in this frame (setjmp/longjmp safety). `out` holds
// rows * cols bytes, allocated by the caller.
JpegResult decode_gray8_c(const uint8_t* data, size_t len, int rows, int cols, uint8_t* out, char* msg, size_t msg_len,
                          int* got_w, int* got_h, int* got_c) {
  jpeg_decompress_struct cinfo;
  JpegErr err;
  std::memset(&cinfo, 0, sizeof cinfo);
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = cz_dicom_jpeg_error_exit;
  err.pub.output_message = cz_dicom_jpeg_output_message;
  err.pub.emit_message = cz_dicom_jpeg_emit_message;
  err.message[0] = 0;
  if (setjmp(err.jump)) {
    std::snprintf(msg, msg_len, "%s", err.message);
    jpeg_destroy_decompress(&cinfo);
    return JpegResult::error;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, (unsigned long)len);
  jpeg_read_header(&cinfo, TRUE);
  *got_w = int(cinfo.image_width);
  *got_h = int(cinfo.image_height);
  *got_c = cinfo.num_components;
  if (int(cinfo.image_width) != cols || int(cinfo.image_height) != rows) {
    jpeg_destroy_decompress(&cinfo);
    return JpegResult::size_mismatch;
  }
  if (cinfo.num_components != 1) {
    jpeg_destroy_decompress(&cinfo);
    return JpegResult::components;
  }
  cinfo.out_color_space = JCS_GRAYSCALE;
  cinfo.dct_method = JDCT_ISLOW;  // dcmtk's (IJG) default
  jpeg_start_decompress(&cinfo);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out + size_t(cinfo.output_scanline) * size_t(cols);
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return JpegResult::ok;
}

}  // namespace
#endif

void jpeg_dct_decode_frame(const uint8_t* data, size_t len, const FrameSpec& f, uint32_t* out) {
  int sof = 0;
  const int precision = jpeg_sof_precision(data, len, &sof);
  if (sof == 0xc3) throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: the frame is lossless JPEG (SOF3))", f.ts_label);
  if (precision == 12) {  // libjpeg-turbo 2.1 here is 8-bit only: our own 12-bit decoder
    jpeg12_decode_frame(data, len, f, out);
    return;
  }
#if CZ_HAVE_JPEG
  if (precision != 0 && precision != 8)
    throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG precision %d)", f.ts_label, precision);
  const size_t n = size_t(f.rows) * size_t(f.cols);
  std::vector<uint8_t> buf(n);
  char msg[JMSG_LENGTH_MAX + 8] = {0};
  int w = 0, h = 0, c = 0;
  const JpegResult r = decode_gray8_c(data, len, f.rows, f.cols, buf.data(), msg, sizeof msg, &w, &h, &c);
  switch (r) {
    case JpegResult::ok: break;
    case JpegResult::error:
      throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: corrupt or truncated JPEG data: %s)", f.ts_label, msg);
    case JpegResult::size_mismatch:
      throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG frame is %d x %d, the DICOM header says %d x %d)", f.ts_label,
                  w, h, f.cols, f.rows);
    case JpegResult::components:
      throw_error(CZ_ERR_UNSUPPORTED, "unsupported DICOM %s frame: JPEG with %d components in a MONOCHROME image",
                  f.ts_label, c);
  }
  for (size_t i = 0; i < n; i++) out[i] = buf[i];
#else
  (void)data;
  (void)len;
  (void)out;
  throw_error(CZ_ERR_UNSUPPORTED, "unsupported DICOM transfer syntax %s: this build has no libjpeg", f.ts_label);
#endif
}

}  // namespace img
}  // namespace carzero
