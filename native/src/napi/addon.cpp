// addon.cpp: module initialisation, the error bridge, `info`, the op list, and op execution.
// Ops run in an AsyncWorker on libuv's pool (off the JS thread) and settle a Promise; the worker
// holds its own references to every tensor's storage and to the context, so disposing either
// while an op is in flight is safe.
#include <cmath>

#include "common.h"
#include "opsapi.h"

namespace carzero::napi {

Napi::Function InitModelClass(Napi::Env env);  // model.cpp

AddonData& addon_data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

static const char* code_name(cz_status s) {
  switch (s) {
    case CZ_OK: return "CZ_OK";
    case CZ_ERR_INVALID_ARGUMENT: return "CZ_ERR_INVALID_ARGUMENT";
    case CZ_ERR_OUT_OF_MEMORY: return "CZ_ERR_OUT_OF_MEMORY";
    case CZ_ERR_IO: return "CZ_ERR_IO";
    case CZ_ERR_FORMAT: return "CZ_ERR_FORMAT";
    case CZ_ERR_UNSUPPORTED: return "CZ_ERR_UNSUPPORTED";
    case CZ_ERR_CUDA: return "CZ_ERR_CUDA";
    case CZ_ERR_INTERNAL: return "CZ_ERR_INTERNAL";
  }
  return "CZ_ERR_INTERNAL";
}

Napi::Error make_error(Napi::Env env, cz_status code, const std::string& message) {
  AddonData& d = addon_data(env);
  if (!d.error_ctor.IsEmpty()) {
    Napi::Value e = d.error_ctor.New({Napi::String::New(env, message), Napi::String::New(env, code_name(code))});
    return Napi::Error(env, e);
  }
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code_name(code)));
  return e;
}

namespace {

Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "setErrorClass: expected a class");
  addon_data(info.Env()).error_ctor = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  return call_native(info.Env(), [&] { return Napi::String::New(info.Env(), info_json()); });
}

// collectiveUniqueId(): a Buffer of 128 bytes for Model.initCollective (NCCL's unique id).
Napi::Value CollectiveUniqueId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<uint8_t> id = call_native(env, [&] { return collective_unique_id(); });
  return Napi::Buffer<uint8_t>::Copy(env, id.data(), id.size());
}

Napi::Value OpList(const Napi::CallbackInfo& info) {
  return call_native(info.Env(), [&] { return Napi::String::New(info.Env(), op_list_json()); });
}

// Everything an op call needs, captured on the JS thread.
struct OpJob {
  std::shared_ptr<Context> ctx;
  std::string name;
  std::vector<Tensor> tensors;  // copies share storage: keeps memory alive while in flight
  std::vector<bool> present;
  std::vector<double> params;
  std::vector<double> results;
};

OpJob parse_op_call(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OpJob job;
  if (!info[0].IsObject() || !info[0].As<Napi::Object>().InstanceOf(addon_data(env).context_ctor.Value()))
    throw Napi::TypeError::New(env, "runOp: argument 'context' must be a native Context");
  job.ctx = ContextWrap::Unwrap(info[0].As<Napi::Object>())->live(env, "runOp: context");
  if (!info[1].IsString()) throw Napi::TypeError::New(env, "runOp: argument 'name' must be a string");
  job.name = info[1].As<Napi::String>().Utf8Value();
  if (!find_op(job.name)) throw make_error(env, CZ_ERR_INVALID_ARGUMENT, "runOp: unknown op '" + job.name + "'");
  if (!info[2].IsArray()) throw Napi::TypeError::New(env, "runOp: argument 'tensors' must be an array");
  Napi::Array ts = info[2].As<Napi::Array>();
  Napi::Function tensor_ctor = addon_data(env).tensor_ctor.Value();
  for (uint32_t i = 0; i < ts.Length(); ++i) {
    Napi::Value v = ts.Get(i);
    if (v.IsNull() || v.IsUndefined()) {
      job.tensors.emplace_back();
      job.present.push_back(false);
      continue;
    }
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(tensor_ctor))
      throw Napi::TypeError::New(
          env, "runOp(" + job.name + "): tensors[" + std::to_string(i) + "] must be a native Tensor or null");
    TensorWrap* tw = TensorWrap::Unwrap(v.As<Napi::Object>());
    job.tensors.push_back(tw->live(env, job.name + ": tensors[" + std::to_string(i) + "]"));
    job.present.push_back(true);
  }
  if (!info[3].IsUndefined()) {
    if (!info[3].IsArray()) throw Napi::TypeError::New(env, "runOp: argument 'params' must be an array");
    Napi::Array ps = info[3].As<Napi::Array>();
    for (uint32_t i = 0; i < ps.Length(); ++i) {
      Napi::Value v = ps.Get(i);
      if (!v.IsNumber())
        throw Napi::TypeError::New(env, "runOp(" + job.name + "): params[" + std::to_string(i) + "] must be a number");
      job.params.push_back(v.As<Napi::Number>().DoubleValue());
    }
  }
  return job;
}

void execute(OpJob& job) {
  std::vector<const Tensor*> ptrs(job.tensors.size());
  for (size_t i = 0; i < ptrs.size(); ++i) ptrs[i] = job.present[i] ? &job.tensors[i] : nullptr;
  run_op(*job.ctx, job.name, ptrs, job.params, &job.results);
}

Napi::Array results_array(Napi::Env env, const std::vector<double>& r) {
  Napi::Array a = Napi::Array::New(env, r.size());
  for (size_t i = 0; i < r.size(); ++i) a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, r[i]));
  return a;
}

class OpWorker : public Napi::AsyncWorker {
 public:
  OpWorker(Napi::Env env, OpJob job) : Napi::AsyncWorker(env, "carzero:op"), job_(std::move(job)), deferred_(env) {}
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      execute(job_);
    } catch (const Error& e) {
      code_ = e.code();
      message_ = e.what();
    } catch (const std::bad_alloc&) {
      code_ = CZ_ERR_OUT_OF_MEMORY;
      message_ = job_.name + ": out of host memory";
    } catch (const std::exception& e) {
      code_ = CZ_ERR_INTERNAL;
      message_ = e.what();
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    job_.tensors.clear();  // drop storage references on the JS thread
    if (code_ != CZ_OK) {
      deferred_.Reject(make_error(env, code_, message_).Value());
    } else {
      deferred_.Resolve(results_array(env, job_.results));
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  OpJob job_;
  Napi::Promise::Deferred deferred_;
  cz_status code_ = CZ_OK;
  std::string message_;
};

// runOp(context, name, tensors, params) -> Promise<number[]>
Napi::Value RunOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OpJob job = parse_op_call(info);
  auto* w = new OpWorker(env, std::move(job));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// runOpSync(context, name, tensors, params) -> number[]: the same on the JS thread, for tiny ops.
Napi::Value RunOpSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OpJob job = parse_op_call(info);
  call_native(env, [&] {
    execute(job);
    return 0;
  });
  return results_array(env, job.results);
}

Napi::Object InitExports(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData(data);
  Napi::Function ctx = ContextWrap::Init(env);
  Napi::Function tensor = TensorWrap::Init(env);
  data->context_ctor = Napi::Persistent(ctx);
  data->tensor_ctor = Napi::Persistent(tensor);
  exports.Set("Context", ctx);
  exports.Set("Tensor", tensor);
  exports.Set("Model", InitModelClass(env));
  InitImage(env, exports);
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass, "setErrorClass"));
  exports.Set("info", Napi::Function::New(env, Info, "info"));
  exports.Set("opList", Napi::Function::New(env, OpList, "opList"));
  exports.Set("collectiveUniqueId", Napi::Function::New(env, CollectiveUniqueId, "collectiveUniqueId"));
  exports.Set("runOp", Napi::Function::New(env, RunOp, "runOp"));
  exports.Set("runOpSync", Napi::Function::New(env, RunOpSync, "runOpSync"));
  exports.Set("version", Napi::String::New(env, CZ_VERSION_STRING));
  return exports;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) { return InitExports(env, exports); }

}  // namespace carzero::napi

static Napi::Object InitCarzero(Napi::Env env, Napi::Object exports) { return carzero::napi::Init(env, exports); }
NODE_API_MODULE(carzero, InitCarzero)
