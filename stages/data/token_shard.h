// Token shards: raw little-endian uint16 (vocab <= 65536) or uint32 tokens, the nanoGPT .bin
// layout, plus a sidecar "<shard>.json" {"dtype","tokens","sha256"}. Read through mmap. No
// LibTorch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace upcycle::stages {

struct ShardInfo {
  std::string dtype;  ///< "uint16" | "uint32"
  int64_t tokens = 0;
  std::string sha256;
};

/// Writes `path` and `path`.json atomically. dtype follows `vocab`.
ShardInfo write_token_shard(const std::string& path, const std::vector<uint32_t>& tokens,
                            int64_t vocab);

/// A read-only memory-mapped shard. Movable, not copyable.
class TokenShard {
 public:
  /// Opens `path`. With a sidecar, checks size (and sha256 when verify); without one, `dtype` must
  /// be given ("uint16"|"uint32", for user nanoGPT shards). Throws StageError naming the path and
  /// reason.
  explicit TokenShard(const std::string& path, bool verify = true, const std::string& dtype = "");
  ~TokenShard();
  TokenShard(TokenShard&& other) noexcept;
  TokenShard& operator=(TokenShard&&) = delete;
  TokenShard(const TokenShard&) = delete;

  int64_t size() const { return tokens_; }
  uint32_t at(int64_t i) const {
    return wide_ ? static_cast<const uint32_t*>(data_)[i] : static_cast<const uint16_t*>(data_)[i];
  }
  /// Copies tokens [start, start+n) into `out` as int64 (the layout at::Tensor wants). With `vocab`
  /// > 0, a token >= vocab is a StageError naming the shard and the position (an embedding lookup
  /// would otherwise fail inside LibTorch).
  void copy_to(int64_t start, int64_t n, int64_t* out, int64_t vocab = 0) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const void* data_ = nullptr;
  size_t bytes_ = 0;
  int64_t tokens_ = 0;
  bool wide_ = false;
};

}  // namespace upcycle::stages
