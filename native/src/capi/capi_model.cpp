// capi_model.cpp: the model section of the C ABI (cz_model_*), over carzero::model::CarzeroModel.
// Same rules as capi.cpp: every exception becomes a status + thread-local message.
#include <cstring>
#include <new>
#include <string>

#include "capi/capi_internal.h"
#include "carzero.h"
#include "core/status.h"
#include "model/carzero.h"

struct cz_model {
  std::shared_ptr<carzero::model::CarzeroModel> m;
  cz_context* owner;
};

namespace {

using carzero::Error;

using carzero::capi::guard;

const carzero::Tensor& in(const cz_model* m, const cz_tensor* t, const char* name) {
  CZ_ARG(t != nullptr, "argument '%s' is NULL", name);
  CZ_ARG(t->owner == m->owner || t->owner->ctx->device() == m->owner->ctx->device(),
         "argument '%s' belongs to a context on another device", name);
  return t->t;
}

cz_tensor* wrap(const cz_model* m, carzero::Tensor t) {
  auto* r = new cz_tensor();
  r->t = std::move(t);
  r->owner = m->owner;
  return r;
}

void check_outs(std::initializer_list<std::pair<cz_tensor**, const char*>> outs) {
  for (const auto& o : outs) {
    CZ_ARG(o.first != nullptr, "output '%s' is NULL", o.second);
    *o.first = nullptr;
  }
}

}  // namespace

extern "C" {

CZ_API cz_status cz_model_load(cz_context* ctx, const char* dir, const char* precision, cz_model** out) {
  return guard([&] {
    CZ_ARG(out != nullptr, "out is NULL");
    *out = nullptr;
    CZ_ARG(ctx != nullptr, "ctx is NULL");
    CZ_ARG(dir != nullptr, "dir is NULL");
    carzero::model::LoadOptions opts;
    if (precision && !carzero::model::parse_precision(precision, &opts.precision))
      carzero::throw_error(CZ_ERR_INVALID_ARGUMENT, "precision must be \"fp32\", \"bf16\" or \"tf32\", got \"%s\"",
                           precision);
    // The model shares the caller's context without owning it (the context must outlive it).
    std::shared_ptr<carzero::Context> c(ctx->ctx.get(), [](carzero::Context*) {});
    auto m = std::make_unique<cz_model>();
    m->m = carzero::model::CarzeroModel::load(c, dir, opts);
    m->owner = ctx;
    *out = m.release();
  });
}

CZ_API void cz_model_free(cz_model* model) { delete model; }

CZ_API cz_status cz_model_config_json(const cz_model* model, char* buf, size_t cap, size_t* needed) {
  std::string s;
  cz_status st = guard([&] {
    CZ_ARG(model != nullptr, "model is NULL");
    s = model->m->config().to_json();
  });
  if (st != CZ_OK) return st;
  if (needed) *needed = s.size() + 1;
  if (buf && cap) {
    size_t n = s.size() < cap - 1 ? s.size() : cap - 1;
    std::memcpy(buf, s.data(), n);
    buf[n] = 0;
    if (n < s.size()) return carzero::capi::set_error(CZ_ERR_INVALID_ARGUMENT, "buffer too small");
  }
  return CZ_OK;
}

CZ_API cz_status cz_model_embed_images(cz_model* model, const cz_tensor* pixels, cz_tensor** global,
                                       cz_tensor** local) {
  return guard([&] {
    check_outs({{global, "global"}, {local, "local"}});
    CZ_ARG(model != nullptr, "model is NULL");
    auto r = model->m->embed_images(in(model, pixels, "pixels"));
    *global = wrap(model, std::move(r.global));
    *local = wrap(model, std::move(r.local));
  });
}

CZ_API cz_status cz_model_embed_texts(cz_model* model, const cz_tensor* ids, const cz_tensor* mask,
                                      const cz_tensor* kinds, cz_tensor** sentence, cz_tensor** words) {
  return guard([&] {
    check_outs({{sentence, "sentence"}, {words, "words"}});
    CZ_ARG(model != nullptr, "model is NULL");
    auto r = model->m->embed_texts(in(model, ids, "ids"), in(model, mask, "mask"), in(model, kinds, "kinds"));
    *sentence = wrap(model, std::move(r.sentence));
    *words = wrap(model, std::move(r.words));
  });
}

CZ_API cz_status cz_model_score(cz_model* model, const cz_tensor* img_global, const cz_tensor* img_local,
                                const cz_tensor* sentence, const cz_tensor* words, int want_attention, cz_tensor** i2t,
                                cz_tensor** t2i, cz_tensor** score, cz_tensor** attention) {
  return guard([&] {
    check_outs({{i2t, "i2t"}, {t2i, "t2i"}, {score, "score"}});
    if (attention) *attention = nullptr;
    CZ_ARG(!want_attention || attention != nullptr, "output 'attention' is NULL");
    CZ_ARG(model != nullptr, "model is NULL");
    auto r = model->m->score(in(model, img_global, "img_global"), in(model, img_local, "img_local"),
                             in(model, sentence, "sentence"), in(model, words, "words"), want_attention != 0);
    // Wrap all or nothing: no leak if a later allocation throws.
    std::unique_ptr<cz_tensor> a(wrap(model, std::move(r.i2t))), b(wrap(model, std::move(r.t2i))),
        c(wrap(model, std::move(r.score)));
    std::unique_ptr<cz_tensor> d(want_attention ? wrap(model, std::move(r.attention)) : nullptr);
    *i2t = a.release();
    *t2i = b.release();
    *score = c.release();
    if (want_attention) *attention = d.release();
  });
}

}  // extern "C"
