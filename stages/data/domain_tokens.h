// The tokens of one domain's split, as training and evaluation read them: either the prepare
// stage's own shard (shards/<domain>.<split>.bin, token_shard.h), or a blend of a user's files
// listed in shards/<domain>.<split>.parts.json: nanoGPT .bin files and Megatron indexed datasets
// (megatron_index.h), each with its document range for the split and its weight in the blend, and
// the record (size, mtime, digests) taken when the prepare stage checked it. A part reads as its
// tokens in stored order; with boundary "eod", the end-of-document token follows each Megatron
// document (for corpora tokenized without one). No LibTorch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "stages/data/token_shard.h"

namespace upcycle::stages {

/// One file's share of a domain's split, as the prepare stage recorded it.
struct PartRecord {
  std::string path;                    ///< the nanoGPT .bin, or the Megatron dataset's prefix
  std::string format;                  ///< "nanogpt" | "megatron"
  ShardInfo bin;                       ///< the token file: dtype, tokens, digests, mtime
  ShardInfo idx;                       ///< Megatron: the index's digests and mtime
  int64_t doc_begin = 0, doc_end = 0;  ///< Megatron: this split's documents [begin, end)
  double weight = 0;                   ///< the part's share of the domain's samples (sums to 1)
};

/// What separates documents inside a part: "as_stored" (Megatron's default: the files already
/// hold an end-of-document token when they were tokenized with one), or "eod" (the token `eod` is
/// read after every Megatron document).
struct Boundary {
  std::string mode = "as_stored";
  int64_t eod = -1;
};

/// How many of a run's samples came from one part of one domain.
struct RealisedPart {
  std::string domain, part;
  double weight = 0;  ///< the planned share of the run's samples: mixture weight x part weight
  int64_t samples = 0;
};

/// The parts list of `shard_path` (data_layout.h's shard_path with ".bin" -> ".parts.json").
std::string parts_path(const std::string& shard_path);
/// Writes a parts list atomically.
void write_parts(const std::string& shard_path, const std::vector<PartRecord>& parts,
                 const Boundary& boundary);

class DomainTokens {
 public:
  /// Opens the shard at `shard_path`, or else its parts list, checking each file against its
  /// record as `check` says. Throws StageError naming the file when one is missing, changed or
  /// unreadable.
  explicit DomainTokens(const std::string& shard_path, ShardCheck check = ShardCheck::kSampled);
  ~DomainTokens();
  DomainTokens(DomainTokens&&) noexcept;
  DomainTokens(const DomainTokens&) = delete;

  const std::string& path() const { return path_; }
  int64_t parts() const;
  const std::string& part_name(int64_t p) const;
  double weight(int64_t p) const;
  /// Tokens of part p as read (inserted end-of-document tokens included).
  int64_t part_size(int64_t p) const;
  /// Copies tokens [start, start + n) of part p, as TokenShard::copy_to does.
  void copy_part(int64_t p, int64_t start, int64_t n, int64_t* out, int64_t vocab) const;
  /// Every part, one after the other (evaluation reads windows across them).
  int64_t size() const { return size_; }
  void copy_to(int64_t start, int64_t n, int64_t* out, int64_t vocab) const;

 private:
  struct Part;
  std::string path_;
  std::vector<std::unique_ptr<Part>> parts_;
  int64_t size_ = 0;
};

}  // namespace upcycle::stages
