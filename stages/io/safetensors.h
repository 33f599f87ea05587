// safetensors reader and writer (https://github.com/huggingface/safetensors format): an 8-byte
// little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__":
// {}}, then the raw little-endian tensor bytes. Dtypes read and written: F32, F16, BF16, I64, I32.
//
// A checkpoint directory in Hugging Face's layout holds either one `model.safetensors` or shards
// `model-0000i-of-0000n.safetensors` listed by `model.safetensors.index.json` ({"metadata":
// {"total_size": bytes}, "weight_map": {tensor: shard file}}). Reads stream tensor by tensor (a
// file is never held whole in memory) and check everything a hostile file could get wrong: a header
// longer than the file or than kMaxHeaderBytes, offsets outside the data or disagreeing with the
// shape, an unknown dtype, a shard name that is not a plain file name, a tensor in two shards.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace upcycle::stages {

using TensorMap = std::map<std::string, at::Tensor>;

inline constexpr const char* kSafetensorsIndexFile = "model.safetensors.index.json";
inline constexpr uint64_t kMaxHeaderBytes = 100u << 20;  // the format's own limit (100 MB)

/// Serialises tensors (moved to CPU, made contiguous) with string metadata; the bytes of a file.
std::string encode_safetensors(const TensorMap& tensors,
                               const std::map<std::string, std::string>& metadata = {});

/// Parses a safetensors file. Throws upcycle::StageError naming `path`, the tensor where there is
/// one, and the reason (truncated, header not JSON or longer than the file, offsets out of range,
/// unsupported dtype).
TensorMap read_safetensors(const std::string& path,
                           std::map<std::string, std::string>* metadata = nullptr);

/// The tensors of a Hugging Face checkpoint directory: `model.safetensors`, or the shards its
/// index lists. Throws StageError naming the file and tensor.
TensorMap read_safetensors_dir(const std::string& dir);

/// Writes `tensors` into `dir` (which must exist) as Hugging Face does: one `model.safetensors`
/// when they fit in `max_shard_bytes`, else shards of at most that size (a larger tensor gets a
/// shard of its own) and the index. Each file is written atomically. Returns the file names
/// written.
std::vector<std::string> write_safetensors_dir(const std::string& dir, const TensorMap& tensors,
                                               const std::map<std::string, std::string>& metadata,
                                               uint64_t max_shard_bytes);

}  // namespace upcycle::stages
