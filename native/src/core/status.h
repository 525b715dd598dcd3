// status.h: the error model of the native core.
//
// Inside the core, failures are C++ exceptions of type carzero::Error carrying a status code and a
// message. They are caught at every boundary (C ABI in native/src/capi.cpp, N-API in
// native/src/napi/) and turned into a status code + message or a JS exception. Nothing in the core
// calls exit/abort; a bad argument must become an Error, never a crash.
#pragma once
#include <cstdarg>
#include <cstdio>
#include <exception>
#include <string>

#include "../../include/carzero.h"

namespace carzero {

class Error : public std::exception {
 public:
  Error(cz_status code, std::string message) : code_(code), message_(std::move(message)) {}
  cz_status code() const noexcept { return code_; }
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  cz_status code_;
  std::string message_;
};

// printf-style message formatting for errors.
std::string strfmt(const char* fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

[[noreturn]] void throw_error(cz_status code, const char* fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

}  // namespace carzero

// CZ_REQUIRE(cond, code, fmt, ...): throw carzero::Error(code, message) when cond is false.
#define CZ_REQUIRE(cond, code, ...)                           \
  do {                                                        \
    if (!(cond)) ::carzero::throw_error((code), __VA_ARGS__); \
  } while (0)
#define CZ_ARG(cond, ...) CZ_REQUIRE(cond, CZ_ERR_INVALID_ARGUMENT, __VA_ARGS__)
