// dicom_jpeg_huffman.h: the Huffman decoding shared by our own JPEG decoders (lossless process 14
// in dicom_jpeg_lossless.cpp, 12-bit DCT in dicom_jpeg12.cpp): canonical tables from a DHT segment
// (T.81 Annex C), a 9-bit lookup for short codes, and an entropy-segment bit reader that removes
// byte stuffing, stops at markers and detects a scan that ends before the image does.
#pragma once
#include <cstdint>
#include <cstring>

#include "core/status.h"

namespace carzero {
namespace img {
namespace jpegh {

struct Huffman {
  bool defined = false;
  // Fast path: the next 9 bits -> (length << 8 | value), length 0 when the code is longer.
  uint16_t fast[512];
  // Canonical decoding of longer codes: per length, the largest code (-1: none) and the index of
  // the first value of that length.
  int32_t maxcode[18];
  int32_t valptr[17];
  int32_t mincode[17];
  uint8_t values[256];
};

inline void build_huffman(Huffman* h, const uint8_t counts[16], const uint8_t* vals, int nvals, const char* label) {
  std::memset(h->fast, 0, sizeof h->fast);
  std::memcpy(h->values, vals, size_t(nvals));
  int32_t code = 0, k = 0;
  for (int len = 1; len <= 16; len++) {
    h->valptr[len] = k;
    h->mincode[len] = code;
    for (int i = 0; i < counts[len - 1]; i++) {
      if (len <= 9) {
        const int shift = 9 - len;
        for (int j = 0; j < (1 << shift); j++) h->fast[(code << shift) | j] = uint16_t(len << 8 | vals[k]);
      }
      code++;
      k++;
    }
    h->maxcode[len] = counts[len - 1] ? code - 1 : -1;
    if (code > (1 << len))
      throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: Huffman table with more codes than fit their lengths)", label);
    code <<= 1;
  }
  h->maxcode[17] = 0x7fffffff;
  h->defined = true;
}

// Entropy-coded segment reader: byte stuffing (FF 00), stops at a marker and then supplies zero
// bits, counting them, so a scan that ends early is detected (pad_ > bits left).
class BitReader {
 public:
  BitReader(const uint8_t* p, size_t n, size_t pos) : p_(p), n_(n), pos_(pos) {}

  void fill() {
    while (cnt_ <= 56) {
      uint32_t byte = 0;
      if (marker_ || pos_ >= n_) {
        pad_ += 8;
      } else if (p_[pos_] == 0xff) {
        if (pos_ + 1 < n_ && p_[pos_ + 1] == 0x00) {
          byte = 0xff;
          pos_ += 2;
        } else {
          marker_ = true;  // a marker (or the end): stays at pos_
          pad_ += 8;
        }
      } else {
        byte = p_[pos_++];
      }
      acc_ = acc_ << 8 | byte;
      cnt_ += 8;
    }
  }
  uint32_t peek(int k) {
    if (cnt_ < k) fill();
    return uint32_t(acc_ >> (cnt_ - k)) & ((1u << k) - 1);
  }
  void skip(int k) { cnt_ -= k; }
  uint32_t get(int k) {
    if (k == 0) return 0;
    const uint32_t v = peek(k);
    cnt_ -= k;
    return v;
  }
  // True when bits past the end of the segment were consumed.
  bool overrun() const { return cnt_ < pad_; }
  // Restart: drop the buffered bits and consume an RSTn marker (fill bytes allowed).
  bool restart() {
    acc_ = 0;
    cnt_ = 0;
    pad_ = 0;
    marker_ = false;
    // Skip to the marker (a valid stream has at most the padding bits of one byte before it).
    while (pos_ < n_ && p_[pos_] != 0xff) pos_++;
    while (pos_ < n_ && p_[pos_] == 0xff) pos_++;
    if (pos_ >= n_ || p_[pos_] < 0xd0 || p_[pos_] > 0xd7) return false;
    pos_++;
    return true;
  }

 private:
  const uint8_t* p_;
  size_t n_, pos_;
  uint64_t acc_ = 0;
  int cnt_ = 0;
  int64_t pad_ = 0;
  bool marker_ = false;
};

inline int decode_symbol(BitReader& br, const Huffman& h, const char* label) {
  const uint32_t look = br.peek(9);
  const uint16_t e = h.fast[look];
  if (e >> 8) {
    br.skip(e >> 8);
    return e & 0xff;
  }
  int32_t code = int32_t(br.peek(16));
  for (int len = 10; len <= 16; len++) {
    const int32_t c = code >> (16 - len);
    if (h.maxcode[len] >= 0 && c <= h.maxcode[len] && c >= h.mincode[len]) {
      br.skip(len);
      const int idx = h.valptr[len] + (c - h.mincode[len]);
      if (idx < 0 || idx > 255) break;
      return h.values[idx];
    }
  }
  throw_error(CZ_ERR_FORMAT, "invalid DICOM (%s: corrupt JPEG data: invalid Huffman code)", label);
}

}  // namespace jpegh
}  // namespace img
}  // namespace carzero
