// Raw text at scale: JSONL files, plain, gzip (.jsonl.gz) or zstd (.jsonl.zst), read a line at a
// time and tokenized in one streaming pass into Megatron indexed datasets (megatron_index.h), so
// that a corpus tokenized here reads downstream exactly like one tokenized by Megatron-LM. Memory
// is bounded by the longest line plus the index (12 bytes per document); files are tokenized in
// parallel, one per thread. No LibTorch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "stages/data/tokenizer.h"

namespace upcycle::stages {

/// Whether `path` names a file this reader takes: .jsonl, .jsonl.gz or .jsonl.zst.
bool is_jsonl_file(const std::string& path);

/// A file's lines, decompressed on the fly as its name says. Throws StageError naming the path.
class LineReader {
 public:
  explicit LineReader(const std::string& path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;
  /// The next line without its '\n'; false at the end of the file.
  bool next(std::string& line);
  int64_t bytes_read() const { return bytes_; }  ///< decompressed
  struct Source;                                 ///< gzip/plain or zstd (jsonl_tokenize.cpp)

 private:
  std::unique_ptr<Source> src_;
  std::string buf_;
  size_t at_ = 0;
  bool eof_ = false;
  int64_t bytes_ = 0;
};

struct JsonlTokenized {
  int64_t documents = 0, tokens = 0, text_bytes = 0;
};

/// Tokenizes the string field `text_field` of every line of `path` with `tok`, an end-of-sequence
/// token after each document (Megatron's --append-eod), into the dataset PREFIX (.bin and .idx,
/// written atomically; uint16 when the vocabulary fits, else int32). Throws StageError naming
/// path:line for a line that is not a JSON object with that string field.
JsonlTokenized tokenize_jsonl(const std::string& path, const std::string& text_field,
                              const Tokenizer& tok, const std::string& prefix);

/// tokenize_jsonl for paths[i] -> prefixes[i], on up to `threads` threads. The first error (in
/// file order) is thrown once every thread has stopped.
std::vector<JsonlTokenized> tokenize_jsonl_files(const std::vector<std::string>& paths,
                                                 const std::vector<std::string>& prefixes,
                                                 const std::string& text_field,
                                                 const Tokenizer& tok, int threads);

}  // namespace upcycle::stages
