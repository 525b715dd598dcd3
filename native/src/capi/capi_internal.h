// capi_internal.h: what the C ABI translation units share (capi.cpp, capi_model.cpp): the
// definitions of the opaque handles and the thread-local error message.
#pragma once
#include <memory>
#include <string>

#include "carzero.h"
#include "core/context.h"
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
}  // namespace carzero::capi
