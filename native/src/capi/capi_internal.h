// capi_internal.h: what the C ABI translation units share (capi.cpp, capi_model.cpp): the
// definitions of the opaque handles and the thread-local error message.
#pragma once
#include <exception>
#include <memory>
#include <new>
#include <string>

#include "carzero.h"
#include "core/context.h"
#include "core/status.h"
#include "core/tensor.h"

struct cz_context {
  std::unique_ptr<carzero::Context> ctx;
};

struct cz_tensor {
  carzero::Tensor t;
  cz_context* owner;
};

namespace carzero::capi {
// Sets the message cz_last_error() returns on this thread; returns s.
cz_status set_error(cz_status s, const std::string& msg);

// Runs f; every exception becomes a status and the thread's error message (the ABI's one rule:
// nothing escapes, exits or aborts).
template <typename F>
cz_status guard(F&& f) {
  try {
    f();
    return CZ_OK;
  } catch (const Error& e) {
    return set_error(e.code(), e.what());
  } catch (const std::bad_alloc&) {
    return set_error(CZ_ERR_OUT_OF_MEMORY, "out of host memory");
  } catch (const std::exception& e) {
    return set_error(CZ_ERR_INTERNAL, e.what());
  } catch (...) {
    return set_error(CZ_ERR_INTERNAL, "unknown exception");
  }
}
}  // namespace carzero::capi
