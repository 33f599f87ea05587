#include "stages/data/pretokenized.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "core/error.h"
#include "core/integer.h"
#include "core/log.h"
#include "core/strings.h"
#include "stages/data/documents.h"
#include "stages/data/jsonl_tokenize.h"
#include "stages/data/megatron_index.h"

namespace fs = std::filesystem;

namespace upcycle::stages {
namespace {

const char* kSplitNames[3] = {"train", "valid", "test"};

bool is_glob(const std::string& p) { return p.find_first_of("*?[") != std::string::npos; }

// The datasets of one entry, in sorted order: Megatron prefixes, or nanoGPT .bin files.
std::vector<CorpusFile> expand_entry(const ShardEntry& e, size_t index) {
  std::vector<CorpusFile> out;
  std::set<std::string> seen;
  auto add = [&](const std::string& path) {
    const std::string prefix = megatron_prefix(path);
    const CorpusFile f{prefix.empty() ? path : prefix, prefix.empty() ? "nanogpt" : "megatron",
                       index, e.weight};
    if (seen.insert(f.path).second) out.push_back(f);
  };
  std::error_code ec;
  if (is_glob(e.pattern)) {
    for (const auto& path : expand_pattern(e.pattern)) {
      if (core::ends_with(path, ".idx") || core::ends_with(path, ".bin")) add(path);
    }
    if (out.empty()) throw StageError(e.pattern + ": matches no .bin or .idx file");
  } else if (fs::is_directory(e.pattern, ec)) {
    std::vector<std::string> names;
    for (const auto& f : fs::directory_iterator(e.pattern, ec)) names.push_back(f.path().string());
    std::sort(names.begin(), names.end());
    for (const auto& path : names) {
      if (core::ends_with(path, ".idx") &&
          fs::is_regular_file(path.substr(0, path.size() - 4) + ".bin"))
        add(path);
    }
    if (out.empty())
      throw StageError(e.pattern +
                       ": a directory with no Megatron dataset (PREFIX.idx beside "
                       "PREFIX.bin) and no nanoGPT layout (train.bin, val.bin)");
  } else if (!megatron_prefix(e.pattern).empty() || fs::is_regular_file(e.pattern, ec)) {
    add(e.pattern);
  } else {
    throw StageError(e.pattern + ": pre-tokenized file not found (nor " + e.pattern +
                     ".idx, a Megatron dataset's index)");
  }
  return out;
}

std::vector<CorpusFile> expand_all(const std::vector<ShardEntry>& entries) {
  std::vector<CorpusFile> out;
  for (size_t i = 0; i < entries.size(); ++i) {
    auto files = expand_entry(entries[i], i);
    out.insert(out.end(), files.begin(), files.end());
  }
  return out;
}

// Every token below vocab (and not negative), read in chunks: TokenShard::copy_to names the first
// bad one.
void check_vocab(const TokenShard& shard, int64_t vocab) {
  std::vector<int64_t> buf(int64_t(1) << 20);
  for (int64_t at = 0; at < shard.size(); at += int64_t(buf.size())) {
    shard.copy_to(at, std::min<int64_t>(int64_t(buf.size()), shard.size() - at), buf.data(), vocab);
  }
}

ShardInfo record_of(const std::string& path, const std::string& dtype, int64_t tokens) {
  ShardInfo info;
  info.dtype = dtype;
  info.tokens = tokens;
  digest_file(path, info);
  return info;
}

// One file's parts: [train, valid, test] (by document), or its one part for `split`.
struct CheckedFile {
  std::string path, format;
  ShardInfo bin, idx;
  std::array<std::pair<int64_t, int64_t>, 3> docs;  ///< Megatron: each split's [begin, end)
  std::array<int64_t, 3> tokens = {0, 0, 0};
};

CheckedFile check_file(const CorpusFile& f, const std::string& declared, int64_t vocab,
                       const std::array<int64_t, 3>* ratio, int split) {
  CheckedFile c{f.path, f.format, {}, {}, {}, {}};
  if (f.format == "nanogpt") {
    if (declared.empty())
      throw StageError(f.path + ": a nanoGPT .bin has no header: give the domain's shards.dtype");
    TokenShard shard(f.path, ShardCheck::kSize, declared);
    if (shard.size() == 0) throw StageError(f.path + ": pre-tokenized shard is empty");
    check_dtype_plausible(shard, vocab);
    check_vocab(shard, vocab);
    c.bin = record_of(f.path, declared, shard.size());
    c.tokens[split] = shard.size();
    return c;
  }
  MegatronIndex index(f.path);
  if (!declared.empty() && declared != index.dtype())
    throw StageError(f.path + ".idx: the index says the tokens are " + index.dtype() +
                         ", the recipe says " + declared,
                     "drop shards.dtype (a Megatron index carries its own) or correct it");
  const std::string bin = f.path + ".bin", idx = f.path + ".idx";
  TokenShard shard(bin, ShardInfo{index.dtype(), index.tokens(), "", "", 0}, ShardCheck::kSize);
  check_vocab(shard, vocab);
  c.bin = record_of(bin, index.dtype(), index.tokens());
  c.idx = record_of(idx, "uint8", int64_t(fs::file_size(idx)));
  const int64_t docs = index.documents();
  if (!ratio) {
    c.docs[split] = {0, docs};
    c.tokens[split] = index.tokens();
    return c;
  }
  const auto& r = *ratio;
  const double total = double(r[0] + r[1] + r[2]);
  int64_t begin = 0, cum = 0;
  for (int s = 0; s < 3; ++s) {
    cum += r[s];
    const int64_t end = s == 2 ? docs : std::llround(double(docs) * double(cum) / total);
    c.docs[s] = {begin, end};
    c.tokens[s] = index.doc_start(end) - index.doc_start(begin);
    begin = end;
  }
  return c;
}

// Each split's weights: an entry's weight shared among its parts by tokens, or every part by its
// tokens when no entry has a weight; normalised to 1.
void weigh(std::vector<PartRecord>& parts, const std::vector<size_t>& entry_of,
           const std::vector<double>& entry_weight, const std::vector<int64_t>& tokens) {
  std::map<size_t, int64_t> entry_tokens;
  for (size_t i = 0; i < parts.size(); ++i) entry_tokens[entry_of[i]] += tokens[i];
  double sum = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const double w = entry_weight[i];
    parts[i].weight =
        w > 0 ? w * double(tokens[i]) / double(entry_tokens[entry_of[i]]) : double(tokens[i]);
    sum += parts[i].weight;
  }
  for (auto& p : parts) p.weight /= sum;
}

}  // namespace

std::vector<std::pair<std::string, size_t>> expand_jsonl(const std::vector<ShardEntry>& entries) {
  std::vector<std::pair<std::string, size_t>> out;
  std::error_code ec;
  for (size_t i = 0; i < entries.size(); ++i) {
    const std::string& p = entries[i].pattern;
    std::vector<std::string> files;
    if (is_glob(p)) {
      files = expand_pattern(p);
    } else if (fs::is_directory(p, ec)) {
      for (const auto& f : fs::directory_iterator(p, ec)) files.push_back(f.path().string());
      std::sort(files.begin(), files.end());
    } else if (fs::is_regular_file(p, ec)) {
      files = {p};
    } else {
      throw StageError(p + ": JSONL file not found");
    }
    size_t taken = 0;
    for (const auto& f : files) {
      if (!is_jsonl_file(f)) continue;
      out.emplace_back(f, i);
      ++taken;
    }
    if (taken == 0) throw StageError(p + ": no .jsonl, .jsonl.gz or .jsonl.zst file");
  }
  return out;
}

std::array<int64_t, 3> parse_document_split(const std::string& text) {
  std::array<int64_t, 3> r{};
  size_t at = 0;
  for (int i = 0; i < 3; ++i) {
    const size_t comma = i < 2 ? text.find(',', at) : text.size();
    if (comma == std::string::npos)
      throw StageError("split '" + text + "': expected three numbers such as 969,30,1");
    try {
      r[i] = core::parse_integer(text.substr(at, comma - at), {0, 1000000000}, false);
    } catch (const std::exception& e) {  // parse_integer throws std::invalid_argument
      throw StageError("split '" + text + "': " + e.what());
    }
    at = comma + 1;
  }
  if (r[0] == 0 || r[0] + r[1] + r[2] > 1000000000)
    throw StageError("split '" + text + "': train's share must be positive, the sum at most 1e9");
  return r;
}

ShardPlan plan_shards(const PretokenizedShards& s) {
  ShardPlan plan;
  PretokenizedShards e = s;
  std::error_code ec;
  const bool listed = !e.train.empty() || !e.valid.empty() || !e.test.empty();
  if (!e.dir.empty() && !listed && e.files.empty()) {
    const fs::path d(e.dir);
    if (!fs::is_directory(d, ec)) throw StageError(e.dir + ": no such directory");
    if (fs::is_regular_file(d / "train.bin", ec) &&
        megatron_prefix((d / "train.bin").string()).empty()) {
      e.train = {{(d / "train.bin").string(), 0}};
      e.valid = {{(d / "val.bin").string(), 0}};
      const bool has_test = fs::exists(d / "test.bin", ec);
      e.test = {{(d / (has_test ? "test.bin" : "val.bin")).string(), 0}};
      if (!has_test)
        core::log_warn("pre-tokenized shards: " + e.dir + " has no test.bin; the test split is " +
                       e.valid[0].pattern);
    } else {
      e.files = {{e.dir, 0}};
    }
  }
  if (!e.files.empty()) {
    plan.ratio = parse_document_split(e.split.empty() ? kDefaultDocumentSplit : e.split);
    plan.by_document = expand_all(e.files);
    for (const auto& f : plan.by_document) {
      if (f.format != "megatron")
        throw StageError(f.path + ": a nanoGPT .bin has no documents to split by ratio",
                         "list it under train:, valid: or test: instead");
    }
    return plan;
  }
  const std::vector<ShardEntry>* lists[3] = {&e.train, &e.valid, &e.test};
  for (int i = 0; i < 3; ++i) {
    if (lists[i]->empty())
      throw StageError(std::string("pre-tokenized shards: no ") + kSplitNames[i] +
                       " files (give dir, files, or all of train, valid and test)");
    plan.by_file[i] = expand_all(*lists[i]);
  }
  return plan;
}

std::array<std::vector<PartRecord>, 3> check_shards(const ShardPlan& plan,
                                                    const std::string& declared_dtype,
                                                    int64_t vocab) {
  std::array<std::vector<PartRecord>, 3> out;
  std::array<std::vector<size_t>, 3> entry_of;
  std::array<std::vector<double>, 3> entry_weight;
  std::array<std::vector<int64_t>, 3> tokens;
  auto take = [&](const CorpusFile& f, const CheckedFile& c, int s) {
    if (c.tokens[s] == 0) return;  // no document of this split in this file
    out[s].push_back({c.path, c.format, c.bin, c.idx, c.docs[s].first, c.docs[s].second, 0});
    entry_of[s].push_back(f.entry);
    entry_weight[s].push_back(f.weight);
    tokens[s].push_back(c.tokens[s]);
  };
  for (const auto& f : plan.by_document) {
    const CheckedFile c = check_file(f, declared_dtype, vocab, &plan.ratio, 0);
    for (int s = 0; s < 3; ++s) take(f, c, s);
  }
  for (int s = 0; s < 3; ++s) {
    for (const auto& f : plan.by_file[s])
      take(f, check_file(f, declared_dtype, vocab, nullptr, s), s);
  }
  for (int s = 0; s < 3; ++s) {
    if (out[s].empty()) {
      throw StageError(std::string("the ") + kSplitNames[s] + " split has no tokens" +
                           (plan.by_document.empty() ? "" : " (too few documents for the ratio)"),
                       "give more documents, or list each split's files");
    }
    weigh(out[s], entry_of[s], entry_weight[s], tokens[s]);
  }
  return out;
}

void check_dtype_plausible(const TokenShard& shard, int64_t vocab) {
  constexpr int64_t kBlocks = 64, kBlock = 4096;
  int64_t n = 0, zero_odd = 0, zero_even = 0, over = 0;
  const int64_t blocks = std::min<int64_t>(kBlocks, std::max<int64_t>(1, shard.size() / kBlock));
  for (int64_t b = 0; b < blocks; ++b) {
    int64_t start = blocks == 1 ? 0 : b * ((shard.size() - kBlock) / (blocks - 1));
    start -= start % 2;  // keep the parity of positions
    for (int64_t i = start; i < std::min(shard.size(), start + kBlock); ++i, ++n) {
      const int64_t t = shard.at(i);
      if (t == 0) ++(i % 2 ? zero_odd : zero_even);
      if (t >= vocab) ++over;
    }
  }
  char why[256] = "";
  const double half = double(n) / 2;
  if (shard.dtype() == "uint16" && n >= 64 && double(zero_odd) >= 0.9 * half &&
      double(zero_even) < 0.5 * half) {
    std::snprintf(why, sizeof(why),
                  "%.1f%% of the tokens at odd positions are 0 against %.1f%% at even ones: "
                  "32-bit tokens read as uint16",
                  200.0 * double(zero_odd) / double(n), 200.0 * double(zero_even) / double(n));
  } else if (token_width(shard.dtype()) == 4 && over > n / 2) {
    std::snprintf(why, sizeof(why),
                  "%.1f%% of %lld sampled tokens are >= the vocabulary (%lld): 16-bit tokens "
                  "read as 32-bit",
                  100.0 * double(over) / double(n), (long long)n, (long long)vocab);
  }
  if (why[0]) {
    throw StageError(
        shard.path() + ": the declared dtype " + shard.dtype() + " is implausible: " + why,
        "set the domain's shards.dtype to the width the file was written with");
  }
}

}  // namespace upcycle::stages
