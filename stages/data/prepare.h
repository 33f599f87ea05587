// The prepare stage: real documents per domain -> dedup -> deterministic split by document hash ->
// SentencePiece tokenizer on a domain-balanced sample -> token shards -> manifest of every source.
// Output layout of DIR (read back through data_layout.h):
//   tokenizer.model, tokenizer.vocab, manifest.json, shards/<domain>.<train|valid|test>.bin(+.json)
// With pre-tokenized corpora, shards/<domain>.<split>.parts.json list the user's files
// (domain_tokens.h) and tokenizer.model is absent (tokenizer.json or tokenizer.model when the
// recipe names the corpus's tokenizer).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/job_files.h"
#include "stages/data/documents.h"
#include "stages/data/pretokenized.h"
#include "stages/data/tokenizer.h"

namespace upcycle::stages {

struct SourceSpec {
  std::string pattern;  ///< see expand_pattern()
  DocSplit split = DocSplit::kWholeFile;
  std::string text_field = "text";  ///< kJsonl: the field holding the text
};

struct DomainSpec {
  std::string name;
  std::vector<SourceSpec> sources;
  std::string generator;      ///< "" or "math"
  int64_t max_bytes = 0;      ///< cap on text taken (documents in hash order); 0 = all
  PretokenizedShards shards;  ///< used instead of sources when PrepareSpec::pretokenized
  JsonlCorpus jsonl;          ///< or this, tokenized by the prepare stage (pre-tokenized recipes)
};

struct PrepareSpec {
  std::vector<DomainSpec> domains;
  TokenizerTrainOptions tokenizer;
  /// Between the documents of pre-tokenized Megatron files (domain_tokens.h).
  Boundary boundary;
  /// A pre-tokenized corpus's tokenizer (a SentencePiece .model or a tokenizer.json), for export;
  /// "" when the recipe names none.
  std::string tokenizer_path;
  /// The domains come as pre-tokenized .bin shards (pretokenized.h) of a tokenizer of
  /// `tokenizer.vocab` pieces trained elsewhere: no SentencePiece, no built-in tasks.
  bool pretokenized = false;
  int64_t tokenizer_sample_bytes = 200000;  ///< per domain
  /// A SentencePiece model to tokenize with instead of training one (an imported model's
  /// tokenizer.model), and its sha256, checked before use. Empty: train one.
  std::string tokenizer_file;
  std::string tokenizer_sha256;
  double valid_fraction = 0.05;
  double test_fraction = 0.05;
  int64_t task_examples =
      200;  ///< per domain, built-in downstream tasks (builtin_tasks.h); 0 = none
  uint64_t seed = 0;
  std::string out_dir;
};

struct PrepareOutput {
  std::string manifest_sha256;
  std::vector<core::ArtifactRow> artifacts;
  std::map<std::string, int64_t> tokens;  ///< "<domain>.<split>" -> tokens
};

/// The built-in sources of the four paper domains (general, code, law, math) on a Debian machine.
/// Unknown domain names get none (the recipe must list sources).
DomainSpec default_domain(const std::string& name);

/// Runs the stage. Throws StageError when a domain yields no documents or a split is too small.
PrepareOutput run_prepare(const PrepareSpec& spec);

/// Checks a file of a prepared data directory (the tokenizer, a task file) against the sha256 the
/// manifest's `files` recorded for it; returns `path`. Throws StageError naming the file when it
/// was edited or truncated since. (Shards carry their own sidecar sha256, token_shard.h.)
std::string verified_data_file(const std::string& data_dir, const std::string& path);

/// The manifest key naming the tokenizer the text was tokenized with when it is not
/// tokenizer.model (an import's byte-level BPE tokenizer.json).
inline constexpr const char* kTextTokenizerKey = "text_tokenizer";

/// The tokenizer a prepared data directory's text was tokenized with, verified against the
/// manifest: its tokenizer.model, or the tokenizer.json the manifest names; "" for pre-tokenized
/// data (whose corpus tokenizer.json, if any, is only shipped by export).
std::string text_tokenizer(const std::string& data_dir);

}  // namespace upcycle::stages
