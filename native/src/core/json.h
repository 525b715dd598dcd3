// json.h: a small, strict JSON reader (RFC 8259) for config files and safetensors headers.
//
// Strict: no comments, no trailing commas, no NaN/Infinity, no duplicate object keys, nothing
// after the top-level value but whitespace, strings must be valid UTF-8 escapes. Objects keep
// their key order. Errors throw carzero::Error(CZ_ERR_FORMAT) naming `what` (the file) and the
// byte offset. Numbers are kept as double plus their source text (integers up to 2^53 exact;
// as_int64() parses the text so safetensors offsets beyond 2^53 stay exact).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace carzero::json {

enum class Type { Null, Bool, Number, String, Array, Object };

class Value {
 public:
  Type type = Type::Null;
  bool b = false;
  double num = 0;
  std::string str;                                 // String; for Number, the source text
  std::vector<Value> arr;                          // Array
  std::vector<std::pair<std::string, Value>> obj;  // Object, in source order

  bool is_null() const { return type == Type::Null; }
  bool is_object() const { return type == Type::Object; }
  bool is_array() const { return type == Type::Array; }
  bool is_number() const { return type == Type::Number; }
  bool is_string() const { return type == Type::String; }
  bool is_bool() const { return type == Type::Bool; }
  // Member `key` of an object, or null when absent (or when this is not an object).
  const Value* find(const std::string& key) const;
  // True when this number is an integer (no fraction, no exponent making it non-integral).
  bool is_integer() const;
  // The integer value; throws Error(CZ_ERR_FORMAT) naming `what` unless is_integer() and it fits.
  int64_t as_int64(const char* what) const;
  static const char* type_name(Type t);
};

// Parses text; `what` names the source (a file path) in error messages.
Value parse(const std::string& text, const std::string& what);
// Serialises a value (compact; strings escaped; numbers written from their source text).
std::string dump(const Value& v);
// JSON string literal for s (quotes and escapes).
std::string quote(const std::string& s);

}  // namespace carzero::json
