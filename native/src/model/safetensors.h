// safetensors.h: reading (mmap, zero-copy) and writing safetensors files, and the TensorSource
// interface the parameter loader reads from (a file, or tensors built in memory by tests and
// benchmarks).
//
// Format (https://github.com/huggingface/safetensors): u64 little-endian header length N, N bytes
// of JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then
// the data section; offsets are relative to its start. The reader validates everything before
// handing out a pointer: header length and JSON, every dtype/shape/offset, sizes that match
// numel * dtype size, offsets inside the file. A truncated or corrupt file is refused with an
// Error(CZ_ERR_FORMAT) naming the file (and the tensor, when one is at fault).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace carzero::model {

// One stored tensor. `dtype_name` is the file's dtype string ("F32", "BF16", "I64", ...);
// `supported` is false for dtypes the core has no DType for (then `dtype` is meaningless).
struct TensorView {
  std::string name;
  std::string dtype_name;
  bool supported = false;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // host memory (mmap or the owner's buffer), little-endian
  size_t nbytes = 0;
};

class TensorSource {
 public:
  virtual ~TensorSource() = default;
  virtual const TensorView* find(const std::string& name) const = 0;
  virtual std::vector<std::string> names() const = 0;
  // The source named in error messages (a file path, or "<memory>").
  virtual const std::string& where() const = 0;
};

// A safetensors file mapped read-only.
class SafeTensorsFile : public TensorSource {
 public:
  // Throws Error(CZ_ERR_IO) when the file cannot be opened/mapped, CZ_ERR_FORMAT when invalid.
  static std::unique_ptr<SafeTensorsFile> open(const std::string& path);
  ~SafeTensorsFile() override;
  const TensorView* find(const std::string& name) const override;
  std::vector<std::string> names() const override;
  const std::string& where() const override { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafeTensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, TensorView> tensors_;
  std::vector<std::string> order_;
  std::map<std::string, std::string> metadata_;
};

// Tensors held in memory (tests, benchmarks, converters). add() copies the data.
class MemorySource : public TensorSource {
 public:
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data);
  // Takes ownership of a f32 buffer without copying.
  void add_f32(const std::string& name, std::vector<int64_t> shape, std::vector<float>&& data);
  const TensorView* find(const std::string& name) const override;
  std::vector<std::string> names() const override { return order_; }
  const std::string& where() const override { return where_; }

 private:
  std::string where_ = "<memory>";
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::vector<uint8_t>> bytes_;
  std::map<std::string, std::vector<float>> floats_;
  std::vector<std::string> order_;
};

// The safetensors dtype string of a DType ("F32", "BF16", "F16", "I32", "U8").
const char* safetensors_dtype_name(DType t);

// Writes every tensor of `src` (in names() order) to `path` as a safetensors file, with optional
// string metadata. Throws Error(CZ_ERR_IO) naming the path on failure.
void write_safetensors(const std::string& path, const TensorSource& src,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace carzero::model
