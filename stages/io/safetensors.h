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
#include <utility>
#include <vector>

namespace upcycle::stages {

using TensorMap = std::map<std::string, at::Tensor>;

inline constexpr const char* kSafetensorsIndexFile = "model.safetensors.index.json";
inline constexpr uint64_t kMaxHeaderBytes = 100u << 20;  // the format's own limit (100 MB)

/// A name that stays inside its directory: not empty, no '/', not "." or "..", no NUL. Shard names
/// read from an index or a checkpoint manifest must be one.
bool is_plain_file_name(const std::string& name);

/// Serialises tensors (moved to CPU, made contiguous) with string metadata; the bytes of a file.
std::string encode_safetensors(const TensorMap& tensors,
                               const std::map<std::string, std::string>& metadata = {});

/// A file's sha256 and size, as a writer computed them while writing.
struct WrittenFile {
  std::string sha256;
  uint64_t bytes = 0;
};

/// Writes `tensors` in their order to `path`, atomically and streamed: each is copied to the host
/// and written in turn, so memory holds at most one tensor's copy (a checkpoint shard of tens of
/// GB). Throws StageError naming the path.
WrittenFile write_safetensors_streamed(
    const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
    const std::map<std::string, std::string>& metadata = {});

/// An open safetensors file whose header has been parsed and checked; tensors, or a range of a
/// tensor's elements, are read on demand. Throws StageError as read_safetensors does.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return entries_.count(name) > 0; }
  int64_t numel(const std::string& name) const;
  /// The whole tensor, on the CPU.
  at::Tensor read(const std::string& name) const;
  /// Elements [lo, lo + n) of the tensor in row-major order, as a 1-D CPU tensor.
  at::Tensor read_flat(const std::string& name, int64_t lo, int64_t n) const;

 private:
  struct Info {
    at::ScalarType type;
    std::vector<int64_t> shape;
    uint64_t begin = 0, end = 0;
  };
  void parse_header(uint64_t file_size);
  const Info& info(const std::string& name) const;
  void read_at(void* dst, uint64_t n, uint64_t offset, const std::string& what) const;

  std::string path_;
  int fd_ = -1;
  uint64_t data_start_ = 0;
  std::map<std::string, Info> entries_;
  std::map<std::string, std::string> metadata_;
};

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
