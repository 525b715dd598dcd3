// image.cpp: the image feed's native side for JavaScript: a decode pool (ImagePool) that reads,
// decodes and preprocesses image files on its own threads and settles one Promise per image, and
// dicomFrameCount() for multi-frame DICOM inputs.
//
// Why its own threads (not libuv's pool, not the core's ThreadPool): decoding must overlap the
// model, whose ops occupy libuv workers and the core pool; a fixed set of decode threads keeps
// both busy without either starving the other, and its size is the user's choice (default: the
// cores). The JS thread only queues requests and turns finished results into typed arrays.
// Memory stays flat: a thread holds one file and one decoded image at a time, and the caller
// bounds how many requests are in flight (src/zeroshot/pipeline.ts: `concurrency`).
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "image/image.h"
#include "napi/common.h"

namespace carzero::napi {
namespace {

// One image request, created on the JS thread, filled by a decode thread, settled on the JS thread.
struct ImageTask {
  std::string path;            // read from this file when bytes is empty
  std::vector<uint8_t> bytes;  // or decode these (a copy of the caller's Buffer)
  bool from_path = true;
  img::DecodeOptions dec;
  img::PreprocessOptions pre;
  bool want_crop = true;
  bool want_padded = false;
  // results
  cz_status code = CZ_OK;
  std::string message;
  img::Gray8 gray;
  img::PadLayout layout;
  std::vector<float> crop;
  std::vector<uint8_t> padded;
  napi_deferred deferred = nullptr;
};

void run_task(ImageTask& t) {
  try {
    if (t.want_crop) t.crop.resize(size_t(t.pre.crop) * t.pre.crop);
    if (t.want_padded) t.padded.resize(size_t(t.pre.resize) * t.pre.resize);
  } catch (const std::bad_alloc&) {
    t.code = CZ_ERR_OUT_OF_MEMORY;
    t.message = "out of host memory";
    return;
  }
  img::ItemStatus s =
      img::load_item(t.from_path ? t.path : std::string(), std::move(t.bytes), t.dec, t.pre,
                     t.want_padded ? t.padded.data() : nullptr, t.want_crop ? t.crop.data() : nullptr, &t.layout);
  t.bytes = std::vector<uint8_t>();
  t.code = static_cast<cz_status>(s.code);
  t.message = std::move(s.message);
  t.gray.width = s.width;
  t.gray.height = s.height;
}

Napi::Object layout_object(Napi::Env env, const img::PadLayout& l) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("width", l.width);
  o.Set("height", l.height);
  o.Set("left", l.left);
  o.Set("top", l.top);
  return o;
}

Napi::Object task_result(Napi::Env env, ImageTask& t) {
  Napi::Object r = Napi::Object::New(env);
  r.Set("width", t.gray.width);
  r.Set("height", t.gray.height);
  if (t.want_crop || t.want_padded) r.Set("resized", layout_object(env, t.layout));
  if (t.want_crop) {
    auto a = Napi::Float32Array::New(env, t.crop.size());
    std::memcpy(a.Data(), t.crop.data(), t.crop.size() * sizeof(float));
    r.Set("pixels", a);
  }
  if (t.want_padded) r.Set("padded", Napi::Buffer<uint8_t>::Copy(env, t.padded.data(), t.padded.size()));
  return r;
}

class ImagePoolWrap;
void settle(Napi::Env env, Napi::Function, ImagePoolWrap* pool, ImageTask* task);
using Tsfn = Napi::TypedThreadSafeFunction<ImagePoolWrap, ImageTask, settle>;

class ImagePoolWrap : public Napi::ObjectWrap<ImagePoolWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "ImagePool",
                       {InstanceMethod<&ImagePoolWrap::Load>("load"), InstanceMethod<&ImagePoolWrap::Close>("close"),
                        InstanceAccessor<&ImagePoolWrap::GetThreads>("threads"),
                        InstanceAccessor<&ImagePoolWrap::GetPending>("pending")});
  }

  explicit ImagePoolWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ImagePoolWrap>(info) {
    Napi::Env env = info.Env();
    int n = 0;
    if (info.Length() > 0 && !info[0].IsUndefined()) {
      if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "ImagePool: argument 'threads' must be a number");
      n = info[0].As<Napi::Number>().Int32Value();
      if (n < 1 || n > 1024) throw Napi::RangeError::New(env, "ImagePool: argument 'threads' must be in [1, 1024]");
    }
    if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
    tsfn_ = Tsfn::New(env, "carzero:image-pool", 0, 1, this);
    tsfn_.Unref(env);  // an idle pool does not keep the process alive
    for (int i = 0; i < n; ++i) threads_.emplace_back([this] { worker(); });
    // A worker thread's environment can end with the pool open (worker.terminate()): stop and
    // join the decode threads then, so none outlives the addon instance.
    hook_ = env.AddCleanupHook(std::function<void()>([this] {
      hook_ran_ = true;
      shutdown();
    }));
  }

  // Teardown paths (this destructor, the cleanup hook, settle() while the environment ends) must
  // not throw: node-addon-api turns a failing N-API call into a C++ exception, and one escaping a
  // destructor or a thread-safe-function callback terminates the process. Failures there are
  // ignored: the environment is going away.
  ~ImagePoolWrap() override {
    try {
      if (!hook_ran_) hook_.Remove(Env());
    } catch (...) {
    }
    shutdown();
  }

  // Called by settle() on the JS thread.
  void finished(Napi::Env env) noexcept {
    if (--pending_ == 0) {
      if (!stop_) tsfn_.Unref(env);  // returns a status, never throws
      try {
        Unref();
      } catch (...) {
      }
    }
  }

 private:
  void worker() {
    for (;;) {
      ImageTask* t = nullptr;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stop_ and nothing left
        t = queue_.front();
        queue_.pop_front();
      }
      run_task(*t);
      // Non-blocking: the queue is unbounded (its length is the caller's in-flight count).
      if (tsfn_.NonBlockingCall(t) != napi_ok) delete t;  // the environment is going away
    }
  }

  void shutdown() noexcept {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (stop_) return;
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& th : threads_) {
      try {
        if (th.joinable()) th.join();
      } catch (...) {
      }
    }
    threads_.clear();
    tsfn_.Release();  // returns a status, never throws
  }

  // load(input: string | Uint8Array, options) -> Promise<result>
  Napi::Value Load(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closed_) throw Napi::Error::New(env, "ImagePool.load: the pool is closed");
    auto t = std::make_unique<ImageTask>();
    if (info[0].IsString()) {
      t->path = info[0].As<Napi::String>().Utf8Value();
    } else if (info[0].IsTypedArray() && info[0].As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
      auto a = info[0].As<Napi::Uint8Array>();
      t->bytes.assign(a.Data(), a.Data() + a.ElementLength());
      t->from_path = false;
    } else {
      throw Napi::TypeError::New(env, "ImagePool.load: argument 'input' must be a path or a Uint8Array");
    }
    if (info.Length() > 1 && info[1].IsObject()) {
      Napi::Object o = info[1].As<Napi::Object>();
      auto num = [&](const char* k, double def) {
        Napi::Value v = o.Get(k);
        if (v.IsUndefined()) return def;
        if (!v.IsNumber())
          throw Napi::TypeError::New(env, std::string("ImagePool.load: option '") + k + "' must be a number");
        return v.As<Napi::Number>().DoubleValue();
      };
      t->pre.resize = static_cast<int32_t>(num("resize", 256));
      t->pre.crop = static_cast<int32_t>(num("crop", 224));
      t->pre.mean = static_cast<float>(num("mean", 0.4978));
      t->pre.std = static_cast<float>(num("std", 0.2449));
      t->dec.frame = static_cast<int32_t>(num("frame", 0));
      // the pixel limit (src/image/limits.ts resolves the default and CARZERO_MAX_PIXELS)
      const double mp = num("maxPixels", static_cast<double>(t->dec.limits.max_pixels));
      if (!(mp >= 1 && mp <= 1099511627776.0) || mp != static_cast<double>(static_cast<uint64_t>(mp)))
        throw Napi::RangeError::New(env, "ImagePool.load: option 'maxPixels' must be an integer in [1, 2^40]");
      t->dec.limits.max_pixels = static_cast<uint64_t>(mp);
      Napi::Value out = o.Get("output");
      if (!out.IsUndefined()) {
        std::string s = out.IsString() ? out.As<Napi::String>().Utf8Value() : "";
        t->want_crop = s == "crop" || s == "both";
        t->want_padded = s == "padded" || s == "both";
        if (!t->want_crop && !t->want_padded)
          throw Napi::TypeError::New(env, "ImagePool.load: option 'output' must be 'crop', 'padded' or 'both'");
      }
    }
    if (t->pre.resize < 1 || t->pre.resize > 8192 || t->pre.crop < 1 || t->pre.crop > t->pre.resize)
      throw Napi::RangeError::New(
          env, "ImagePool.load: options 'resize' and 'crop' must satisfy 1 <= crop <= resize <= 8192");
    // The raw napi_deferred travels with the task; only settle(), on the JS thread, touches it.
    napi_deferred d = nullptr;
    napi_value promise_value;
    if (napi_create_promise(env, &d, &promise_value) != napi_ok)
      throw Napi::Error::New(env, "ImagePool.load: cannot create a promise");
    t->deferred = d;
    if (pending_++ == 0) {
      tsfn_.Ref(env);  // results to deliver keep the process alive
      Ref();           // and this object (settle() calls back into it)
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      queue_.push_back(t.release());
    }
    cv_.notify_one();
    return Napi::Value(env, promise_value);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    closed_ = true;
    shutdown();  // queued requests are still decoded (threads drain the queue) and settled
    return info.Env().Undefined();
  }

  Napi::Value GetThreads(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(threads_.size()));
  }
  Napi::Value GetPending(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), pending_); }

  Tsfn tsfn_;
  Napi::Env::CleanupHook<std::function<void()>> hook_;
  bool hook_ran_ = false;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ImageTask*> queue_;
  bool stop_ = false;
  bool closed_ = false;
  int64_t pending_ = 0;  // JS thread only
};

void settle(Napi::Env env, Napi::Function, ImagePoolWrap* pool, ImageTask* task) {
  std::unique_ptr<ImageTask> t(task);
  if (env == nullptr) return;  // the environment is being torn down: nothing to settle
  try {
    Napi::HandleScope scope(env);
    if (t->code == CZ_OK) {
      napi_value v;
      try {
        v = task_result(env, *t);
      } catch (const Napi::Error& e) {
        napi_reject_deferred(env, t->deferred, e.Value());
        pool->finished(env);
        return;
      }
      napi_resolve_deferred(env, t->deferred, v);
    } else {
      napi_reject_deferred(env, t->deferred, make_error(env, t->code, t->message).Value());
    }
  } catch (...) {
    // N-API refused (the environment is ending): the promise can no longer be observed.
  }
  pool->finished(env);
}

// dicomFrameCount(input: string | Uint8Array) -> number: frames of a DICOM file (its header only
// is parsed; a file is read whole). Throws for a file that is not DICOM or cannot be read.
Napi::Value DicomFrameCount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return call_native(env, [&] {
    int32_t n;
    if (info[0].IsString()) {
      std::vector<uint8_t> b = img::read_file(info[0].As<Napi::String>().Utf8Value());
      n = img::dicom_frame_count(b.data(), b.size());
    } else if (info[0].IsTypedArray() && info[0].As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
      auto a = info[0].As<Napi::Uint8Array>();
      n = img::dicom_frame_count(a.Data(), a.ElementLength());
    } else {
      throw Napi::TypeError::New(env, "dicomFrameCount: argument 'input' must be a path or a Uint8Array");
    }
    return Napi::Number::New(env, n);
  });
}

}  // namespace

void InitImage(Napi::Env env, Napi::Object exports) {
  exports.Set("dicomFrameCount", Napi::Function::New(env, DicomFrameCount, "dicomFrameCount"));
  exports.Set("ImagePool", ImagePoolWrap::Init(env));
}

}  // namespace carzero::napi
