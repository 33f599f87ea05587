// safetensors reader and writer (https://github.com/huggingface/safetensors format): an 8-byte
// little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {}},
// then the raw little-endian tensor bytes. Supported dtypes: F32, F16, BF16, I64, I32.
#pragma once

#include <ATen/Tensor.h>

#include <map>
#include <string>

namespace upcycle::stages {

using TensorMap = std::map<std::string, at::Tensor>;

/// Serialises tensors (moved to CPU, made contiguous) with string metadata; the bytes of a file.
std::string encode_safetensors(const TensorMap& tensors,
                               const std::map<std::string, std::string>& metadata = {});

/// Parses a safetensors file. Throws upcycle::StageError naming `path` and the reason (truncated,
/// header not JSON, offsets out of range, unsupported dtype).
TensorMap read_safetensors(const std::string& path,
                           std::map<std::string, std::string>* metadata = nullptr);

}  // namespace upcycle::stages
