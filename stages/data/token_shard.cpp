#include "stages/data/token_shard.h"

#include <algorithm>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/job_files.h"
#include "core/sha256.h"

namespace upcycle::stages {

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
                 core::sha256_hex(bytes)};
  core::write_file_atomic(path, bytes);
  nlohmann::json meta = {{"dtype", info.dtype}, {"tokens", info.tokens}, {"sha256", info.sha256}};
  core::write_file_atomic(path + ".json", meta.dump() + "\n");
  return info;
}

TokenShard::TokenShard(const std::string& path, bool verify, const std::string& dtype)
    : path_(path) {
  std::string kind = dtype;
  ShardInfo info;
  bool has_meta = core::file_exists(path + ".json");
  if (has_meta) {
    try {
      auto meta = core::read_json_file(path + ".json");
      info = {meta.at("dtype").get<std::string>(), meta.at("tokens").get<int64_t>(),
              meta.at("sha256").get<std::string>()};
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
  if (verify && has_meta) {
    core::Sha256 h;
    h.update(data_, bytes_);
    if (h.hex_digest() != info.sha256) {
      if (data_) ::munmap(const_cast<void*>(data_), bytes_);
      throw StageError(path + ": sha256 does not match its sidecar; the shard is corrupt");
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
