// opsapi.h: the op registry. Each op exposed to the C ABI and to JavaScript is declared once
// here with its tensor arguments (name, role, dtypes, optional), scalar parameters (name,
// default) and scalar results; run_op() validates a call against that declaration and the op's
// shape rules, naming the offending argument in every error, then runs the backend op.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/context.h"
#include "ops.h"
#include "core/tensor.h"

namespace carzero {

enum class Role { In, Out, InOut };

struct ArgSpec {
  const char* name;
  Role role;
  std::vector<DType> dtypes;
  bool optional = false;
};

struct ParamSpec {
  const char* name;
  double def;
};

struct OpCall;

struct OpSpec {
  std::string name;
  std::string doc;
  std::vector<ArgSpec> args;
  bool variadic = false;  // one ArgSpec describing any number (>= 1) of tensors
  std::vector<ParamSpec> params;
  std::vector<const char*> results;
  std::function<void(Context&, OpCall&)> run;
};

struct OpCall {
  const OpSpec* spec = nullptr;
  std::vector<const Tensor*> t;
  std::vector<double> p;
  std::vector<double> results;

  bool has(size_t i) const { return i < t.size() && t[i] != nullptr; }
  const Tensor& req(size_t i) const;
  const char* arg_name(size_t i) const;
  float* f32(size_t i) const { return has(i) ? t[i]->ptr<float>() : nullptr; }
  int32_t* i32(size_t i) const { return has(i) ? t[i]->ptr<int32_t>() : nullptr; }
  // Throws naming the argument unless tensor i has exactly this shape.
  void expect_shape(size_t i, const std::vector<int64_t>& shape) const;
  void expect_numel(size_t i, int64_t n) const;
  void expect_dtype(size_t i, DType dt) const;
  // Parameter i as an integer in [lo, hi] (throws naming it otherwise).
  int64_t iparam(size_t i, int64_t lo, int64_t hi) const;
  [[noreturn]] void fail(const char* fmt, ...) const
#if defined(__GNUC__)
      __attribute__((format(printf, 2, 3)))
#endif
      ;
};

const std::vector<OpSpec>& op_registry();
const OpSpec* find_op(const std::string& name);
// tensors.size() <= declared args (missing trailing ones are null); params.size() <= declared.
void run_op(Context& ctx, const std::string& name, const std::vector<const Tensor*>& tensors,
            const std::vector<double>& params, std::vector<double>* results);
std::string op_list_json();

}  // namespace carzero
