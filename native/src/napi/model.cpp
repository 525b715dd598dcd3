// model.cpp: the JS-visible `Model` class over carzero::model::CarzeroModel.
//
//   Model.load(context, dir, { precision: 'fp32' | 'bf16' | 'tf32' }) -> Promise<Model>
//   model.embedImages(pixels) -> Promise<{ global, local }>
//   model.embedTexts(ids, mask, kinds) -> Promise<{ sentence, words }>
//   model.score(imgGlobal, imgLocal, sentence, words, { attention }) -> Promise<{ i2t, t2i, score,
//                                                                        attention? }>
//   model.enableTraining({ seed, precision }) (sync; fp32 models only; precision of the steps), model.zeroGrad(),
//   model.freeze({ vision?, text? }),
//   model.forwardBackward({ pixels, ids, mask, kinds, lossScale = 1, dropout = true, step = 0,
//                           matrices = false }) -> Promise<{ loss, i2t_loss, t2i_loss, i2t?, t2i? }>
//   model.parameters() / model.gradients() -> [{ name, tensor }] (Tensors viewing the arenas; they
//                           hold the arena's storage, so they outlive the model safely)
//   model.config (JSON text of the resolved configuration), model.precision, model.disposed,
//   model.dispose()
//
// Every heavy call runs in an AsyncWorker off the JS thread and settles a Promise. Result Tensors
// are created on the JS thread before the work starts (their shapes follow from the inputs) and
// the model writes into them; the worker holds its own shares of the model, the context and every
// tensor's storage, so disposing any of them while work is in flight is safe.
#include <functional>

#include "common.h"
#include "model/carzero.h"

namespace carzero::napi {

namespace {

using model::CarzeroModel;

// Runs `work` off the JS thread; `done` builds the resolution value on the JS thread.
class ModelWorker : public Napi::AsyncWorker {
 public:
  ModelWorker(Napi::Env env, const char* name, std::function<void()> work, std::function<Napi::Value(Napi::Env)> done)
      : Napi::AsyncWorker(env, name), name_(name), work_(std::move(work)), done_(std::move(done)), deferred_(env) {}
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      work_();
    } catch (const Error& e) {
      code_ = e.code();
      message_ = e.what();
    } catch (const std::bad_alloc&) {
      code_ = CZ_ERR_OUT_OF_MEMORY;
      message_ = name_ + ": out of host memory";
    } catch (const std::exception& e) {
      code_ = CZ_ERR_INTERNAL;
      message_ = e.what();
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    work_ = nullptr;  // drop storage shares on the JS thread
    if (code_ != CZ_OK) {
      deferred_.Reject(make_error(env, code_, message_).Value());
      done_ = nullptr;
      return;
    }
    try {
      deferred_.Resolve(done_(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
    done_ = nullptr;
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  std::string name_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> done_;
  Napi::Promise::Deferred deferred_;
  cz_status code_ = CZ_OK;
  std::string message_;
};

Napi::Value queue(Napi::Env env, const char* name, std::function<void()> work,
                  std::function<Napi::Value(Napi::Env)> done) {
  auto* w = new ModelWorker(env, name, std::move(work), std::move(done));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

struct Loaded {
  std::shared_ptr<CarzeroModel> model;
};

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(
        env, "Model",
        {StaticMethod<&ModelWrap::Load>("load"), InstanceMethod<&ModelWrap::EmbedImages>("embedImages"),
         InstanceMethod<&ModelWrap::EmbedTexts>("embedTexts"), InstanceMethod<&ModelWrap::Score>("score"),
         InstanceMethod<&ModelWrap::Dispose>("dispose"), InstanceMethod<&ModelWrap::EnableTraining>("enableTraining"),
         InstanceMethod<&ModelWrap::ZeroGrad>("zeroGrad"), InstanceMethod<&ModelWrap::WorkspaceBytes>("workspaceBytes"),
         InstanceMethod<&ModelWrap::DeviceMemory>("deviceMemory"),
         InstanceMethod<&ModelWrap::InitCollective>("initCollective"),
         InstanceMethod<&ModelWrap::AllReduceGradients>("allReduceGradients"),
         InstanceMethod<&ModelWrap::AllReduceSum>("allReduceSum"), InstanceMethod<&ModelWrap::Freeze>("freeze"),
         InstanceMethod<&ModelWrap::ForwardBackward>("forwardBackward"),
         InstanceMethod<&ModelWrap::Parameters>("parameters"), InstanceMethod<&ModelWrap::Gradients>("gradients"),
         InstanceAccessor<&ModelWrap::GetConfig>("config"), InstanceAccessor<&ModelWrap::GetPrecision>("precision"),
         InstanceAccessor<&ModelWrap::GetDisposed>("disposed")});
  }

  // new Model(External<Loaded>, context): only Model.load creates models.
  explicit ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsExternal() || !info[1].IsObject())
      throw Napi::TypeError::New(env, "Model: use Model.load(context, dir, options)");
    model_ = info[0].As<Napi::External<Loaded>>().Data()->model;
    ctx_obj_ = Napi::Persistent(info[1].As<Napi::Object>());
  }

 private:
  // Model.load(context, dir, { precision }) -> Promise<Model>
  static Napi::Value Load(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info.This().IsFunction()) throw Napi::TypeError::New(env, "Model.load must be called as Model.load(...)");
    Napi::Function ctor = info.This().As<Napi::Function>();
    if (!info[0].IsObject() || !info[0].As<Napi::Object>().InstanceOf(addon_data(env).context_ctor.Value()))
      throw Napi::TypeError::New(env, "Model.load: argument 'context' must be a native Context");
    std::shared_ptr<Context> ctx = ContextWrap::Unwrap(info[0].As<Napi::Object>())->live(env, "Model.load: context");
    if (!info[1].IsString()) throw Napi::TypeError::New(env, "Model.load: argument 'dir' must be a string");
    std::string dir = info[1].As<Napi::String>().Utf8Value();
    model::LoadOptions opts;
    if (!info[2].IsUndefined() && !info[2].IsNull()) {
      if (!info[2].IsObject()) throw Napi::TypeError::New(env, "Model.load: argument 'options' must be an object");
      Napi::Object o = info[2].As<Napi::Object>();
      Napi::Value p = o.Get("precision");
      if (!p.IsUndefined()) {
        if (!p.IsString() || !model::parse_precision(p.As<Napi::String>().Utf8Value(), &opts.precision))
          throw Napi::TypeError::New(env, "Model.load: option 'precision' must be 'fp32', 'bf16' or 'tf32'");
      }
      auto count = [&](const char* name, int64_t* out) {
        Napi::Value v = o.Get(name);
        if (v.IsUndefined()) return;
        double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
        if (!(d >= 1 && d <= 1 << 20 && d == static_cast<double>(static_cast<int64_t>(d))))
          throw Napi::RangeError::New(env,
                                      std::string("Model.load: option '") + name + "' must be an integer in [1, 2^20]");
        *out = static_cast<int64_t>(d);
      };
      count("maxImages", &opts.max_images);
      count("maxTexts", &opts.max_texts);
      count("maxScoreImages", &opts.max_score_images);
      count("maxScoreTexts", &opts.max_score_texts);
    }
    auto loaded = std::make_shared<Loaded>();
    auto ctor_ref = std::make_shared<Napi::FunctionReference>(Napi::Persistent(ctor));
    auto ctx_ref = std::make_shared<Napi::ObjectReference>(Napi::Persistent(info[0].As<Napi::Object>()));
    return queue(
        env, "carzero:model.load", [loaded, ctx, dir, opts] { loaded->model = CarzeroModel::load(ctx, dir, opts); },
        [loaded, ctor_ref, ctx_ref](Napi::Env env) -> Napi::Value {
          Loaded l = *loaded;
          Napi::Value ext = Napi::External<Loaded>::New(env, &l);
          Napi::Value obj = ctor_ref->New({ext, ctx_ref->Value()});
          return obj;
        });
  }

  std::shared_ptr<CarzeroModel> live(Napi::Env env, const char* what) const {
    if (!model_) throw make_error(env, CZ_ERR_INVALID_ARGUMENT, std::string(what) + ": the model has been disposed");
    return model_;
  }

  // A native Tensor argument (on the model's device) or a TypeError naming it.
  Tensor tensor_arg(Napi::Env env, const Napi::Value& v, const std::string& what) const {
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(addon_data(env).tensor_ctor.Value()))
      throw Napi::TypeError::New(env, what + " must be a native Tensor");
    return TensorWrap::Unwrap(v.As<Napi::Object>())->live(env, what);
  }

  // A new zero-filled f32 result Tensor on the model's context.
  Napi::Object new_tensor(Napi::Env env, const std::vector<int64_t>& shape, const char* what) const {
    Napi::Object ctx = ctx_obj_.Value();
    if (ContextWrap::Unwrap(ctx)->ctx() == nullptr)
      throw make_error(env, CZ_ERR_INVALID_ARGUMENT, std::string(what) + ": the model's context has been disposed");
    Napi::Array s = Napi::Array::New(env, shape.size());
    for (size_t i = 0; i < shape.size(); ++i)
      s.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(shape[i])));
    return addon_data(env).tensor_ctor.New({ctx, Napi::String::New(env, "f32"), s});
  }

  static const Tensor& inner(Napi::Env env, const Napi::Object& o) {
    return TensorWrap::Unwrap(o)->live(env, "result");
  }

  // embedImages(pixels) -> Promise<{ global, local }>
  Napi::Value EmbedImages(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env, "Model.embedImages");
    Tensor px = tensor_arg(env, info[0], "Model.embedImages: argument 'pixels'");
    if (px.ndim() != 4)
      throw Napi::RangeError::New(
          env, "Model.embedImages: argument 'pixels' must be (B, 3 or 1, H, W), got " + px.shape_str());
    auto sh = m->output_shapes_images(px.size(0));
    Napi::Object g = new_tensor(env, sh[0], "Model.embedImages");
    Napi::Object l = new_tensor(env, sh[1], "Model.embedImages");
    model::ImageEmbeddings out{inner(env, g), inner(env, l)};
    auto refs = std::make_shared<std::vector<Napi::ObjectReference>>();
    refs->push_back(Napi::Persistent(g));
    refs->push_back(Napi::Persistent(l));
    return queue(
        env, "carzero:model.embedImages", [m, px, out] { m->embed_images_into(px, out); },
        [refs](Napi::Env env) -> Napi::Value {
          Napi::Object r = Napi::Object::New(env);
          r.Set("global", (*refs)[0].Value());
          r.Set("local", (*refs)[1].Value());
          return r;
        });
  }

  // embedTexts(ids, mask, kinds) -> Promise<{ sentence, words }>
  Napi::Value EmbedTexts(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env, "Model.embedTexts");
    Tensor ids = tensor_arg(env, info[0], "Model.embedTexts: argument 'ids'");
    Tensor mask = tensor_arg(env, info[1], "Model.embedTexts: argument 'mask'");
    Tensor kinds = tensor_arg(env, info[2], "Model.embedTexts: argument 'kinds'");
    if (ids.ndim() != 2)
      throw Napi::RangeError::New(env, "Model.embedTexts: argument 'ids' must be (Q, L), got " + ids.shape_str());
    auto sh = m->output_shapes_texts(ids.size(0), ids.size(1));
    Napi::Object s = new_tensor(env, sh[0], "Model.embedTexts");
    Napi::Object w = new_tensor(env, sh[1], "Model.embedTexts");
    model::TextEmbeddings out{inner(env, s), inner(env, w)};
    auto refs = std::make_shared<std::vector<Napi::ObjectReference>>();
    refs->push_back(Napi::Persistent(s));
    refs->push_back(Napi::Persistent(w));
    return queue(
        env, "carzero:model.embedTexts", [m, ids, mask, kinds, out] { m->embed_texts_into(ids, mask, kinds, out); },
        [refs](Napi::Env env) -> Napi::Value {
          Napi::Object r = Napi::Object::New(env);
          r.Set("sentence", (*refs)[0].Value());
          r.Set("words", (*refs)[1].Value());
          return r;
        });
  }

  // score(imgGlobal, imgLocal, sentence, words, { attention }) -> Promise<{ i2t, t2i, score, attention? }>
  Napi::Value Score(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env, "Model.score");
    Tensor g = tensor_arg(env, info[0], "Model.score: argument 'imgGlobal'");
    Tensor l = tensor_arg(env, info[1], "Model.score: argument 'imgLocal'");
    Tensor s = tensor_arg(env, info[2], "Model.score: argument 'sentence'");
    Tensor w = tensor_arg(env, info[3], "Model.score: argument 'words'");
    bool attention = false;
    if (!info[4].IsUndefined() && !info[4].IsNull()) {
      if (!info[4].IsObject()) throw Napi::TypeError::New(env, "Model.score: argument 'options' must be an object");
      Napi::Value a = info[4].As<Napi::Object>().Get("attention");
      if (!a.IsUndefined()) {
        if (!a.IsBoolean()) throw Napi::TypeError::New(env, "Model.score: option 'attention' must be a boolean");
        attention = a.As<Napi::Boolean>().Value();
      }
    }
    if (g.ndim() != 2)
      throw Napi::RangeError::New(env, "Model.score: argument 'imgGlobal' must be (B, C), got " + g.shape_str());
    if (s.ndim() != 2)
      throw Napi::RangeError::New(env, "Model.score: argument 'sentence' must be (Q, C), got " + s.shape_str());
    auto sh = m->output_shapes_score(g.size(0), s.size(0));
    auto refs = std::make_shared<std::vector<Napi::ObjectReference>>();
    model::ScoreResult out;
    Tensor* slots[] = {&out.i2t, &out.t2i, &out.score, &out.attention};
    for (int i = 0; i < (attention ? 4 : 3); ++i) {
      Napi::Object t = new_tensor(env, sh[i], "Model.score");
      *slots[i] = inner(env, t);
      refs->push_back(Napi::Persistent(t));
    }
    return queue(
        env, "carzero:model.score", [m, g, l, s, w, out] { m->score_into(g, l, s, w, out); },
        [refs](Napi::Env env) -> Napi::Value {
          Napi::Object r = Napi::Object::New(env);
          const char* names[] = {"i2t", "t2i", "score", "attention"};
          for (size_t i = 0; i < refs->size(); ++i) r.Set(names[i], (*refs)[i].Value());
          return r;
        });
  }

  // ---- training ------------------------------------------------------------------------------

  static Napi::Object opt_object(Napi::Env env, const Napi::Value& v, const char* what) {
    if (v.IsUndefined() || v.IsNull()) return Napi::Object::New(env);
    if (!v.IsObject()) throw Napi::TypeError::New(env, std::string(what) + " must be an object");
    return v.As<Napi::Object>();
  }
  static double opt_number(Napi::Env env, const Napi::Object& o, const char* key, double dflt, const char* what) {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined()) return dflt;
    if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string(what) + ": option '" + key + "' must be a number");
    return v.As<Napi::Number>().DoubleValue();
  }
  static int opt_bool(Napi::Env env, const Napi::Object& o, const char* key, const char* what) {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined()) return -1;
    if (!v.IsBoolean()) throw Napi::TypeError::New(env, std::string(what) + ": option '" + key + "' must be a boolean");
    return v.As<Napi::Boolean>().Value() ? 1 : 0;
  }
  static uint64_t opt_count(Napi::Env env, const Napi::Object& o, const char* key, const char* what) {
    const double d = opt_number(env, o, key, 0, what);
    if (!(d >= 0 && d <= 9007199254740991.0 && d == static_cast<double>(static_cast<int64_t>(d))))
      throw Napi::RangeError::New(env, std::string(what) + ": option '" + key + "' must be a non-negative integer");
    return static_cast<uint64_t>(d);
  }

  // enableTraining({ seed }) (synchronous: copies the parameters into a writable arena).
  Napi::Value EnableTraining(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env, "Model.enableTraining");
    Napi::Object o = opt_object(env, info[0], "Model.enableTraining: argument 'options'");
    const uint64_t seed = opt_count(env, o, "seed", "Model.enableTraining");
    DType compute = DType::F32;
    Napi::Value pv = o.Get("precision");
    if (!pv.IsUndefined()) {
      const std::string ps = pv.IsString() ? pv.As<Napi::String>().Utf8Value() : std::string("?");
      if (ps == "fp32")
        compute = DType::F32;
      else if (ps == "bf16")
        compute = DType::BF16;
      else if (ps == "fp16")
        compute = DType::F16;
      else
        throw Napi::TypeError::New(env,
                                   "Model.enableTraining: option 'precision' must be 'fp32', "
                                   "'bf16' or 'fp16'");
    }
    bool recompute = false;
    Napi::Value rv = o.Get("recompute");
    if (!rv.IsUndefined()) {
      if (!rv.IsBoolean())
        throw Napi::TypeError::New(env, "Model.enableTraining: option 'recompute' must be a boolean");
      recompute = rv.As<Napi::Boolean>().Value();
    }
    call_native(env, [&] {
      m->enable_training(seed, compute, recompute);
      return 0;
    });
    return env.Undefined();
  }
  // initCollective({ id: Buffer(128), rank, world }) (sync).
  Napi::Value InitCollective(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env, "Model.initCollective");
    Napi::Object o = opt_object(env, info[0], "Model.initCollective: argument 'options'");
    Napi::Value idv = o.Get("id");
    if (!idv.IsBuffer())
      throw Napi::TypeError::New(env, "Model.initCollective: option 'id' must be a Buffer (collectiveUniqueId())");
    auto buf = idv.As<Napi::Buffer<uint8_t>>();
    std::vector<uint8_t> id(buf.Data(), buf.Data() + buf.Length());
    const uint64_t rank = opt_count(env, o, "rank", "Model.initCollective");
    const uint64_t world = opt_count(env, o, "world", "Model.initCollective");
    call_native(env, [&] {
      m->init_collective(id, static_cast<int>(rank), static_cast<int>(world));
      return 0;
    });
    return env.Undefined();
  }
  // allReduceGradients() (sync: queued on the device's stream, ordered before later work).
  Napi::Value AllReduceGradients(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env, "Model.allReduceGradients");
    call_native(env, [&] {
      m->all_reduce_gradients();
      return 0;
    });
    return env.Undefined();
  }
  // allReduceSum(tensor): an f32 tensor on the model's device, summed in place over the ranks.
  Napi::Value AllReduceSum(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env, "Model.allReduceSum");
    Tensor t = tensor_arg(env, info[0], "Model.allReduceSum: argument 'tensor'");
    call_native(env, [&] {
      CZ_ARG(t.dtype() == DType::F32, "allReduceSum: the tensor must be f32");
      m->all_reduce_sum(static_cast<float*>(t.data()), t.numel());
      return 0;
    });
    return env.Undefined();
  }
  Napi::Value WorkspaceBytes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env, "Model.workspaceBytes");
    return Napi::Number::New(env, static_cast<double>(m->workspace_bytes()));
  }
  // deviceMemory(resetPeak?): the model context's device allocator (zeros on the CPU).
  Napi::Value DeviceMemory(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env, "Model.deviceMemory");
    const bool reset = info.Length() > 0 && info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value();
    DeviceBackend* be = m->context().backend();
    const DeviceBackend::MemoryStats st = be ? be->memory_stats(reset) : DeviceBackend::MemoryStats{};
    Napi::Object o = Napi::Object::New(env);
    o.Set("inUse", Napi::Number::New(env, static_cast<double>(st.in_use)));
    o.Set("cached", Napi::Number::New(env, static_cast<double>(st.cached)));
    o.Set("peakInUse", Napi::Number::New(env, static_cast<double>(st.peak_in_use)));
    return o;
  }
  Napi::Value ZeroGrad(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env, "Model.zeroGrad");
    call_native(env, [&] {
      m->zero_grad();
      return 0;
    });
    return env.Undefined();
  }
  Napi::Value Freeze(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env, "Model.freeze");
    Napi::Object o = opt_object(env, info[0], "Model.freeze: argument 'options'");
    const int v = opt_bool(env, o, "vision", "Model.freeze"), t = opt_bool(env, o, "text", "Model.freeze");
    call_native(env, [&] {
      m->freeze(v, t);
      return 0;
    });
    return env.Undefined();
  }

  Napi::Value named_list(Napi::Env env, const std::vector<std::pair<std::string, Tensor>>& list) {
    Napi::Array a = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); ++i) {
      Napi::Object t = new_tensor(env, {0}, "Model.parameters");
      TensorWrap::Unwrap(t)->adopt(list[i].second);
      Napi::Object e = Napi::Object::New(env);
      e.Set("name", Napi::String::New(env, list[i].first));
      e.Set("tensor", t);
      a.Set(static_cast<uint32_t>(i), e);
    }
    return a;
  }
  Napi::Value Parameters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env, "Model.parameters");
    auto list = call_native(env, [&] { return m->parameters(); });
    return named_list(env, list);
  }
  Napi::Value Gradients(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env, "Model.gradients");
    auto list = call_native(env, [&] { return m->gradients(); });
    return named_list(env, list);
  }

  // forwardBackward({ pixels, ids, mask, kinds, lossScale, dropout, step, matrices })
  Napi::Value ForwardBackward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* what = "Model.forwardBackward";
    auto m = live(env, what);
    if (!info[0].IsObject())
      throw Napi::TypeError::New(env, "Model.forwardBackward: argument 'batch' must be an object");
    Napi::Object o = info[0].As<Napi::Object>();
    model::StepInputs in;
    in.pixels = tensor_arg(env, o.Get("pixels"), "Model.forwardBackward: 'pixels'");
    in.ids = tensor_arg(env, o.Get("ids"), "Model.forwardBackward: 'ids'");
    in.mask = tensor_arg(env, o.Get("mask"), "Model.forwardBackward: 'mask'");
    in.kinds = tensor_arg(env, o.Get("kinds"), "Model.forwardBackward: 'kinds'");
    in.loss_scale = static_cast<float>(opt_number(env, o, "lossScale", 1.0, what));
    const int dr = opt_bool(env, o, "dropout", what);
    in.dropout = dr != 0;
    in.step = opt_count(env, o, "step", what);
    const bool matrices = opt_bool(env, o, "matrices", what) == 1;
    if (in.pixels.ndim() < 1)
      throw Napi::RangeError::New(env, "Model.forwardBackward: 'pixels' must be (N, 3 or 1, H, W)");
    auto refs = std::make_shared<std::vector<Napi::ObjectReference>>();
    if (matrices) {
      const int64_t N = in.pixels.size(0);
      Napi::Object a = new_tensor(env, {N, N}, what), b = new_tensor(env, {N, N}, what);
      in.i2t_out = inner(env, a);
      in.t2i_out = inner(env, b);
      refs->push_back(Napi::Persistent(a));
      refs->push_back(Napi::Persistent(b));
    }
    auto res = std::make_shared<model::StepResult>();
    return queue(
        env, "carzero:model.forwardBackward", [m, in, res] { *res = m->forward_backward(in); },
        [refs, res](Napi::Env env) -> Napi::Value {
          Napi::Object r = Napi::Object::New(env);
          r.Set("loss", Napi::Number::New(env, res->loss));
          r.Set("i2t_loss", Napi::Number::New(env, res->i2t_loss));
          r.Set("t2i_loss", Napi::Number::New(env, res->t2i_loss));
          if (refs->size() == 2) {
            r.Set("i2t", (*refs)[0].Value());
            r.Set("t2i", (*refs)[1].Value());
          }
          return r;
        });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    model_.reset();  // in-flight work keeps its own share
    return info.Env().Undefined();
  }
  Napi::Value GetConfig(const Napi::CallbackInfo& info) {
    auto m = live(info.Env(), "Model.config");
    return Napi::String::New(info.Env(), m->config().to_json());
  }
  Napi::Value GetPrecision(const Napi::CallbackInfo& info) {
    auto m = live(info.Env(), "Model.precision");
    return Napi::String::New(info.Env(), model::precision_name(m->precision()));
  }
  Napi::Value GetDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !model_); }

  std::shared_ptr<CarzeroModel> model_;
  Napi::ObjectReference ctx_obj_;  // the JS Context: result Tensors are created on it
};

}  // namespace

Napi::Function InitModelClass(Napi::Env env) { return ModelWrap::Init(env); }

}  // namespace carzero::napi
