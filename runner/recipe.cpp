#include "runner/recipe.h"

#include <algorithm>

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "core/atomic_file.h"
#include "runner/compose.h"
#include "runner/kinds/stage_kind.h"
#include "runner/kinds/train.h"
#include "runner/slurm_keys.h"
#include "runner/yaml_reader.h"

namespace upcycle::runner {
namespace {

const std::vector<std::string> kTopKeys = {
    "include",      "defaults", "name", "executor", "store", "root",   "seed",  "threads", "device",
    "max_parallel", "retries",  "data", "model",    "train", "stages", "sweep", "slurm",   "cost"};
// Keys a sweep may not vary: they are shared by every run of one invocation.
const std::vector<std::string> kUnsweepable = {"name",    "executor", "store",        "root",
                                               "threads", "device",   "max_parallel", "retries",
                                               "sweep",   "slurm",    "cost"};

constexpr size_t kMaxSweepPoints = 10000;

// Stage names become labels ("experts/code"), keys of the store and of `--force`: a plain word.
bool valid_stage_name(const std::string& n) {
  bool ok = !n.empty() && n.size() <= 64 && std::isalnum(static_cast<unsigned char>(n[0]));
  for (char c : n) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-');
  return ok;
}

// A path the runner creates: what the system accepts (components of at most 255 bytes, 4096 in all,
// no NUL), so a bad one fails here and not after the store or a directory was made.
void check_path(const YamlReader& at, const std::string& p) {
  if (p.empty() || p.size() > 4096 || p.find('\0') != std::string::npos) {
    throw at.error("must be a path of 1 to 4096 bytes");
  }
  size_t start = 0;
  while (start <= p.size()) {
    const size_t end = std::min(p.find('/', start), p.size());
    if (end - start > 255) throw at.error("has a path component longer than 255 bytes");
    start = end + 1;
  }
}

// A name people read back (the run name): no control characters (the recipe text, and so the name,
// is valid UTF-8 already: check_utf8).
void check_text(const YamlReader& at, const std::string& s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7F)
      throw at.error("has a control character (byte " + std::to_string(i) + ")");
  }
  if (s.empty() || s.size() > 200) throw at.error("must be 1 to 200 characters");
}

// ---- sections ----

// data: read beside the prepare spec (stages/spec/prepare.h); its validation errors at the YAML
// key.
stages::DataSection parse_data(const YamlReader& r) {
  try {
    return stages::read_data_section(YamlSource(r));
  } catch (const core::FieldError& e) {
    throw spec_error_at(r, e.path(), e.reason());
  }
}

// Reads the model keys present in `r` over `c` through the model's field table (`recipe`: only the
// dense keys a recipe's model: takes) and validates it, naming the offending key's location.
stages::ModelConfig read_model_keys(const YamlReader& r, bool recipe, stages::ModelConfig c) {
  stages::model_fields().read(YamlSource(r), c, recipe);
  try {
    c.validate();
  } catch (const core::FieldError& e) {
    throw spec_error_at(r, e.path(), e.reason());
  }
  return c;
}

stages::ModelConfig parse_model(const YamlReader& r, int64_t vocab) {
  stages::ModelConfig defaults;
  defaults.vocab = vocab;
  stages::ModelConfig c = read_model_keys(r, /*recipe=*/true, defaults);
  if (c.vocab != vocab) {
    throw r.child("vocab").error("must equal data.tokenizer.vocab (" + std::to_string(vocab) + ")");
  }
  return c;
}

CostSettings parse_cost(const YamlReader& r) {
  r.expect_map({"gpu", "mfu", "cpu_flops", "safety", "min_minutes"});
  CostSettings c;
  c.gpu = r.get_choice("gpu", c.gpu, {"h100", "h200", "a100", "l40s", "a10", "v100"});
  c.mfu = r.get_number("mfu", c.mfu);
  c.cpu_flops = r.get_number("cpu_flops", c.cpu_flops);
  c.safety = r.get_number("safety", c.safety);
  c.min_minutes = static_cast<int>(r.get_integer("min_minutes", c.min_minutes, {1, 100000}));
  if (!(c.mfu > 0 && c.mfu <= 1)) throw r.child("mfu").error("must be in (0, 1]");
  if (!(c.cpu_flops > 0)) throw r.child("cpu_flops").error("must be positive");
  if (!(c.safety >= 1 && c.safety <= 100)) throw r.child("safety").error("must be in [1, 100]");
  return c;
}

// What every stage has (kind, resources, retries), then the kind's own keys through the registry.
StageDef parse_stage(const std::string& name, const YamlReader& r, const Recipe& recipe,
                     const std::string& location) {
  StageDef s;
  s.name = name;
  s.location = location;
  if (!r.is_map()) throw r.error("expected a mapping with a kind:");
  const std::string kind = r.child("kind").str();
  s.kind = find_stage_kind(kind);
  if (!s.kind) {
    std::string names;
    for (const StageKind* k : stage_kinds()) names += (names.empty() ? "" : ", ") + k->name();
    throw r.child("kind").error("unknown stage kind '" + kind + "'", "kinds: " + names);
  }
  std::vector<std::string> keys = s.kind->keys();
  keys.insert(keys.end(), {"kind", "resources", "retries", "slurm"});
  r.expect_map(keys);
  if (r.has("resources")) {
    YamlReader res = r.child("resources");
    res.expect_map({"threads", "device", "processes"});
    s.threads = static_cast<int>(res.get_integer("threads", 0, {1, 4096}));
    s.device = res.get_choice("device", "", {"auto", "cpu", "cuda"});
    s.processes = static_cast<int>(res.get_integer("processes", 1, {1, 65536}));
    if (s.processes > 1 && !s.kind->data_parallel()) {
      throw res.child("processes").error("is for train and branch stages (data-parallel training)");
    }
  }
  s.retries = static_cast<int>(r.get_integer("retries", -1, {0, 100}));
  s.slurm = r.has("slurm") ? parse_slurm(r.child("slurm"), recipe.slurm) : recipe.slurm;
  if (s.processes % s.slurm.nodes != 0) {
    throw(r.has("slurm") ? r.child("slurm") : r)
        .error("slurm.nodes (" + std::to_string(s.slurm.nodes) +
               ") must divide resources.processes (" + std::to_string(s.processes) + ")");
  }
  s.params = s.kind->parse(r, recipe);
  return s;
}

std::vector<SweepAxis> parse_sweep(const YamlReader& sw, const SourceFiles& files) {
  if (!sw.is_map()) throw sw.error("expected a mapping of key.path -> list of values");
  std::vector<SweepAxis> out;
  for (const auto& key : sw.keys()) {
    YamlReader values = sw.child(key);
    std::string head = key.substr(0, key.find('.'));
    if (std::find(kUnsweepable.begin(), kUnsweepable.end(), head) != kUnsweepable.end()) {
      throw values.error("'" + head + "' is shared by every run of a sweep and cannot be swept");
    }
    if (!values.is_sequence() || values.size() == 0)
      throw values.error("expected a non-empty list of values");
    SweepAxis axis{key, {}, {}};
    for (size_t i = 0; i < values.size(); ++i) {
      YAML::Emitter e;
      e << YAML::Flow << values.at(i).node();
      axis.values.push_back(e.c_str());
      axis.origins.push_back(files.where(values.at(i).node()));
    }
    out.push_back(std::move(axis));
  }
  return out;
}

/// An override and where errors in its value point: the CLI's "override 'a.b=1'", or the sweep
/// value's "file:line:col".
struct Override {
  std::string text;
  std::string origin;
};

std::vector<Override> cli_overrides(const std::vector<std::string>& texts) {
  std::vector<Override> out;
  for (const auto& t : texts) out.push_back({t, "override '" + t + "'"});
  return out;
}

Recipe parse_with(const std::string& text, const std::string& file,
                  const std::vector<Override>& overrides);

}  // namespace

bool is_execution_key(const std::string& key) {
  const std::string top = key.substr(0, key.find('.'));
  if (top == "include" || top == "defaults")
    return true;  // their contents are in the flat recipe already
  if (std::find(kUnsweepable.begin(), kUnsweepable.end(), top) != kUnsweepable.end()) return true;
  if (top != "stages") return false;
  const size_t stage_end = key.find('.', 7);  // "stages.NAME.FIELD..."
  if (stage_end == std::string::npos) return false;
  const std::string field = key.substr(stage_end + 1, key.find('.', stage_end + 1) - stage_end - 1);
  return field == "resources" || field == "retries" || field == "slurm";
}

std::vector<Recipe> load_recipes(const std::string& path,
                                 const std::vector<std::string>& overrides) {
  Recipe base = load_recipe(path, overrides);
  if (base.sweep.empty()) return {base};
  size_t points = 1;
  for (const auto& axis : base.sweep) {
    points *= axis.values.size();
    if (points > kMaxSweepPoints) {
      throw ConfigError(path + ": sweep: more than " + std::to_string(kMaxSweepPoints) + " points",
                        "split the sweep into several recipes, or sweep fewer keys");
    }
  }
  std::string text = read_yaml_text(path);
  std::vector<Recipe> out;
  std::vector<size_t> idx(base.sweep.size(), 0);
  while (true) {
    std::vector<Override> point = cli_overrides(overrides);
    std::string suffix;
    nlohmann::json values = nlohmann::json::object();
    for (size_t k = 0; k < base.sweep.size(); ++k) {
      const SweepAxis& axis = base.sweep[k];
      const std::string& value = axis.values[idx[k]];
      point.push_back({axis.key + "=" + value, axis.origins[idx[k]]});
      suffix += (k ? "," : "") + axis.key + "=" + value;
      values[axis.key] = value;
    }
    try {
      out.push_back(parse_with(text, path, point));
    } catch (const ConfigError& e) {
      throw ConfigError(std::string(e.what()) + " (at sweep point " + suffix + ")", e.hint());
    }
    out.back().run_name = base.name + "/" + suffix;
    out.back().sweep_point = values.dump();
    size_t k = base.sweep.size();  // odometer over the grid, last key fastest
    while (k > 0 && ++idx[k - 1] == base.sweep[k - 1].values.size()) idx[--k] = 0;
    if (k == 0) break;
  }
  return out;
}

std::vector<std::string> Recipe::domain_names() const {
  std::vector<std::string> out;
  for (const auto& d : data.domains) out.push_back(d.name);
  return out;
}

std::string StageDef::kind_name() const { return kind ? kind->name() : "?"; }

const StageDef* Recipe::find_stage(const std::string& name) const {
  for (const auto& s : stages) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

Recipe parse_recipe(const std::string& text, const std::string& file,
                    const std::vector<std::string>& overrides) {
  return parse_with(text, file, cli_overrides(overrides));
}

namespace {

Recipe parse_with(const std::string& text, const std::string& file,
                  const std::vector<Override>& overrides) {
  check_utf8(text, file);
  YAML::Node root = parse_yaml(text, file);
  if (!root.IsMap()) throw ConfigError(file + ": a recipe must be a YAML mapping");
  SourceFiles files(file);
  std::vector<std::string> stack{std::filesystem::path(file).lexically_normal().string()};
  root = compose(root, file, files, stack);
  for (const auto& o : overrides) files.add_override(apply_override(root, o.text), o.origin);

  Recipe r;
  r.file = file;
  YamlReader top(root, "", &files);
  top.expect_map(kTopKeys);
  r.name = top.child("name").str();
  r.run_name = r.name;
  if (top.has("sweep")) r.sweep = parse_sweep(top.child("sweep"), files);
  r.executor = top.get_choice("executor", r.executor, {"local", "slurm"});
  if (top.has("slurm")) r.slurm = parse_slurm(top.child("slurm"), r.slurm);
  if (top.has("cost")) r.cost = parse_cost(top.child("cost"));
  r.store = top.get_str("store", r.store);
  r.root = top.get_str("root", r.root);
  for (const char* key : {"store", "root"}) {
    if (top.has(key)) check_path(top.child(key), key == std::string("store") ? r.store : r.root);
  }
  r.seed = static_cast<uint64_t>(top.get_integer("seed", 0, {0}));
  r.threads = static_cast<int>(top.get_integer("threads", 1, {1, 4096}));
  r.device = top.get_choice("device", r.device, {"auto", "cpu", "cuda"});
  r.max_parallel = static_cast<int>(top.get_integer("max_parallel", 0, {0, 65536}));
  r.retries = static_cast<int>(top.get_integer("retries", 0, {0, 100}));
  check_text(top.child("name"), r.name);
  stages::DataSection data = parse_data(top.child("data"));
  r.data = std::move(data.spec);
  r.data_seed = data.seed;
  r.has_model = top.has("model");  // optional when every model comes from an import
  if (r.has_model) r.model = parse_model(top.child("model"), r.data.tokenizer.vocab);
  if (top.has("train")) {
    YamlReader t = top.child("train");
    t.expect_map(train_setting_keys());
    r.train = parse_train(t, r.train);
  }
  YamlReader st = top.child("stages");
  if (!st.is_map() || st.size() == 0) throw st.error("expected a mapping of stage name -> stage");
  for (const auto& name : st.keys()) {
    if (!valid_stage_name(name)) {
      throw st.child(name).error(
          "stage name '" + name + "' is not allowed",
          "letters, digits, _ and -, starting with a letter or digit (no / or .)");
    }
    r.stages.push_back(parse_stage(name, st.child(name), r, files.where(st.child(name).node())));
  }
  YAML::Emitter emitter;
  emitter << root;
  r.resolved_yaml = std::string(emitter.c_str()) + "\n";
  flatten(root, "", r.flat);
  return r;
}

}  // namespace

stages::ModelConfig load_model_config(const std::string& path) {
  YAML::Node root = load_yaml_file(path);
  SourceFiles files(path);
  return read_model_keys(YamlReader(root, "", &files), /*recipe=*/false, stages::ModelConfig{});
}

bool is_recipe_file(const std::string& path) {
  YAML::Node root = load_yaml_file(path);
  return root.IsMap() && root["stages"].IsDefined();
}

Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides) {
  std::string text;
  try {
    text = read_yaml_text(path);
  } catch (const ConfigError& e) {
    throw ConfigError(std::string(e.what()).find("not found") != std::string::npos
                          ? path + ": recipe file not found or not readable"
                          : e.what());
  }
  return parse_recipe(text, path, overrides);
}

}  // namespace upcycle::runner
