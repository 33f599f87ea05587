// The typed job specs: JSON round trips, and validation that names the field. The planner and
// `upcycle stage --spec` run the same functions, so what is refused here is refused in both.
#include <gtest/gtest.h>

#include "stages/spec/command.h"
#include "stages/spec/eval.h"
#include "stages/spec/import.h"
#include "stages/spec/prepare.h"
#include "stages/spec/train.h"
#include "stages/spec/upcycle.h"

namespace upcycle::stages {
namespace {

template <typename Spec>
Spec round_trip(const Spec& s) {
  nlohmann::json j = to_json(s);
  Spec out;
  read_spec(SpecReader(j), out);
  EXPECT_EQ(to_json(out), j);
  return out;
}

// The core::FieldError's "field: reason" of reading `j` as a Spec, or "" when it reads.
template <typename Spec>
std::string error_of(const nlohmann::json& j) {
  try {
    Spec s;
    read_spec(SpecReader(j), s);
  } catch (const core::FieldError& e) {
    return e.what();
  }
  return "";
}

TrainJobSpec a_train_spec() {
  TrainJobSpec t;
  t.data_dir = "/runs/jobs/x/data";
  t.mix = {{"code", 0.9}, {"general", 0.1}};
  t.tokens = 4096;
  t.seed = 3;
  t.optim.lr = 3e-3;
  t.micro_batch = 4;
  return t;
}

TEST(SpecTest, TrainRoundTripsAndKeysWithoutPaths) {
  TrainJobSpec t = round_trip(a_train_spec());
  EXPECT_EQ(t.optim.lr, 3e-3);
  EXPECT_EQ(t.micro_batch, 4);
  t.init_checkpoint = "/runs/jobs/y/checkpoint";
  round_trip(t);
  const nlohmann::json k = key_material(t, {4, "cpu", 2});
  EXPECT_FALSE(k.contains("init"));
  EXPECT_FALSE(k.contains("data_dir"));
  EXPECT_EQ(k.at("precision"), "fp32");  // auto on the CPU
  // The world size is not in the key: a checkpoint resumes on any number of ranks.
  EXPECT_EQ(k.at("numerics"), (nlohmann::json{{"device", "cpu"}, {"threads", 4}}));
  EXPECT_EQ(key_material(t, {4, "cpu", 1}), k);
  EXPECT_EQ(key_material(t, {4, "cuda", 1}).at("precision"), "bf16");
  EXPECT_FALSE(key_material(t, {4, "cuda", 1}).at("numerics").contains("threads"));
}

TEST(SpecTest, TrainValidationNamesTheField) {
  auto with = [](const char* field, nlohmann::json v) {
    nlohmann::json j = to_json(a_train_spec());
    nlohmann::json* at = &j;
    std::string f = field;
    for (size_t dot; (dot = f.find('.')) != std::string::npos; f = f.substr(dot + 1))
      at = &(*at)[f.substr(0, dot)];
    (*at)[f] = v;
    return error_of<TrainJobSpec>(j);
  };
  EXPECT_EQ(with("batch_size", 0), "batch_size: must be in [1, 2^24], got 0");
  EXPECT_EQ(with("log_every", 0), "log_every: must be >= 1, got 0");
  EXPECT_EQ(with("micro_batch", 3), "micro_batch: must divide batch_size (0: no accumulation)");
  EXPECT_EQ(with("eval_windows", -1), "eval_windows: must be >= 1, got -1");
  EXPECT_EQ(with("optim.beta1", 1.5), "optim.beta1: must be in [0, 1)");
  EXPECT_EQ(with("optim.min_lr_ratio", 7), "optim.min_lr_ratio: must be in [0, 1]");
  EXPECT_EQ(with("optim.lrr", 1), "optim.lrr: unknown field; did you mean 'lr'?");
  EXPECT_EQ(with("tokens", "many"), "tokens: has the wrong type (string)");
  EXPECT_EQ(with("mix", nlohmann::json::object({{"code", 0}})), "mix: weights sum to 0");
  EXPECT_EQ(with("precision", "fp16"),
            "precision: 'fp16' is not allowed; expected auto, fp32 or bf16");
  EXPECT_EQ(with("bogus", 1), "bogus: unknown field");
  nlohmann::json j = to_json(a_train_spec());
  j["model"]["init_std"] = -1;
  EXPECT_EQ(error_of<TrainJobSpec>(j).rfind("model.init_std: ", 0), 0u)
      << error_of<TrainJobSpec>(j);
}

TEST(SpecTest, PrepareRoundTripsAndRefusesNamesThatArePaths) {
  PrepareJobSpec p;
  p.domains = {default_domain("general"), default_domain("math")};
  p.domains[0].sources.push_back({"/data/*.jsonl", DocSplit::kJsonl, "body"});
  p.seed = 7;
  PrepareJobSpec back = round_trip(p);
  EXPECT_EQ(back.domains[0].sources.back().split, DocSplit::kJsonl);
  EXPECT_EQ(back.domains[0].sources.back().text_field, "body");
  p.domains[1].name = "../../../tmp/x";
  EXPECT_NE(error_of<PrepareJobSpec>(to_json(p))
                .find("domains[1].name: '../../../tmp/x' is not a valid name"),
            std::string::npos);
  p.domains[1].name = "general";
  EXPECT_EQ(error_of<PrepareJobSpec>(to_json(p)),
            "domains[1].name: domain 'general' is listed twice");
  p.domains.pop_back();
  p.tokenizer.vocab = 100;
  EXPECT_NE(error_of<PrepareJobSpec>(to_json(p)).find("tokenizer.vocab: must be in [300, 1000000]"),
            std::string::npos);
}

TEST(SpecTest, UpcycleRefusesAverageWeightsThatSumToZero) {
  UpcycleJobSpec u;
  u.method = UpcycleMethod::kBtx;
  u.inputs = {"/a", "/b", "/c"};
  u.average_weights = {0.5, 0.25, 0.25};
  u.mixture.ffn_top_k = 2;
  EXPECT_EQ(round_trip(u).mixture.ffn_top_k, 2);
  EXPECT_FALSE(key_material(u, {}).contains("inputs"));
  u.average_weights = {0, 0, 0};
  EXPECT_EQ(error_of<UpcycleJobSpec>(to_json(u)),
            "average_weights: the weights sum to 0; give at least one positive weight");
  u.average_weights = {1, 1};
  EXPECT_EQ(error_of<UpcycleJobSpec>(to_json(u)),
            "average_weights: has 2 weights for 3 dense models");
}

TEST(SpecTest, EvalPinsTaskFilesAndKeysModelNamesNotPaths) {
  EvalJobSpec e;
  e.data_dir = "/d";
  e.domains = {"code"};
  e.models = {{"seed", "/runs/jobs/a/checkpoint"}};
  e.ensembles = {{"btm", {{"experts/code", "/runs/jobs/b/checkpoint"}}}};
  e.tasks = {{"builtin", ""}, {"/t.jsonl", std::string(64, 'a')}};
  round_trip(e);
  const std::string k = key_material(e, {}).dump();
  EXPECT_EQ(k.find("/runs/jobs"), std::string::npos) << k;
  EXPECT_NE(k.find("experts/code"), std::string::npos) << k;
  e.tasks[1].sha256 = "";
  EXPECT_EQ(error_of<EvalJobSpec>(to_json(e)),
            "tasks[1].sha256: a task file needs the sha256 it was planned with");
  e.tasks[1].sha256 = std::string(64, 'a');
  e.examples_file = false;  // how, not what: in the spec, not in the key
  round_trip(e);
  EXPECT_EQ(key_material(e, {}).dump(), k);
}

TEST(SpecTest, CommandKeysTheTemplatesAndRunsTheExpansion) {
  CommandJobSpec c;
  c.templates.argv = {"lm_eval", "--model_args", "pretrained={model_dir}/hf", "--output_path",
                      "{out}"};
  c.templates.env = {{"HF_HOME", "{out}/hf"}};
  c.model = "bam_dm";
  expand_command(c, {{"out", "/j/out"},
                     {"model_dir", "/m"},
                     {"model", "bam_dm"},
                     {"checkpoint", "/m/checkpoint"},
                     {"data_dir", "/d"},
                     {"threads", "2"}});
  EXPECT_EQ(c.expanded.argv[2], "pretrained=/m/hf");
  EXPECT_EQ(c.expanded.env.at("HF_HOME"), "/j/out/hf");
  round_trip(c);
  EXPECT_EQ(key_material(c, {}).dump().find("/j/out"), std::string::npos);
  c.templates.argv[0] = "{nope}";
  EXPECT_THROW(expand_command(c, {{"out", "/j/out"}}), core::FieldError);
}

TEST(SpecTest, ImportKeysTheFingerprintNotThePath) {
  ImportJobSpec i;
  i.path = "/models/tinyllama";
  i.fingerprint = std::string(64, 'f');
  i.seq_len = 512;
  round_trip(i);
  const std::string k = key_material(i, {}).dump();
  EXPECT_EQ(k.find("tinyllama"), std::string::npos) << k;
  i.path = "models/tinyllama";
  EXPECT_EQ(error_of<ImportJobSpec>(to_json(i)), "path: must be an absolute directory path");
  i.path = "/m";
  i.fingerprint = "abc";
  EXPECT_EQ(error_of<ImportJobSpec>(to_json(i)), "fingerprint: must be a sha256 (64 hex digits)");
}

TEST(SpecTest, PrepareWithAModelsTokenizerKeysItsContent) {
  PrepareJobSpec p;
  p.domains = {default_domain("general")};
  p.tokenizer_file = "/models/tinyllama/tokenizer.model";
  p.tokenizer_sha256 = std::string(64, 'e');
  round_trip(p);
  const std::string k = key_material(p, {}).dump();
  EXPECT_EQ(k.find("tinyllama"), std::string::npos) << k;
  EXPECT_NE(k.find(std::string(64, 'e')), std::string::npos) << k;
}

TEST(SpecTest, CommandExportSpecIsValidated) {
  CommandJobSpec c;
  c.templates.argv = {"run", "{hf}"};
  expand_command(c, {{"out", "/j/out"}, {"hf", "/j/hf"}});
  c.hf = {"mixtral", "/j/hf", "/m/checkpoint", "/d/tokenizer.model"};
  round_trip(c);
  EXPECT_NE(key_material(c, {}).dump().find("mixtral"), std::string::npos);
  c.hf.format = "gguf";
  EXPECT_NE(error_of<CommandJobSpec>(to_json(c)).find("hf.format"), std::string::npos);
}

TEST(SpecTest, EnvelopeRuntimeIsValidated) {
  nlohmann::json j = {{"threads", 0}};
  EXPECT_THROW(read_runtime(SpecReader(j)), core::FieldError);
  j = {{"device", "tpu"}};
  try {
    read_runtime(SpecReader(j));
    FAIL();
  } catch (const core::FieldError& e) {
    EXPECT_EQ(e.path(), "device");
  }
}

}  // namespace
}  // namespace upcycle::stages
