// capi.cpp: the C ABI (native/include/carzero.h) over the C++ core. Every entry point catches
// every exception and turns it into a status + thread-local message; nothing escapes into C.
#include <cstring>
#include <new>
#include <string>

#include "carzero.h"
#include "core/context.h"
#include "core/status.h"
#include "opsapi.h"
#include "capi/capi_internal.h"  // cz_context, cz_tensor (shared with capi_model.cpp)

namespace {

thread_local std::string tls_error;

cz_status fail(cz_status s, const std::string& msg) {
  tls_error = msg;
  return s;
}

using carzero::capi::guard;

std::vector<int64_t> shape_of(const int64_t* shape, int ndim) {
  CZ_ARG(ndim >= 0 && ndim <= CZ_MAX_DIMS, "ndim must be in [0, %d], got %d", CZ_MAX_DIMS, ndim);
  CZ_ARG(ndim == 0 || shape != nullptr, "shape is NULL");
  std::vector<int64_t> s(shape, shape + ndim);
  carzero::checked_numel(s, "shape");
  return s;
}

carzero::DType dtype_of(cz_dtype d) {
  CZ_ARG(d >= CZ_F32 && d <= CZ_U8, "unknown dtype %d", static_cast<int>(d));
  return static_cast<carzero::DType>(d);
}

cz_status copy_out(const std::string& s, char* buf, size_t cap, size_t* needed) {
  if (needed) *needed = s.size() + 1;
  if (buf && cap) {
    size_t n = s.size() < cap - 1 ? s.size() : cap - 1;
    std::memcpy(buf, s.data(), n);
    buf[n] = 0;
    if (n < s.size()) return fail(CZ_ERR_INVALID_ARGUMENT, "buffer too small");
  }
  return CZ_OK;
}

}  // namespace

cz_status carzero::capi::set_error(cz_status s, const std::string& msg) { return fail(s, msg); }

extern "C" {

CZ_API const char* cz_version(void) { return CZ_VERSION_STRING; }

CZ_API const char* cz_status_name(cz_status s) {
  switch (s) {
    case CZ_OK: return "ok";
    case CZ_ERR_INVALID_ARGUMENT: return "invalid_argument";
    case CZ_ERR_OUT_OF_MEMORY: return "out_of_memory";
    case CZ_ERR_IO: return "io";
    case CZ_ERR_FORMAT: return "format";
    case CZ_ERR_UNSUPPORTED: return "unsupported";
    case CZ_ERR_CUDA: return "cuda";
    case CZ_ERR_INTERNAL: return "internal";
  }
  return "unknown";
}

CZ_API const char* cz_last_error(void) { return tls_error.c_str(); }

CZ_API cz_status cz_info_json(char* buf, size_t cap, size_t* needed) {
  std::string s;
  cz_status st = guard([&] { s = carzero::info_json(); });
  return st != CZ_OK ? st : copy_out(s, buf, cap, needed);
}

CZ_API cz_status cz_op_list_json(char* buf, size_t cap, size_t* needed) {
  std::string s;
  cz_status st = guard([&] { s = carzero::op_list_json(); });
  return st != CZ_OK ? st : copy_out(s, buf, cap, needed);
}

CZ_API cz_status cz_context_create(cz_device device, int device_index, int num_threads, cz_context** out) {
  return guard([&] {
    CZ_ARG(out != nullptr, "out is NULL");
    *out = nullptr;
    CZ_ARG(device == CZ_DEVICE_CPU || device == CZ_DEVICE_CUDA, "unknown device %d", static_cast<int>(device));
    auto c = std::make_unique<cz_context>();
    c->ctx = carzero::Context::create(static_cast<carzero::DeviceType>(device), device_index, num_threads);
    *out = c.release();
  });
}

CZ_API void cz_context_free(cz_context* ctx) { delete ctx; }

CZ_API cz_status cz_tensor_create(cz_context* ctx, cz_dtype dtype, const int64_t* shape, int ndim, cz_tensor** out) {
  return guard([&] {
    CZ_ARG(out != nullptr, "out is NULL");
    *out = nullptr;
    CZ_ARG(ctx != nullptr, "ctx is NULL");
    auto t = std::make_unique<cz_tensor>();
    t->t = ctx->ctx->alloc(dtype_of(dtype), shape_of(shape, ndim), true);
    t->owner = ctx;
    *out = t.release();
  });
}

CZ_API cz_status cz_tensor_from_host(cz_context* ctx, cz_dtype dtype, const int64_t* shape, int ndim, const void* data,
                                     size_t nbytes, cz_tensor** out) {
  return guard([&] {
    CZ_ARG(out != nullptr, "out is NULL");
    *out = nullptr;
    CZ_ARG(ctx != nullptr, "ctx is NULL");
    auto t = std::make_unique<cz_tensor>();
    t->t = ctx->ctx->alloc(dtype_of(dtype), shape_of(shape, ndim), false);
    CZ_ARG(nbytes == t->t.nbytes(), "data has %zu bytes, shape %s of %s needs %zu", nbytes, t->t.shape_str().c_str(),
           carzero::dtype_name(t->t.dtype()), t->t.nbytes());
    CZ_ARG(nbytes == 0 || data != nullptr, "data is NULL");
    ctx->ctx->upload(t->t, data, nbytes);
    t->owner = ctx;
    *out = t.release();
  });
}

CZ_API cz_status cz_tensor_to_host(const cz_tensor* t, void* dst, size_t nbytes) {
  return guard([&] {
    CZ_ARG(t != nullptr, "tensor is NULL");
    CZ_ARG(nbytes == 0 || dst != nullptr, "dst is NULL");
    t->owner->ctx->download(t->t, dst, nbytes);
  });
}

CZ_API cz_status cz_tensor_copy_from_host(cz_tensor* t, const void* src, size_t nbytes) {
  return guard([&] {
    CZ_ARG(t != nullptr, "tensor is NULL");
    CZ_ARG(nbytes == 0 || src != nullptr, "src is NULL");
    t->owner->ctx->upload(t->t, src, nbytes);
  });
}

CZ_API cz_status cz_tensor_info(const cz_tensor* t, cz_dtype* dtype, int* ndim, int64_t* shape) {
  return guard([&] {
    CZ_ARG(t != nullptr, "tensor is NULL");
    if (dtype) *dtype = static_cast<cz_dtype>(t->t.dtype());
    if (ndim) *ndim = t->t.ndim();
    if (shape)
      for (int i = 0; i < t->t.ndim(); ++i) shape[i] = t->t.size(i);
  });
}

CZ_API void cz_tensor_free(cz_tensor* t) { delete t; }

CZ_API cz_status cz_op_run(cz_context* ctx, const char* name, cz_tensor* const* tensors, int ntensors,
                           const double* params, int nparams, double* results, int nresults) {
  return guard([&] {
    CZ_ARG(ctx != nullptr, "ctx is NULL");
    CZ_ARG(name != nullptr, "op name is NULL");
    CZ_ARG(ntensors >= 0 && (ntensors == 0 || tensors), "tensors: bad array (%d)", ntensors);
    CZ_ARG(nparams >= 0 && (nparams == 0 || params), "params: bad array (%d)", nparams);
    std::vector<const carzero::Tensor*> ts(static_cast<size_t>(ntensors));
    for (int i = 0; i < ntensors; ++i) {
      ts[i] = tensors[i] ? &tensors[i]->t : nullptr;
      CZ_ARG(!tensors[i] || tensors[i]->owner == ctx || tensors[i]->owner->ctx->device() == ctx->ctx->device(),
             "%s: tensor %d belongs to a context on another device", name, i);
    }
    std::vector<double> ps(params, params + nparams), rs;
    carzero::run_op(*ctx->ctx, name, ts, ps, &rs);
    for (int i = 0; i < nresults && i < static_cast<int>(rs.size()); ++i)
      if (results) results[i] = rs[i];
  });
}

}  // extern "C"
