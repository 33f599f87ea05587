// SHA-256 (FIPS 180-4), used for content keys, checkpoint and shard integrity, and data manifests.
#pragma once

#include <cstdint>
#include <string>

namespace upcycle::core {

/// Incremental SHA-256. Not thread-safe; one hasher per thread.
class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  void update(const std::string& s) { update(s.data(), s.size()); }
  /// Finishes and returns 64 lowercase hex characters. The hasher must not be updated afterwards.
  std::string hex_digest();

 private:
  void compress(const uint8_t* block);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_bytes_ = 0;
};

std::string sha256_hex(const std::string& data);
/// Hashes a file in chunks. Throws upcycle::Error naming the path when it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace upcycle::core
