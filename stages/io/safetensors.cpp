#include "stages/io/safetensors.h"

#include <torch/torch.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/job_files.h"
#include "core/sha256.h"

namespace upcycle::stages {
namespace {

struct DtypeName {
  at::ScalarType type;
  const char* name;
};
constexpr DtypeName kDtypes[] = {{at::kFloat, "F32"},
                                 {at::kHalf, "F16"},
                                 {at::kBFloat16, "BF16"},
                                 {at::kLong, "I64"},
                                 {at::kInt, "I32"}};

const char* dtype_name(at::ScalarType t) {
  for (const auto& d : kDtypes) {
    if (d.type == t) return d.name;
  }
  throw InternalError(std::string("safetensors: unsupported dtype ") + c10::toString(t));
}

size_t byte_size(const at::Tensor& t) { return static_cast<size_t>(t.numel()) * t.element_size(); }

// One tensor's entry of a header, checked against the data section's size.
struct Entry {
  at::ScalarType type;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

Entry parse_entry(const std::string& name, const nlohmann::json& info, uint64_t data_size,
                  const std::function<StageError(const std::string&)>& fail) {
  if (!info.is_object()) throw fail("tensor " + name + ": entry is not an object");
  Entry e;
  const std::string dt = info.at("dtype").get<std::string>();
  const DtypeName* d = nullptr;
  for (const auto& cand : kDtypes) {
    if (dt == cand.name) d = &cand;
  }
  if (!d)
    throw fail("tensor " + name + " has dtype " + dt +
               ", which upcycle does not read (F32, F16, BF16, I64, I32)");
  e.type = d->type;
  e.shape = info.at("shape").get<std::vector<int64_t>>();
  uint64_t want = c10::elementSize(e.type);
  for (int64_t s : e.shape) {
    if (s < 0 || (s > 0 && want > (uint64_t(1) << 62) / uint64_t(s)))
      throw fail("tensor " + name + " has an invalid shape");
    want *= uint64_t(s);
  }
  auto offs = info.at("data_offsets").get<std::vector<uint64_t>>();
  if (offs.size() != 2 || offs[1] < offs[0] || offs[1] - offs[0] != want) {
    throw fail("tensor " + name + ": data offsets do not match its shape and dtype");
  }
  if (offs[1] > data_size) {
    throw fail("tensor " + name + " ends at byte " + std::to_string(offs[1]) +
               " of a data section of " + std::to_string(data_size) + " (the file is truncated)");
  }
  e.begin = offs[0];
  e.end = offs[1];
  return e;
}

// Names a shard file of an index: a plain file name in the directory, nothing else.
std::string shard_path(const std::string& dir, const std::string& file, const std::string& index) {
  if (!is_plain_file_name(file)) {
    throw StageError(index + ": shard '" + file +
                     "' is not a plain file name in the checkpoint directory");
  }
  return dir + "/" + file;
}

}  // namespace

namespace {

// The 8-byte length and the JSON header of `tensors` laid out in their order (data offsets only:
// no tensor data is read).
std::string header_block(const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                         const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    const size_t bytes = byte_size(t);
    header[name] = {{"dtype", dtype_name(t.scalar_type())},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // align the data section to 8 bytes, as the format allows
  std::string out(8, '\0');
  const uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out[i] = char((n >> (8 * i)) & 0xff);
  return out + h;
}

}  // namespace

bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name.find('/') == std::string::npos && name != "." && name != ".." &&
         name.find('\0') == std::string::npos;
}

std::string encode_safetensors(const TensorMap& tensors,
                               const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, at::Tensor>> data;
  size_t total = 0;
  for (const auto& [name, t] : tensors) {
    data.emplace_back(name, t.detach().to(torch::kCPU).contiguous());
    total += byte_size(data.back().second);
  }
  std::string out = header_block(data, metadata);
  out.reserve(out.size() + total);
  for (const auto& [name, c] : data)
    out.append(static_cast<const char*>(c.data_ptr()), byte_size(c));
  return out;
}

WrittenFile write_safetensors_streamed(
    const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
    const std::map<std::string, std::string>& metadata) {
  WrittenFile out;
  core::Sha256 sha;
  try {
    core::AtomicFileWriter file(path);
    auto put = [&](const void* data, size_t n) {
      file.write(data, n);
      sha.update(data, n);
    };
    const std::string head = header_block(tensors, metadata);
    put(head.data(), head.size());
    for (const auto& [name, t] : tensors) {  // one host copy at a time
      const at::Tensor c = t.detach().to(torch::kCPU).contiguous();
      put(c.data_ptr(), byte_size(c));
    }
    file.commit();
    out.bytes = file.bytes_written();
  } catch (const Error& e) {
    throw StageError(e.what());
  }
  out.sha256 = sha.hex_digest();
  return out;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  std::error_code ec;
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  if (ec) throw StageError(path + ": cannot read: " + ec.message());
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw StageError(path + ": cannot open for reading: " + std::strerror(errno));
  try {
    parse_header(file_size);
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

void SafetensorsFile::parse_header(uint64_t file_size) {
  const std::string& path = path_;
  auto fail = [&](const std::string& why) {
    return StageError(path + ": not a valid safetensors file: " + why);
  };
  if (file_size < 8) throw fail("shorter than its 8-byte header length");
  unsigned char len[8];
  read_at(len, 8, 0, "the header length");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(len[i]) << (8 * i);
  if (n > file_size - 8) {
    throw fail("header length " + std::to_string(n) + " exceeds the file (" +
               std::to_string(file_size) + " bytes)");
  }
  if (n > kMaxHeaderBytes)
    throw fail("header length " + std::to_string(n) + " exceeds the format's 100 MB limit");
  std::string text(n, '\0');
  read_at(text.data(), n, 8, "the header");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw fail(std::string("header is not JSON: ") + e.what());
  }
  if (!header.is_object()) throw fail("header is not a JSON object");
  data_start_ = 8 + n;
  const uint64_t data_size = file_size - data_start_;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      try {
        metadata_ = info.get<std::map<std::string, std::string>>();
      } catch (const nlohmann::json::exception&) {
        throw fail("__metadata__ is not a mapping of strings");
      }
      continue;
    }
    try {
      Entry e = parse_entry(name, info, data_size, fail);
      entries_[name] = {e.type, e.shape, e.begin, e.end};
    } catch (const nlohmann::json::exception& x) {
      throw fail("tensor " + name + ": " + x.what());
    }
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (fd_ >= 0) ::close(fd_);
}

void SafetensorsFile::read_at(void* dst, uint64_t n, uint64_t offset,
                              const std::string& what) const {
  auto* p = static_cast<char*>(dst);
  while (n > 0) {
    const ssize_t got = ::pread(fd_, p, n, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      throw StageError(path_ + ": not a valid safetensors file: " + what +
                       ": read failed (the file is truncated or unreadable)");
    }
    p += got;
    n -= uint64_t(got);
    offset += uint64_t(got);
  }
}

const SafetensorsFile::Info& SafetensorsFile::info(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) throw StageError(path_ + ": has no tensor " + name);
  return it->second;
}

at::Tensor SafetensorsFile::read(const std::string& name) const {
  const Info& e = info(name);
  auto t = torch::empty(e.shape, torch::TensorOptions().dtype(e.type));
  read_at(t.data_ptr(), e.end - e.begin, data_start_ + e.begin, "tensor " + name);
  return t;
}

at::Tensor SafetensorsFile::read_flat(const std::string& name, int64_t lo, int64_t n) const {
  const Info& e = info(name);
  const uint64_t elem = c10::elementSize(e.type);
  if (lo < 0 || n < 0 || uint64_t(lo + n) * elem > e.end - e.begin) {
    throw StageError(path_ + ": elements [" + std::to_string(lo) + ", " + std::to_string(lo + n) +
                     ") are outside tensor " + name);
  }
  auto t = torch::empty({n}, torch::TensorOptions().dtype(e.type));
  read_at(t.data_ptr(), uint64_t(n) * elem, data_start_ + e.begin + uint64_t(lo) * elem,
          "tensor " + name);
  return t;
}

int64_t SafetensorsFile::numel(const std::string& name) const {
  const Info& e = info(name);
  return int64_t((e.end - e.begin) / c10::elementSize(e.type));
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (const auto& [name, e] : entries_) out.push_back(name);
  return out;
}

TensorMap read_safetensors(const std::string& path, std::map<std::string, std::string>* metadata) {
  const SafetensorsFile file(path);
  if (metadata) *metadata = file.metadata();
  TensorMap out;
  for (const auto& name : file.names()) out[name] = file.read(name);
  return out;
}

TensorMap read_safetensors_dir(const std::string& dir) {
  const std::string single = dir + "/model.safetensors", index = dir + "/" + kSafetensorsIndexFile;
  if (!std::filesystem::exists(index)) {
    if (!std::filesystem::exists(single)) {
      throw StageError(dir + ": no model.safetensors and no " + kSafetensorsIndexFile +
                       " (only safetensors checkpoints are read; convert .bin/.pt files with "
                       "transformers first)");
    }
    return read_safetensors(single);
  }
  std::map<std::string, std::vector<std::string>> by_file;  // shard -> tensors it should hold
  try {
    auto doc = core::read_json_file(index);
    for (const auto& [name, file] : doc.at("weight_map").items())
      by_file[file.get<std::string>()].push_back(name);
  } catch (const nlohmann::json::exception& e) {
    throw StageError(index + ": not a safetensors index (" + e.what() + ")");
  } catch (const Error& e) {
    throw StageError(e.what());
  }
  if (by_file.empty()) throw StageError(index + ": weight_map lists no tensors");
  TensorMap out;
  for (const auto& [file, names] : by_file) {
    const std::string path = shard_path(dir, file, index);
    TensorMap shard = read_safetensors(path);
    for (const auto& name : names) {
      auto it = shard.find(name);
      if (it == shard.end())
        throw StageError(index + ": tensor " + name + " is mapped to " + file + ", which lacks it");
      out[name] = it->second;
    }
  }
  return out;
}

std::vector<std::string> write_safetensors_dir(const std::string& dir, const TensorMap& tensors,
                                               const std::map<std::string, std::string>& metadata,
                                               uint64_t max_shard_bytes) {
  std::vector<TensorMap> shards(1);
  uint64_t in_shard = 0, total = 0;
  for (const auto& [name, t] : tensors) {
    const uint64_t b = byte_size(t);
    if (in_shard > 0 && in_shard + b > max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back()[name] = t;
    in_shard += b;
    total += b;
  }
  if (shards.size() == 1) {
    core::write_file_atomic(dir + "/model.safetensors", encode_safetensors(tensors, metadata));
    return {"model.safetensors"};
  }
  std::vector<std::string> files;
  nlohmann::json weight_map = nlohmann::json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    core::write_file_atomic(dir + "/" + name, encode_safetensors(shards[i], metadata));
    for (const auto& [tensor, t] : shards[i]) weight_map[tensor] = name;
    files.push_back(name);
  }
  nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  core::write_file_atomic(dir + "/" + kSafetensorsIndexFile, index.dump(2) + "\n");
  files.push_back(kSafetensorsIndexFile);
  return files;
}

}  // namespace upcycle::stages
