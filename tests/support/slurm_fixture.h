// What the Slurm end-to-end tests share: the fixture (skips without the local cluster of
// cluster/local_slurm.sh, which SLURM_CONF points at), a small prepare + train recipe, the losses a
// stage logged, and wrappers around Slurm's commands put first on PATH for one call.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "core/process.h"
#include "tests/support/temp_dir.h"
#include "tracking/store.h"

namespace upcycle::testing {

class SlurmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* conf = std::getenv("SLURM_CONF");
    if (!conf || !std::filesystem::exists(conf))
      GTEST_SKIP() << "no local Slurm (cluster/local_slurm.sh start)";
  }
  /// The local cluster's directory (what cluster/local_slurm.sh was started with).
  static std::string cluster_dir() {
    return std::filesystem::path(std::getenv("SLURM_CONF")).parent_path().string();
  }
  TempDir dir_;
};

/// A small data-parallel-ready recipe: prepare and one training stage.
inline std::string seed_recipe(const std::string& extra_train = "",
                               const std::string& tokens = "6400") {
  return R"(name: s
seed: 5
threads: 1
data:
  domains: [general, code]
  max_bytes: 1M
  tokenizer: { vocab: 512, sample_bytes: 50k }
model: { d_model: 64, layers: 2, heads: 4, kv_heads: 4, ffn_hidden: 128, seq_len: 32 }
stages:
  data: { kind: prepare }
  seed: { kind: train, mix: { general: 0.5, code: 0.5 }, budget: { tokens: )" +
         tokens + R"( }, batch_size: 8,
          log_every: 1, optim: { lr: 3e-3, warmup: 5 })" +
         extra_train + R"( }
)";
}

/// The loss of every logged step of `stage`.
inline std::map<int64_t, double> losses(const std::string& store_path, const std::string& stage) {
  tracking::Store s(store_path, tracking::Store::Mode::kReadOnly);
  std::map<int64_t, double> out;
  for (const auto& row :
       s.select("SELECT m.step, m.value FROM metrics m JOIN jobs j ON j.id = m.job_id "
                "WHERE j.stage = ? AND m.key = 'loss'",
                {stage})
           .rows) {
    out[std::get<int64_t>(row[0])] = std::get<double>(row[1]);
  }
  return out;
}

inline size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

/// Each job directory's log names each Slurm attempt once: "[upcycle] slurm job ID (restart N)".
inline void expect_one_attempt_per_job(const std::string& root) {
  for (const auto& e : std::filesystem::directory_iterator(root + "/jobs")) {
    const std::string log = core::read_file((e.path() / "log.txt").string());
    EXPECT_EQ(count(log, "(restart 0)"), 1u) << e.path() << ":\n" << log;
  }
}

/// The path of the real `cmd` on PATH.
inline std::string real_command(const std::string& cmd) {
  const std::string out = core::run_process({"sh", "-c", "command -v " + cmd}).out;
  return out.substr(0, out.find('\n'));
}

/// Writes `bin`/`cmd` as a shell script with `body` and makes it executable.
inline void write_wrapper(const std::string& bin, const std::string& cmd, const std::string& body) {
  std::filesystem::create_directories(bin);
  core::write_file_atomic(bin + "/" + cmd, "#!/bin/sh\n" + body);
  std::filesystem::permissions(bin + "/" + cmd, std::filesystem::perms::owner_all);
}

/// `bin` first on PATH for this object's lifetime.
class PathPrefix {
 public:
  explicit PathPrefix(const std::string& bin) : old_(std::getenv("PATH")) {
    ::setenv("PATH", (bin + ":" + old_).c_str(), 1);
  }
  ~PathPrefix() { ::setenv("PATH", old_.c_str(), 1); }
  PathPrefix(const PathPrefix&) = delete;
  PathPrefix& operator=(const PathPrefix&) = delete;

 private:
  std::string old_;
};

}  // namespace upcycle::testing
