// tensor.cpp: the JS-visible Context and Tensor classes. A Tensor holds a share of its storage
// and of its context; dispose() drops them at once (work already in flight keeps its own share).
// Sizes are reported to V8 as external memory so large tensors pressure the garbage collector.
#include <cstring>

#include "common.h"

namespace carzero::napi {

DType parse_dtype(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsString())
    throw Napi::TypeError::New(env, std::string(what) + " must be a dtype string (f32|bf16|f16|i32|u8)");
  std::string s = v.As<Napi::String>().Utf8Value();
  DType d;
  if (!dtype_from_name(s.c_str(), &d))
    throw Napi::TypeError::New(env, std::string(what) + ": unknown dtype '" + s + "' (expected f32|bf16|f16|i32|u8)");
  return d;
}

std::vector<int64_t> parse_shape(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsArray()) throw Napi::TypeError::New(env, std::string(what) + " must be an array of sizes");
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() > CZ_MAX_DIMS) throw Napi::RangeError::New(env, std::string(what) + " has more than 8 dimensions");
  std::vector<int64_t> shape;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    if (!e.IsNumber())
      throw Napi::TypeError::New(env, std::string(what) + "[" + std::to_string(i) + "] must be a number");
    double d = e.As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d != static_cast<double>(static_cast<int64_t>(d)) || d > 9007199254740991.0)
      throw Napi::RangeError::New(env, std::string(what) + "[" + std::to_string(i) +
                                           "] must be a non-negative integer, got " + e.ToString().Utf8Value());
    shape.push_back(static_cast<int64_t>(d));
  }
  return shape;
}

// ---- Context ----------------------------------------------------------------------------------

Napi::Function ContextWrap::Init(Napi::Env env) {
  return DefineClass(
      env, "Context",
      {InstanceMethod<&ContextWrap::Dispose>("dispose"), InstanceAccessor<&ContextWrap::GetDevice>("device"),
       InstanceAccessor<&ContextWrap::GetThreads>("threads"), InstanceAccessor<&ContextWrap::GetDisposed>("disposed")});
}

// new Context(device: 'cpu' | 'cuda', deviceIndex = 0, numThreads = 0)
ContextWrap::ContextWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ContextWrap>(info) {
  Napi::Env env = info.Env();
  std::string dev = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  DeviceType dt;
  if (dev == "cpu")
    dt = DeviceType::CPU;
  else if (dev == "cuda")
    dt = DeviceType::CUDA;
  else
    throw Napi::TypeError::New(env, "Context: argument 'device' must be 'cpu' or 'cuda'");
  int index = 0, threads = 0;
  if (!info[1].IsUndefined()) {
    if (!info[1].IsNumber()) throw Napi::TypeError::New(env, "Context: argument 'deviceIndex' must be a number");
    index = info[1].As<Napi::Number>().Int32Value();
  }
  if (!info[2].IsUndefined()) {
    if (!info[2].IsNumber()) throw Napi::TypeError::New(env, "Context: argument 'threads' must be a number");
    threads = info[2].As<Napi::Number>().Int32Value();
    if (threads < 0 || threads > 1024)
      throw Napi::RangeError::New(env, "Context: argument 'threads' must be in [0, 1024]");
  }
  std::unique_ptr<Context> c = call_native(env, [&] { return Context::create(dt, index, threads); });
  ctx_ = std::shared_ptr<Context>(std::move(c));
}

std::shared_ptr<Context> ContextWrap::live(Napi::Env env, const char* what) const {
  if (!ctx_) throw make_error(env, CZ_ERR_INVALID_ARGUMENT, std::string(what) + " has been disposed");
  return ctx_;
}

Napi::Value ContextWrap::Dispose(const Napi::CallbackInfo& info) {
  ctx_.reset();  // tensors and in-flight work keep their own share until they finish
  return info.Env().Undefined();
}
Napi::Value ContextWrap::GetDevice(const Napi::CallbackInfo& info) {
  if (!ctx_) return info.Env().Null();
  return Napi::String::New(info.Env(), ctx_->device() == DeviceType::CPU ? "cpu" : "cuda");
}
Napi::Value ContextWrap::GetThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), ctx_ ? ctx_->num_threads() : 0);
}
Napi::Value ContextWrap::GetDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !ctx_); }

// ---- Tensor -----------------------------------------------------------------------------------

Napi::Function TensorWrap::Init(Napi::Env env) {
  return DefineClass(
      env, "Tensor",
      {InstanceMethod<&TensorWrap::Dispose>("dispose"), InstanceMethod<&TensorWrap::ReadSync>("readSync"),
       InstanceMethod<&TensorWrap::Read>("read"), InstanceMethod<&TensorWrap::WriteSync>("writeSync"),
       InstanceAccessor<&TensorWrap::GetShape>("shape"), InstanceAccessor<&TensorWrap::GetDtype>("dtype"),
       InstanceAccessor<&TensorWrap::GetNbytes>("nbytes"), InstanceAccessor<&TensorWrap::GetDisposed>("disposed")});
}

static std::pair<const void*, size_t> bytes_of(Napi::Env env, const Napi::Value& v, const char* what) {
  if (v.IsTypedArray()) {
    Napi::TypedArray ta = v.As<Napi::TypedArray>();
    auto* base = static_cast<const char*>(ta.ArrayBuffer().Data());
    return {base + ta.ByteOffset(), ta.ByteLength()};
  }
  if (v.IsArrayBuffer()) {
    Napi::ArrayBuffer ab = v.As<Napi::ArrayBuffer>();
    return {ab.Data(), ab.ByteLength()};
  }
  if (v.IsDataView()) {
    Napi::DataView dv = v.As<Napi::DataView>();
    return {static_cast<const char*>(dv.ArrayBuffer().Data()) + dv.ByteOffset(), dv.ByteLength()};
  }
  throw Napi::TypeError::New(env, std::string(what) + " must be a TypedArray, ArrayBuffer or DataView");
}

// new Tensor(context, dtype, shape, data?)
TensorWrap::TensorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorWrap>(info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[0].As<Napi::Object>().InstanceOf(addon_data(env).context_ctor.Value()))
    throw Napi::TypeError::New(env, "Tensor: argument 'context' must be a native Context");
  ctx_ = ContextWrap::Unwrap(info[0].As<Napi::Object>())->live(env, "Tensor: context");
  DType dt = parse_dtype(env, info[1], "Tensor: argument 'dtype'");
  std::vector<int64_t> shape = parse_shape(env, info[2], "Tensor: argument 'shape'");
  bool has_data = !info[3].IsUndefined() && !info[3].IsNull();
  t_ = call_native(env, [&] { return ctx_->alloc(dt, shape, !has_data); });
  if (has_data) {
    auto [p, n] = bytes_of(env, info[3], "Tensor: argument 'data'");
    if (n != t_.nbytes())
      throw Napi::RangeError::New(env, "Tensor: argument 'data' has " + std::to_string(n) + " bytes, shape " +
                                           t_.shape_str() + " of " + dtype_name(dt) + " needs " +
                                           std::to_string(t_.nbytes()));
    call_native(env, [&] {
      ctx_->upload(t_, p, n);
      return 0;
    });
  }
  external_bytes_ = static_cast<int64_t>(t_.nbytes());
  Napi::MemoryManagement::AdjustExternalMemory(env, external_bytes_);
}

void TensorWrap::adopt(Tensor t) {
  if (external_bytes_) Napi::MemoryManagement::AdjustExternalMemory(Env(), -external_bytes_);
  external_bytes_ = 0;
  t_ = std::move(t);
}

TensorWrap::~TensorWrap() {
  if (external_bytes_) Napi::MemoryManagement::AdjustExternalMemory(Env(), -external_bytes_);
}

void TensorWrap::release(Napi::Env env) {
  if (disposed_) return;
  disposed_ = true;
  t_ = Tensor();
  ctx_.reset();
  if (external_bytes_) Napi::MemoryManagement::AdjustExternalMemory(env, -external_bytes_);
  external_bytes_ = 0;
}

const Tensor& TensorWrap::live(Napi::Env env, const std::string& what) const {
  if (disposed_) throw make_error(env, CZ_ERR_INVALID_ARGUMENT, what + " has been disposed");
  return t_;
}

Napi::Value TensorWrap::Dispose(const Napi::CallbackInfo& info) {
  release(info.Env());
  return info.Env().Undefined();
}

Napi::Value TensorWrap::GetShape(const Napi::CallbackInfo& info) {
  const Tensor& t = live(info.Env(), "Tensor");
  Napi::Array a = Napi::Array::New(info.Env(), t.ndim());
  for (int i = 0; i < t.ndim(); ++i) a.Set(i, Napi::Number::New(info.Env(), static_cast<double>(t.size(i))));
  return a;
}
Napi::Value TensorWrap::GetDtype(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), dtype_name(live(info.Env(), "Tensor").dtype()));
}
Napi::Value TensorWrap::GetNbytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(live(info.Env(), "Tensor").nbytes()));
}
Napi::Value TensorWrap::GetDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), disposed_);
}

// readSync() -> ArrayBuffer (a copy)
Napi::Value TensorWrap::ReadSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& t = live(env, "Tensor.readSync: tensor");
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, t.nbytes());
  call_native(env, [&] {
    ctx_->download(t, ab.Data(), t.nbytes());
    return 0;
  });
  return ab;
}

namespace {
class ReadWorker : public Napi::AsyncWorker {
 public:
  ReadWorker(Napi::Env env, Tensor t, std::shared_ptr<Context> ctx)
      : Napi::AsyncWorker(env, "carzero:read"), t_(std::move(t)), ctx_(std::move(ctx)), deferred_(env) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      buf_.resize(t_.nbytes());
      ctx_->download(t_, buf_.data(), buf_.size());
    } catch (const Error& e) {
      code_ = e.code();
      msg_ = e.what();
    } catch (const std::exception& e) {
      code_ = CZ_ERR_INTERNAL;
      msg_ = e.what();
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (code_ != CZ_OK) {
      deferred_.Reject(make_error(env, code_, msg_).Value());
      return;
    }
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, buf_.size());
    if (!buf_.empty()) std::memcpy(ab.Data(), buf_.data(), buf_.size());
    deferred_.Resolve(ab);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Tensor t_;
  std::shared_ptr<Context> ctx_;
  Napi::Promise::Deferred deferred_;
  std::vector<char> buf_;
  cz_status code_ = CZ_OK;
  std::string msg_;
};
}  // namespace

// read() -> Promise<ArrayBuffer>: the copy runs off the JS thread (device downloads can be slow).
Napi::Value TensorWrap::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& t = live(env, "Tensor.read: tensor");
  auto* w = new ReadWorker(env, t, ctx_);
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// writeSync(data): copy data (exactly nbytes) into the tensor.
Napi::Value TensorWrap::WriteSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& t = live(env, "Tensor.writeSync: tensor");
  auto [p, n] = bytes_of(env, info[0], "Tensor.writeSync: argument 'data'");
  if (n != t.nbytes())
    throw Napi::RangeError::New(env, "Tensor.writeSync: argument 'data' has " + std::to_string(n) +
                                         " bytes, the tensor has " + std::to_string(t.nbytes()));
  call_native(env, [&] {
    ctx_->upload(t, p, n);
    return 0;
  });
  return env.Undefined();
}

}  // namespace carzero::napi
