// Pre-tokenized corpora: nanoGPT-style .bin shards (raw little-endian uint16 or uint32 tokens, no
// header) that a user tokenized elsewhere. The prepare stage checks them (size, vocabulary range),
// hashes them, and links them into the data directory's layout (data_layout.h) with a sidecar, so
// training and eval read them like shards it wrote itself and notice when a file changes later.
// No LibTorch.
#pragma once

#include <cstdint>
#include <string>

namespace upcycle::stages {

/// One domain's shards. Empty paths default from `dir` in nanoGPT's layout: train.bin, val.bin, and
/// test.bin when present (else the validation shard doubles as the test split, with a warning).
struct PretokenizedShards {
  std::string dir;
  std::string train, valid, test;
  std::string dtype;  ///< "uint16" | "uint32"
};

/// The shard paths after the defaults above; throws StageError when a path cannot be resolved.
PretokenizedShards resolve_shard_paths(const PretokenizedShards& s);

struct LinkedShard {
  std::string source;  ///< absolute path of the user's file
  std::string sha256;
  int64_t tokens = 0;
  int64_t bytes = 0;
};

/// Checks `source` (readable, a whole number of tokens, not empty, every token < vocab), then makes
/// `dest` a symlink to it with a "<dest>.json" sidecar holding its dtype, token count and sha256.
/// Throws StageError naming the file and the reason.
LinkedShard link_pretokenized_shard(const std::string& source, const std::string& dtype,
                                    int64_t vocab, const std::string& dest);

}  // namespace upcycle::stages
