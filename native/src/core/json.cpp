// json.cpp: see json.h.
#include "core/json.h"

#include <cmath>
#include <cstdlib>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/status.h"

namespace carzero::json {

const Value* Value::find(const std::string& key) const {
  if (type != Type::Object) return nullptr;
  for (const auto& kv : obj)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

bool Value::is_integer() const {
  if (type != Type::Number) return false;
  return std::isfinite(num) && std::floor(num) == num;
}

int64_t Value::as_int64(const char* what) const {
  CZ_REQUIRE(type == Type::Number, CZ_ERR_FORMAT, "%s: expected an integer, got %s", what, type_name(type));
  // Plain integer text: parse exactly (offsets may exceed 2^53).
  bool plain = !str.empty();
  for (size_t i = 0; i < str.size(); ++i)
    if (!(std::isdigit(static_cast<unsigned char>(str[i])) || (i == 0 && str[i] == '-'))) plain = false;
  if (plain) {
    errno = 0;
    char* end = nullptr;
    long long v = std::strtoll(str.c_str(), &end, 10);
    CZ_REQUIRE(errno == 0 && end && *end == 0, CZ_ERR_FORMAT, "%s: integer %s is out of range", what, str.c_str());
    return v;
  }
  CZ_REQUIRE(is_integer() && std::fabs(num) <= 9007199254740992.0, CZ_ERR_FORMAT, "%s: expected an integer, got %s",
             what, str.c_str());
  return static_cast<int64_t>(num);
}

const char* Value::type_name(Type t) {
  switch (t) {
    case Type::Null: return "null";
    case Type::Bool: return "a boolean";
    case Type::Number: return "a number";
    case Type::String: return "a string";
    case Type::Array: return "an array";
    case Type::Object: return "an object";
  }
  return "?";
}

namespace {

constexpr int kMaxDepth = 256;

struct Parser {
  const std::string& s;
  const std::string& what;
  size_t i = 0;

  [[noreturn]] void fail(const char* msg) const {
    throw_error(CZ_ERR_FORMAT, "%s: invalid JSON at byte %zu: %s", what.c_str(), i, msg);
  }
  void ws() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  }
  bool lit(const char* w) {
    size_t n = std::strlen(w);
    if (s.compare(i, n, w) == 0) {
      i += n;
      return true;
    }
    return false;
  }
  static void put_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  uint32_t hex4() {
    if (i + 4 > s.size()) fail("truncated \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s[i++];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= c - '0';
      else if (c >= 'a' && c <= 'f')
        v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        v |= c - 'A' + 10;
      else
        fail("bad hex digit in \\u escape");
    }
    return v;
  }
  std::string string() {
    if (i >= s.size() || s[i] != '"') fail("expected a string");
    ++i;
    std::string out;
    for (;;) {
      if (i >= s.size()) fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(s[i]);
      if (c == '"') {
        ++i;
        return out;
      }
      if (c < 0x20) fail("control character in string");
      if (c != '\\') {
        out += static_cast<char>(c);
        ++i;
        continue;
      }
      ++i;
      if (i >= s.size()) fail("unterminated escape");
      char e = s[i++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00) {
            if (!(i + 1 < s.size() && s[i] == '\\' && s[i + 1] == 'u')) fail("lone surrogate");
            i += 2;
            uint32_t lo = hex4();
            if (lo < 0xDC00 || lo >= 0xE000) fail("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            fail("lone surrogate");
          }
          put_utf8(out, cp);
          break;
        }
        default: fail("unknown escape");
      }
    }
  }
  Value number() {
    size_t st = i;
    if (s[i] == '-') ++i;
    if (i >= s.size()) fail("truncated number");
    if (s[i] == '0') {
      ++i;
    } else if (s[i] >= '1' && s[i] <= '9') {
      while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    } else {
      fail("bad number");
    }
    if (i < s.size() && s[i] == '.') {
      ++i;
      if (i >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i]))) fail("bad fraction");
      while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    }
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
      ++i;
      if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
      if (i >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i]))) fail("bad exponent");
      while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    }
    Value v;
    v.type = Type::Number;
    v.str = s.substr(st, i - st);
    v.num = std::strtod(v.str.c_str(), nullptr);
    if (!std::isfinite(v.num)) fail("number out of range");
    return v;
  }
  Value value(int depth) {
    if (depth > kMaxDepth) fail("nesting too deep");
    ws();
    if (i >= s.size()) fail("unexpected end of input");
    char c = s[i];
    Value v;
    if (c == '{') {
      ++i;
      v.type = Type::Object;
      ws();
      if (i < s.size() && s[i] == '}') {
        ++i;
        return v;
      }
      for (;;) {
        ws();
        std::string k = string();
        for (const auto& kv : v.obj)
          if (kv.first == k) fail(("duplicate key \"" + k + "\"").c_str());
        ws();
        if (i >= s.size() || s[i] != ':') fail("expected ':'");
        ++i;
        v.obj.emplace_back(std::move(k), value(depth + 1));
        ws();
        if (i < s.size() && s[i] == ',') {
          ++i;
          continue;
        }
        if (i < s.size() && s[i] == '}') {
          ++i;
          return v;
        }
        fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      ++i;
      v.type = Type::Array;
      ws();
      if (i < s.size() && s[i] == ']') {
        ++i;
        return v;
      }
      for (;;) {
        v.arr.push_back(value(depth + 1));
        ws();
        if (i < s.size() && s[i] == ',') {
          ++i;
          continue;
        }
        if (i < s.size() && s[i] == ']') {
          ++i;
          return v;
        }
        fail("expected ',' or ']'");
      }
    }
    if (c == '"') {
      v.type = Type::String;
      v.str = string();
      return v;
    }
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    if (lit("true")) {
      v.type = Type::Bool;
      v.b = true;
      return v;
    }
    if (lit("false")) {
      v.type = Type::Bool;
      return v;
    }
    if (lit("null")) return v;
    fail("unexpected character");
  }
};

}  // namespace

Value parse(const std::string& text, const std::string& what) {
  Parser p{text, what};
  Value v = p.value(0);
  p.ws();
  if (p.i != text.size()) p.fail("trailing characters after the JSON value");
  return v;
}

std::string quote(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\r': o += "\\r"; break;
      case '\t': o += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          o += buf;
        } else {
          o += static_cast<char>(c);
        }
    }
  }
  return o + "\"";
}

std::string dump(const Value& v) {
  switch (v.type) {
    case Type::Null: return "null";
    case Type::Bool: return v.b ? "true" : "false";
    case Type::Number: return v.str.empty() ? strfmt("%.17g", v.num) : v.str;
    case Type::String: return quote(v.str);
    case Type::Array: {
      std::string o = "[";
      for (size_t k = 0; k < v.arr.size(); ++k) o += (k ? "," : "") + dump(v.arr[k]);
      return o + "]";
    }
    case Type::Object: {
      std::string o = "{";
      for (size_t k = 0; k < v.obj.size(); ++k)
        o += (k ? "," : "") + quote(v.obj[k].first) + ":" + dump(v.obj[k].second);
      return o + "}";
    }
  }
  return "null";
}

}  // namespace carzero::json
