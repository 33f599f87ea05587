// Token shards: raw little-endian tokens with no header, the nanoGPT .bin layout and the .bin half
// of a Megatron indexed dataset (megatron_index.h), plus a sidecar "<shard>.json"
// {"dtype","tokens","sha256","sample_sha256","mtime_ns"} for the shards the prepare stage writes
// (uint16 for vocab <= 65536, else uint32). A user's file has no sidecar: its record lives in the
// data directory's parts list (domain_tokens.h). Read through mmap. No LibTorch.
// Start-up cost: the full sha256 is computed once, when the shard is written (prepare). Opening a
// shard for training checks its size, its mtime against the sidecar's and a sampled digest (64
// blocks of 64 KiB spread over the file, and its size): milliseconds for a terabyte, where the full
// hash runs at about 300 MB/s. A shard whose mtime changed, or a sidecar from before the sampled
// digest, is hashed in full; UPCYCLE_VERIFY_DATA=full (`upcycle run --verify-data full`) hashes
// every shard in full.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace upcycle::stages {

/// The width in bytes of a token dtype: uint8 1, uint16 and int16 2, int32 and uint32 4, int64 8;
/// 0 for any other name.
int token_width(const std::string& dtype);

struct ShardInfo {
  std::string dtype;  ///< a token_width() name
  int64_t tokens = 0;
  std::string sha256;
  std::string sample_sha256;  ///< sampled_digest of the file
  int64_t mtime_ns = 0;       ///< the file's modification time when the digests were taken
};

/// How much of a shard is checked against its sidecar when it is opened.
enum class ShardCheck {
  kSize,     ///< size (token count) only
  kSampled,  ///< size, mtime and the sampled digest; the full sha256 when the mtime changed
  kFull,     ///< size and the full sha256
};

/// sha256 over the size (8 bytes, little-endian) and 64 blocks of 64 KiB at evenly spaced offsets,
/// or over the whole of a file of at most 4 MiB.
std::string sampled_digest(const void* data, size_t bytes);
/// The modification time of `path` in nanoseconds (0 when it cannot be read).
int64_t mtime_ns(const std::string& path);
/// The digests and mtime of an existing file, for a sidecar (pretokenized.cpp).
void digest_file(const std::string& path, ShardInfo& info);

/// Writes `path` and `path`.json atomically. dtype follows `vocab`.
ShardInfo write_token_shard(const std::string& path, const std::vector<uint32_t>& tokens,
                            int64_t vocab);

/// A read-only memory-mapped shard. Movable, not copyable.
class TokenShard {
 public:
  /// Opens `path`. With a sidecar, checks it as `check` says (kSampled and kSize become kFull
  /// under UPCYCLE_VERIFY_DATA=full); without one, `dtype` must be given ("uint16"|"uint32", for
  /// user nanoGPT shards). Throws StageError naming the path and reason.
  explicit TokenShard(const std::string& path, ShardCheck check = ShardCheck::kSampled,
                      const std::string& dtype = "");
  /// Opens a user's file against the record taken when it was prepared (dtype, tokens, digests,
  /// mtime), checked as `check` says.
  TokenShard(const std::string& path, const ShardInfo& recorded, ShardCheck check);
  ~TokenShard();
  TokenShard(TokenShard&& other) noexcept;
  TokenShard& operator=(TokenShard&&) = delete;
  TokenShard(const TokenShard&) = delete;

  int64_t size() const { return tokens_; }
  /// Token i, widened (a signed dtype's negative token stays negative).
  int64_t at(int64_t i) const;
  const std::string& dtype() const { return dtype_; }
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
  int width_ = 0;
  std::string dtype_;

  void open(const ShardInfo* recorded, ShardCheck check);
};

}  // namespace upcycle::stages
