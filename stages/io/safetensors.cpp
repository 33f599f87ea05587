#include "stages/io/safetensors.h"

#include <torch/torch.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"

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

}  // namespace

std::string encode_safetensors(const TensorMap& tensors,
                               const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> data;
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    auto c = t.detach().to(torch::kCPU).contiguous();
    size_t bytes = c.numel() * c.element_size();
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
  for (const auto& c : data) {
    out.append(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
  }
  return out;
}

TensorMap read_safetensors(const std::string& path, std::map<std::string, std::string>* metadata) {
  std::string bytes;
  try {
    bytes = core::read_file(path);
  } catch (const Error& e) {
    throw StageError(e.what());
  }
  auto fail = [&](const std::string& why) { return StageError(path + ": not a valid safetensors file: " + why); };
  if (bytes.size() < 8) throw fail("shorter than its 8-byte header length");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(bytes[i])) << (8 * i);
  if (n > bytes.size() - 8) throw fail("header length " + std::to_string(n) + " exceeds the file");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.substr(8, n));
  } catch (const nlohmann::json::exception& e) {
    throw fail(std::string("header is not JSON: ") + e.what());
  }
  const size_t data_start = 8 + n, data_size = bytes.size() - data_start;
  TensorMap out;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      if (metadata) *metadata = info.get<std::map<std::string, std::string>>();
      continue;
    }
    try {
      std::string dt = info.at("dtype").get<std::string>();
      auto shape = info.at("shape").get<std::vector<int64_t>>();
      auto offs = info.at("data_offsets").get<std::vector<size_t>>();
      const DtypeName* d = nullptr;
      for (const auto& cand : kDtypes) {
        if (dt == cand.name) d = &cand;
      }
      if (!d) throw fail("tensor " + name + " has unsupported dtype " + dt);
      auto t = torch::empty(shape, torch::TensorOptions().dtype(d->type));
      size_t want = t.numel() * t.element_size();
      if (offs.size() != 2 || offs[1] < offs[0] || offs[1] > data_size || offs[1] - offs[0] != want) {
        throw fail("tensor " + name + " has data offsets that do not match its shape or the file");
      }
      std::memcpy(t.data_ptr(), bytes.data() + data_start + offs[0], want);
      out[name] = t;
    } catch (const nlohmann::json::exception& e) {
      throw fail("tensor " + name + ": " + e.what());
    }
  }
  return out;
}

}  // namespace upcycle::stages
