#include "stages/data/prepare.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/job_files.h"
#include "core/log.h"
#include "core/sha256.h"
#include "core/strings.h"
#include "stages/data/builtin_tasks.h"
#include "stages/data/data_layout.h"
#include "stages/data/domain_tokens.h"
#include "stages/data/hf_tokenizer.h"
#include "stages/data/jsonl_tokenize.h"
#include "stages/data/math_problems.h"
#include "stages/data/token_shard.h"

namespace upcycle::stages {
namespace {

const char* kSplits[] = {"train", "valid", "test"};

// Split by the document hash: stable under adding or removing other documents.
int split_of(const std::string& sha, double valid, double test) {
  double u = double(std::stoull(sha.substr(0, 12), nullptr, 16)) / double(1ULL << 48);
  if (u < test) return 2;
  if (u < test + valid) return 1;
  return 0;
}

struct DomainDocs {
  std::vector<Document> docs;
  std::vector<SourceFile> files;
};

DomainDocs collect(const DomainSpec& d, uint64_t seed, const DpkgIndex& dpkg) {
  DomainDocs out;
  std::set<std::string> seen;
  for (const auto& src : d.sources) {
    for (const auto& path : expand_pattern(src.pattern)) {
      for (auto& doc : read_documents(path, src.split, src.text_field)) {
        if (seen.insert(doc.sha256).second)
          out.docs.push_back(std::move(doc));  // drop exact copies
      }
    }
  }
  if (d.generator == "math") {
    int64_t target = d.max_bytes > 0 ? d.max_bytes : 5'000'000;
    for (auto& doc : generate_math_documents(seed, target)) {
      if (seen.insert(doc.sha256).second) out.docs.push_back(std::move(doc));
    }
  } else if (!d.generator.empty()) {
    throw StageError("domain " + d.name + ": unknown generator '" + d.generator + "'");
  }
  // Take documents up to the byte cap in an order keyed on hash bits that the split does not use
  // (split_of reads the first 12 hex digits), so the cap thins every split alike.
  std::sort(out.docs.begin(), out.docs.end(), [](const Document& a, const Document& b) {
    return a.sha256.compare(32, 32, b.sha256, 32, 32) < 0;
  });
  if (d.max_bytes > 0) {
    int64_t total = 0;
    size_t keep = 0;
    while (keep < out.docs.size() && total < d.max_bytes) total += out.docs[keep++].text.size();
    out.docs.resize(keep);
  }
  // The manifest lists the files that contributed a kept document.
  std::map<std::string, int64_t> bytes_by_file;
  for (const auto& doc : out.docs) {
    if (doc.origin.rfind("generator:", 0) != 0) bytes_by_file[doc.origin] += doc.text.size();
  }
  for (const auto& [path, bytes] : bytes_by_file) {
    auto [pkg, version] = dpkg.owner(path);
    out.files.push_back({path, pkg, version, core::sha256_file(path), bytes});
  }
  return out;
}

// Writes DIR/manifest.json and records its hash and artifact in `out`.
void write_manifest(const std::string& dir, const nlohmann::json& manifest, PrepareOutput& out) {
  std::string text = manifest.dump(2) + "\n";
  core::write_file_atomic(manifest_path(dir), text);
  out.manifest_sha256 = core::sha256_hex(text);
  out.artifacts.push_back(
      {manifest_path(dir), "manifest", out.manifest_sha256, static_cast<int64_t>(text.size())});
}

// A pre-tokenized corpus's tokenizer (data.tokenizer.path), as it was when the job was planned,
// copied into the data directory for export; its ids must fit the recipe's vocabulary.
void copy_corpus_tokenizer(const PrepareSpec& spec, nlohmann::json& manifest, PrepareOutput& out) {
  const std::string& from = spec.tokenizer_path;
  const std::string text = core::read_file(from);
  if (core::sha256_hex(text) != spec.tokenizer_sha256) {
    throw StageError(from + ": the tokenizer changed since the job was planned",
                     "run the recipe again so the job is keyed by its new content");
  }
  const int64_t ids = tokenizer_file_vocab(from);
  if (ids > spec.tokenizer.vocab) {
    throw StageError(from + ": the tokenizer has " + std::to_string(ids) +
                         " token ids, more than data.tokenizer.vocab (" +
                         std::to_string(spec.tokenizer.vocab) + ")",
                     "set data.tokenizer.vocab to at least " + std::to_string(ids));
  }
  const bool json = core::ends_with(from, ".json");
  const std::string to = json ? tokenizer_json_path(spec.out_dir) : tokenizer_path(spec.out_dir);
  core::write_file_atomic(to, text);
  const std::string name = json ? "tokenizer.json" : "tokenizer.model";
  manifest["files"][name] = spec.tokenizer_sha256;
  manifest["tokenizer_source"] = from;
  out.artifacts.push_back({to, "tokenizer", spec.tokenizer_sha256, int64_t(text.size())});
  core::log_info("prepare: the corpus's tokenizer " + from + " (" + std::to_string(ids) +
                 " ids) kept for export");
}

// A domain's JSONL files tokenized into Megatron datasets under DIR/tokenized/<domain>/, named by
// their order (never by the user's file names), as the shards to split by document.
PretokenizedShards tokenize_domain(const PrepareSpec& spec, const DomainSpec& d,
                                   nlohmann::json& sources) {
  const auto files = expand_jsonl(d.jsonl.files);
  const std::string dir = spec.out_dir + "/tokenized/" + d.name;
  core::make_dirs(dir);
  std::vector<std::string> paths, prefixes;
  PretokenizedShards shards;
  shards.split = d.jsonl.split;
  for (size_t i = 0; i < files.size(); ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "/%05zu_text_document", i);
    paths.push_back(files[i].first);
    prefixes.push_back(dir + name);
    shards.files.push_back({prefixes.back(), d.jsonl.files[files[i].second].weight});
  }
  const Tokenizer tok(core::ends_with(spec.tokenizer_path, ".json")  // copied and checked by now
                          ? tokenizer_json_path(spec.out_dir)
                          : tokenizer_path(spec.out_dir));
  const auto t0 = std::chrono::steady_clock::now();
  const auto done = tokenize_jsonl_files(paths, prefixes, d.jsonl.text_field, tok,
                                         std::max(1, spec.tokenizer.threads));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int64_t tokens = 0, docs = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    tokens += done[i].tokens;
    docs += done[i].documents;
    sources.push_back({{"path", paths[i]},
                       {"format", "jsonl"},
                       {"sha256", core::sha256_file(paths[i])},
                       {"bytes", int64_t(std::filesystem::file_size(paths[i]))},
                       {"documents", done[i].documents},
                       {"tokens", done[i].tokens}});
  }
  char rate[64];
  std::snprintf(rate, sizeof(rate), "%.0f tokens/s", double(tokens) / std::max(secs, 1e-9));
  core::log_info("prepare: " + d.name + ": tokenized " + std::to_string(docs) + " documents from " +
                 std::to_string(files.size()) + " JSONL file(s): " + std::to_string(tokens) +
                 " tokens, " + rate + " on " + std::to_string(spec.tokenizer.threads) +
                 " thread(s)");
  return shards;
}

// Pre-tokenized domains: each split's parts list, every file checked and hashed; the manifest
// records the user's files.
PrepareOutput prepare_pretokenized(const PrepareSpec& spec) {
  PrepareOutput out;
  nlohmann::json manifest = {{"format_version", 2},
                             {"seed", spec.seed},
                             {"tokenizer", "pretokenized"},
                             {"vocab", spec.tokenizer.vocab},
                             {"boundary", spec.boundary.mode},
                             {"domains", nlohmann::json::object()}};
  if (!spec.tokenizer_path.empty()) copy_corpus_tokenizer(spec, manifest, out);
  for (const auto& d : spec.domains) {
    nlohmann::json jd = {{"sources", nlohmann::json::array()},
                         {"splits", nlohmann::json::object()}};
    const bool jsonl = !d.jsonl.files.empty();
    const PretokenizedShards shards = jsonl ? tokenize_domain(spec, d, jd["sources"]) : d.shards;
    const auto splits = check_shards(plan_shards(shards), shards.dtype, spec.tokenizer.vocab);
    std::set<std::string> listed;
    for (int s = 0; s < 3; ++s) {
      const std::string dest = shard_path(spec.out_dir, d.name, kSplits[s]);
      write_parts(dest, splits[s], spec.boundary);
      const DomainTokens read(dest, ShardCheck::kSize);  // as training will read it
      int64_t files = 0;
      for (const auto& p : splits[s]) {
        ++files;
        if (jsonl || !listed.insert(p.path).second) continue;  // JSONL: its files are listed
        const int64_t bytes = p.bin.tokens * token_width(p.bin.dtype);
        jd["sources"].push_back({{"path", p.format == "megatron" ? p.path + ".bin" : p.path},
                                 {"format", p.format},
                                 {"dtype", p.bin.dtype},
                                 {"sha256", p.bin.sha256},
                                 {"bytes", bytes}});
        if (p.format == "megatron") jd["sources"].back()["idx_sha256"] = p.idx.sha256;
      }
      // The artifact is the parts list in the job's directory, never the user's files.
      const std::string list = core::read_file(parts_path(dest));
      out.artifacts.push_back(
          {parts_path(dest), "shard", core::sha256_hex(list), int64_t(list.size())});
      jd["splits"][kSplits[s]] = {{"tokens", read.size()}, {"files", files}};
      out.tokens[d.name + "." + kSplits[s]] = read.size();
    }
    core::log_info("prepare: " + d.name + ": pre-tokenized, " +
                   std::to_string(out.tokens[d.name + ".train"]) + " train tokens in " +
                   std::to_string(splits[0].size()) + " file(s)");
    manifest["domains"][d.name] = jd;
  }
  write_manifest(spec.out_dir, manifest, out);
  return out;
}

// Each domain's built-in task file (builtin_tasks.h), recorded in the manifest with its sha256.
void write_builtin_tasks(const PrepareSpec& spec, const TestDocuments& test_docs,
                         nlohmann::json& manifest, PrepareOutput& out) {
  for (const auto& d : spec.domains) {
    auto examples = make_builtin_examples(d.name, test_docs, spec.task_examples);
    if (examples.empty()) {
      core::log_warn("prepare: " + d.name + ": too few test documents for built-in tasks");
      continue;
    }
    std::string text;
    for (const auto& e : examples) text += e.dump() + "\n";
    const std::string path = builtin_task_path(spec.out_dir, d.name);
    const std::string sha = core::sha256_hex(text);
    core::make_dirs(spec.out_dir + "/tasks");
    core::write_file_atomic(path, text);
    manifest["domains"][d.name]["tasks"] = {{"examples", examples.size()}, {"sha256", sha}};
    manifest["files"][path.substr(spec.out_dir.size() + 1)] = sha;
    out.artifacts.push_back({path, "tasks", sha, static_cast<int64_t>(text.size())});
  }
}

}  // namespace

DomainSpec default_domain(const std::string& name) {
  DomainSpec d;
  d.name = name;
  if (name == "general") {
    d.sources = {{"/usr/share/games/fortunes/*", DocSplit::kFortune},
                 {"/usr/share/doc/**/README", DocSplit::kWholeFile},
                 {"/usr/share/doc/**/*.txt", DocSplit::kWholeFile}};
  } else if (name == "code") {
    d.sources = {{"/usr/lib/python3.11/**/*.py", DocSplit::kWholeFile},
                 {"/usr/include/**/*.h", DocSplit::kWholeFile}};
  } else if (name == "law") {
    d.sources = {{"/usr/share/common-licenses/*", DocSplit::kWholeFile},
                 {"/usr/share/doc/**/copyright", DocSplit::kWholeFile}};
  } else if (name == "math") {
    d.generator = "math";
  }
  return d;
}

PrepareOutput run_prepare(const PrepareSpec& spec) {
  core::make_dirs(spec.out_dir + "/shards");
  if (spec.pretokenized) return prepare_pretokenized(spec);
  DpkgIndex dpkg;
  std::map<std::string, DomainDocs> domains;
  std::string sample_path = spec.out_dir + "/tokenizer_sample.txt";
  std::string sample;
  for (const auto& d : spec.domains) {
    DomainDocs dd = collect(d, spec.seed, dpkg);
    if (dd.docs.empty()) {
      throw StageError("domain " + d.name + ": no documents found in its sources",
                       "install the packages the sources come from (scripts/setup.sh) or list "
                       "sources for the domain under data.domains in the recipe");
    }
    int64_t taken = 0;
    for (const auto& doc : dd.docs) {  // balanced sample: the same byte budget per domain
      if (taken >= spec.tokenizer_sample_bytes) break;
      if (split_of(doc.sha256, spec.valid_fraction, spec.test_fraction) != 0) continue;
      sample += doc.text + "\n";
      taken += static_cast<int64_t>(doc.text.size());
    }
    int64_t bytes = 0;
    for (const auto& doc : dd.docs) bytes += static_cast<int64_t>(doc.text.size());
    char mb[32];
    std::snprintf(mb, sizeof(mb), "%.2f MB", double(bytes) / 1e6);
    core::log_info("prepare: " + d.name + ": " + std::to_string(dd.docs.size()) + " documents, " +
                   mb + " of text, from " + std::to_string(dd.files.size()) + " files");
    domains[d.name] = std::move(dd);
  }
  // An import's byte-level BPE (tokenizer.json) or a SentencePiece model, trained here or imported.
  const bool bpe = core::ends_with(spec.tokenizer_file, ".json");
  const std::string text_tokenizer =
      bpe ? tokenizer_json_path(spec.out_dir) : tokenizer_path(spec.out_dir);
  if (spec.tokenizer_file.empty()) {
    core::write_file_atomic(sample_path, sample);
    train_tokenizer(sample_path, spec.out_dir + "/tokenizer", spec.tokenizer);
    std::remove(sample_path.c_str());
  } else {  // the model's own tokenizer, as it was when the job was planned
    if (core::sha256_file(spec.tokenizer_file) != spec.tokenizer_sha256) {
      throw StageError(spec.tokenizer_file + ": the tokenizer changed since the job was planned",
                       "run the recipe again so the job is keyed by its new content");
    }
    core::write_file_atomic(text_tokenizer, core::read_file(spec.tokenizer_file));
    core::log_info("prepare: tokenizing with " + spec.tokenizer_file);
  }
  Tokenizer tok(text_tokenizer);

  PrepareOutput out;
  nlohmann::json manifest = {{"format_version", 1},
                             {"seed", spec.seed},
                             {"vocab", tok.vocab_size()},
                             {"domains", nlohmann::json::object()},
                             {"files", nlohmann::json::object()}};
  TestDocuments all_test_docs;
  for (const auto& d : spec.domains) {
    const DomainDocs& dd = domains[d.name];
    std::vector<uint32_t> split_tokens[3];
    int64_t docs_in[3] = {0, 0, 0};
    std::vector<Document> test_docs;
    for (const auto& doc : dd.docs) {
      int s = split_of(doc.sha256, spec.valid_fraction, spec.test_fraction);
      if (s == 2) test_docs.push_back(doc);
      auto ids = tok.encode(doc.text);
      split_tokens[s].insert(split_tokens[s].end(), ids.begin(), ids.end());
      split_tokens[s].push_back(tok.eos_id());  // documents are separated by EOS
      ++docs_in[s];
    }
    for (int s = 0; s < 3; ++s) {
      if (docs_in[s] == 0) {
        throw StageError("domain " + d.name + ": the " + kSplits[s] + " split got no documents (" +
                             std::to_string(dd.docs.size()) + " in all)",
                         "raise the domain's max_bytes or data.valid_fraction/test_fraction");
      }
    }
    nlohmann::json jd = {{"generator", d.generator},
                         {"sources", nlohmann::json::array()},
                         {"splits", nlohmann::json::object()}};
    for (const auto& f : dd.files) {
      jd["sources"].push_back({{"path", f.path},
                               {"package", f.package},
                               {"version", f.version},
                               {"sha256", f.sha256},
                               {"bytes", f.bytes}});
    }
    for (int s = 0; s < 3; ++s) {
      std::string path = shard_path(spec.out_dir, d.name, kSplits[s]);
      ShardInfo info = write_token_shard(path, split_tokens[s], tok.vocab_size());
      jd["splits"][kSplits[s]] = {
          {"documents", docs_in[s]}, {"tokens", info.tokens}, {"sha256", info.sha256}};
      out.tokens[d.name + "." + kSplits[s]] = info.tokens;
      out.artifacts.push_back(
          {path, "shard", info.sha256, info.tokens * (info.dtype == "uint16" ? 2 : 4)});
    }
    manifest["domains"][d.name] = jd;
    all_test_docs[d.name] = std::move(test_docs);
  }
  if (spec.task_examples > 0) write_builtin_tasks(spec, all_test_docs, manifest, out);
  const std::string& tok_path = text_tokenizer;
  const std::string tok_sha = core::sha256_file(tok_path);
  manifest["files"][std::filesystem::path(tok_path).filename().string()] = tok_sha;
  if (bpe) manifest[kTextTokenizerKey] = "tokenizer.json";
  write_manifest(spec.out_dir, manifest, out);
  out.artifacts.push_back(
      {tok_path, "tokenizer", tok_sha, static_cast<int64_t>(core::read_file(tok_path).size())});
  return out;
}

std::string verified_data_file(const std::string& data_dir, const std::string& path) {
  const nlohmann::json manifest = core::read_json_file(manifest_path(data_dir));
  const std::string rel =
      path.rfind(data_dir + "/", 0) == 0 ? path.substr(data_dir.size() + 1) : path;
  if (!manifest.contains("files") || !manifest["files"].contains(rel))
    return path;  // data of older versions
  const std::string expected = manifest["files"][rel].get<std::string>();
  const std::string actual = core::sha256_file(path);
  if (actual != expected) {
    throw StageError(path + ": sha256 " + actual.substr(0, 12) +
                         "... does not match the data manifest's " + expected.substr(0, 12) +
                         "... (edited or corrupt since the prepare job wrote it)",
                     "re-run the prepare stage: upcycle run RECIPE --force data");
  }
  return path;
}

std::string text_tokenizer(const std::string& data_dir) {
  const nlohmann::json manifest = core::read_json_file(manifest_path(data_dir));
  if (manifest.contains(kTextTokenizerKey)) {
    const std::string name = manifest[kTextTokenizerKey].get<std::string>();
    if (name != "tokenizer.json")
      throw StageError(manifest_path(data_dir) + ": " + kTextTokenizerKey + " is '" + name + "'");
    return verified_data_file(data_dir, tokenizer_json_path(data_dir));
  }
  if (!std::filesystem::exists(tokenizer_path(data_dir))) return "";
  return verified_data_file(data_dir, tokenizer_path(data_dir));
}

}  // namespace upcycle::stages
