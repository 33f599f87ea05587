#include "stages/data/token_shard.h"

#include <algorithm>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/job_files.h"
#include "core/sha256.h"

namespace upcycle::stages {
namespace {

constexpr size_t kSampleBlocks = 64, kSampleBlock = 64 << 10;

ShardCheck effective(ShardCheck check) {
  const char* v = std::getenv("UPCYCLE_VERIFY_DATA");
  if (v && std::string(v) == "full" && check == ShardCheck::kSampled) return ShardCheck::kFull;
  return check;
}

nlohmann::json sidecar(const ShardInfo& info) {
  return {{"dtype", info.dtype},
          {"tokens", info.tokens},
          {"sha256", info.sha256},
          {"sample_sha256", info.sample_sha256},
          {"mtime_ns", info.mtime_ns}};
}

}  // namespace

std::string sampled_digest(const void* data, size_t bytes) {
  core::Sha256 h;
  uint64_t size = bytes;
  h.update(&size, sizeof(size));
  const auto* p = static_cast<const uint8_t*>(data);
  if (bytes <= kSampleBlocks * kSampleBlock) {
    h.update(p, bytes);
  } else {
    for (size_t i = 0; i < kSampleBlocks; ++i)
      h.update(p + i * ((bytes - kSampleBlock) / (kSampleBlocks - 1)), kSampleBlock);
  }
  return h.hex_digest();
}

int64_t mtime_ns(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 0;
  return int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

void digest_file(const std::string& path, ShardInfo& info) {
  info.mtime_ns = mtime_ns(path);
  info.sha256 = core::sha256_file(path);  // streamed
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || ::fstat(fd, &st) != 0) {
    if (fd >= 0) ::close(fd);
    throw StageError(path + ": cannot read: " + std::strerror(errno));
  }
  const auto bytes = static_cast<size_t>(st.st_size);
  void* data = bytes ? ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0) : nullptr;
  ::close(fd);
  if (data == MAP_FAILED) throw StageError(path + ": mmap failed: " + std::strerror(errno));
  info.sample_sha256 = sampled_digest(data, bytes);
  if (data) ::munmap(data, bytes);
}

ShardInfo write_token_shard(const std::string& path, const std::vector<uint32_t>& tokens,
                            int64_t vocab) {
  bool wide = vocab > 65536;
  std::string bytes;
  if (wide) {
    bytes.assign(reinterpret_cast<const char*>(tokens.data()), tokens.size() * 4);
  } else {
    std::vector<uint16_t> narrow(tokens.begin(), tokens.end());
    bytes.assign(reinterpret_cast<const char*>(narrow.data()), narrow.size() * 2);
  }
  ShardInfo info{wide ? "uint32" : "uint16", static_cast<int64_t>(tokens.size()),
                 core::sha256_hex(bytes), sampled_digest(bytes.data(), bytes.size()), 0};
  core::write_file_atomic(path, bytes);
  info.mtime_ns = mtime_ns(path);
  core::write_file_atomic(path + ".json", sidecar(info).dump() + "\n");
  return info;
}

TokenShard::TokenShard(const std::string& path, ShardCheck check, const std::string& dtype)
    : path_(path) {
  check = effective(check);
  std::string kind = dtype;
  ShardInfo info;
  bool has_meta = core::file_exists(path + ".json");
  if (has_meta) {
    try {
      auto meta = core::read_json_file(path + ".json");
      info = {meta.at("dtype").get<std::string>(), meta.at("tokens").get<int64_t>(),
              meta.at("sha256").get<std::string>(), meta.value("sample_sha256", std::string()),
              meta.value("mtime_ns", int64_t(0))};
    } catch (const nlohmann::json::exception& e) {
      throw StageError(path + ".json: malformed shard sidecar: " + e.what());
    } catch (const Error& e) {
      throw StageError(e.what());
    }
    kind = info.dtype;
  }
  if (kind != "uint16" && kind != "uint32") {
    throw StageError(path + ": unknown token dtype '" + kind + "' (expected uint16 or uint32)");
  }
  wide_ = kind == "uint32";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw StageError(path + ": cannot open token shard: " + std::strerror(errno));
  struct stat st;
  ::fstat(fd, &st);
  bytes_ = static_cast<size_t>(st.st_size);
  size_t width = wide_ ? 4 : 2;
  if (bytes_ % width != 0) {
    ::close(fd);
    throw StageError(path + ": size " + std::to_string(bytes_) + " is not a multiple of " +
                     std::to_string(width) + " bytes (" + kind +
                     " tokens); the shard is truncated");
  }
  tokens_ = static_cast<int64_t>(bytes_ / width);
  if (has_meta && tokens_ != info.tokens) {
    ::close(fd);
    throw StageError(path + ": holds " + std::to_string(tokens_) + " tokens, its sidecar says " +
                     std::to_string(info.tokens) + "; the shard is truncated or was replaced");
  }
  if (bytes_ > 0) {
    data_ = ::mmap(nullptr, bytes_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (data_ == MAP_FAILED) {
      ::close(fd);
      throw StageError(path + ": mmap failed: " + std::strerror(errno));
    }
  }
  ::close(fd);
  if (check == ShardCheck::kSampled &&
      (info.sample_sha256.empty() || info.mtime_ns == 0 || mtime_ns(path) != info.mtime_ns))
    check = ShardCheck::kFull;  // an older sidecar, or the file was touched since: hash it all
  if (check != ShardCheck::kSize && has_meta) {
    const bool full = check == ShardCheck::kFull;
    std::string digest;
    if (full) {
      core::Sha256 h;
      h.update(data_, bytes_);
      digest = h.hex_digest();
    } else {
      digest = sampled_digest(data_, bytes_);
    }
    if (digest != (full ? info.sha256 : info.sample_sha256)) {
      if (data_) ::munmap(const_cast<void*>(data_), bytes_);
      throw StageError(path + ": " + (full ? "sha256" : "sampled digest") +
                       " does not match its sidecar; the shard is corrupt or was replaced");
    }
  }
}

TokenShard::~TokenShard() {
  if (data_ && bytes_ > 0) ::munmap(const_cast<void*>(data_), bytes_);
}

TokenShard::TokenShard(TokenShard&& o) noexcept
    : path_(std::move(o.path_)),
      data_(o.data_),
      bytes_(o.bytes_),
      tokens_(o.tokens_),
      wide_(o.wide_) {
  o.data_ = nullptr;
  o.bytes_ = 0;
}

void TokenShard::copy_to(int64_t start, int64_t n, int64_t* out, int64_t vocab) const {
  uint32_t top = 0;
  for (int64_t i = 0; i < n; ++i)
    top = std::max(top, static_cast<uint32_t>(out[i] = at(start + i)));
  if (vocab <= 0 || top < static_cast<uint64_t>(vocab)) return;
  for (int64_t i = 0; i < n; ++i) {
    if (out[i] >= vocab) {
      throw StageError(
          path_ + ": token " + std::to_string(out[i]) + " at position " +
              std::to_string(start + i) + " is outside the model's vocabulary (" +
              std::to_string(vocab) + ")",
          "the data was tokenized for another model: prepare it with this model's tokenizer");
    }
  }
}

}  // namespace upcycle::stages
