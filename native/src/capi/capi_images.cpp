// capi_images.cpp: image files and stored embeddings for C callers (cz_images_load,
// cz_safetensors_load), so a pipeline in C, Rust or Python (ctypes) goes from files to scores with
// no JavaScript step. Same rules as capi.cpp: every exception becomes a status + thread-local
// message; nothing exits or aborts.
#include <algorithm>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "capi/capi_internal.h"
#include "carzero.h"
#include "core/status.h"
#include "image/image.h"
#include "model/safetensors.h"

namespace {

using carzero::Error;

using carzero::capi::guard;

// A new tensor on ctx holding a copy of host data.
cz_tensor* new_tensor(cz_context* ctx, carzero::DType dtype, const std::vector<int64_t>& shape, const void* data,
                      size_t nbytes) {
  auto t = std::make_unique<cz_tensor>();
  t->t = ctx->ctx->alloc(dtype, shape, false);
  CZ_REQUIRE(t->t.nbytes() == nbytes, CZ_ERR_INTERNAL, "tensor of %zu bytes for %zu bytes of data", t->t.nbytes(),
             nbytes);
  ctx->ctx->upload(t->t, data, nbytes);
  t->owner = ctx;
  return t.release();
}

}  // namespace

CZ_API cz_status cz_images_load(cz_context* ctx, const char* const* paths, int n, int threads,
                                const cz_image_options* options, cz_tensor** pixels, cz_image_status* statuses) {
  return guard([&] {
    CZ_ARG(pixels != nullptr, "pixels is NULL");
    *pixels = nullptr;
    CZ_ARG(ctx != nullptr, "ctx is NULL");
    CZ_ARG(n >= 1, "n must be at least 1, got %d", n);
    CZ_ARG(paths != nullptr, "paths is NULL");
    carzero::img::PreprocessOptions pre;
    if (options) {
      pre.resize = options->resize;
      pre.crop = options->crop;
      pre.mean = options->mean;
      pre.std = options->std;
    }
    CZ_ARG(pre.resize >= 1 && pre.resize <= 8192 && pre.crop >= 1 && pre.crop <= pre.resize,
           "options: need 1 <= crop <= resize <= 8192, got resize %d, crop %d", pre.resize, pre.crop);
    std::vector<std::string> files(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      CZ_ARG(paths[i] != nullptr && paths[i][0] != '\0', "paths[%d] is NULL or empty", i);
      files[i] = paths[i];
    }
    const size_t plane = size_t(pre.crop) * size_t(pre.crop);
    std::vector<float> host(size_t(n) * plane);
    std::vector<carzero::img::ItemStatus> st = carzero::img::load_batch(files, threads, {}, pre, host.data());
    if (!statuses) {
      for (const auto& s : st)
        if (s.code != CZ_OK) carzero::throw_error(static_cast<cz_status>(s.code), "%s", s.message.c_str());
    } else {
      for (int i = 0; i < n; ++i) {
        cz_image_status& o = statuses[i];
        o.status = static_cast<cz_status>(st[i].code);
        o.width = st[i].width;
        o.height = st[i].height;
        size_t len = std::min(st[i].message.size(), sizeof(o.message) - 1);
        std::memcpy(o.message, st[i].message.data(), len);
        o.message[len] = '\0';
      }
    }
    *pixels =
        new_tensor(ctx, carzero::DType::F32, {n, 1, pre.crop, pre.crop}, host.data(), host.size() * sizeof(float));
  });
}

CZ_API cz_status cz_safetensors_load(cz_context* ctx, const char* path, const char* name, cz_tensor** out) {
  return guard([&] {
    CZ_ARG(out != nullptr, "out is NULL");
    *out = nullptr;
    CZ_ARG(ctx != nullptr, "ctx is NULL");
    CZ_ARG(path != nullptr, "path is NULL");
    CZ_ARG(name != nullptr, "name is NULL");
    auto f = carzero::model::SafeTensorsFile::open(path);
    const carzero::model::TensorView* v = f->find(name);
    if (!v) {
      std::string have;
      for (const auto& k : f->names()) have += (have.empty() ? "" : ", ") + k;
      carzero::throw_error(CZ_ERR_INVALID_ARGUMENT, "%s: no tensor '%s' (it holds: %s)", path, name, have.c_str());
    }
    CZ_REQUIRE(v->supported, CZ_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s, which carzero tensors do not hold",
               path, name, v->dtype_name.c_str());
    *out = new_tensor(ctx, v->dtype, v->shape, v->data, v->nbytes);
  });
}
