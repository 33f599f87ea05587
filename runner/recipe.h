// Recipes: YAML parsed at once into typed structs and validated before anything runs. Every key is
// documented in recipes/README.md. YAML::Node does not appear here.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "stages/model/config.h"

namespace upcycle::runner {

struct SourceDef {
  std::string pattern;
  std::string split = "file";  ///< file | fortune | jsonl
  std::string text_field = "text";  ///< jsonl
};

/// Pre-tokenized .bin shards (nanoGPT layout): `dir` or explicit paths, and the token width.
struct ShardsDef {
  std::string dir, train, valid, test;
  std::string dtype;  ///< uint16 | uint32; empty when the domain is text
};

struct DomainDef {
  std::string name;
  std::vector<SourceDef> sources;
  std::string generator;
  int64_t max_bytes = 0;
  ShardsDef shards;  ///< with data.tokenizer.kind: pretokenized
};

struct DataDef {
  std::vector<DomainDef> domains;
  int64_t vocab = 1024;
  std::string tokenizer_kind = "sentencepiece";  ///< sentencepiece | pretokenized
  std::string tokenizer_type = "bpe";
  int64_t tokenizer_sample_bytes = 200000;
  double valid_fraction = 0.05;
  double test_fraction = 0.05;
  int64_t task_examples = 200;  ///< built-in downstream examples per domain
  std::vector<std::string> domain_names() const;
};

/// Training settings; recipe-level `train:` gives defaults, each stage may override any of them.
struct TrainDef {
  int64_t tokens = 0;           ///< budget.tokens; 0 when the budget is matched
  std::string match;            ///< budget.match: a train stage whose budget this one matches
  std::string match_by = "tokens";  ///< budget.by: tokens (data-matched) | flops (compute-matched)
  int64_t batch_size = 8;
  int64_t micro_batch = 0;
  std::string precision = "auto";  ///< auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16
  int64_t log_every = 10;
  int64_t eval_every = 0;
  int64_t eval_windows = 8;
  int64_t checkpoint_every = 0;
  nlohmann::json optim = nlohmann::json::object();  ///< lr, min_lr_ratio, warmup, weight_decay, ...
};

struct StageDef {
  std::string name;
  std::string kind;      ///< prepare | train | branch | upcycle | eval | command
  std::string location;  ///< "file:line:col" of the stage, for errors found later (plan)
  std::vector<std::string> from;
  int threads = 0;   ///< resources.threads; 0 = the recipe's threads
  std::string device;  ///< resources.device; "" = the recipe's device
  int processes = 1;   ///< resources.processes: data-parallel processes per job (train and branch)
  int retries = -1;  ///< -1 = the recipe's retries
  std::map<std::string, double> mix;  ///< train
  std::vector<std::string> domains;   ///< branch: one expert per domain; eval: domains to score
  double general_mix = 0.1;           ///< branch: share of general data in each expert's mixture
  TrainDef train;                     ///< train, branch
  std::string method;                 ///< upcycle: bam | btx | sparse
  stages::ModelConfig mixture;        ///< upcycle: routing fields
  std::string shared_kv_init = "average";
  bool include_seed = true;           ///< upcycle bam/btx: prepend a branch's seed if `from` omits it
  std::vector<double> average_weights;  ///< upcycle: weights of averaged tensors; empty = uniform
  int64_t extra_seed_experts = 0;     ///< upcycle btx: extra FFN experts copied from the seed
  bool virtual_groups = true;         ///< upcycle sparse
  std::string weight_scaling = "all"; ///< upcycle sparse: all | w2 | none
  std::vector<std::string> models;    ///< eval
  std::vector<std::string> btm;       ///< eval: dense models ensembled as "btm" (eval only)
  std::string split = "test";         ///< eval
  int64_t max_windows = 0;            ///< eval; 0 = every window
  std::vector<std::string> tasks = {"builtin"};  ///< eval: "builtin" and/or task JSONL files
  int64_t max_examples = 0;           ///< eval: per task; 0 = all
  int64_t max_new_tokens = 64;        ///< eval: generation tasks
  std::vector<std::string> argv;      ///< command: templated ({checkpoint}, {out}, ...)
  std::map<std::string, std::string> env;  ///< command: templated
  std::string parser = "none";        ///< command: none | lm_eval
  std::string results = "{out}";      ///< command: the parser's file or directory, templated
};

struct Recipe {
  std::string file;
  std::string name;
  std::string run_name;             ///< name, or "name/key=value,..." at a sweep point
  std::string sweep_point = "{}";   ///< JSON {key: value} of this sweep point
  /// `sweep:` grid, key path -> values (YAML text each), in file order; expanded by load_recipes.
  std::vector<std::pair<std::string, std::vector<std::string>>> sweep;
  std::string store = "runs/store.sqlite";
  std::string root = "runs";
  uint64_t seed = 0;
  int threads = 1;       ///< per job
  std::string device = "auto";  ///< auto | cpu | cuda, for train and eval jobs; not in job keys
  int max_parallel = 0;  ///< 0 = cores / threads
  int retries = 0;
  DataDef data;
  stages::ModelConfig model;
  std::vector<StageDef> stages;  ///< in file order
  std::string resolved_yaml;     ///< the recipe after overrides, as YAML
  std::map<std::string, std::string> flat;  ///< resolved recipe flattened to "a.b.c" -> value

  const StageDef* find_stage(const std::string& name) const;
};

/// Loads a model config file (YAML or JSON; the keys of stages::ModelConfig, dense or mixture) for
/// `upcycle params/flops CONFIG`. Throws ConfigError naming the file, line and key.
stages::ModelConfig load_model_config(const std::string& path);

/// True when the YAML file at `path` is a recipe (has a top-level `stages`), false for a model config.
/// Throws ConfigError when it does not parse.
bool is_recipe_file(const std::string& path);

/// Loads, applies "a.b.c=value" overrides, parses and validates. Throws ConfigError naming the file,
/// line, column and key path (or the override) for every problem.
Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides = {});
/// Loads a recipe and expands its `sweep:` grid (the cartesian product of the listed values) into one
/// Recipe per point, each validated with the point's values applied as overrides. Without a sweep,
/// one Recipe. Throws ConfigError as load_recipe does, naming the point for errors in one.
std::vector<Recipe> load_recipes(const std::string& path, const std::vector<std::string>& overrides = {});

/// The same from text (tests); `file` names it in errors.
Recipe parse_recipe(const std::string& text, const std::string& file,
                    const std::vector<std::string>& overrides = {});

}  // namespace upcycle::runner
