#include "runner/recipe.h"

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "core/atomic_file.h"
#include "runner/compose.h"
#include "runner/yaml_reader.h"
#include "stages/command/command.h"
#include "stages/data/prepare.h"

namespace upcycle::runner {
namespace {

const std::vector<std::string> kTopKeys = {"include", "defaults", "name", "executor", "store", "root", "seed",
                                           "threads", "device",
                                           "max_parallel", "retries", "data", "model", "train",
                                           "stages", "sweep"};
// Keys a sweep may not vary: they are shared by every run of one invocation.
const std::vector<std::string> kUnsweepable = {"name", "executor", "store", "root", "threads", "device",
                                               "max_parallel", "retries", "sweep"};
const std::vector<std::string> kModelKeys = {"d_model", "layers", "heads", "kv_heads", "ffn_hidden",
                                             "vocab", "seq_len", "block", "norm", "tied_embeddings",
                                             "rope_theta", "norm_eps", "init_std"};
const std::vector<std::string> kTrainKeys = {"batch_size", "micro_batch", "precision", "log_every", "eval_every",
                                             "eval_windows", "checkpoint_every", "optim", "budget"};
const std::vector<std::string> kOptimKeys = {"lr", "min_lr_ratio", "warmup", "weight_decay",
                                             "beta1", "beta2", "eps", "grad_clip"};

// ---- sections ----

void parse_tokenizer(const YamlReader& t, DataDef& d) {
  t.expect_map({"kind", "vocab", "model_type", "sample_bytes"});
  d.tokenizer_kind = t.get_choice("kind", d.tokenizer_kind, {"sentencepiece", "pretokenized"});
  d.vocab = t.get_integer("vocab", d.vocab);
  if (d.tokenizer_kind == "pretokenized") {
    if (!t.has("vocab")) throw t.error("kind: pretokenized needs vocab: the shards' tokenizer size");
    for (const char* k : {"model_type", "sample_bytes"}) {
      if (t.has(k)) throw t.child(k).error("is for kind: sentencepiece; pre-tokenized shards bring their own tokens");
    }
    if (d.vocab < 2 || d.vocab > (int64_t(1) << 32)) throw t.child("vocab").error("must be in [2, 2^32]");
    return;
  }
  d.tokenizer_type = t.get_choice("model_type", d.tokenizer_type, {"bpe", "unigram"});
  d.tokenizer_sample_bytes = t.get_integer("sample_bytes", d.tokenizer_sample_bytes);
  if (d.vocab < 300 || d.vocab > 1000000) {
    throw t.child("vocab").error("must be in [300, 1000000] (byte fallback needs 259 pieces)");
  }
}

ShardsDef parse_shards(const YamlReader& s) {
  s.expect_map({"dir", "train", "valid", "test", "dtype"});
  // Relative paths are taken from the working directory, like store: and root:, and made absolute so
  // that a job finds them from wherever it runs.
  auto path = [&](const char* k) {
    std::string p = s.get_str(k, "");
    return p.empty() ? p : std::filesystem::absolute(p).lexically_normal().string();
  };
  ShardsDef d{path("dir"), path("train"), path("valid"), path("test"), ""};
  if (!s.has("dtype")) throw s.error("needs dtype: uint16 or uint32 (the width of each token)");
  d.dtype = s.get_choice("dtype", "", {"uint16", "uint32"});
  if (d.dir.empty() && (d.train.empty() || d.valid.empty() || d.test.empty())) {
    throw s.error("needs dir: (nanoGPT layout: train.bin, val.bin, optional test.bin) or all of train, valid, test");
  }
  return d;
}

std::vector<SourceDef> parse_sources(const YamlReader& srcs) {
  std::vector<SourceDef> out;
  for (size_t j = 0; j < srcs.size(); ++j) {
    YamlReader s = srcs.at(j);
    if (s.is_scalar()) {
      out.push_back({s.str(), "file"});
      continue;
    }
    s.expect_map({"pattern", "split", "text_field"});
    out.push_back({s.child("pattern").str(), s.get_choice("split", "file", {"file", "fortune", "jsonl"}),
                   s.get_str("text_field", "text")});
    if (s.has("text_field") && out.back().split != "jsonl") {
      throw s.child("text_field").error("is for split: jsonl only");
    }
  }
  return out;
}

DataDef parse_data(const YamlReader& r) {
  r.expect_map({"domains", "tokenizer", "valid_fraction", "test_fraction", "max_bytes", "task_examples"});
  DataDef d;
  if (r.has("tokenizer")) parse_tokenizer(r.child("tokenizer"), d);
  const bool pretokenized = d.tokenizer_kind == "pretokenized";
  int64_t max_bytes = r.get_integer("max_bytes", 0);
  YamlReader doms = r.child("domains");
  if (!doms.is_sequence() || doms.size() == 0) throw doms.error("expected a non-empty list of domains");
  std::set<std::string> seen;
  for (size_t i = 0; i < doms.size(); ++i) {
    YamlReader e = doms.at(i);
    DomainDef dd;
    if (e.is_scalar()) {
      dd.name = e.str();
    } else {
      e.expect_map({"name", "sources", "generator", "max_bytes", "shards"});
      dd.name = e.child("name").str();
    }
    if (!seen.insert(dd.name).second) throw e.error("domain '" + dd.name + "' is listed twice");
    if (pretokenized) {
      if (!e.is_map() || !e.has("shards")) {
        throw e.error("domain '" + dd.name + "' needs shards: (data.tokenizer.kind is pretokenized)");
      }
      for (const char* k : {"sources", "generator", "max_bytes"}) {
        if (e.has(k)) throw e.child(k).error("is for text domains; this domain reads pre-tokenized shards");
      }
      dd.shards = parse_shards(e.child("shards"));
      d.domains.push_back(dd);
      continue;
    }
    if (e.is_map() && e.has("shards")) {
      throw e.child("shards").error(
          "needs data.tokenizer.kind: pretokenized (with the shards' vocab), for every domain");
    }
    stages::DomainSpec builtin = stages::default_domain(dd.name);
    for (const auto& s : builtin.sources) {
      dd.sources.push_back({s.pattern, s.split == stages::DocSplit::kFortune ? "fortune" : "file", "text"});
    }
    dd.generator = builtin.generator;
    dd.max_bytes = max_bytes;
    if (e.is_map()) {
      if (e.has("sources")) dd.sources = parse_sources(e.child("sources"));
      dd.generator = e.get_choice("generator", dd.generator, {"math"});
      dd.max_bytes = e.get_integer("max_bytes", dd.max_bytes);
    }
    if (dd.sources.empty() && dd.generator.empty()) {
      throw e.error("domain '" + dd.name + "' has no built-in sources; give it sources: or generator:",
                    "built-in domains: general, code, law, math");
    }
    d.domains.push_back(dd);
  }
  d.valid_fraction = r.get_number("valid_fraction", d.valid_fraction);
  d.test_fraction = r.get_number("test_fraction", d.test_fraction);
  if (pretokenized) {
    d.task_examples = 0;  // built-in tasks are made from text
    for (const char* k : {"task_examples", "max_bytes", "valid_fraction", "test_fraction"}) {
      if (r.has(k)) throw r.child(k).error("is for text domains; pre-tokenized shards come split");
    }
  }
  d.task_examples = r.get_integer("task_examples", d.task_examples);
  if (d.task_examples < 0) throw r.child("task_examples").error("must be >= 0");
  if (d.valid_fraction <= 0 || d.test_fraction <= 0 || d.valid_fraction + d.test_fraction >= 1) {
    throw r.error("valid_fraction and test_fraction must be positive and sum to less than 1");
  }
  return d;
}

// Reads the keys present in `r` (all must be in `allowed`) into a ModelConfig, typed by each field's
// default, and validates it, naming the offending key's location.
stages::ModelConfig read_model_keys(const YamlReader& r, const std::vector<std::string>& allowed,
                                    nlohmann::json j) {
  r.expect_map(allowed);
  const nlohmann::json defaults = stages::to_json(stages::ModelConfig{});
  for (const auto& k : r.keys()) {
    YamlReader v = r.child(k);
    const auto& d = defaults.at(k);
    if (d.is_boolean()) j[k] = v.boolean();
    else if (d.is_number_integer()) j[k] = v.integer();
    else if (d.is_number()) j[k] = v.number();
    else j[k] = v.str();
  }
  stages::ModelConfig c = stages::model_config_from_json(j);
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    std::string msg = e.what();
    std::string key = msg.substr(0, msg.find(':'));
    throw (r.has(key) ? r.child(key) : r).error(msg.substr(msg.find(':') + 2));
  }
  return c;
}

stages::ModelConfig parse_model(const YamlReader& r, int64_t vocab) {
  nlohmann::json j = nlohmann::json::object();
  if (!r.has("vocab")) j["vocab"] = vocab;
  stages::ModelConfig c = read_model_keys(r, kModelKeys, j);
  if (c.vocab != vocab) {
    throw r.child("vocab").error("must equal data.tokenizer.vocab (" + std::to_string(vocab) + ")");
  }
  return c;
}


TrainDef parse_train(const YamlReader& r, TrainDef d) {
  d.batch_size = r.get_integer("batch_size", d.batch_size);
  d.micro_batch = r.get_integer("micro_batch", d.micro_batch);
  d.log_every = r.get_integer("log_every", d.log_every);
  d.eval_every = r.get_integer("eval_every", d.eval_every);
  d.eval_windows = r.get_integer("eval_windows", d.eval_windows);
  d.checkpoint_every = r.get_integer("checkpoint_every", d.checkpoint_every);
  d.precision = r.get_choice("precision", d.precision, {"auto", "fp32", "bf16"});
  if (d.batch_size < 1) throw r.child("batch_size").error("must be >= 1");
  if (d.micro_batch < 0 || (d.micro_batch > 0 && d.batch_size % d.micro_batch != 0)) {
    throw r.child("micro_batch").error("must divide batch_size");
  }
  if (d.log_every < 1) throw r.child("log_every").error("must be >= 1");
  if (r.has("optim")) {
    YamlReader o = r.child("optim");
    o.expect_map(kOptimKeys);
    for (const auto& k : o.keys()) {
      double v = o.child(k).number();
      if (v < 0) throw o.child(k).error("must be >= 0");
      d.optim[k] = (k == "warmup") ? nlohmann::json(o.child(k).integer()) : nlohmann::json(v);
    }
  }
  if (r.has("budget")) {
    YamlReader b = r.child("budget");
    b.expect_map({"tokens", "match", "by"});
    if (b.has("tokens") == b.has("match")) {
      throw b.error("give exactly one of tokens: N or match: STAGE");
    }
    if (b.has("tokens")) {
      d.tokens = b.child("tokens").integer();
      d.match.clear();
      if (d.tokens < 1) throw b.child("tokens").error("must be >= 1");
    } else {
      d.tokens = 0;
      d.match = b.child("match").str();
      d.match_by = b.get_choice("by", "tokens", {"tokens", "flops"});
    }
  }
  return d;
}

stages::ModelConfig parse_mixture(const StageDef& s, const YamlReader& r) {
  stages::ModelConfig m;
  if (s.method == "sparse") {
    m.ffn_experts = r.child("experts").integer();
    m.ffn_granularity = r.get_integer("granularity", 1);
    if (m.ffn_experts < 1) throw r.child("experts").error("must be >= 1");
    if (m.ffn_granularity < 1) throw r.child("granularity").error("must be >= 1");
  } else {
    for (const char* k : {"experts", "granularity", "virtual_groups", "weight_scaling"}) {
      if (r.has(k)) throw r.child(k).error("is for method sparse only");
    }
  }
  if (s.method != "btx" && r.has("extra_seed_experts")) {
    throw r.child("extra_seed_experts").error("is for method btx only");
  }
  if (r.has("attention")) {
    YamlReader a = r.child("attention");
    a.expect_map({"routing", "top_k", "kv"});
    m.attn_routing = a.get_choice("routing", m.attn_routing, {"soft", "top_k"});
    m.attn_top_k = a.get_integer("top_k", m.attn_top_k);
    m.attn_kv = a.get_choice("kv", m.attn_kv, {"expert", "shared"});
  }
  if (r.has("ffn")) {
    YamlReader f = r.child("ffn");
    f.expect_map({"top_k", "routing", "renormalize", "moe_every", "lb_coef", "z_coef"});
    m.ffn_top_k = f.get_integer("top_k", m.ffn_top_k);
    m.ffn_routing = f.get_choice("routing", m.ffn_routing, {"softmax_then_topk", "topk_then_softmax"});
    m.ffn_renormalize = f.get_bool("renormalize", m.ffn_renormalize);
    m.moe_every = f.get_integer("moe_every", m.moe_every);
    m.lb_coef = f.get_number("lb_coef", m.lb_coef);
    m.z_coef = f.get_number("z_coef", m.z_coef);
  }
  m.router_init_std = r.get_number("router_init_std", m.router_init_std);
  return m;
}

// Every stage kind also takes resources: and retries:.
void expect_stage_keys(const YamlReader& r, std::vector<std::string> keys) {
  keys.insert(keys.end(), {"resources", "retries"});
  r.expect_map(keys);
}

StageDef parse_stage(const std::string& name, const YamlReader& r, const TrainDef& train_defaults,
                     const std::string& file) {
  StageDef s;
  s.name = name;
  YAML::Mark mk = r.node().Mark();
  s.location = file + ":" + std::to_string(mk.line + 1) + ":" + std::to_string(mk.column + 1);
  if (!r.is_map()) throw r.error("expected a mapping with a kind:");
  s.kind = r.child("kind").str();
  if (r.has("resources")) {
    YamlReader res = r.child("resources");
    res.expect_map({"threads", "device", "processes"});
    s.threads = static_cast<int>(res.get_integer("threads", 0));
    if (res.has("threads") && s.threads < 1) throw res.child("threads").error("must be >= 1");
    s.device = res.get_choice("device", "", {"auto", "cpu", "cuda"});
    s.processes = static_cast<int>(res.get_integer("processes", 1));
    if (s.processes < 1) throw res.child("processes").error("must be >= 1");
    if (s.processes > 1 && s.kind != "train" && s.kind != "branch") {
      throw res.child("processes").error("is for train and branch stages (data-parallel training)");
    }
  }
  s.retries = static_cast<int>(r.get_integer("retries", -1));
  if (r.has("retries") && s.retries < 0) throw r.child("retries").error("must be >= 0");
  if (s.kind == "prepare") {
    expect_stage_keys(r, {"kind"});
  } else if (s.kind == "train") {
    std::vector<std::string> keys = kTrainKeys;
    keys.insert(keys.end(), {"kind", "from", "mix"});
    expect_stage_keys(r, keys);
    if (r.has("from")) s.from = r.child("from").strings();
    YamlReader mix = r.child("mix");
    if (!mix.is_map()) throw mix.error("expected a mapping domain -> weight");
    for (const auto& k : mix.keys()) s.mix[k] = mix.child(k).number();
    s.train = parse_train(r, train_defaults);
  } else if (s.kind == "branch") {
    std::vector<std::string> keys = kTrainKeys;
    keys.insert(keys.end(), {"kind", "from", "domains", "general_mix"});
    expect_stage_keys(r, keys);
    s.from = r.child("from").strings();
    s.domains = r.child("domains").strings();
    s.general_mix = r.get_number("general_mix", s.general_mix);
    if (s.general_mix < 0 || s.general_mix >= 1) throw r.child("general_mix").error("must be in [0, 1)");
    s.train = parse_train(r, train_defaults);
  } else if (s.kind == "upcycle") {
    expect_stage_keys(r, {"kind", "from", "method", "attention", "ffn", "experts", "granularity",
                  "virtual_groups", "weight_scaling", "extra_seed_experts", "include_seed",
                  "average_weights", "router_init_std", "shared_kv_init"});
    s.from = r.child("from").strings();
    r.child("method");  // required
    s.method = r.get_choice("method", "", {"bam", "btx", "sparse"});
    s.mixture = parse_mixture(s, r);
    s.shared_kv_init = r.get_choice("shared_kv_init", s.shared_kv_init, {"average", "first"});
    s.include_seed = r.get_bool("include_seed", s.include_seed);
    s.extra_seed_experts = r.get_integer("extra_seed_experts", 0);
    if (s.extra_seed_experts < 0) throw r.child("extra_seed_experts").error("must be >= 0");
    s.virtual_groups = r.get_bool("virtual_groups", s.virtual_groups);
    s.weight_scaling = r.get_choice("weight_scaling", s.weight_scaling, {"all", "w2", "none"});
    if (r.has("average_weights")) {
      YamlReader aw = r.child("average_weights");
      if (!aw.is_sequence()) throw aw.error("expected a list of numbers, one per dense model");
      for (size_t i = 0; i < aw.size(); ++i) s.average_weights.push_back(aw.at(i).number());
    }
  } else if (s.kind == "eval") {
    expect_stage_keys(r, {"kind", "models", "btm", "domains", "split", "max_windows", "tasks",
                          "max_examples", "max_new_tokens"});
    s.models = r.has("models") ? r.child("models").strings() : std::vector<std::string>{};
    if (r.has("btm")) s.btm = r.child("btm").strings();
    if (s.models.empty() && s.btm.empty()) throw r.error("an eval stage needs models: or btm:");
    s.domains = r.has("domains") ? r.child("domains").strings() : std::vector<std::string>{"all"};
    s.split = r.get_choice("split", s.split, {"test", "valid"});
    s.max_windows = r.get_integer("max_windows", 0);
    if (r.has("tasks")) {
      s.tasks.clear();
      YamlReader tasks = r.child("tasks");
      for (size_t i = 0; tasks.is_sequence() && i < tasks.size(); ++i) {
        std::string t = tasks.at(i).str();
        if (t != "builtin" && !std::filesystem::is_regular_file(t)) {
          throw tasks.at(i).error("task file '" + t + "' does not exist", "tasks: [builtin] or JSONL task files");
        }
        s.tasks.push_back(t);
      }
      if (!tasks.is_sequence()) throw tasks.error("expected a list: builtin and/or task files");
    }
    s.max_examples = r.get_integer("max_examples", 0);
    s.max_new_tokens = r.get_integer("max_new_tokens", s.max_new_tokens);
    if (s.max_examples < 0) throw r.child("max_examples").error("must be >= 0");
    if (s.max_new_tokens < 1) throw r.child("max_new_tokens").error("must be >= 1");
  } else if (s.kind == "command") {
    expect_stage_keys(r, {"kind", "models", "argv", "env", "parser", "results"});
    if (r.has("models")) s.models = r.child("models").strings();
    YamlReader argv = r.child("argv");
    if (!argv.is_sequence() || argv.size() == 0) throw argv.error("expected a non-empty list of arguments");
    s.argv = argv.strings();
    if (r.has("env")) {
      YamlReader env = r.child("env");
      env.expect_map(env.keys());
      for (const auto& k : env.keys()) s.env[k] = env.child(k).str();
    }
    s.parser = r.get_choice("parser", s.parser, {"none", "lm_eval"});
    s.results = r.get_str("results", s.results);
    // Placeholders are checked now, not when the job runs: {checkpoint} and friends need models:.
    std::map<std::string, std::string> vars;
    for (const auto& p : stages::command_placeholders()) vars[p] = "";
    if (s.models.empty()) {
      for (const char* p : {"checkpoint", "model_dir", "model"}) vars.erase(p);
    }
    auto check = [&](const YamlReader& node) {
      try {
        stages::expand_template(node.str(), vars);
      } catch (const std::invalid_argument& e) {
        throw node.error(std::string(e.what()) + (s.models.empty() ? " (model placeholders need models:)" : ""),
                         "placeholders: {checkpoint} {model_dir} {model} {out} {data_dir} {threads}");
      }
    };
    for (size_t i = 0; i < argv.size(); ++i) check(argv.at(i));
    for (const auto& k : s.env) check(r.child("env").child(k.first));
    if (r.has("results")) check(r.child("results"));
  } else {
    throw r.child("kind").error("unknown stage kind '" + s.kind + "'",
                                "kinds: prepare, train, branch, upcycle, eval, command");
  }
  return s;
}

std::vector<std::pair<std::string, std::vector<std::string>>> parse_sweep(const YamlReader& sw) {
  if (!sw.is_map()) throw sw.error("expected a mapping of key.path -> list of values");
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  for (const auto& key : sw.keys()) {
    YamlReader values = sw.child(key);
    std::string head = key.substr(0, key.find('.'));
    if (std::find(kUnsweepable.begin(), kUnsweepable.end(), head) != kUnsweepable.end()) {
      throw values.error("'" + head + "' is shared by every run of a sweep and cannot be swept");
    }
    if (!values.is_sequence() || values.size() == 0) throw values.error("expected a non-empty list of values");
    std::vector<std::string> texts;
    for (size_t i = 0; i < values.size(); ++i) {
      YAML::Emitter e;
      e << YAML::Flow << values.at(i).node();
      texts.push_back(e.c_str());
    }
    out.emplace_back(key, texts);
  }
  return out;
}

}  // namespace

std::vector<Recipe> load_recipes(const std::string& path, const std::vector<std::string>& overrides) {
  Recipe base = load_recipe(path, overrides);
  if (base.sweep.empty()) return {base};
  std::string text = core::read_file(path);
  std::vector<Recipe> out;
  std::vector<size_t> idx(base.sweep.size(), 0);
  while (true) {
    std::vector<std::string> point = overrides;
    std::string suffix;
    nlohmann::json values = nlohmann::json::object();
    for (size_t k = 0; k < base.sweep.size(); ++k) {
      const auto& [key, vals] = base.sweep[k];
      point.push_back(key + "=" + vals[idx[k]]);
      suffix += (k ? "," : "") + key + "=" + vals[idx[k]];
      values[key] = vals[idx[k]];
    }
    try {
      out.push_back(parse_recipe(text, path, point));
    } catch (const ConfigError& e) {
      throw ConfigError(std::string(e.what()) + " (at sweep point " + suffix + ")", e.hint());
    }
    out.back().run_name = base.name + "/" + suffix;
    out.back().sweep_point = values.dump();
    size_t k = base.sweep.size();  // odometer over the grid, last key fastest
    while (k > 0 && ++idx[k - 1] == base.sweep[k - 1].second.size()) idx[--k] = 0;
    if (k == 0) break;
  }
  return out;
}

std::vector<std::string> DataDef::domain_names() const {
  std::vector<std::string> out;
  for (const auto& d : domains) out.push_back(d.name);
  return out;
}

const StageDef* Recipe::find_stage(const std::string& name) const {
  for (const auto& s : stages) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

Recipe parse_recipe(const std::string& text, const std::string& file,
                    const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(file + ":" + std::to_string(e.mark.line + 1) + ":" +
                      std::to_string(e.mark.column + 1) + ": YAML syntax error: " + e.msg);
  }
  if (!root.IsMap()) throw ConfigError(file + ": a recipe must be a YAML mapping");
  SourceFiles files(file);
  std::vector<std::string> stack{std::filesystem::path(file).lexically_normal().string()};
  root = compose(root, file, files, stack);
  for (const auto& o : overrides) apply_override(root, o);

  Recipe r;
  r.file = file;
  YamlReader top(root, "", &files);
  top.expect_map(kTopKeys);
  r.name = top.child("name").str();
  r.run_name = r.name;
  if (top.has("sweep")) r.sweep = parse_sweep(top.child("sweep"));
  std::string executor = top.get_str("executor", "local");
  if (executor != "local") {
    throw top.child("executor").error("executor '" + executor + "' is not available yet (only local)");
  }
  r.store = top.get_str("store", r.store);
  r.root = top.get_str("root", r.root);
  r.seed = static_cast<uint64_t>(top.get_integer("seed", 0));
  r.threads = static_cast<int>(top.get_integer("threads", 1));
  r.device = top.get_choice("device", r.device, {"auto", "cpu", "cuda"});
  r.max_parallel = static_cast<int>(top.get_integer("max_parallel", 0));
  r.retries = static_cast<int>(top.get_integer("retries", 0));
  if (r.threads < 1) throw top.child("threads").error("must be >= 1");
  if (r.retries < 0) throw top.child("retries").error("must be >= 0");
  r.data = parse_data(top.child("data"));
  r.model = parse_model(top.child("model"), r.data.vocab);
  TrainDef train_defaults;
  if (top.has("train")) {
    YamlReader t = top.child("train");
    t.expect_map(kTrainKeys);
    train_defaults = parse_train(t, train_defaults);
  }
  YamlReader st = top.child("stages");
  if (!st.is_map() || st.size() == 0) throw st.error("expected a mapping of stage name -> stage");
  for (const auto& name : st.keys()) {
    r.stages.push_back(parse_stage(name, st.child(name), train_defaults,
                                   files.file_of(st.child(name).node())));
    const StageDef& s = r.stages.back();
    if ((s.kind == "train" || s.kind == "branch") && s.train.tokens < 1 && s.train.match.empty()) {
      throw st.child(name).error("needs budget: {tokens: N} or {match: STAGE, by: flops} (here or in "
                                 "the recipe's train:)");
    }
    if (s.kind == "eval" && r.data.tokenizer_kind == "pretokenized" && st.child(name).has("tasks") &&
        !s.tasks.empty()) {
      throw st.child(name).child("tasks").error(
          "downstream tasks are text and need the SentencePiece tokenizer; with pre-tokenized shards "
          "evaluate perplexity here and tasks through a command stage");
    }
    if (s.kind == "branch" && !s.train.match.empty()) {
      throw st.child(name).error("a branch stage needs budget: {tokens: N}; match: is for train stages");
    }
  }
  YAML::Emitter emitter;
  emitter << root;
  r.resolved_yaml = std::string(emitter.c_str()) + "\n";
  flatten(root, "", r.flat);
  return r;
}

stages::ModelConfig load_model_config(const std::string& path) {
  YAML::Node root = load_yaml_file(path);
  const nlohmann::json defaults = stages::to_json(stages::ModelConfig{});
  std::vector<std::string> all;
  for (const auto& [k, v] : defaults.items()) all.push_back(k);
  SourceFiles files(path);
  return read_model_keys(YamlReader(root, "", &files), all, nlohmann::json::object());
}

bool is_recipe_file(const std::string& path) {
  YAML::Node root = load_yaml_file(path);
  return root.IsMap() && root["stages"].IsDefined();
}

Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": recipe file not found or not readable");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_recipe(ss.str(), path, overrides);
}

}  // namespace upcycle::runner
