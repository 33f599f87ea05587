// Content keys are a contract with every store users have filled: a key that changes re-runs days
// of cluster work. The keys of recipes/ci/tiny.yaml are kept in tests/fixtures/tiny_keys.json; a
// change to what a kind's key hashes shows up here as a diff, to be made on purpose together with a
// bump of that kind's kOutputVersion (docs/stage-kinds.md). Nothing of the code's version is in a
// key, so a commit that changes only documentation leaves every key as it is.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/build_info.h"
#include "core/job_files.h"
#include "core/sha256.h"
#include "runner/plan.h"
#include "stages/spec/job_spec.h"

namespace upcycle::runner {
namespace {

const std::string kTiny = std::string(UPCYCLE_SOURCE_DIR) + "/recipes/ci/tiny.yaml";

nlohmann::json keys_of(const Plan& p) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& j : p.jobs) out[j.stage] = j.key;
  return out;
}

TEST(GoldenKeysTest, TinyRecipeKeysAreTheRecordedOnes) {
  const nlohmann::json golden =
      core::read_json_file(std::string(UPCYCLE_SOURCE_DIR) + "/tests/fixtures/tiny_keys.json");
  const nlohmann::json actual = keys_of(make_plan(load_recipe(kTiny)));
  EXPECT_EQ(actual, golden)
      << "keys of recipes/ci/tiny.yaml changed. If that is intended, bump the "
         "output version of the kinds whose results change and record the new "
         "keys in tests/fixtures/tiny_keys.json:\n"
      << actual.dump(2);
}

// The key is the hash of `keyed` alone, and `keyed` holds no git sha, no path and no scheduling
// setting.
TEST(GoldenKeysTest, KeysHashOnlyWhatTheJobComputes) {
  const Plan p = make_plan(load_recipe(kTiny));
  for (const auto& j : p.jobs) {
    const std::string keyed = j.keyed.dump();
    EXPECT_EQ(j.key, stages::content_key(j.kind, j.version, j.keyed.at("spec"),
                                         j.keyed.at("inputs").get<std::vector<std::string>>()))
        << j.stage;
    EXPECT_EQ(keyed.find(core::kGitSha), std::string::npos) << j.stage;
    EXPECT_EQ(keyed.find("/jobs/"), std::string::npos) << j.stage << ": a job path is in the key";
  }
  const Plan moved = make_plan(load_recipe(
      kTiny, {"root=/elsewhere/runs", "retries=3", "max_parallel=1", "store=/elsewhere/s.sqlite"}));
  EXPECT_EQ(keys_of(moved), keys_of(p));
}

// What the numbers depend on is in the key: device kind, precision, CPU threads. Not the number of
// processes: a train job's checkpoint resumes on any number of ranks, so moving a job to more or
// fewer nodes continues it (stages/train/train_checkpoint.h).
TEST(GoldenKeysTest, NumericsChangeTheKeysOfTheJobsTheyAffect) {
  const Plan cpu = make_plan(load_recipe(kTiny));
  auto changed = [&](const Plan& other) {
    std::vector<std::string> out;
    for (size_t i = 0; i < cpu.jobs.size(); ++i) {
      if (cpu.jobs[i].key != other.jobs[i].key) out.push_back(cpu.jobs[i].stage);
    }
    return out;
  };
  const std::vector<std::string> all_but_data = {"seed", "experts/code", "experts/math",
                                                 "bam",  "bam_dm",       "eval"};
  EXPECT_EQ(changed(make_plan(load_recipe(kTiny, {"device=cuda"}))), all_but_data);
  EXPECT_EQ(changed(make_plan(load_recipe(kTiny), {true})), all_but_data);  // auto on a CUDA host
  EXPECT_EQ(keys_of(make_plan(load_recipe(kTiny, {"device=cuda"}))),
            keys_of(make_plan(load_recipe(kTiny, {"device=cuda", "stages.seed.precision=bf16"}))))
      << "precision auto on CUDA is bf16: the same key as bf16 said explicitly";
  EXPECT_EQ(changed(make_plan(load_recipe(kTiny, {"stages.bam_dm.precision=bf16"}))),
            (std::vector<std::string>{"bam_dm", "eval"}));
  EXPECT_EQ(changed(make_plan(load_recipe(kTiny, {"stages.bam_dm.resources={processes: 2}"}))),
            (std::vector<std::string>{}));
  EXPECT_EQ(changed(make_plan(load_recipe(kTiny, {"stages.eval.resources={threads: 2}"}))),
            (std::vector<std::string>{"eval"}));
  EXPECT_EQ(changed(make_plan(load_recipe(kTiny, {"stages.data.resources={threads: 2}"}))),
            (std::vector<std::string>{}))
      << "BPE tokenizer training counts integers: threads do not change its result";
}

}  // namespace
}  // namespace upcycle::runner
