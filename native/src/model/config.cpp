// config.cpp: see config.h.
#include "model/config.h"

#include <fstream>
#include <sstream>

#include "core/json.h"
#include "core/status.h"
#include "core/tensor.h"

namespace carzero::model {

namespace {

struct Reader {
  const std::string& what;
  std::vector<std::string>* stated;

  const json::Value* section(const json::Value& root, const char* name) const {
    const json::Value* s = root.find(name);
    if (!s) return nullptr;
    CZ_REQUIRE(s->is_object(), CZ_ERR_FORMAT, "%s: field '%s' must be an object, got %s", what.c_str(), name,
               json::Value::type_name(s->type));
    return s;
  }
  void check_known(const json::Value* sec, const char* sname, std::initializer_list<const char*> known) const {
    if (!sec) return;
    for (const auto& kv : sec->obj) {
      bool ok = false;
      for (const char* k : known) ok = ok || kv.first == k;
      CZ_REQUIRE(ok, CZ_ERR_FORMAT, "%s: unknown field '%s.%s'", what.c_str(), sname, kv.first.c_str());
    }
  }
  void size(const json::Value* sec, const char* sname, const char* field, int64_t* out, int64_t min = 1) const {
    if (!sec) return;
    const json::Value* v = sec->find(field);
    if (!v) return;
    std::string f = std::string(sname) + "." + field;
    CZ_REQUIRE(v->is_integer(), CZ_ERR_FORMAT, "%s: field '%s' must be an integer, got %s", what.c_str(), f.c_str(),
               v->is_number() ? v->str.c_str() : json::Value::type_name(v->type));
    CZ_REQUIRE(v->num >= static_cast<double>(min) && v->num <= 2147483648.0, CZ_ERR_FORMAT,
               "%s: field '%s' must be in [%lld, 2^31], got %s", what.c_str(), f.c_str(), static_cast<long long>(min),
               v->str.c_str());
    int64_t x = v->as_int64(f.c_str());
    CZ_REQUIRE(x >= min && x <= (int64_t(1) << 31), CZ_ERR_FORMAT, "%s: field '%s' must be in [%lld, 2^31], got %lld",
               what.c_str(), f.c_str(), static_cast<long long>(min), static_cast<long long>(x));
    *out = x;
    stated->push_back(f);
  }
  void real(const json::Value* sec, const char* sname, const char* field, double* out, bool positive) const {
    if (!sec) return;
    const json::Value* v = sec->find(field);
    if (!v) return;
    std::string f = std::string(sname) + "." + field;
    CZ_REQUIRE(v->is_number(), CZ_ERR_FORMAT, "%s: field '%s' must be a number, got %s", what.c_str(), f.c_str(),
               json::Value::type_name(v->type));
    CZ_REQUIRE(!positive || v->num > 0, CZ_ERR_FORMAT, "%s: field '%s' must be > 0, got %s", what.c_str(), f.c_str(),
               v->str.c_str());
    *out = v->num;
    stated->push_back(f);
  }
};

// Shape of a required tensor, or an Error naming it and the source.
const TensorView& need(const TensorSource& src, const std::string& name) {
  const TensorView* v = src.find(name);
  CZ_REQUIRE(v != nullptr, CZ_ERR_FORMAT, "%s: missing tensor '%s'", src.where().c_str(), name.c_str());
  return *v;
}

// Number of consecutive i such that prefix + i + suffix exists.
int64_t count_layers(const TensorSource& src, const std::string& prefix, const std::string& suffix) {
  int64_t n = 0;
  while (src.find(prefix + std::to_string(n) + suffix)) ++n;
  return n;
}

}  // namespace

bool ModelConfig::was_stated(const std::string& field) const {
  for (const auto& s : stated)
    if (s == field) return true;
  return false;
}

ModelConfig ModelConfig::parse(const std::string& text, const std::string& what) {
  ModelConfig c;
  c.raw_json = text;
  c.source = what;
  json::Value root = json::parse(text, what);
  CZ_REQUIRE(root.is_object(), CZ_ERR_FORMAT, "%s: config must be a JSON object", what.c_str());
  Reader r{what, &c.stated};
  if (const json::Value* f = root.find("format")) {
    CZ_REQUIRE(f->is_string() && f->str == "carzero-model", CZ_ERR_FORMAT,
               "%s: field 'format' must be \"carzero-model\"", what.c_str());
  } else {
    throw_error(CZ_ERR_FORMAT, "%s: missing field 'format' (\"carzero-model\")", what.c_str());
  }
  if (const json::Value* f = root.find("format_version")) {
    CZ_REQUIRE(f->is_integer() && f->num == 1, CZ_ERR_UNSUPPORTED,
               "%s: field 'format_version' is %s; this build reads version 1", what.c_str(),
               f->is_number() ? f->str.c_str() : json::Value::type_name(f->type));
  } else {
    throw_error(CZ_ERR_FORMAT, "%s: missing field 'format_version'", what.c_str());
  }
  for (const auto& kv : root.obj) {
    const std::string& k = kv.first;
    CZ_REQUIRE(k == "format" || k == "format_version" || k == "vision" || k == "text" || k == "head" ||
                   k == "preprocess" || k == "source",
               CZ_ERR_FORMAT, "%s: unknown field '%s'", what.c_str(), k.c_str());
  }
  const json::Value* v = r.section(root, "vision");
  r.check_known(v, "vision", {"image_size", "patch_size", "in_chans", "width", "depth", "heads", "mlp_dim", "eps"});
  r.size(v, "vision", "image_size", &c.vision.image_size);
  r.size(v, "vision", "patch_size", &c.vision.patch_size);
  r.size(v, "vision", "in_chans", &c.vision.in_chans);
  r.size(v, "vision", "width", &c.vision.width);
  r.size(v, "vision", "depth", &c.vision.depth);
  r.size(v, "vision", "heads", &c.vision.heads);
  r.size(v, "vision", "mlp_dim", &c.vision.mlp_dim);
  r.real(v, "vision", "eps", &c.vision.eps, true);
  const json::Value* t = r.section(root, "text");
  r.check_known(t, "text",
                {"vocab_size", "width", "depth", "heads", "intermediate", "max_position", "type_vocab", "eps",
                 "max_length", "last_n_layers"});
  r.size(t, "text", "vocab_size", &c.text.vocab_size);
  r.size(t, "text", "width", &c.text.width);
  r.size(t, "text", "depth", &c.text.depth);
  r.size(t, "text", "heads", &c.text.heads);
  r.size(t, "text", "intermediate", &c.text.intermediate);
  r.size(t, "text", "max_position", &c.text.max_position);
  r.size(t, "text", "type_vocab", &c.text.type_vocab);
  r.real(t, "text", "eps", &c.text.eps, true);
  r.size(t, "text", "max_length", &c.text.max_length, 2);
  r.size(t, "text", "last_n_layers", &c.text.last_n_layers);
  const json::Value* h = r.section(root, "head");
  r.check_known(h, "head", {"width", "heads", "depth", "ffn", "mlp", "eps"});
  r.size(h, "head", "width", &c.head.width);
  r.size(h, "head", "heads", &c.head.heads);
  r.size(h, "head", "depth", &c.head.depth);
  r.size(h, "head", "ffn", &c.head.ffn);
  r.real(h, "head", "eps", &c.head.eps, true);
  if (h) {
    if (const json::Value* m = h->find("mlp")) {
      CZ_REQUIRE(m->is_array() && !m->arr.empty(), CZ_ERR_FORMAT,
                 "%s: field 'head.mlp' must be a non-empty array of sizes", what.c_str());
      c.head.mlp.clear();
      for (size_t i = 0; i < m->arr.size(); ++i) {
        std::string f = "head.mlp[" + std::to_string(i) + "]";
        CZ_REQUIRE(m->arr[i].is_integer() && m->arr[i].num >= 1, CZ_ERR_FORMAT,
                   "%s: field '%s' must be a positive integer", what.c_str(), f.c_str());
        c.head.mlp.push_back(m->arr[i].as_int64(f.c_str()));
      }
      c.stated.push_back("head.mlp");
    }
  }
  const json::Value* p = r.section(root, "preprocess");
  r.size(p, "preprocess", "resize", &c.resize);
  r.size(p, "preprocess", "crop", &c.crop);
  r.real(p, "preprocess", "mean", &c.mean, false);
  r.real(p, "preprocess", "std", &c.std, true);
  // The image feed's bounds (a padded square of resize^2 bytes per image in flight): a config
  // asking for more is refused here, naming the file, rather than failing in every image.
  CZ_REQUIRE(c.resize <= 8192, CZ_ERR_FORMAT, "%s: field 'preprocess.resize' must be at most 8192, got %lld",
             what.c_str(), static_cast<long long>(c.resize));
  CZ_REQUIRE(c.crop <= c.resize, CZ_ERR_FORMAT,
             "%s: field 'preprocess.crop' (%lld) must not exceed 'preprocess.resize' (%lld)", what.c_str(),
             static_cast<long long>(c.crop), static_cast<long long>(c.resize));
  if (const json::Value* s = root.find("source"))
    CZ_REQUIRE(s->is_object(), CZ_ERR_FORMAT, "%s: field 'source' must be an object", what.c_str());
  return c;
}

ModelConfig ModelConfig::load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  CZ_REQUIRE(in.good(), CZ_ERR_IO, "%s: cannot open", path.c_str());
  std::ostringstream ss;
  ss << in.rdbuf();
  CZ_REQUIRE(!in.bad(), CZ_ERR_IO, "%s: read failed", path.c_str());
  return parse(ss.str(), path);
}

void ModelConfig::resolve(const TensorSource& src) {
  const std::string& w = src.where();
  // Sets *field from a tensor dimension; a stated config value must agree.
  auto derive = [&](const char* field, int64_t* out, int64_t actual, const std::string& tensor) {
    CZ_REQUIRE(!was_stated(field) || *out == actual, CZ_ERR_FORMAT,
               "%s: field '%s' = %lld disagrees with tensor '%s' in %s (size %lld)",
               source.empty() ? "config" : source.c_str(), field, static_cast<long long>(*out), tensor.c_str(),
               w.c_str(), static_cast<long long>(actual));
    *out = actual;
  };
  auto dims = [&](const std::string& name, size_t nd) -> const std::vector<int64_t>& {
    const TensorView& v = need(src, name);
    CZ_REQUIRE(v.shape.size() == nd, CZ_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected %zu dims", w.c_str(),
               name.c_str(), shape_to_string(v.shape).c_str(), nd);
    return v.shape;
  };
  // ---- vision
  const std::string vp = "img_encoder.model.";
  {
    const auto& pw = dims(vp + "patch_embed.proj.weight", 4);  // (C, 3, ps, ps)
    derive("vision.width", &vision.width, pw[0], vp + "patch_embed.proj.weight");
    derive("vision.in_chans", &vision.in_chans, pw[1], vp + "patch_embed.proj.weight");
    CZ_REQUIRE(pw[2] == pw[3], CZ_ERR_FORMAT,
               "%s: tensor '%spatch_embed.proj.weight' has a "
               "non-square kernel %s",
               w.c_str(), vp.c_str(), shape_to_string(pw).c_str());
    derive("vision.patch_size", &vision.patch_size, pw[2], vp + "patch_embed.proj.weight");
    const auto& pe = dims(vp + "pos_embed", 3);  // (1, 1+P, C)
    int64_t P = pe[1] - 1, side = 0;
    while ((side + 1) * (side + 1) <= P) ++side;
    CZ_REQUIRE(P >= 1 && side * side == P, CZ_ERR_FORMAT,
               "%s: tensor '%spos_embed' has %lld positions: not 1 + a square number of patches", w.c_str(), vp.c_str(),
               static_cast<long long>(pe[1]));
    derive("vision.image_size", &vision.image_size, side * vision.patch_size, vp + "pos_embed");
    derive("vision.depth", &vision.depth, count_layers(src, vp + "blocks.", ".norm1.weight"), vp + "blocks.*");
    CZ_REQUIRE(vision.depth >= 1, CZ_ERR_FORMAT, "%s: no tensor '%sblocks.0.norm1.weight'", w.c_str(), vp.c_str());
    derive("vision.mlp_dim", &vision.mlp_dim, dims(vp + "blocks.0.mlp.fc1.weight", 2)[0],
           vp + "blocks.0.mlp.fc1.weight");
  }
  // ---- text
  const std::string tp = "text_encoder.model.";
  {
    const auto& we = dims(tp + "embeddings.word_embeddings.weight", 2);
    derive("text.vocab_size", &text.vocab_size, we[0], tp + "embeddings.word_embeddings.weight");
    derive("text.width", &text.width, we[1], tp + "embeddings.word_embeddings.weight");
    derive("text.max_position", &text.max_position, dims(tp + "embeddings.position_embeddings.weight", 2)[0],
           tp + "embeddings.position_embeddings.weight");
    derive("text.type_vocab", &text.type_vocab, dims(tp + "embeddings.token_type_embeddings.weight", 2)[0],
           tp + "embeddings.token_type_embeddings.weight");
    derive("text.depth", &text.depth, count_layers(src, tp + "encoder.layer.", ".attention.self.query.weight"),
           tp + "encoder.layer.*");
    CZ_REQUIRE(text.depth >= 1, CZ_ERR_FORMAT, "%s: no tensor '%sencoder.layer.0.*'", w.c_str(), tp.c_str());
    derive("text.intermediate", &text.intermediate, dims(tp + "encoder.layer.0.intermediate.dense.weight", 2)[0],
           tp + "encoder.layer.0.intermediate.dense.weight");
  }
  // ---- head
  const std::string hp = "fusion_module.";
  {
    derive("head.width", &head.width, dims(hp + "decoder_norm.weight", 1)[0], hp + "decoder_norm.weight");
    derive("head.depth", &head.depth, count_layers(src, hp + "decoder.layers.", ".multihead_attn.in_proj_weight"),
           hp + "decoder.layers.*");
    CZ_REQUIRE(head.depth >= 1, CZ_ERR_FORMAT, "%s: no tensor '%sdecoder.layers.0.*'", w.c_str(), hp.c_str());
    derive("head.ffn", &head.ffn, dims(hp + "decoder.layers.0.linear1.weight", 2)[0],
           hp + "decoder.layers.0.linear1.weight");
    std::vector<int64_t> mlp;
    for (int64_t i = 0;; ++i) {
      const TensorView* v = src.find(hp + "mlp_head." + std::to_string(3 * i) + ".weight");
      if (!v) break;
      CZ_REQUIRE(v->shape.size() == 2, CZ_ERR_FORMAT, "%s: tensor '%s' must be 2-D, got %s", w.c_str(), v->name.c_str(),
                 shape_to_string(v->shape).c_str());
      mlp.push_back(v->shape[0]);
    }
    CZ_REQUIRE(!mlp.empty(), CZ_ERR_FORMAT, "%s: missing tensor '%smlp_head.0.weight'", w.c_str(), hp.c_str());
    CZ_REQUIRE(!was_stated("head.mlp") || head.mlp == mlp, CZ_ERR_FORMAT,
               "%s: field 'head.mlp' = %s disagrees with tensors '%smlp_head.*' in %s (%s)",
               source.empty() ? "config" : source.c_str(), shape_to_string(head.mlp).c_str(), hp.c_str(), w.c_str(),
               shape_to_string(mlp).c_str());
    CZ_REQUIRE(mlp.back() == 1, CZ_ERR_FORMAT, "%s: the last mlp_head layer must have 1 output (a logit), got %lld",
               w.c_str(), static_cast<long long>(mlp.back()));
    head.mlp = mlp;
  }
  // ---- cross checks
  CZ_REQUIRE(vision.width == text.width && text.width == head.width, CZ_ERR_FORMAT,
             "%s: widths differ: vision %lld, text %lld, head %lld (must be equal)", w.c_str(),
             static_cast<long long>(vision.width), static_cast<long long>(text.width),
             static_cast<long long>(head.width));
  const char* cfg = source.empty() ? "config" : source.c_str();
  auto heads_ok = [&](const char* field, int64_t heads, int64_t width) {
    CZ_REQUIRE(heads >= 1 && width % heads == 0, CZ_ERR_FORMAT, "%s: field '%s' = %lld does not divide the width %lld",
               cfg, field, static_cast<long long>(heads), static_cast<long long>(width));
  };
  heads_ok("vision.heads", vision.heads, vision.width);
  heads_ok("text.heads", text.heads, text.width);
  heads_ok("head.heads", head.heads, head.width);
  CZ_REQUIRE(text.last_n_layers <= text.depth, CZ_ERR_FORMAT,
             "%s: field 'text.last_n_layers' = %lld exceeds text.depth = %lld", cfg,
             static_cast<long long>(text.last_n_layers), static_cast<long long>(text.depth));
  CZ_REQUIRE(text.max_length <= text.max_position, CZ_ERR_FORMAT,
             "%s: field 'text.max_length' = %lld exceeds text.max_position = %lld", cfg,
             static_cast<long long>(text.max_length), static_cast<long long>(text.max_position));
}

std::string ModelConfig::to_json() const {
  auto g = [](double x) { return strfmt("%.9g", x); };
  std::string mlp = "[";
  for (size_t i = 0; i < head.mlp.size(); ++i) mlp += (i ? "," : "") + std::to_string(head.mlp[i]);
  mlp += "]";
  return strfmt(
      "{\"format\":\"carzero-model\",\"format_version\":1,"
      "\"vision\":{\"image_size\":%lld,\"patch_size\":%lld,\"in_chans\":%lld,\"width\":%lld,"
      "\"depth\":%lld,\"heads\":%lld,\"mlp_dim\":%lld,\"eps\":%s},"
      "\"text\":{\"vocab_size\":%lld,\"width\":%lld,\"depth\":%lld,\"heads\":%lld,"
      "\"intermediate\":%lld,\"max_position\":%lld,\"type_vocab\":%lld,\"eps\":%s,"
      "\"max_length\":%lld,\"last_n_layers\":%lld},"
      "\"head\":{\"width\":%lld,\"heads\":%lld,\"depth\":%lld,\"ffn\":%lld,\"mlp\":%s,\"eps\":%s},"
      "\"preprocess\":{\"resize\":%lld,\"crop\":%lld,\"mean\":%s,\"std\":%s}}",
      (long long)vision.image_size, (long long)vision.patch_size, (long long)vision.in_chans, (long long)vision.width,
      (long long)vision.depth, (long long)vision.heads, (long long)vision.mlp_dim, g(vision.eps).c_str(),
      (long long)text.vocab_size, (long long)text.width, (long long)text.depth, (long long)text.heads,
      (long long)text.intermediate, (long long)text.max_position, (long long)text.type_vocab, g(text.eps).c_str(),
      (long long)text.max_length, (long long)text.last_n_layers, (long long)head.width, (long long)head.heads,
      (long long)head.depth, (long long)head.ffn, mlp.c_str(), g(head.eps).c_str(), (long long)resize, (long long)crop,
      g(mean).c_str(), g(std).c_str());
}

}  // namespace carzero::model
