// Pre-tokenized corpora that a user tokenized elsewhere: nanoGPT .bin files (raw little-endian
// tokens, no header, the dtype from the recipe) and Megatron indexed datasets (.bin + .idx, the
// dtype from the index), listed per domain as files, globs or directories with weights. The
// prepare stage checks every file (index, size, vocabulary range, the plausibility of a declared
// dtype), hashes it once, and writes each split's parts list (domain_tokens.h) into the data
// directory's layout (data_layout.h), so training and evaluation read them like shards it wrote
// itself and notice when a file changes later. No LibTorch.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "stages/data/domain_tokens.h"

namespace upcycle::stages {

/// Megatron-LM's default --split: documents 969 : 30 : 1 to train, valid and test.
inline constexpr const char* kDefaultDocumentSplit = "969,30,1";

/// A file, glob or directory of a domain, and its weight in the blend (0: not given).
struct ShardEntry {
  std::string pattern;
  double weight = 0;
};

/// One domain's pre-tokenized files. Either the splits are separate files (train, valid, test;
/// `dir` alone means nanoGPT's layout: train.bin, val.bin and test.bin when present, else the
/// validation file doubles as the test split) or `files` are split by document in the ratio
/// `split` (Megatron's way; `dir` holding Megatron datasets means every dataset in it).
/// Weights are per entry: give every entry of a split one, or none (then each file counts by its
/// tokens, the blend of their concatenation).
struct PretokenizedShards {
  std::string dir;
  std::vector<ShardEntry> train, valid, test, files;
  std::string split;  ///< "969,30,1" style; "" = kDefaultDocumentSplit when files are split
  std::string dtype;  ///< required for nanoGPT files; for Megatron, checked against the index
};

/// Raw JSONL files (.jsonl, .jsonl.gz, .jsonl.zst) of a pre-tokenized recipe's domain: the
/// prepare stage tokenizes them with the corpus's SentencePiece model (data.tokenizer.path) into
/// Megatron datasets in its own directory (jsonl_tokenize.h), then splits them by document like
/// `files`. Entries are files, globs or directories (every JSONL file in it), with weights.
struct JsonlCorpus {
  std::vector<ShardEntry> files;
  std::string text_field = "text";
  std::string split;  ///< "" = kDefaultDocumentSplit
};

/// The JSONL files of `entries` in order, each with its entry's index. Throws StageError for an
/// entry that names nothing.
std::vector<std::pair<std::string, size_t>> expand_jsonl(const std::vector<ShardEntry>& entries);

/// A file after expansion: a nanoGPT .bin path or a Megatron prefix, and the entry it came from.
struct CorpusFile {
  std::string path;
  std::string format;  ///< "nanogpt" | "megatron"
  size_t entry = 0;    ///< index into the split's entries (or files)
  double weight = 0;   ///< the entry's weight
};

/// How a domain's files become splits, before any file is read: each split's files, or (by
/// document) the files every split takes its share of.
struct ShardPlan {
  std::array<std::vector<CorpusFile>, 3> by_file;  ///< train, valid, test
  std::vector<CorpusFile> by_document;
  std::array<int64_t, 3> ratio = {0, 0, 0};  ///< by document: train, valid, test
};

/// Parses "969,30,1" (three non-negative integers, train > 0, sum <= 10^9). Throws StageError.
std::array<int64_t, 3> parse_document_split(const std::string& text);

/// Expands `s` into its files. Throws StageError naming the path or glob that matches nothing, a
/// directory with no dataset, or a nanoGPT file where documents are needed.
ShardPlan plan_shards(const PretokenizedShards& s);

/// Checks each file of `plan` (a Megatron index whole, its dtype against `declared_dtype`;
/// every token below `vocab`; a nanoGPT file's declared dtype for plausibility), hashes it, and
/// returns each split's parts with their weights (normalised per split). Throws StageError naming
/// the file and the numbers.
std::array<std::vector<PartRecord>, 3> check_shards(const ShardPlan& plan,
                                                    const std::string& declared_dtype,
                                                    int64_t vocab);

/// Samples a nanoGPT file read as `dtype` and throws StageError when that width is implausible:
/// a uint16 file whose every other token is 0 (int32/uint32 tokens below 65536), or a uint32 file
/// whose tokens are mostly at or above `vocab` (two uint16 tokens per word).
void check_dtype_plausible(const TokenShard& shard, int64_t vocab);

}  // namespace upcycle::stages
