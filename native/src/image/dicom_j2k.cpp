// dicom_j2k.cpp: DICOM JPEG 2000 frames (1.2.840.10008.1.2.4.90 lossless, .91 lossy) through
// OpenJPEG from memory: an opj_stream with our own read/skip/seek callbacks over the frame bytes,
// message handlers silenced (their text is kept for our error message), a J2K codestream (FF 4F FF
// 51) or a JP2 file (signature box) told apart by their first bytes, strict mode so a truncated
// codestream is an error instead of a partly decoded image. One component, signed or unsigned, up
// to 16 bits; the decoded values are returned as bit patterns (two's complement for signed).
#include <algorithm>
#include <cstring>
#include <string>

#include "core/status.h"
#include "image/dicom.h"

#if CZ_HAVE_OPENJPEG
#include <openjpeg.h>
#endif

namespace carzero {
namespace img {

#if CZ_HAVE_OPENJPEG
namespace {

struct MemStream {
  const uint8_t* data;
  size_t len;
  size_t pos;
};

OPJ_SIZE_T mem_read(void* buf, OPJ_SIZE_T n, void* user) {
  MemStream* s = static_cast<MemStream*>(user);
  if (s->pos >= s->len) return OPJ_SIZE_T(-1);  // end of stream
  const size_t k = std::min<size_t>(n, s->len - s->pos);
  std::memcpy(buf, s->data + s->pos, k);
  s->pos += k;
  return k;
}
OPJ_OFF_T mem_skip(OPJ_OFF_T n, void* user) {
  MemStream* s = static_cast<MemStream*>(user);
  if (n < 0) {
    const size_t back = size_t(-n);
    if (back > s->pos) return -1;
    s->pos -= back;
    return n;
  }
  const size_t k = std::min<size_t>(size_t(n), s->len - std::min(s->pos, s->len));
  s->pos += k;
  return OPJ_OFF_T(k);
}
OPJ_BOOL mem_seek(OPJ_OFF_T n, void* user) {
  MemStream* s = static_cast<MemStream*>(user);
  if (n < 0 || size_t(n) > s->len) return OPJ_FALSE;
  s->pos = size_t(n);
  return OPJ_TRUE;
}
// Errors are kept (the last one names the problem); warnings and info are dropped.
void on_error(const char* msg, void* user) {
  std::string* last = static_cast<std::string*>(user);
  *last = msg ? msg : "";
  while (!last->empty() && (last->back() == '\n' || last->back() == ' ')) last->pop_back();
}
void on_quiet(const char*, void*) {}

// Owns the OpenJPEG objects (released on every path, exceptions included).
struct Opj {
  opj_codec_t* codec = nullptr;
  opj_stream_t* stream = nullptr;
  opj_image_t* image = nullptr;
  ~Opj() {
    if (image) opj_image_destroy(image);
    if (stream) opj_stream_destroy(stream);
    if (codec) opj_destroy_codec(codec);
  }
};

}  // namespace
#endif

void j2k_decode_frame(const uint8_t* data, size_t len, const FrameSpec& f, uint32_t* out) {
#if CZ_HAVE_OPENJPEG
  const char* label = f.ts_label;
  OPJ_CODEC_FORMAT fmt;
  if (len >= 4 && data[0] == 0xff && data[1] == 0x4f && data[2] == 0xff && data[3] == 0x51) {
    fmt = OPJ_CODEC_J2K;
  } else if (len >= 12 && std::memcmp(data, "\0\0\0\x0cjP  \r\n\x87\n", 12) == 0) {
    fmt = OPJ_CODEC_JP2;
  } else {
    throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: the frame is neither a J2K codestream nor a JP2 file)", label);
  }
  MemStream ms{data, len, 0};
  std::string last_error;
  Opj o;
  o.codec = opj_create_decompress(fmt);
  if (!o.codec) throw_error(CZ_ERR_OUT_OF_MEMORY, "OpenJPEG: cannot create a decoder");
  opj_set_error_handler(o.codec, on_error, &last_error);
  opj_set_warning_handler(o.codec, on_quiet, nullptr);
  opj_set_info_handler(o.codec, on_quiet, nullptr);
  opj_dparameters_t params;
  opj_set_default_decoder_parameters(&params);
  if (!opj_setup_decoder(o.codec, &params)) throw_error(CZ_ERR_INTERNAL, "OpenJPEG: decoder setup failed");
  opj_decoder_set_strict_mode(o.codec, OPJ_TRUE);
  o.stream = opj_stream_create(OPJ_J2K_STREAM_CHUNK_SIZE, OPJ_TRUE);
  if (!o.stream) throw_error(CZ_ERR_OUT_OF_MEMORY, "OpenJPEG: cannot create a stream");
  opj_stream_set_user_data(o.stream, &ms, nullptr);
  opj_stream_set_user_data_length(o.stream, OPJ_UINT64(len));
  opj_stream_set_read_function(o.stream, mem_read);
  opj_stream_set_skip_function(o.stream, mem_skip);
  opj_stream_set_seek_function(o.stream, mem_seek);
  auto fail = [&](const char* stage) {
    throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: corrupt or truncated JPEG 2000 data: %s%s%s)", label, stage,
                last_error.empty() ? "" : ": ", last_error.c_str());
  };
  if (!opj_read_header(o.stream, o.codec, &o.image) || !o.image) fail("header");
  // The declared size, before OpenJPEG allocates the image.
  const opj_image_t* im = o.image;
  if (im->numcomps != 1)
    throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG 2000 frame with %u components in a MONOCHROME image)", label,
                im->numcomps);
  const uint64_t w = uint64_t(im->x1) - im->x0, h = uint64_t(im->y1) - im->y0;
  if (im->x1 < im->x0 || im->y1 < im->y0 || w != uint64_t(f.cols) || h != uint64_t(f.rows))
    throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG 2000 frame is %llu x %llu, the DICOM header says %d x %d)",
                label, (unsigned long long)w, (unsigned long long)h, f.cols, f.rows);
  if (!opj_decode(o.codec, o.stream, o.image)) fail("decode");
  if (!opj_end_decompress(o.codec, o.stream)) fail("end of codestream");
  const opj_image_comp_t& c = o.image->comps[0];
  if (!c.data || c.w != uint32_t(f.cols) || c.h != uint32_t(f.rows))
    throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: JPEG 2000 component is %u x %u, %d x %d expected)", label, c.w, c.h,
                f.cols, f.rows);
  if (c.prec < 1 || c.prec > 16)
    throw_error(CZ_ERR_UNSUPPORTED, "unsupported DICOM %s frame: JPEG 2000 precision %u (up to 16 bits are read)",
                label, c.prec);
  const size_t n = size_t(f.rows) * size_t(f.cols);
  const uint32_t mask = f.bits_allocated >= 32 ? 0xffffffffu : (uint32_t(1) << f.bits_allocated) - 1;
  for (size_t i = 0; i < n; i++) out[i] = uint32_t(c.data[i]) & mask;
#else
  (void)data;
  (void)len;
  (void)out;
  throw_error(CZ_ERR_UNSUPPORTED, "unsupported DICOM transfer syntax %s: this build has no OpenJPEG", f.ts_label);
#endif
}

}  // namespace img
}  // namespace carzero
