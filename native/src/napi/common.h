// common.h: shared pieces of the N-API addon: the error bridge (core errors -> the JS
// CarzeroError class registered by src/native.ts), and the wrapped Context and Tensor classes.
#pragma once
#include <napi.h>

#include <memory>
#include <string>

#include "core/context.h"
#include "core/status.h"
#include "core/tensor.h"

namespace carzero::napi {

// Per-addon-instance data (no process globals: each worker thread / realm gets its own).
struct AddonData {
  Napi::FunctionReference error_ctor;  // CarzeroError(message, code)
  Napi::FunctionReference tensor_ctor;
  Napi::FunctionReference context_ctor;
};

AddonData& addon_data(Napi::Env env);
// A JS error for a core status: the registered CarzeroError when set, else Error with .code.
Napi::Error make_error(Napi::Env env, cz_status code, const std::string& message);
// Runs fn and converts a thrown carzero::Error / std::exception into a JS exception.
template <typename F>
auto call_native(Napi::Env env, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Error& e) {
    throw make_error(env, e.code(), e.what());
  } catch (const std::bad_alloc&) {
    throw make_error(env, CZ_ERR_OUT_OF_MEMORY, "out of host memory");
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw make_error(env, CZ_ERR_INTERNAL, e.what());
  }
}

class ContextWrap : public Napi::ObjectWrap<ContextWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit ContextWrap(const Napi::CallbackInfo& info);
  std::shared_ptr<Context> ctx() const { return ctx_; }
  // The context, or a thrown Error naming `what` when disposed.
  std::shared_ptr<Context> live(Napi::Env env, const char* what) const;

 private:
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value GetDevice(const Napi::CallbackInfo& info);
  Napi::Value GetThreads(const Napi::CallbackInfo& info);
  Napi::Value GetDisposed(const Napi::CallbackInfo& info);
  std::shared_ptr<Context> ctx_;
};

class TensorWrap : public Napi::ObjectWrap<TensorWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit TensorWrap(const Napi::CallbackInfo& info);
  ~TensorWrap() override;
  // The tensor and its context, or a thrown TypeError naming `what` when disposed.
  const Tensor& live(Napi::Env env, const std::string& what) const;
  std::shared_ptr<Context> context() const { return ctx_; }
  // Makes this (freshly constructed) wrapper hold `t`, a view of memory owned elsewhere (not
  // counted as external memory).
  void adopt(Tensor t);

 private:
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value GetShape(const Napi::CallbackInfo& info);
  Napi::Value GetDtype(const Napi::CallbackInfo& info);
  Napi::Value GetDisposed(const Napi::CallbackInfo& info);
  Napi::Value GetNbytes(const Napi::CallbackInfo& info);
  Napi::Value ReadSync(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value WriteSync(const Napi::CallbackInfo& info);
  void release(Napi::Env env);

  Tensor t_;
  std::shared_ptr<Context> ctx_;
  bool disposed_ = false;
  int64_t external_bytes_ = 0;
};

// Parses a dtype name ("f32", ...) or throws TypeError naming `what`.
DType parse_dtype(Napi::Env env, const Napi::Value& v, const char* what);
std::vector<int64_t> parse_shape(Napi::Env env, const Napi::Value& v, const char* what);

}  // namespace carzero::napi

namespace carzero::napi {
Napi::Object Init(Napi::Env env, Napi::Object exports);
// image.cpp: ImagePool, dicomFrameCount.
void InitImage(Napi::Env env, Napi::Object exports);
}  // namespace carzero::napi
