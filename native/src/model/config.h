// config.h: the model configuration (config.json of a carzero model directory, see
// docs/MODEL-FORMAT.md). Sizes come from the tensor shapes (so tiny test models work); config.json
// supplies head counts and epsilons and, when it states a size, that size must agree with the
// tensors (an error names the field and the tensor). Errors in config.json name the field.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/safetensors.h"

namespace carzero::json {
class Value;
}

namespace carzero::model {

struct VisionConfig {
  int64_t image_size = 224, patch_size = 16, in_chans = 3, width = 768, depth = 12, heads = 12, mlp_dim = 3072;
  double eps = 1e-6;
  int64_t patches() const { return (image_size / patch_size) * (image_size / patch_size); }
};

struct TextConfig {
  int64_t vocab_size = 28996, width = 768, depth = 12, heads = 12, intermediate = 3072, max_position = 512,
          type_vocab = 2, max_length = 97, last_n_layers = 4;
  double eps = 1e-12;
};

struct HeadConfig {
  int64_t width = 768, heads = 4, depth = 4, ffn = 1024;
  std::vector<int64_t> mlp = {1024, 512, 256, 1};
  double eps = 1e-5;
};

struct ModelConfig {
  VisionConfig vision;
  TextConfig text;
  HeadConfig head;
  // Preprocessing, carried for the TypeScript side (not used by the graphs).
  int64_t resize = 256, crop = 224;
  double mean = 0.4978, std = 0.2449;
  std::string raw_json;  // config.json as read ("{}" for in-memory models)
  std::string source;    // where it was read from (its path), for messages

  // Parses config.json text; `what` names the file. Strict: unknown sections/fields are errors
  // except under "source" and "preprocess" extras; wrong types and non-positive sizes name the
  // field ("vision.depth").
  static ModelConfig parse(const std::string& text, const std::string& what);
  // Reads <path> and parses it (Error(CZ_ERR_IO) naming the path when unreadable).
  static ModelConfig load_file(const std::string& path);
  // Derives every size from the tensor shapes of `src`, checking each size that config.json
  // stated (`stated`) against them, and the head counts against the widths.
  void resolve(const TensorSource& src);
  // A JSON object describing the resolved configuration (sizes as used).
  std::string to_json() const;

  // Which fields config.json stated explicitly ("vision.depth", ...).
  std::vector<std::string> stated;
  bool was_stated(const std::string& field) const;
};

}  // namespace carzero::model
