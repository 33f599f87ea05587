// Bad recipes, table-driven: malformed YAML, wrong types, unknown keys and stages, cycles, bad
// overrides, includes, names that are paths. Each case must exit with code 1, say precisely what is
// wrong (the expected fragment names the file:line:col and key), and leave nothing behind: a
// rejected recipe creates no store and no runs directory.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "tests/support/run_binary.h"
#include "tests/support/temp_dir.h"
#include "tests/support/valid_recipe.h"

namespace upcycle {
namespace {

using testing::kValid;
using testing::run_binary;

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
      {"pretokenized_dir_and_files",
       with("domains: [general, code, math]\n  tokenizer: { vocab: 512 }",
            "domains: [{ name: web, shards: { dir: d, files: [a] } }]\n  tokenizer: { kind: "
            "pretokenized, vocab: 512 }"),
       {},
       "data.domains[0].shards.dir: give dir: alone, or files: / train:, valid:, test: without it"},
      {"pretokenized_bad_dtype",
       with("domains: [general, code, math]\n  tokenizer: { vocab: 512 }",
            "domains: [{ name: web, shards: { dir: d, dtype: int8 } }]\n  tokenizer: { kind: "
            "pretokenized, vocab: 512 }"),
       {},
       "data.domains[0].shards.dtype: 'int8' is not one of uint8, uint16, int16, int32, uint32, "
       "int64"},
      {"pretokenized_no_paths",
       with("domains: [general, code, math]\n  tokenizer: { vocab: 512 }",
            "domains: [{ name: web, shards: { train: a.bin, dtype: uint16 } }]\n  tokenizer: { "
            "kind: pretokenized, vocab: 512 }"),
       {},
       "split by file needs all of train:, valid: and test:"},
      {"pretokenized_some_weights",
       with("domains: [general, code, math]\n  tokenizer: { vocab: 512 }",
            "domains: [{ name: web, shards: { files: [{ path: a, weight: 0.5 }, b] } }]\n  "
            "tokenizer: { kind: pretokenized, vocab: 512 }"),
       {},
       "data.domains[0].shards.files: give every entry a weight, or none"},
      {"pretokenized_bad_weight",
       with("domains: [general, code, math]\n  tokenizer: { vocab: 512 }",
            "domains: [{ name: web, shards: { files: [{ path: a, weight: -1 }] } }]\n  "
            "tokenizer: { kind: pretokenized, vocab: 512 }"),
       {},
       "weight: must be positive"},
      {"pretokenized_bad_split",
       with("domains: [general, code, math]\n  tokenizer: { vocab: 512 }",
            "domains: [{ name: web, shards: { files: [a], split: \"969,30\" } }]\n  "
            "tokenizer: { kind: pretokenized, vocab: 512 }"),
       {},
       "shards.split: split '969,30': expected three numbers such as 969,30,1"},
      {"pretokenized_shards_and_jsonl",
       with("domains: [general, code, math]\n  tokenizer: { vocab: 512 }",
            "domains: [{ name: web, shards: { dir: d }, jsonl: { files: [a.jsonl] } }]\n  "
            "tokenizer: { kind: pretokenized, vocab: 512 }"),
       {},
       "needs shards: (tokenized files) or jsonl: (text to tokenize), one of them"},
      {"pretokenized_tokenizer_missing",
       with("domains: [general, code, math]\n  tokenizer: { vocab: 512 }",
            "domains: [{ name: web, shards: { dir: d } }]\n  tokenizer: { kind: pretokenized, "
            "vocab: 512, path: nowhere/tokenizer.json }"),
       {},
       "data.tokenizer.path: "},
      {"pretokenized_eod_without_id",
       with("domains: [general, code, math]\n  tokenizer: { vocab: 512 }",
            "domains: [{ name: web, shards: { dir: d } }]\n  boundary: eod\n  tokenizer: { kind: "
            "pretokenized, vocab: 512 }"),
       {},
       "boundary: eod needs data.tokenizer.eod"},
      {"pretokenized_model_type",
       with("tokenizer: { vocab: 512 }",
            "tokenizer: { kind: pretokenized, vocab: 512, model_type: bpe }"),
       {},
       "model_type: is for kind: sentencepiece"},
      {"slurm_signal_negative",
       with("seed: 3", "seed: 3\nslurm: { signal_seconds: -1 }"),
       {},
       "r.yaml:3:26: slurm.signal_seconds: must be in [0, 65535], got '-1'"},
      {"slurm_signal_after_time",
       with("seed: 3", "seed: 3\nslurm: { time: 2, signal_seconds: 150 }"),
       {},
       "slurm.signal_seconds: '150' must be below the time limit (2 = 120 s)"},
      {"slurm_max_time_not_a_time",
       {},
       {"slurm.max_time=1h"},
       "slurm.max_time: '1h' is not minutes or [D-]HH:MM:SS"},
      {"tokenizer_pieces_over_vocab",
       with("tokenizer: { vocab: 512 }", "tokenizer: { vocab: 512, pieces: 1024 }"),
       {},
       "tokenizer.pieces: must be in [300, tokenizer.vocab]"},
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
      {"builtin_family_unknown",
       "",
       {"stages.eval.tasks=[builtin/domains]"},
       "unknown built-in tasks 'builtin/domains'"},
      {"budget_time_without_rate",
       "",
       {"stages.seed.budget={match: seed, by: time}"},
       "by: time needs rate: STAGE"},
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

}  // namespace
}  // namespace upcycle
