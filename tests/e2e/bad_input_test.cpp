// Bad input, table-driven: malformed YAML, wrong types, unknown keys and stages, cycles, bad
// overrides, and filter expressions with quotes or SQL fragments. Each case must exit with code 1,
// say precisely what is wrong (the expected fragment, which names the file:line:col and key for
// recipes), and leave nothing behind: no store is created by a rejected recipe, and a rejected
// query or command leaves every row of an existing store as it was.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "tests/support/run_binary.h"
#include "tests/support/store_dump.h"
#include "tests/support/temp_dir.h"
#include "tracking/store.h"

namespace upcycle {
namespace {

using testing::run_binary;

const char* kValid = R"(name: t
seed: 3
data:
  domains: [general, code, math]
  tokenizer: { vocab: 512 }
model: { d_model: 64, layers: 2, heads: 4, kv_heads: 4, ffn_hidden: 128, seq_len: 32 }
train: { batch_size: 4 }
stages:
  data: { kind: prepare }
  seed: { kind: train, mix: { general: 1.0 }, budget: { tokens: 4k } }
  experts: { kind: branch, from: seed, domains: [code, math], budget: { tokens: 2k } }
  bam: { kind: upcycle, method: bam, from: [seed, experts] }
  eval: { kind: eval, models: [seed, bam] }
)";

struct RecipeCase {
  const char* name;
  std::string text;                               ///< recipe text ("" = the valid recipe)
  std::vector<std::string> overrides;             ///< command-line overrides
  std::string expect;                             ///< a fragment of the error
  std::map<std::string, std::string> files = {};  ///< more files beside r.yaml (included ones)
};

std::string with(const std::string& from, const std::string& to) {
  std::string t = kValid;
  size_t at = t.find(from);
  if (at == std::string::npos)
    ADD_FAILURE() << "case text not found: " << from;
  else
    t.replace(at, from.size(), to);
  return t;
}

std::vector<RecipeCase> recipe_cases() {
  return {
      {"yaml_unclosed_flow", "name: t\nstages: [a, b\n", {}, "r.yaml:3:1: YAML syntax error"},
      {"yaml_bad_indent", "name: t\n  seed: 1\n x: 2\n", {}, "YAML syntax error"},
      {"yaml_not_mapping", "- a\n- b\n", {}, "a recipe must be a YAML mapping"},
      {"unknown_top_key",
       with("seed: 3", "sead: 3"),
       {},
       "r.yaml:2:1: sead: unknown key 'sead'; did you mean 'seed'?"},
      {"unknown_stage_key",
       with("budget: { tokens: 4k }", "budgett: { tokens: 4k }"),
       {},
       "did you mean 'budget'?"},
      {"wrong_type_int",
       with("seed: 3", "seed: three"),
       {},
       "r.yaml:2:7: seed: expected an integer"},
      {"wrong_type_number",
       with("mix: { general: 1.0 }", "mix: { general: lots }"),
       {},
       "stages.seed.mix.general: expected a number"},
      {"wrong_type_bool",
       with("kind: upcycle, method: bam,", "kind: upcycle, method: bam, include_seed: maybe,"),
       {},
       "expected true or false"},
      {"negative_threads",
       with("seed: 3", "seed: 3\nthreads: 0"),
       {},
       "threads: must be in [1, 4096]"},
      {"heads_do_not_divide", with("d_model: 64", "d_model: 66"), {}, "heads"},
      {"top_k_above_experts", with("method: bam,", "method: bam, ffn: { top_k: 5 },"), {}, "top_k"},
      {"unknown_kind", with("kind: eval", "kind: evaluate"), {}, "unknown stage kind 'evaluate'"},
      {"unknown_from",
       with("from: seed, domains", "from: sead, domains"),
       {},
       "did you mean 'seed'?"},
      {"cycle",
       with("seed: { kind: train, mix", "seed: { kind: train, from: bam, mix"),
       {},
       "cycle"},
      {"branch_domain_missing",
       with("domains: [code, math]", "domains: [code, biology]"),
       {},
       "biology"},
      {"mix_domain_missing", with("mix: { general: 1.0 }", "mix: { genral: 1.0 }"), {}, "genral"},
      {"budget_both",
       with("budget: { tokens: 4k }", "budget: { tokens: 4k, match: seed }"),
       {},
       "give exactly one of tokens"},
      {"budget_missing",
       with("mix: { general: 1.0 }, budget: { tokens: 4k }", "mix: { general: 1.0 }"),
       {},
       "needs budget"},
      {"budget_zero", with("budget: { tokens: 4k }", "budget: { tokens: 0 }"), {}, "must be >= 1"},
      {"micro_batch",
       with("batch_size: 4", "batch_size: 4, micro_batch: 3"),
       {},
       "micro_batch: must divide batch_size"},
      {"unknown_method",
       with("method: bam", "method: bamm"),
       {},
       "'bamm' is not allowed; expected bam, btx or sparse"},
      {"sparse_key_on_bam",
       with("method: bam,", "method: bam, granularity: 2,"),
       {},
       "granularity: is for method sparse only"},
      {"data_seed_negative",
       with("tokenizer: { vocab: 512 }", "tokenizer: { vocab: 512 }\n  seed: -1"),
       {},
       "data.seed: must be >= 0"},
      {"kv_cache_not_bool",
       with("models: [seed, bam] }", "models: [seed, bam], kv_cache: often }"),
       {},
       "expected true or false"},
      {"eval_without_models",
       with("eval: { kind: eval, models: [seed, bam] }", "eval: { kind: eval }"),
       {},
       "needs models: or btm:"},
      {"two_prepares",
       with("data: { kind: prepare }", "data: { kind: prepare }\n  data2: { kind: prepare }"),
       {},
       "exactly one stage of kind prepare"},
      {"vocab_mismatch",
       with("seq_len: 32", "seq_len: 32, vocab: 1000"),
       {},
       "must equal data.tokenizer.vocab"},
      {"vocab_too_small", with("vocab: 512 }", "vocab: 100 }"), {}, "must be in [300, 1000000]"},
      {"shards_without_pretokenized",
       with("domains: [general, code, math]",
            "domains: [general, code, { name: math, shards: { dir: d, dtype: uint16 } }]"),
       {},
       "shards: needs data.tokenizer.kind: pretokenized"},
      {"pretokenized_text_domain",
       with("tokenizer: { vocab: 512 }", "tokenizer: { kind: pretokenized, vocab: 512 }"),
       {},
       "r.yaml:4:13: data.domains[0]: domain 'general' needs shards:"},
      {"pretokenized_no_dtype",
       with("domains: [general, code, math]\n  tokenizer: { vocab: 512 }",
            "domains: [{ name: web, shards: { dir: d } }]\n  tokenizer: { kind: pretokenized, "
            "vocab: 512 }"),
       {},
       "shards: needs dtype: uint16 or uint32"},
      {"pretokenized_bad_dtype",
       with("domains: [general, code, math]\n  tokenizer: { vocab: 512 }",
            "domains: [{ name: web, shards: { dir: d, dtype: int8 } }]\n  tokenizer: { kind: "
            "pretokenized, vocab: 512 }"),
       {},
       "'int8' is not allowed; expected uint16 or uint32"},
      {"pretokenized_no_paths",
       with("domains: [general, code, math]\n  tokenizer: { vocab: 512 }",
            "domains: [{ name: web, shards: { train: a.bin, dtype: uint16 } }]\n  tokenizer: { "
            "kind: pretokenized, vocab: 512 }"),
       {},
       "needs dir: (nanoGPT layout"},
      {"pretokenized_model_type",
       with("tokenizer: { vocab: 512 }",
            "tokenizer: { kind: pretokenized, vocab: 512, model_type: bpe }"),
       {},
       "model_type: is for kind: sentencepiece"},
      {"processes_on_eval",
       with("eval: { kind: eval, models: [seed, bam] }",
            "eval: { kind: eval, models: [seed, bam], resources: { processes: 2 } }"),
       {},
       "processes: is for train and branch stages"},
      {"device_unknown",
       with("seed: 3", "seed: 3\ndevice: tpu"),
       {},
       "'tpu' is not allowed; expected auto, cpu or cuda"},
      {"precision_unknown",
       with("train: { batch_size: 4 }", "train: { batch_size: 4, precision: fp8 }"),
       {},
       "'fp8' is not allowed; expected auto, fp32 or bf16"},
      {"fractions",
       with("tokenizer:", "valid_fraction: 0.6\n  test_fraction: 0.5\n  tokenizer:"),
       {},
       "sum to less than 1"},
      {"command_placeholder",
       with("eval: {", "cmd: { kind: command, argv: [ls, '{checkpoint}'] }\n  eval: {"),
       {},
       "unknown placeholder {checkpoint}"},
      {"command_empty_argv",
       with("eval: {", "cmd: { kind: command, argv: [] }\n  eval: {"),
       {},
       "expected a non-empty list of arguments"},
      {"sweep_unsweepable",
       std::string(kValid) + "sweep: { store: [a.sqlite, b.sqlite] }\n",
       {},
       "cannot be swept"},
      {"sweep_not_list",
       std::string(kValid) + "sweep: { seed: 3 }\n",
       {},
       "expected a non-empty list of values"},
      {"include_missing",
       std::string(kValid) + "include: nowhere.yaml\n",
       {},
       "nowhere.yaml' does not exist"},
      {"override_no_equals", "", {"seed"}, "override 'seed': expected key.path=value"},
      {"override_not_mapping", "", {"seed.x=1"}, "seed is not a mapping"},
      {"override_bad_yaml", "", {"model=[1,"}, "override 'model=[1,':1:1: YAML syntax error"},
      {"override_unknown_key", "", {"model.d_modl=128"}, "did you mean 'd_model'?"},
      {"override_wrong_type", "", {"stages.seed.budget.tokens=lots"}, "expected an integer"},
      {"beta1_above_one",
       with("train: { batch_size: 4 }", "train: { batch_size: 4, optim: { beta1: 1.5 } }"),
       {},
       "r.yaml:7:41: train.optim.beta1: must be in [0, 1)"},
      {"min_lr_ratio",
       "",
       {"stages.seed.optim={min_lr_ratio: 7}"},
       "stages.seed.optim.min_lr_ratio: must be in [0, 1]"},
      {"eval_windows_negative", "", {"train.eval_windows=-1"}, "train.eval_windows: must be >= 1"},
      {"init_std_negative", "", {"model.init_std=-1"}, "model.init_std: must be in (0, 10)"},
      {"norm_eps_zero", "", {"model.norm_eps=0"}, "model.norm_eps: must be in (0, 1)"},
      {"rope_theta_zero", "", {"model.rope_theta=0"}, "model.rope_theta: must be > 0"},
      {"layers_huge", "", {"model.layers=2000000000"}, "model.layers: must be in [1, 4096]"},
      {"average_weights_zero",
       "",
       {"stages.bam.average_weights=[0, 0, 0]"},
       "stages.bam.average_weights: the weights sum to 0"},
      {"upcycle_from_empty",
       "",
       {"stages.bam.from=[]"},
       "stages.bam.from: list at least one dense model"},
      {"stage_name_with_slash",
       with("bam: { kind", "bam/x: { kind"),
       {},
       "stage name 'bam/x' is not allowed"},
      {"threads_huge", "", {"threads=100000"}, "threads: must be in [1, 4096]"},
      {"duplicate_top_key",
       with("seed: 3", "seed: 3\nseed: 4"),
       {},
       "r.yaml:3:1: duplicate key 'seed'"},
      {"duplicate_stage_key",
       with("budget: { tokens: 2k }", "budget: { tokens: 2k }, budget: { tokens: 3k }"),
       {},
       "duplicate key 'budget'"},
      {"name_not_utf8",
       with("name: t", "name: \"t\xff\""),
       {},
       "r.yaml:1:9: not valid UTF-8 (byte 8); recipes are UTF-8 text"},
      {"comment_not_utf8",
       with("seed: 3", "seed: 3  # caf\xc3"),
       {},
       "r.yaml:2:15: not valid UTF-8"},  // found by the fuzzers
      {"override_not_utf8", "", {"name=a\xff"}, "override 'name=a...': not valid UTF-8 (byte 6)"},
      {"name_control_character",
       with("name: t", "name: \"t\\x07\""),
       {},
       "r.yaml:1:7: name: has a control character (byte 1)"},
      {"sweep_too_big",
       std::string(kValid) + "sweep: { seed: [" +
           [] {
             std::string v;
             for (int i = 0; i < 200; ++i) v += (i ? "," : "") + std::to_string(i);
             return v;
           }() +
           "], stages.seed.budget.tokens: [" +
           [] {
             std::string v;
             for (int i = 1; i <= 100; ++i) v += (i > 1 ? "," : "") + std::to_string(i * 1000);
             return v;
           }() +
           "] }\n",
       {},
       "sweep: more than 10000 points"},
      {"sweep_plans_too_many_jobs",
       std::string(kValid) +
           [] {
             std::string extra;  // 100 command stages: 106 jobs a point, 2,000 points: 212,000 jobs
             for (int i = 0; i < 100; ++i)
               extra += "  cmd" + std::to_string(i) + ": { kind: command, argv: [\"true\"] }\n";
             std::string v;
             for (int i = 0; i < 2000; ++i) v += (i ? "," : "") + std::to_string(i);
             return extra + "sweep: { seed: [" + v + "] }\n";
           }(),
       {},
       "the sweep plans more than 200000 jobs"},
      {"alias_bomb",
       "name: t\na: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, "
       "*a]\n"
       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, "
       "*c]\n"
       "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, "
       "*e]\n"
       "g: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n",
       {},
       "expands to more than 1000000 YAML nodes"},
      // Found by the fuzzers (tests/fuzz/): a mapping or nothing as a key.
      {"key_is_a_mapping",
       std::string(kValid) + "? [a, b]\n: 1\n",
       {},
       "r.yaml:14:3: a key must be a word or a string, not a mapping or a list"},
      {"key_is_empty",
       std::string(kValid) + ": 1\n",
       {},
       "r.yaml:14:1: a key must be a word or a string, not empty"},
      {"tag_on_a_key",
       with("budget: { tokens: 2k }", "!budget: { tokens: 2k }"),
       {},
       "a key must be a word or a string"},
      // Blame: the file and line that set the value, the override by name, the sweep value's line.
      {"blame_included_file",
       std::string(kValid) + "include: more.yaml\n",
       {},
       "more.yaml:2:17: train.eval_windows: must be >= 1",
       {{"more.yaml", "train:\n  eval_windows: -1\n"}}},
      {"blame_override",
       "",
       {"model.layers=0"},
       "override 'model.layers=0': model.layers: must be in [1, 4096]"},
      {"blame_override_map",
       "",
       {"model={d_model: 64, headz: 4}"},
       "override 'model={d_model: 64, headz: 4}': model.headz: unknown key"},
      {"blame_sweep_value",
       std::string(kValid) + "sweep: { model.layers: [2, 0] }\n",
       {},
       "r.yaml:14:28: model.layers: must be in [1, 4096], got '0' (at sweep point model.layers=0)"},
      {"override_alias_bomb",
       "",
       {"x=[&a [1,1,1,1,1,1,1,1,1,1], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], &c "
        "[*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], &e "
        "[*d,*d,*d,*d,*d,*d,*d,*d,*d,*d], [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]]"},
       "expands to more than 1000000 YAML nodes"},
      {"include_name_too_long",
       std::string(kValid) + "include: " + std::string(300, 'x') + ".yaml\n",
       {},
       "does not exist (File name too long)"},  // found by the fuzzers
      {"root_name_too_long", "", {"root=" + std::string(300, 'x')}, "override 'root=xxx"},
      {"store_name_too_long",
       with("seed: 3", "seed: 3\nstore: a/" + std::string(256, 'y') + "/s.sqlite"),
       {},
       "r.yaml:3:8: store: has a path component longer than 255 bytes"},
      {"recipe_too_large",
       std::string(kValid) + "# " + std::string(1 << 20, 'x') + "\n",
       {},
       "cannot read r.yaml: 1049071 bytes, more than the 1048576 this file may have"},
      {"include_a_device",
       std::string(kValid) + "include: /dev/zero\n",
       {},
       "/dev/zero' is not a regular file"},
      {"include_a_kernel_file",
       std::string(kValid) + "include: /proc/self/status\n",
       {},
       "/proc/self/status: a kernel file, not a recipe"},
      {"include_itself", std::string(kValid) + "include: r.yaml\n", {}, "include cycle"},
      // One checked integer parser (core/integer.h): no wrap, no rounding, no partial read.
      {"seed_negative",
       with("seed: 3", "seed: -1"),
       {},
       "r.yaml:2:7: seed: must be >= 0, got '-1'"},
      {"threads_wrap",
       with("seed: 3", "seed: 3\nthreads: 4294967297"),
       {},
       "threads: must be in [1, 4096], got '4294967297'"},
      {"retries_suffix",
       with("seed: 3", "seed: 3\nretries: 1k"),
       {},
       "retries: must be in [0, 100], got '1k'"},
      {"max_parallel_hex",
       with("seed: 3", "seed: 3\nmax_parallel: 0x10"),
       {},
       "max_parallel: expected an integer (suffixes k, M, B allowed), got '0x10'"},
      {"layers_fraction",
       with("layers: 2", "layers: 2.7"),
       {},
       "model.layers: expected an integer (suffixes k, M, B allowed), got '2.7'"},
      {"processes_wrap",
       with("kind: upcycle, method: bam,",
            "kind: upcycle, resources: { processes: 4294967297 }, method: bam,"),
       {},
       "resources.processes: must be in [1, 65536]"},
      {"seed_past_int64",
       with("seed: 3", "seed: 9223372036854775808"),
       {},
       "seed: does not fit a signed 64-bit integer, got '9223372036854775808'"},
      // One document, no tags: what yaml-cpp would ignore is refused at its line.
      {"second_document",
       std::string(kValid) + "---\nname: other\n",
       {},
       "r.yaml:14: a second YAML document ('---')"},
      {"tag_binary",
       with("name: t", "name: !!binary dGlueQ=="),
       {},
       "r.yaml:1:7: YAML tag 'tag:yaml.org,2002:binary' is not supported"},
      {"tag_custom",
       with("seed: 3", "seed: !custom 3"),
       {},
       "r.yaml:2:7: YAML tag '!custom' is not supported"},
      {"override_tag", "", {"seed=!!int 3"}, "override 'seed=!!int 3':1:1: YAML tag"},
      {"domain_name_is_a_path",
       with("domains: [general, code, math]",
            "domains: [general, code, math, { name: '../../x', sources: [/etc/hostname] }]"),
       {},
       "data.domains[3].name: '../../x' is not a valid name"},
  };
}

TEST(BadInputTest, RecipesAreRejectedWithPreciseErrorsAndNoStore) {
  int checked = 0;
  for (const auto& c : recipe_cases()) {
    testing::TempDir dir;
    core::write_file_atomic(dir / "r.yaml", c.text.empty() ? kValid : c.text);
    for (const auto& [name, text] : c.files) core::write_file_atomic(dir / name, text);
    std::vector<std::string> argv = {UPCYCLE_BINARY, "run", "r.yaml"};
    argv.insert(argv.end(), c.overrides.begin(), c.overrides.end());
    auto r = run_binary(argv, dir.path());
    EXPECT_EQ(r.exit_code, 1) << c.name << ": " << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos)
        << c.name << ": expected '" << c.expect << "' in\n"
        << r.output;
    EXPECT_EQ(r.output.find("internal error"), std::string::npos) << c.name << ": " << r.output;
    EXPECT_FALSE(std::filesystem::exists(dir / "runs"))
        << c.name << ": a rejected recipe left files";
    ++checked;
  }
  EXPECT_GE(checked, 84);
}

// `upcycle stage --spec` reads a spec with the same code the planner fills it with: a hand-written
// spec with a bad field exits 1 naming the field, before any work (no result, no lock, no crash).
TEST(BadInputTest, JobSpecsAreValidatedByTheStageCommand) {
  const nlohmann::json valid = {{"kind", "train"},
                                {"version", 2},  // TrainJobSpec::kOutputVersion
                                {"key", std::string(64, 'a')},
                                {"data_dir", "/nonexistent"},
                                {"mix", {{"general", 1.0}}},
                                {"tokens", 64},
                                {"model", nlohmann::json::object()}};
  auto with_field = [&](const std::string& k, nlohmann::json v) {
    nlohmann::json j = valid;
    j[k] = v;
    return j;
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {with_field("batch_size", 0).dump(), "spec.json: batch_size: must be in [1, 2^24]"},
      {with_field("log_every", 0).dump(), "spec.json: log_every: must be >= 1"},
      {with_field("micro_batch", 3).dump(), "micro_batch: must divide batch_size"},
      {with_field("kind", "trian").dump(),
       "kind: unknown job kind 'trian' (kinds: prepare, train, upcycle, eval, command, import)"},
      {with_field("version", 99).dump(), "version: the spec was planned for output version 99"},
      {with_field("threads", 100000).dump(), "threads: must be in [1, 4096]"},
      {with_field("optim", {{"beta1", 1.5}}).dump(), "optim.beta1: must be in [0, 1)"},
      {with_field("key", "../x").dump(), "key: expected a sha256"},
      {"[]", "spec: expected a JSON object"},
      // Found by the fuzzers: a number beyond a double was an uncaught exception (exit 2).
      {valid.dump().insert(1, "\"max_bytes\": 3e999, "),
       "spec.json: invalid JSON: a number is out of range"},
      // nlohmann converts silently: 2.5 -> 2, -1 -> 2^64-1, 1e10 -> a wrapped int.
      {with_field("threads", 2.5).dump(), "threads: expected an integer, got 2.5"},
      {with_field("seed", -1).dump(), "seed: must be >= 0, got -1"},
      {with_field("threads", 10000000000LL).dump(), "threads: out of range for a 32-bit integer"},
      {with_field("mix", {{"../x", 1.0}}).dump(), "mix: '../x' is not a valid name"},
      {with_field("log_every", true).dump(), "log_every: has the wrong type (boolean)"},
      {with_field("model", {{"layers", 1e300}}).dump(),
       "model.layers: expected an integer, got 1e+300"},  // fuzzers: UB cast
  };
  for (const auto& [spec, expect] : cases) {
    testing::TempDir dir;
    core::write_file_atomic(dir / "spec.json", spec);
    auto r = run_binary({UPCYCLE_BINARY, "stage", "--spec", dir / "spec.json"}, dir.path());
    EXPECT_EQ(r.exit_code, 1) << expect << ": " << r.output;
    EXPECT_NE(r.output.find(expect), std::string::npos) << "expected '" << expect << "' in\n"
                                                        << r.output;
    EXPECT_FALSE(std::filesystem::exists(dir / "result.json"));
    EXPECT_FALSE(std::filesystem::exists(dir / ".lock")) << "validated before locking";
  }
}

// A name holding SQL is just a name: it is bound, never spliced, so `plan` accepts it.
TEST(BadInputTest, SqlInAValueIsData) {
  testing::TempDir dir;
  core::write_file_atomic(dir / "r.yaml", kValid);
  auto r =
      run_binary({UPCYCLE_BINARY, "plan", "r.yaml", "name=x'; DROP TABLE runs; --"}, dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

struct CommandCase {
  const char* name;
  std::vector<std::string> args;  ///< after the binary
  std::string expect;
};

TEST(BadInputTest, QueriesAndCommandsAreRejectedAndTheStoreIsUntouched) {
  testing::TempDir dir;
  const std::string store_path = dir / "runs/store.sqlite";
  core::make_dirs(dir / "runs");
  {
    tracking::Store s(store_path);
    s.upsert_run({"k1", "exp", "base", "{}"});
  }
  const std::vector<CommandCase> cases = {
      {"where_unterminated", {"query", "--where", "model = 'bam"}, "unterminated"},
      {"where_sql_injection",
       {"query", "--where", "model = x; DROP TABLE runs"},
       "unexpected 'DROP'"},
      {"where_comment", {"query", "--where", "model = 'x' OR 1=1 --"}, "--where: column"},
      {"where_unbalanced", {"query", "--where", "(model = x"}, "expected ')'"},
      {"where_unknown_field", {"query", "--where", "modle = x"}, "did you mean 'model'?"},
      {"where_missing_value", {"query", "--where", "value >"}, "--where: column"},
      {"where_empty_param", {"query", "--where", "params. = 3"}, "--where: column"},
      {"where_bad_in", {"query", "--where", "model IN bam"}, "--where: column"},
      {"bad_format", {"query", "--format", "xml"}, "xml"},
      {"unknown_command", {"rnu"}, "did you mean 'run'?"},
      {"unknown_option", {"query", "--bogus", "x"}, "see `upcycle query --help`"},
      {"missing_recipe", {"run", "nope.yaml"}, "nope.yaml: recipe file not found"},
      {"compare_one_run", {"compare", "base"}, "two or more runs"},
      {"compare_unknown_run", {"compare", "base", "bsae2"}, "no run named 'bsae2'"},
      {"resume_unknown_run", {"resume", "nosuch"}, "no run named 'nosuch'"},
      {"cancel_unknown_run", {"cancel", "nosuch"}, "no run named 'nosuch'"},
      {"wait_unknown_run", {"wait", "nosuch"}, "no run named 'nosuch'"},
      {"run_unknown_executor",
       {"run", UPCYCLE_SOURCE_DIR "/recipes/ci/tiny.yaml", "--executor", "pbs"},
       "'pbs' is not allowed; expected local or slurm"},
      {"tag_with_comma",
       {"tag", "a,b"},
       "upcycle tag: tag 'a,b' is not allowed: 1 to 64 of letters"},
      {"tag_with_slash", {"tag", "../x"}, "tag '../x' is not allowed"},
      {"tag_not_utf8", {"tag", "a\xff"}, "tag '(not UTF-8)' is not allowed"},
      {"run_tag_with_space",
       {"run", UPCYCLE_SOURCE_DIR "/recipes/ci/tiny.yaml", "--tag", "a b"},
       "--tag: tag 'a b' is not allowed"},
      {"table_unknown", {"table", "pplx"}, "unknown table 'pplx'"},
      {"table_unknown_metric", {"table", "ppl", "--metric", "bits"}, "unknown --metric 'bits'"},
      {"status_unknown_run", {"status", "--run", "nosuch"}, "no run named 'nosuch'"},
      {"store_missing", {"query", "--store", "elsewhere.sqlite"}, "no store here"},
      {"where_deep_nesting",
       {"query", "--where", std::string(12000, '(') + "model = x" + std::string(12000, ')')},
       "nested deeper than 24 levels"},
      {"plot_unknown",
       {"plot", "los"},
       "unknown plot 'los' (known: loss, loss-flops, ppl, expert-util)"},
      {"table_of_a_store_without_evals", {"table", "ppl"}, "run 'base' has no perplexity results"},
      {"plot_of_a_run_without_metrics",
       {"plot", "loss", "--out", "p"},
       "run 'base' has no training metrics"},
      {"report_unknown_run", {"report", "--run", "nosuch", "--out", "r"}, "no run named 'nosuch'"},
      {"recipe_not_a_file", {"plan", "/dev/zero"}, "/dev/zero: not a regular file"},
      {"recipe_is_a_directory", {"plan", "."}, ".: not a regular file"},
      // Every CLI number through the one checked parser, with a range.
      {"bench_threads_zero",
       {"bench", "train", "--threads", "0"},
       "--threads: must be in [1, 4096], got '0'"},
      {"bench_batch_zero",
       {"bench", "train", "--batch", "0"},
       "--batch: must be in [1, 2^24], got '0'"},
      {"bench_rows_negative", {"bench", "store", "--rows", "-5"}, "--rows: must be >= 1, got '-5'"},
      {"bench_experts_negative",
       {"bench", "train", "--experts", "-2"},
       "--experts: must be in [0, 4096], got '-2'"},
      {"bench_runs_hex", {"bench", "store", "--runs", "0x10"}, "--runs: not an integer"},
      {"run_max_parallel_negative",
       {"run", UPCYCLE_SOURCE_DIR "/recipes/ci/tiny.yaml", "-j", "-1"},
       "--max-parallel: must be in [0, 65536], got '-1'"},
      {"flops_context_wrap",
       {"flops", UPCYCLE_SOURCE_DIR "/recipes/ci/tiny.yaml", "--context", "1e30"},
       "--context: must be in [0, 2^40]"},
      // Directories that belong to the user are never replaced (core/output_dir.h).
      {"bench_dir_holds_the_store",
       {"bench", "store", "--dir", "runs"},
       "--dir: runs: exists, is not empty and was not written by upcycle"},
      {"bench_dir_cwd", {"bench", "store", "--dir", "."}, "--dir: .: exists, is not empty"},
      {"bench_dir_a_file",
       {"bench", "store", "--dir", "runs/store.sqlite"},
       "exists and is not a directory"},
      {"export_over_the_runs_root",
       {"export", "base/seed", "--out", "runs", "--force"},
       "--out: runs: refusing to write here: it holds the store"},
      {"export_over_the_cwd",
       {"export", "base/seed", "--out", "."},
       "--out: .: refusing to write here: it holds the store"},
      {"import_over_its_source",
       {"import", "runs", "--out", "runs", "--force"},
       "--out: runs: refusing to write here: it is the checkpoint it imports"},
      {"import_over_a_directory",
       {"import", "nosuch", "--out", "runs"},
       "--out: runs: refusing to write here: it holds the default store"},
      {"plot_out_with_a_newline",
       {"plot", "loss", "--out", "p\n!touch X"},
       "the output path holds a control character"},
      // Query numbers are finite decimals: nan and inf matched every row.
      {"where_nan",
       {"query", "--where", "value < nan"},
       "'value' is numeric: expected a finite decimal number, got 'nan'"},
      {"where_inf", {"query", "--where", "value != inf"}, "got 'inf'"},
      {"where_hex", {"query", "--where", "n IN (1, 0x10)"}, "got '0x10'"},
      // Only regular files are read, and never past a cap.
      {"stage_spec_dev_zero", {"stage", "--spec", "/dev/zero"}, "/dev/zero: not a regular file"},
      {"stage_spec_fifo", {"stage", "--spec", "fifo"}, "fifo: not a regular file"},
      {"import_config_fifo",
       {"import", "hf", "--out", "imported"},
       "hf/config.json: not a regular file"},
      {"store_dev_null",
       {"run", UPCYCLE_SOURCE_DIR "/recipes/ci/tiny.yaml", "--store", "/dev/null"},
       "/dev/null: not a store (not a regular file)"},
      {"store_not_sqlite",
       {"run", UPCYCLE_SOURCE_DIR "/recipes/ci/tiny.yaml", "--store", "notes.txt"},
       "notes.txt: not a store (not an SQLite database)"},
  };
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0644), 0);
  core::make_dirs(dir / "hf");
  ASSERT_EQ(::mkfifo((dir / "hf/config.json").c_str(), 0644), 0);
  core::write_file_atomic(dir / "notes.txt", "my notes\n");
  std::string before;
  {
    tracking::Store s(store_path, tracking::Store::Mode::kReadOnly);
    before = testing::dump_store(s);
  }
  for (const auto& c : cases) {
    std::vector<std::string> argv = {UPCYCLE_BINARY};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    auto r = run_binary(argv, dir.path());
    EXPECT_EQ(r.exit_code, 1) << c.name << ": " << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos)
        << c.name << ": expected '" << c.expect << "' in\n"
        << r.output;
  }
  tracking::Store s(store_path, tracking::Store::Mode::kReadOnly);
  EXPECT_EQ(testing::dump_store(s), before);
  EXPECT_EQ(core::read_file(dir / "notes.txt"), "my notes\n");
  for (const char* stray :
       {"/dev/null.lock", "notes.txt.lock", "X", "imported", "p\n!touch X", "p", "r"}) {
    EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(dir.path()) / stray))
        << stray << " was left";
  }
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++entries;
  EXPECT_EQ(entries, 4u) << "runs, fifo, hf, notes.txt and nothing else";
}

// A run name is one recipe: the same name with another recipe is refused, naming what differs, and
// the store keeps one run; keys that only say how it runs (threads, the executor) are the same run.
TEST(BadInputTest, ARunNameIsOneRecipe) {
  testing::TempDir dir;
  core::write_file_atomic(
      dir / "r.yaml",
      "name: one\nseed: 3\ndata:\n  domains: [general, code]\n  max_bytes: 300k\n"
      "  valid_fraction: 0.2\n  test_fraction: 0.2\n"
      "  tokenizer: { vocab: 512, sample_bytes: 50k }\nstages:\n  data: { kind: prepare }\n");
  ASSERT_EQ(run_binary({UPCYCLE_BINARY, "run", "r.yaml", "--no-report"}, dir.path()).exit_code, 0);
  auto changed =
      run_binary({UPCYCLE_BINARY, "run", "r.yaml", "data.valid_fraction=0.3"}, dir.path());
  EXPECT_EQ(changed.exit_code, 1) << changed.output;
  EXPECT_NE(changed.output.find("run 'one' is already in runs/store.sqlite with another recipe "
                                "(data.valid_fraction: 0.2 -> 0.3)"),
            std::string::npos)
      << changed.output;
  EXPECT_NE(changed.output.find("name=one-2"), std::string::npos) << changed.output;
  auto seed = run_binary({UPCYCLE_BINARY, "run", "r.yaml", "seed=4"}, dir.path());
  EXPECT_EQ(seed.exit_code, 1) << "the seed is part of a run's identity too: " << seed.output;
  auto threads =
      run_binary({UPCYCLE_BINARY, "run", "r.yaml", "threads=2", "--no-report"}, dir.path());
  EXPECT_EQ(threads.exit_code, 0) << threads.output;
  tracking::Store s(dir / "runs/store.sqlite", tracking::Store::Mode::kReadOnly);
  EXPECT_EQ(s.select("SELECT COUNT(*) FROM runs WHERE name = 'one'").rows.at(0).at(0),
            tracking::Cell(int64_t(1)));
}

// A working directory whose path is not UTF-8 would put that path into spec.json and the store:
// refused at plan time, in our words, not as the JSON writer's exception.
TEST(BadInputTest, AWorkingDirectoryThatIsNotUtf8IsNamed) {
  testing::TempDir dir;
  const std::string odd = dir / "caf\xe9";
  core::make_dirs(odd);
  auto r = run_binary({UPCYCLE_BINARY, "plan", UPCYCLE_SOURCE_DIR "/recipes/ci/tiny.yaml"}, odd);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("is not valid UTF-8 (the working directory's path?)"), std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("json"), std::string::npos) << r.output;
}

// A full disk (here a file-size limit, which fails writes with EFBIG where a full disk fails them
// with ENOSPC): the store's and a shard's errors name the file and the reason, the runner exits 1,
// and what was complete before is still there. (A checkpoint: TrainerBadInputTest.DiskFull...)
TEST(BadInputTest, AFullDiskNamesTheFileAndLosesNothing) {
  const std::string prepare_only =
      "name: df\nseed: 3\ndata:\n  domains: [general, code]\n  max_bytes: 200k\n"
      "  tokenizer: { vocab: 512, sample_bytes: 50k }\n"
      "model: { d_model: 64, layers: 2, heads: 4, kv_heads: 4, ffn_hidden: 128, seq_len: 32 }\n"
      "stages:\n  data: { kind: prepare }\n";
  {  // the store: an 8 KiB limit fails the first write-ahead-log frame past the first page
    testing::TempDir dir;
    core::make_dirs(dir / "runs");
    {
      tracking::Store s(dir / "runs/store.sqlite");
      s.upsert_run({"k1", "exp", "earlier", "{}"});
    }
    std::string before;
    {
      tracking::Store s(dir / "runs/store.sqlite", tracking::Store::Mode::kReadOnly);
      before = testing::dump_store(s);
    }
    core::write_file_atomic(dir / "r.yaml", prepare_only);
    auto r = run_binary({UPCYCLE_BINARY, "run", "r.yaml"}, dir.path(), 8 << 10);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("runs/store.sqlite: "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("disk I/O error"), std::string::npos) << r.output;
    tracking::Store s(dir / "runs/store.sqlite", tracking::Store::Mode::kReadOnly);
    EXPECT_EQ(testing::dump_store(s), before) << "the failed run changed the store";
  }
  {  // a shard: the prepare job fails naming it, leaves no partial shard, and the run says so
    testing::TempDir dir;
    core::write_file_atomic(dir / "r.yaml", prepare_only);
    auto r = run_binary({UPCYCLE_BINARY, "run", "r.yaml"}, dir.path(), 200 << 10);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("shards/general.train.bin"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("File too large"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("internal error"), std::string::npos) << r.output;
    for (const auto& f : std::filesystem::recursive_directory_iterator(dir / "runs/jobs")) {
      EXPECT_EQ(f.path().string().find(".bin"), std::string::npos)
          << "a partial shard was left: " << f.path();
    }
  }
}

}  // namespace
}  // namespace upcycle
