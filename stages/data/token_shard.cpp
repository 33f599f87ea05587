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

int token_width(const std::string& dtype) {
  if (dtype == "uint8") return 1;
  if (dtype == "uint16" || dtype == "int16") return 2;
  if (dtype == "int32" || dtype == "uint32") return 4;
  if (dtype == "int64") return 8;
  return 0;
}

TokenShard::TokenShard(const std::string& path, ShardCheck check, const std::string& dtype)
    : path_(path), dtype_(dtype) {
  ShardInfo info;
  if (!core::file_exists(path + ".json")) {
    open(nullptr, effective(check));
    return;
  }
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
  dtype_ = info.dtype;
  open(&info, effective(check));
}

TokenShard::TokenShard(const std::string& path, const ShardInfo& recorded, ShardCheck check)
    : path_(path), dtype_(recorded.dtype) {
  open(&recorded, effective(check));
}

void TokenShard::open(const ShardInfo* info, ShardCheck check) {
  const int width = width_ = token_width(dtype_);
  if (width == 0) {
    throw StageError(path_ + ": unknown token dtype '" + dtype_ +
                     "' (expected uint8, uint16, int16, int32, uint32 or int64)");
  }
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw StageError(path_ + ": cannot open token shard: " + std::strerror(errno));
  struct stat st;
  ::fstat(fd, &st);
  bytes_ = static_cast<size_t>(st.st_size);
  if (bytes_ % width != 0) {
    ::close(fd);
    throw StageError(path_ + ": size " + std::to_string(bytes_) + " is not a multiple of " +
                     std::to_string(width) + " bytes (" + dtype_ +
                     " tokens); the shard is truncated");
  }
  tokens_ = static_cast<int64_t>(bytes_ / width);
  if (info && tokens_ != info->tokens) {
    ::close(fd);
    throw StageError(path_ + ": holds " + std::to_string(tokens_) + " tokens, its record says " +
                     std::to_string(info->tokens) + "; the shard is truncated or was replaced");
  }
  if (bytes_ > 0) {
    data_ = ::mmap(nullptr, bytes_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (data_ == MAP_FAILED) {
      data_ = nullptr;
      ::close(fd);
      throw StageError(path_ + ": mmap failed: " + std::strerror(errno));
    }
  }
  ::close(fd);
  if (!info || check == ShardCheck::kSize) return;
  if (check == ShardCheck::kSampled &&
      (info->sample_sha256.empty() || info->mtime_ns == 0 || mtime_ns(path_) != info->mtime_ns))
    check = ShardCheck::kFull;  // an older sidecar, or the file was touched since: hash it all
  const bool full = check == ShardCheck::kFull;
  std::string digest;
  if (full) {
    core::Sha256 h;
    h.update(data_, bytes_);
    digest = h.hex_digest();
  } else {
    digest = sampled_digest(data_, bytes_);
  }
  if (digest != (full ? info->sha256 : info->sample_sha256)) {
    if (data_) ::munmap(const_cast<void*>(data_), bytes_);
    data_ = nullptr;
    throw StageError(path_ + ": " + (full ? "sha256" : "sampled digest") +
                     " does not match its record; the shard is corrupt or was replaced");
  }
}

int64_t TokenShard::at(int64_t i) const {
  switch (width_) {
    case 1:
      return static_cast<const uint8_t*>(data_)[i];
    case 2:
      return dtype_ == "int16" ? int64_t(static_cast<const int16_t*>(data_)[i])
                               : int64_t(static_cast<const uint16_t*>(data_)[i]);
    case 4:
      return dtype_ == "int32" ? int64_t(static_cast<const int32_t*>(data_)[i])
                               : int64_t(static_cast<const uint32_t*>(data_)[i]);
    default:
      return static_cast<const int64_t*>(data_)[i];
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
      width_(o.width_),
      dtype_(std::move(o.dtype_)) {
  o.data_ = nullptr;
  o.bytes_ = 0;
}

void TokenShard::copy_to(int64_t start, int64_t n, int64_t* out, int64_t vocab) const {
  const auto* p = static_cast<const uint8_t*>(data_) + start * width_;
  if (dtype_ == "uint16") {  // the common cases without a switch per token
    const auto* t = reinterpret_cast<const uint16_t*>(p);
    for (int64_t i = 0; i < n; ++i) out[i] = t[i];
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = at(start + i);
  }
  if (vocab <= 0) return;
  int64_t lo = 0, hi = 0;
  for (int64_t i = 0; i < n; ++i) {
    lo = std::min(lo, out[i]);
    hi = std::max(hi, out[i]);
  }
  if (lo >= 0 && hi < vocab) return;
  for (int64_t i = 0; i < n; ++i) {
    if (out[i] < 0 || out[i] >= vocab) {
      throw StageError(
          path_ + ": token " + std::to_string(out[i]) + " at position " +
              std::to_string(start + i) + " is outside the model's vocabulary (" +
              std::to_string(vocab) + ")",
          "the data was tokenized for another model: prepare it with this model's tokenizer");
    }
  }
}

}  // namespace upcycle::stages
