// Megatron-LM's indexed datasets: PREFIX.bin holds every token, with no header, in the dtype the
// index names; PREFIX.idx describes them:
//   "MMIDIDX\0\0", u64 version (1), u8 dtype code, u64 sequence count S, u64 document count D,
//   int32 sequence lengths [S], int64 sequence byte offsets into .bin [S],
//   int64 document indices [D] (the first sequence of each document, from 0, ending with S).
// The dtype codes are Megatron's: 1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, 6 float64,
// 7 float32, 8 uint16; token files use uint16 or int32. The index is read through mmap and checked
// whole on open (offsets contiguous, indices increasing, sizes agreeing with .bin). No LibTorch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace upcycle::core {
class AtomicFileWriter;
}

namespace upcycle::stages {

/// PREFIX of "PREFIX.idx", "PREFIX.bin" or "PREFIX" when PREFIX.idx exists beside it; "" when
/// `path` names no Megatron dataset.
std::string megatron_prefix(const std::string& path);

class MegatronIndex {
 public:
  /// Opens and checks PREFIX.idx against PREFIX.bin's size. Throws StageError naming the file and
  /// what is wrong.
  explicit MegatronIndex(const std::string& prefix);
  ~MegatronIndex();
  MegatronIndex(const MegatronIndex&) = delete;
  MegatronIndex& operator=(const MegatronIndex&) = delete;

  const std::string& prefix() const { return prefix_; }
  const std::string& dtype() const { return dtype_; }  ///< a token_width() name
  int64_t sequences() const { return sequences_; }
  int64_t documents() const { return documents_; }
  int64_t tokens() const { return tokens_; }
  /// The token offset in .bin where document `d` starts, for d in [0, documents()];
  /// doc_start(documents()) == tokens().
  int64_t doc_start(int64_t d) const;

 private:
  std::string prefix_, dtype_;
  const uint8_t* map_ = nullptr;
  size_t bytes_ = 0;
  int64_t sequences_ = 0, documents_ = 0, tokens_ = 0;
  int width_ = 0;
  const int64_t* pointers_ = nullptr;
  const int64_t* doc_index_ = nullptr;
};

/// Writes PREFIX.bin and PREFIX.idx (one sequence per document) atomically, each through a
/// temporary file renamed into place, .bin first. Streaming: add documents one at a time; memory
/// holds the index only (12 bytes per document).
class MegatronWriter {
 public:
  /// dtype "uint16" (vocab <= 65536) or "int32".
  MegatronWriter(const std::string& prefix, const std::string& dtype);
  ~MegatronWriter();
  MegatronWriter(const MegatronWriter&) = delete;
  MegatronWriter& operator=(const MegatronWriter&) = delete;

  void add_document(const std::vector<uint32_t>& tokens);
  /// Writes the index and renames both files into place. Throws StageError on an I/O error.
  /// Destroyed before finish(), the writer leaves no file behind.
  void finish();
  int64_t tokens() const { return tokens_; }

 private:
  std::string prefix_, dtype_;
  std::unique_ptr<core::AtomicFileWriter> bin_;
  std::string buffer_;  ///< tokens not yet written to bin_
  std::vector<int32_t> lengths_;
  int64_t tokens_ = 0;
};

}  // namespace upcycle::stages
