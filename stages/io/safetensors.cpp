#include "stages/io/safetensors.h"

#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/job_files.h"

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
  if (file.empty() || file.find('/') != std::string::npos || file == "." || file == ".." ||
      file.find('\0') != std::string::npos) {
    throw StageError(index + ": shard '" + file +
                     "' is not a plain file name in the checkpoint directory");
  }
  return dir + "/" + file;
}

}  // namespace

std::string encode_safetensors(const TensorMap& tensors,
                               const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> data;
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    auto c = t.detach().to(torch::kCPU).contiguous();
    size_t bytes = byte_size(c);
    header[name] = {{"dtype", dtype_name(c.scalar_type())},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(c);
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // align the data section to 8 bytes, as the format allows
  std::string out(8, '\0');
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out[i] = char((n >> (8 * i)) & 0xff);
  out += h;
  out.reserve(out.size() + offset);
  for (const auto& c : data) out.append(static_cast<const char*>(c.data_ptr()), byte_size(c));
  return out;
}

TensorMap read_safetensors(const std::string& path, std::map<std::string, std::string>* metadata) {
  auto fail = [&](const std::string& why) {
    return StageError(path + ": not a valid safetensors file: " + why);
  };
  std::error_code ec;
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  if (ec) throw StageError(path + ": cannot read: " + ec.message());
  std::ifstream in(path, std::ios::binary);
  if (!in) throw StageError(path + ": cannot open for reading");
  if (file_size < 8) throw fail("shorter than its 8-byte header length");
  unsigned char len[8];
  in.read(reinterpret_cast<char*>(len), 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(len[i]) << (8 * i);
  if (n > file_size - 8) {
    throw fail("header length " + std::to_string(n) + " exceeds the file (" +
               std::to_string(file_size) + " bytes)");
  }
  if (n > kMaxHeaderBytes)
    throw fail("header length " + std::to_string(n) + " exceeds the format's 100 MB limit");
  std::string text(n, '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(n)))
    throw fail("the header cannot be read");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw fail(std::string("header is not JSON: ") + e.what());
  }
  if (!header.is_object()) throw fail("header is not a JSON object");
  const uint64_t data_start = 8 + n, data_size = file_size - data_start;
  TensorMap out;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      try {
        if (metadata) *metadata = info.get<std::map<std::string, std::string>>();
      } catch (const nlohmann::json::exception&) {
        throw fail("__metadata__ is not a mapping of strings");
      }
      continue;
    }
    Entry e;
    try {
      e = parse_entry(name, info, data_size, fail);
    } catch (const nlohmann::json::exception& x) {
      throw fail("tensor " + name + ": " + x.what());
    }
    auto t = torch::empty(e.shape, torch::TensorOptions().dtype(e.type));
    in.seekg(static_cast<std::streamoff>(data_start + e.begin));
    if (!in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(e.end - e.begin))) {
      throw fail("tensor " + name + ": read failed (the file is truncated or unreadable)");
    }
    out[name] = t;
  }
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
