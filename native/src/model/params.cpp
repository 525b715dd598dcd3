// params.cpp: see params.h.
#include "model/params.h"

#include <cstring>

#include "core/status.h"
#include "core/threadpool.h"

namespace carzero::model {

namespace {

size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

bool is_float(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16; }

}  // namespace

ParamStore::ParamStore(std::shared_ptr<Context> ctx, std::shared_ptr<const TensorSource> src)
    : ctx_(std::move(ctx)), src_(std::move(src)) {}

static const TensorView& checked(const TensorSource& src, const std::string& name, const std::vector<int64_t>& shape) {
  const TensorView* v = src.find(name);
  CZ_REQUIRE(v != nullptr, CZ_ERR_FORMAT, "%s: missing tensor '%s' (expected shape %s)", src.where().c_str(),
             name.c_str(), shape_to_string(shape).c_str());
  CZ_REQUIRE(v->shape == shape, CZ_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected %s", src.where().c_str(),
             name.c_str(), shape_to_string(v->shape).c_str(), shape_to_string(shape).c_str());
  CZ_REQUIRE(v->supported && is_float(v->dtype), CZ_ERR_FORMAT,
             "%s: tensor '%s' has dtype %s, expected F32, F16 or BF16", src.where().c_str(), name.c_str(),
             v->dtype_name.c_str());
  return *v;
}

int ParamStore::declare(const std::string& name, const std::vector<int64_t>& shape, DType dtype, bool packed) {
  CZ_REQUIRE(!index_.count(name), CZ_ERR_INTERNAL, "parameter '%s' declared twice", name.c_str());
  CZ_REQUIRE(dtype == DType::F32 || dtype == DType::BF16, CZ_ERR_INTERNAL,
             "parameter '%s': storage dtype must be F32 or BF16", name.c_str());
  const TensorView& v = checked(*src_, name, shape);
  Param p;
  p.name = name;
  p.shape = shape;
  p.dtype = dtype;
  p.numel = checked_numel(shape, name.c_str());
  p.src = &v;
  p.packed = packed && !params_.empty() && params_.back().dtype == dtype;
  params_.push_back(std::move(p));
  index_[name] = static_cast<int>(params_.size() - 1);
  return static_cast<int>(params_.size() - 1);
}

int ParamStore::declare_derived(const std::string& name, const std::vector<int64_t>& shape, DType dtype,
                                std::vector<float> values) {
  CZ_REQUIRE(!index_.count(name), CZ_ERR_INTERNAL, "parameter '%s' declared twice", name.c_str());
  Param p;
  p.name = name;
  p.shape = shape;
  p.dtype = dtype;
  p.numel = checked_numel(shape, name.c_str());
  CZ_REQUIRE(static_cast<int64_t>(values.size()) == p.numel, CZ_ERR_INTERNAL,
             "derived parameter '%s': %zu values for shape %s", name.c_str(), values.size(),
             shape_to_string(shape).c_str());
  p.derived = std::move(values);
  params_.push_back(std::move(p));
  index_[name] = static_cast<int>(params_.size() - 1);
  return static_cast<int>(params_.size() - 1);
}

std::vector<float> ParamStore::read_f32(const std::string& name, const std::vector<int64_t>& shape) const {
  const TensorView& v = checked(*src_, name, shape);
  std::vector<float> out(static_cast<size_t>(checked_numel(shape, name.c_str())));
  Exec host_exec;
  host_exec.pool = ctx_->exec().pool ? ctx_->exec().pool : &default_pool();
  if (!out.empty())
    cpu_ops().convert(host_exec, out.data(), DType::F32, v.data, v.dtype, static_cast<int64_t>(out.size()));
  return out;
}

void ParamStore::materialise(bool allow_zero_copy) {
  const bool cpu = ctx_->device() == DeviceType::CPU;
  size_t total = 0;
  for (Param& p : params_) {
    p.zero_copy = allow_zero_copy && !p.packed && cpu && p.src && p.src->dtype == DType::F32 && p.dtype == DType::F32 &&
                  reinterpret_cast<uintptr_t>(p.src->data) % 4 == 0;
    if (p.zero_copy) continue;
    if (!p.packed) total = align_up(total, 64);
    p.offset = total;
    total += static_cast<size_t>(p.numel) * dtype_size(p.dtype);
  }
  arena_bytes_ = total;
  arena_ = ctx_->alloc(DType::U8, {static_cast<int64_t>(total)}, false);
  char* base = total ? static_cast<char*>(arena_.data()) : nullptr;
  Exec host_exec;
  host_exec.pool = ctx_->exec().pool ? ctx_->exec().pool : &default_pool();
  std::vector<char> staging;
  for (Param& p : params_) {
    if (p.zero_copy) {
      p.data = p.src->data;
      continue;
    }
    const size_t nbytes = static_cast<size_t>(p.numel) * dtype_size(p.dtype);
    char* dst_dev = base + p.offset;
    char* dst = dst_dev;
    if (!cpu) {
      staging.resize(nbytes);
      dst = staging.data();
    }
    if (p.numel) {
      if (p.src)
        cpu_ops().convert(host_exec, dst, p.dtype, p.src->data, p.src->dtype, p.numel);
      else
        cpu_ops().convert(host_exec, dst, p.dtype, p.derived.data(), DType::F32, p.numel);
    }
    if (!cpu && nbytes) {
      Tensor view = Tensor::wrap(arena_.storage(), p.offset, DType::U8, {static_cast<int64_t>(nbytes)});
      ctx_->upload(view, staging.data(), nbytes);
    }
    p.data = dst_dev;
    std::vector<float>().swap(p.derived);
  }
}

const float* ParamStore::f32(int i) const {
  const Param& p = param(i);
  CZ_REQUIRE(p.dtype == DType::F32, CZ_ERR_INTERNAL, "parameter '%s' is stored %s, not f32", p.name.c_str(),
             dtype_name(p.dtype));
  return static_cast<const float*>(p.data);
}

int ParamStore::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? -1 : it->second;
}

int64_t ParamStore::total_numel() const {
  int64_t n = 0;
  for (const Param& p : params_) n += p.numel;
  return n;
}

void ParamStore::allocate_grads() {
  if (grads_.defined()) return;
  size_t total = 0;
  grad_offsets_.clear();
  for (const Param& p : params_) {
    if (!p.packed) total = align_up(total, 64);
    grad_offsets_.push_back(total);
    total += static_cast<size_t>(p.numel) * 4;
  }
  grads_ = ctx_->alloc(DType::U8, {static_cast<int64_t>(total)}, true);
}

float* ParamStore::grad(int i) const {
  CZ_REQUIRE(grads_.defined(), CZ_ERR_INTERNAL, "gradients were not allocated");
  return reinterpret_cast<float*>(static_cast<char*>(grads_.data()) + grad_offsets_.at(static_cast<size_t>(i)));
}

Tensor ParamStore::param_tensor(int i) const {
  const Param& p = param(i);
  CZ_REQUIRE(!p.zero_copy, CZ_ERR_INTERNAL, "parameter '%s' is a zero-copy view", p.name.c_str());
  return Tensor::wrap(arena_.storage(), p.offset, p.dtype, p.shape);
}

Tensor ParamStore::grad_tensor(int i) const {
  CZ_REQUIRE(grads_.defined(), CZ_ERR_INTERNAL, "gradients were not allocated");
  return Tensor::wrap(grads_.storage(), grad_offsets_.at(static_cast<size_t>(i)), DType::F32, param(i).shape);
}

void ParamStore::zero_grads() {
  if (!grads_.defined() || !grads_.nbytes()) return;
  if (ctx_->device() == DeviceType::CPU)
    std::memset(grads_.data(), 0, grads_.nbytes());
  else
    ctx_->backend()->zero(grads_.data(), grads_.nbytes());
}

}  // namespace carzero::model
