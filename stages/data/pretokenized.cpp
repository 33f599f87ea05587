#include "stages/data/pretokenized.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/sha256.h"
#include "stages/data/token_shard.h"

namespace fs = std::filesystem;

namespace upcycle::stages {

PretokenizedShards resolve_shard_paths(const PretokenizedShards& s) {
  PretokenizedShards r = s;
  auto in_dir = [&](const std::string& name) { return (fs::path(s.dir) / name).string(); };
  if (r.train.empty() || r.valid.empty() || r.test.empty()) {
    if (s.dir.empty())
      throw StageError("pre-tokenized shards: give dir, or train, valid and test paths");
  }
  if (r.train.empty()) r.train = in_dir("train.bin");
  if (r.valid.empty()) r.valid = in_dir("val.bin");
  if (r.test.empty()) {
    std::error_code ec;
    r.test = fs::exists(in_dir("test.bin"), ec) ? in_dir("test.bin") : r.valid;
    if (r.test == r.valid) {
      core::log_warn("pre-tokenized shards: " + s.dir + " has no test.bin; the test split is " +
                     r.valid);
    }
  }
  return r;
}

LinkedShard link_pretokenized_shard(const std::string& source, const std::string& dtype,
                                    int64_t vocab, const std::string& dest) {
  std::error_code ec;
  fs::path abs = fs::absolute(source, ec);
  if (ec || !fs::is_regular_file(abs, ec)) {
    throw StageError(source + ": pre-tokenized shard not found (or not a regular file)");
  }
  LinkedShard out;
  out.source = fs::weakly_canonical(abs, ec).string();
  {
    // No sidecar: the dtype comes from the recipe. Size must be a whole number of tokens.
    TokenShard shard(out.source, ShardCheck::kSize, dtype);
    if (shard.size() == 0) throw StageError(source + ": pre-tokenized shard is empty");
    for (int64_t i = 0; i < shard.size(); ++i) {
      if (shard.at(i) >= static_cast<uint64_t>(vocab)) {
        throw StageError(
            source + ": token " + std::to_string(shard.at(i)) + " at position " +
                std::to_string(i) + " is outside the vocabulary (" + std::to_string(vocab) + ")",
            "set data.tokenizer.vocab to the tokenizer's size, or check the shard's dtype");
      }
    }
    out.tokens = shard.size();
  }
  out.bytes = static_cast<int64_t>(fs::file_size(out.source));
  ShardInfo info;
  digest_file(out.source, info);
  out.sha256 = info.sha256;
  nlohmann::json meta = {{"dtype", dtype},
                         {"tokens", out.tokens},
                         {"sha256", info.sha256},
                         {"sample_sha256", info.sample_sha256},
                         {"mtime_ns", info.mtime_ns},
                         {"source", out.source}};
  core::write_file_atomic(dest + ".json", meta.dump() + "\n");
  // The sidecar first, then the link under a temporary name renamed over dest: a reader never sees
  // a shard without its sidecar, or a half-made link.
  const std::string tmp = dest + ".tmp.link";
  fs::remove(tmp, ec);
  fs::create_symlink(out.source, tmp, ec);
  if (!ec) fs::rename(tmp, dest, ec);
  if (ec)
    throw StageError(dest + ": cannot link the pre-tokenized shard " + out.source + ": " +
                     ec.message());
  return out;
}

}  // namespace upcycle::stages
