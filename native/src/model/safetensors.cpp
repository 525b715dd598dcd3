// safetensors.cpp: see safetensors.h.
#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/status.h"
#include "core/tensor.h"

namespace carzero::model {

namespace {

// Header sizes above this are refused (the format's own reference limit is 100 MB).
constexpr uint64_t kMaxHeader = 100ull << 20;

struct DTypeName {
  const char* name;
  size_t size;
  bool supported;
  DType dtype;
};
constexpr DTypeName kDTypes[] = {
    {"F32", 4, true, DType::F32},   {"BF16", 2, true, DType::BF16},    {"F16", 2, true, DType::F16},
    {"I32", 4, true, DType::I32},   {"U8", 1, true, DType::U8},        {"F64", 8, false, DType::F32},
    {"I64", 8, false, DType::F32},  {"U64", 8, false, DType::F32},     {"I16", 2, false, DType::F32},
    {"U16", 2, false, DType::F32},  {"U32", 4, false, DType::F32},     {"I8", 1, false, DType::F32},
    {"BOOL", 1, false, DType::F32}, {"F8_E4M3", 1, false, DType::F32}, {"F8_E5M2", 1, false, DType::F32},
};

const DTypeName* lookup_dtype(const std::string& s) {
  for (const auto& d : kDTypes)
    if (s == d.name) return &d;
  return nullptr;
}

}  // namespace

const char* safetensors_dtype_name(DType t) {
  for (const auto& d : kDTypes)
    if (d.supported && d.dtype == t) return d.name;
  return "?";
}

std::unique_ptr<SafeTensorsFile> SafeTensorsFile::open(const std::string& path) {
  std::unique_ptr<SafeTensorsFile> f(new SafeTensorsFile());
  f->path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  CZ_REQUIRE(fd >= 0, CZ_ERR_IO, "%s: cannot open: %s", path.c_str(), std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    throw_error(CZ_ERR_IO, "%s: cannot stat: %s", path.c_str(), std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw_error(CZ_ERR_IO, "%s: not a regular file", path.c_str());
  }
  f->size_ = static_cast<size_t>(st.st_size);
  // The header is read and checked against the file's length before anything is mapped.
  auto fail_closed = [&](cz_status code, const std::string& msg) {
    ::close(fd);
    throw_error(code, "%s", msg.c_str());
  };
  auto read_exact = [&](void* dst, size_t n, uint64_t at) {
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::pread(fd, static_cast<char*>(dst) + got, n - got, static_cast<off_t>(at + got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0)
        fail_closed(CZ_ERR_IO, path + ": cannot read the safetensors header: " +
                                   (r < 0 ? std::strerror(errno) : "file shrank while reading"));
      got += static_cast<size_t>(r);
    }
  };
  if (f->size_ < 8)
    fail_closed(CZ_ERR_FORMAT,
                path + ": truncated safetensors file (" + std::to_string(f->size_) + " bytes, no header)");
  uint8_t lenbuf[8];
  read_exact(lenbuf, 8, 0);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | lenbuf[i];
  if (hlen > kMaxHeader)
    fail_closed(CZ_ERR_FORMAT,
                path + ": safetensors header length " + std::to_string(hlen) + " is implausible (corrupt file?)");
  if (8 + hlen > f->size_)
    fail_closed(CZ_ERR_FORMAT, path + ": truncated safetensors file: header of " + std::to_string(hlen) +
                                   " bytes, file has " + std::to_string(f->size_));
  std::string header(static_cast<size_t>(hlen), '\0');
  if (hlen) read_exact(header.data(), static_cast<size_t>(hlen), 8);
  void* m = f->size_ > 8 + hlen ? ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0)
                                : nullptr;  // nothing past the header: nothing to map
  int e = errno;
  ::close(fd);
  CZ_REQUIRE(m != MAP_FAILED, CZ_ERR_IO, "%s: mmap failed: %s", path.c_str(), std::strerror(e));
  f->map_ = m;
  const auto* base = static_cast<const uint8_t*>(m);

  // Header padding is spaces (allowed as JSON whitespace); some writers pad with NULs too.
  while (!header.empty() && header.back() == '\0') header.pop_back();
  json::Value h = json::parse(header, path + " (safetensors header)");
  CZ_REQUIRE(h.is_object(), CZ_ERR_FORMAT, "%s: safetensors header is not a JSON object", path.c_str());
  const size_t data_start = 8 + static_cast<size_t>(hlen);
  const size_t data_size = f->size_ - data_start;
  struct Range {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Range> ranges;
  for (const auto& kv : h.obj) {
    const std::string& name = kv.first;
    const json::Value& t = kv.second;
    if (name == "__metadata__") {
      CZ_REQUIRE(t.is_object(), CZ_ERR_FORMAT, "%s: __metadata__ is not an object", path.c_str());
      for (const auto& m2 : t.obj) {
        CZ_REQUIRE(m2.second.is_string(), CZ_ERR_FORMAT, "%s: __metadata__.%s is not a string", path.c_str(),
                   m2.first.c_str());
        f->metadata_[m2.first] = m2.second.str;
      }
      continue;
    }
    CZ_REQUIRE(t.is_object(), CZ_ERR_FORMAT, "%s: tensor '%s': entry is not an object", path.c_str(), name.c_str());
    const json::Value* dt = t.find("dtype");
    const json::Value* sh = t.find("shape");
    const json::Value* off = t.find("data_offsets");
    CZ_REQUIRE(dt && dt->is_string(), CZ_ERR_FORMAT, "%s: tensor '%s': missing string 'dtype'", path.c_str(),
               name.c_str());
    CZ_REQUIRE(sh && sh->is_array(), CZ_ERR_FORMAT, "%s: tensor '%s': missing array 'shape'", path.c_str(),
               name.c_str());
    CZ_REQUIRE(off && off->is_array() && off->arr.size() == 2, CZ_ERR_FORMAT,
               "%s: tensor '%s': 'data_offsets' must be [begin, end]", path.c_str(), name.c_str());
    const DTypeName* d = lookup_dtype(dt->str);
    CZ_REQUIRE(d != nullptr, CZ_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%s'", path.c_str(), name.c_str(),
               dt->str.c_str());
    TensorView v;
    v.name = name;
    v.dtype_name = dt->str;
    v.supported = d->supported;
    v.dtype = d->dtype;
    std::string what = path + ": tensor '" + name + "' shape";
    uint64_t numel = 1;
    for (const auto& s : sh->arr) {
      int64_t n = s.as_int64(what.c_str());
      CZ_REQUIRE(n >= 0 && n < (int64_t(1) << 40), CZ_ERR_FORMAT, "%s: bad size %lld", what.c_str(),
                 static_cast<long long>(n));
      v.shape.push_back(n);
      CZ_REQUIRE(n == 0 || numel <= (uint64_t(1) << 48) / static_cast<uint64_t>(n), CZ_ERR_FORMAT,
                 "%s: too many elements", what.c_str());
      numel *= static_cast<uint64_t>(n);
    }
    std::string owhat = path + ": tensor '" + name + "' data_offsets";
    int64_t b = off->arr[0].as_int64(owhat.c_str()), en = off->arr[1].as_int64(owhat.c_str());
    CZ_REQUIRE(b >= 0 && en >= b, CZ_ERR_FORMAT, "%s: [%lld, %lld] is not a range", owhat.c_str(),
               static_cast<long long>(b), static_cast<long long>(en));
    CZ_REQUIRE(static_cast<uint64_t>(en) <= data_size, CZ_ERR_FORMAT,
               "%s: truncated file: tensor '%s' ends at byte %lld of a %zu-byte data section", path.c_str(),
               name.c_str(), static_cast<long long>(en), data_size);
    CZ_REQUIRE(static_cast<uint64_t>(en - b) == numel * d->size, CZ_ERR_FORMAT,
               "%s: %lld bytes for shape %s of %s (needs %llu)", owhat.c_str(), static_cast<long long>(en - b),
               shape_to_string(v.shape).c_str(), d->name, static_cast<unsigned long long>(numel * d->size));
    ranges.push_back({static_cast<uint64_t>(b), static_cast<uint64_t>(en), name});
    v.data = base ? base + data_start + b : nullptr;
    v.nbytes = static_cast<size_t>(en - b);
    f->order_.push_back(name);
    f->tensors_.emplace(name, std::move(v));
  }
  // The tensors must tile the data section exactly (sorted by offset, each starting where the
  // previous one ended, the last ending at the end of the file): no overlap or aliasing, no gap,
  // no trailing bytes. A header length off by a byte or a shifted offset fails here.
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& x, const Range& y) { return x.begin != y.begin ? x.begin < y.begin : x.end < y.end; });
  uint64_t pos = 0;
  for (const auto& r : ranges) {
    CZ_REQUIRE(r.begin >= pos, CZ_ERR_FORMAT,
               "%s: tensor '%s' data_offsets [%llu, %llu] overlap the previous tensor (ends at %llu)", path.c_str(),
               r.name.c_str(), static_cast<unsigned long long>(r.begin), static_cast<unsigned long long>(r.end),
               static_cast<unsigned long long>(pos));
    CZ_REQUIRE(r.begin == pos, CZ_ERR_FORMAT,
               "%s: gap in the data before tensor '%s' (bytes %llu..%llu belong to no tensor)", path.c_str(),
               r.name.c_str(), static_cast<unsigned long long>(pos), static_cast<unsigned long long>(r.begin));
    pos = r.end;
  }
  CZ_REQUIRE(pos == data_size, CZ_ERR_FORMAT,
             "%s: data section has %zu bytes but the tensors cover %llu (truncated, extended or "
             "wrong header length?)",
             path.c_str(), data_size, static_cast<unsigned long long>(pos));
  return f;
}

SafeTensorsFile::~SafeTensorsFile() {
  if (map_) ::munmap(map_, size_);
}

const TensorView* SafeTensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

std::vector<std::string> SafeTensorsFile::names() const { return order_; }

void MemorySource::add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  auto& buf = bytes_[name];
  buf.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + n * dtype_size(dtype));
  TensorView v;
  v.name = name;
  v.dtype_name = safetensors_dtype_name(dtype);
  v.supported = true;
  v.dtype = dtype;
  v.shape = std::move(shape);
  v.data = buf.data();
  v.nbytes = buf.size();
  if (!tensors_.count(name)) order_.push_back(name);
  tensors_[name] = std::move(v);
}

void MemorySource::add_f32(const std::string& name, std::vector<int64_t> shape, std::vector<float>&& data) {
  auto& buf = floats_[name];
  buf = std::move(data);
  TensorView v;
  v.name = name;
  v.dtype_name = "F32";
  v.supported = true;
  v.dtype = DType::F32;
  v.shape = std::move(shape);
  v.data = buf.data();
  v.nbytes = buf.size() * 4;
  if (!tensors_.count(name)) order_.push_back(name);
  tensors_[name] = std::move(v);
}

const TensorView* MemorySource::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

void write_safetensors(const std::string& path, const TensorSource& src,
                       const std::map<std::string, std::string>& metadata) {
  std::string h = "{";
  bool first = true;
  if (!metadata.empty()) {
    h += "\"__metadata__\":{";
    bool f2 = true;
    for (const auto& kv : metadata) {
      h += (f2 ? "" : ",") + json::quote(kv.first) + ":" + json::quote(kv.second);
      f2 = false;
    }
    h += "}";
    first = false;
  }
  size_t off = 0;
  std::vector<const TensorView*> views;
  for (const std::string& n : src.names()) {
    const TensorView* v = src.find(n);
    std::string shape = "[";
    for (size_t i = 0; i < v->shape.size(); ++i) shape += (i ? "," : "") + std::to_string(v->shape[i]);
    shape += "]";
    h += (first ? "" : ",") + json::quote(n) + ":{\"dtype\":\"" + v->dtype_name + "\",\"shape\":" + shape +
         ",\"data_offsets\":[" + std::to_string(off) + "," + std::to_string(off + v->nbytes) + "]}";
    first = false;
    off += v->nbytes;
    views.push_back(v);
  }
  h += "}";
  while ((8 + h.size()) % 8) h += ' ';  // data section 8-byte aligned
  FILE* fp = std::fopen(path.c_str(), "wb");
  CZ_REQUIRE(fp != nullptr, CZ_ERR_IO, "%s: cannot create: %s", path.c_str(), std::strerror(errno));
  uint8_t len[8];
  uint64_t hl = h.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(hl >> (8 * i));
  bool ok = std::fwrite(len, 1, 8, fp) == 8 && std::fwrite(h.data(), 1, h.size(), fp) == h.size();
  for (const TensorView* v : views) ok = ok && (v->nbytes == 0 || std::fwrite(v->data, 1, v->nbytes, fp) == v->nbytes);
  ok = (std::fclose(fp) == 0) && ok;
  CZ_REQUIRE(ok, CZ_ERR_IO, "%s: write failed", path.c_str());
}

}  // namespace carzero::model
