#include "stages/spec/prepare.h"

#include <cmath>
#include <filesystem>
#include <limits>
#include <set>

#include "core/sha256.h"
#include "core/strings.h"
#include "stages/data/token_shard.h"

namespace upcycle::stages {
namespace {

nlohmann::json domain_json(const DomainSpec& d, bool pretokenized) {
  if (pretokenized) {
    const auto& s = d.shards;
    auto entries = [](const std::vector<ShardEntry>& list) {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& e : list) a.push_back({{"pattern", e.pattern}, {"weight", e.weight}});
      return a;
    };
    if (!d.jsonl.files.empty()) {
      return {{"name", d.name},
              {"jsonl",
               {{"files", entries(d.jsonl.files)},
                {"text_field", d.jsonl.text_field},
                {"split", d.jsonl.split}}}};
    }
    return {{"name", d.name},
            {"shards",
             {{"dir", s.dir},
              {"train", entries(s.train)},
              {"valid", entries(s.valid)},
              {"test", entries(s.test)},
              {"files", entries(s.files)},
              {"split", s.split},
              {"dtype", s.dtype}}}};
  }
  nlohmann::json src = nlohmann::json::array();
  for (const auto& x : d.sources) {
    src.push_back({{"pattern", x.pattern}, {"split", doc_split_name(x.split)}});
    if (x.split == DocSplit::kJsonl) src.back()["text_field"] = x.text_field;
  }
  return {
      {"name", d.name}, {"sources", src}, {"generator", d.generator}, {"max_bytes", d.max_bytes}};
}

DomainSpec read_domain(const SpecReader& r) {
  r.expect_only({"name", "sources", "generator", "max_bytes", "shards", "jsonl"});
  DomainSpec d;
  d.name = r.value<std::string>("name");
  d.generator = r.value<std::string>("generator", "");
  d.max_bytes = r.value<int64_t>("max_bytes", 0);
  if (r.has("shards")) {
    SpecReader s = r.object("shards");
    s.expect_only({"dir", "train", "valid", "test", "files", "split", "dtype"});
    auto entries = [&s](const char* key) {
      std::vector<ShardEntry> out;
      for (const auto& e : s.items(key))
        out.push_back({e.value<std::string>("pattern"), e.value<double>("weight")});
      return out;
    };
    d.shards = {s.value<std::string>("dir"),
                entries("train"),
                entries("valid"),
                entries("test"),
                entries("files"),
                s.value<std::string>("split"),
                s.value<std::string>("dtype")};
  }
  if (r.has("jsonl")) {
    SpecReader j = r.object("jsonl");
    j.expect_only({"files", "text_field", "split"});
    for (const auto& e : j.items("files"))
      d.jsonl.files.push_back({e.value<std::string>("pattern"), e.value<double>("weight")});
    d.jsonl.text_field = j.value<std::string>("text_field");
    d.jsonl.split = j.value<std::string>("split");
  }
  if (!r.has("sources")) return d;
  for (const auto& src : r.items("sources")) {
    src.expect_only({"pattern", "split", "text_field"});
    d.sources.push_back({src.value<std::string>("pattern"),
                         doc_split_from(src.value<std::string>("split", "file"), src.path("split")),
                         src.value<std::string>("text_field", "text")});
  }
  return d;
}

void validate_split(const std::string& split, const std::string& at) {
  if (split.empty()) return;
  try {
    parse_document_split(split);
  } catch (const Error& e) {
    check(false, at, e.what());
  }
}

// Files of a blend: each a path, and every one weighted or none.
void validate_entries(const std::vector<ShardEntry>& list, const std::string& at) {
  size_t weighted = 0;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string where = at + "[" + std::to_string(i) + "]";
    check(!list[i].pattern.empty(), where + ".path", "is empty");
    check(list[i].weight >= 0 && std::isfinite(list[i].weight), where + ".weight",
          "must be a positive number");
    weighted += list[i].weight > 0;
  }
  check(weighted == 0 || weighted == list.size(), at,
        "give every entry a weight, or none (then each file counts by its tokens)");
}

void validate_shards(const PretokenizedShards& s, const std::string& at) {
  if (!s.dtype.empty())
    check(token_width(s.dtype) > 0, at + ".dtype",
          "'" + s.dtype + "' is not one of uint8, uint16, int16, int32, uint32, int64");
  const bool by_file = !s.train.empty() || !s.valid.empty() || !s.test.empty();
  check(!s.dir.empty() || !s.files.empty() || by_file, at,
        "needs dir: (nanoGPT's layout or Megatron datasets), files: (split by document) or "
        "train:, valid: and test:");
  check(s.dir.empty() || (!by_file && s.files.empty()), at + ".dir",
        "give dir: alone, or files: / train:, valid:, test: without it");
  check(!(by_file && !s.files.empty()), at,
        "give files: (split by document) or train:/valid:/test: (split by file), not both");
  check(!by_file || (!s.train.empty() && !s.valid.empty() && !s.test.empty()), at,
        "split by file needs all of train:, valid: and test:");
  check(s.split.empty() || !by_file, at + ".split", "is for files: split by document");
  validate_split(s.split, at + ".split");
  const std::pair<const char*, const std::vector<ShardEntry>*> lists[] = {
      {"train", &s.train}, {"valid", &s.valid}, {"test", &s.test}, {"files", &s.files}};
  for (const auto& [key, list] : lists) validate_entries(*list, at + "." + key);
}

void validate_jsonl(const JsonlCorpus& j, const std::string& at) {
  check(!j.text_field.empty(), at + ".text_field", "is empty");
  validate_split(j.split, at + ".split");
  validate_entries(j.files, at + ".files");
}

void validate_domain(const DomainSpec& d, const std::string& at, bool pretokenized) {
  check_name(d.name, at + ".name");
  check(d.max_bytes >= 0, at + ".max_bytes", "must be >= 0 (0: all)");
  if (pretokenized && !d.jsonl.files.empty()) {
    validate_jsonl(d.jsonl, at + ".jsonl");
    check(d.shards.dir.empty() && d.shards.files.empty() && d.shards.train.empty() &&
              d.shards.valid.empty() && d.shards.test.empty(),
          at, "give shards: or jsonl:, not both");
    return;
  }
  if (pretokenized) {
    validate_shards(d.shards, at + ".shards");
    check(d.sources.empty() && d.generator.empty(), at,
          "a pre-tokenized domain reads shards, not sources");
    return;
  }
  check(d.shards.dir.empty() && d.shards.files.empty() && d.shards.train.empty() &&
            d.shards.dtype.empty(),
        at + ".shards", "needs tokenizer kind pretokenized");
  check(d.generator.empty() || d.generator == "math", at + ".generator",
        "'" + d.generator + "' is not one of math");
  check(!d.sources.empty() || !d.generator.empty(), at,
        "domain '" + d.name + "' has no sources and no generator");
  for (size_t i = 0; i < d.sources.size(); ++i) {
    check(!d.sources[i].pattern.empty(), at + ".sources[" + std::to_string(i) + "].pattern",
          "is empty");
  }
}

// ---- the recipe's data: section ----

std::string text_choice(const core::FieldSource& s, const std::string& key,
                        const std::string& fallback, const std::vector<std::string>& choices) {
  if (!s.has(key)) return fallback;
  std::string t = s.text(key);
  for (const auto& c : choices) {
    if (t == c) return t;
  }
  s.fail(key, "'" + t + "' is not allowed; expected " + core::or_list(choices));
}

// Relative paths are taken from the working directory, like store: and root:, and made absolute
// so that a job finds them from wherever it runs.
std::string absolute_path(const std::string& p) {
  return p.empty() ? p : std::filesystem::absolute(p).lexically_normal().string();
}

void read_tokenizer_section(const core::FieldSource& t, PrepareSpec& d) {
  t.expect_only({"kind", "vocab", "pieces", "model_type", "sample_bytes", "path", "eod"});
  d.pretokenized =
      text_choice(t, "kind", "sentencepiece", {"sentencepiece", "pretokenized"}) == "pretokenized";
  if (t.has("vocab")) d.tokenizer.vocab = t.integer("vocab", {});
  if (d.pretokenized) {
    if (!t.has("vocab")) t.fail("", "kind: pretokenized needs vocab: the shards' tokenizer size");
    for (const char* k : {"pieces", "model_type", "sample_bytes"}) {
      if (t.has(k))
        t.fail(k, "is for kind: sentencepiece; pre-tokenized shards bring their own tokens");
    }
    if (t.has("eod")) d.boundary.eod = t.integer("eod", {0, d.tokenizer.vocab - 1});
    if (t.has("path")) {
      d.tokenizer_path = absolute_path(t.text("path"));
      const std::string name = std::filesystem::path(d.tokenizer_path).filename().string();
      if (!core::ends_with(name, ".json") && !core::ends_with(name, ".model"))
        t.fail("path", "expected a tokenizer.json (Hugging Face) or a SentencePiece .model");
      std::error_code ec;
      if (!std::filesystem::is_regular_file(d.tokenizer_path, ec))
        t.fail("path", d.tokenizer_path + ": no such file");
      d.tokenizer_sha256 = core::sha256_file(d.tokenizer_path);
    }
    return;
  }
  for (const char* k : {"path", "eod"}) {
    if (t.has(k)) t.fail(k, "is for kind: pretokenized (the corpus's own tokenizer)");
  }
  d.tokenizer.model_type = text_choice(t, "model_type", d.tokenizer.model_type, {"bpe", "unigram"});
  if (t.has("pieces")) d.tokenizer.pieces = t.integer("pieces", {});
  if (t.has("sample_bytes")) d.tokenizer_sample_bytes = t.integer("sample_bytes", {});
}

// A list of files, globs or directories, each a string or {path, weight}; one string alone too.
std::vector<ShardEntry> read_shard_entries(const core::FieldSource& s, const char* key) {
  if (!s.has(key)) return {};
  std::vector<std::unique_ptr<core::FieldSource>> items;
  try {
    items = s.list(key);
  } catch (const Error&) {
    return {{absolute_path(s.text(key)), 0}};
  }
  std::vector<ShardEntry> out;
  for (const auto& e : items) {
    if (e->is_scalar()) {
      out.push_back({absolute_path(e->scalar()), 0});
      continue;
    }
    e->expect_only({"path", "weight"});
    if (!e->has("path")) e->fail("", "needs path: (a file, a glob or a directory)");
    const double w = e->has("weight") ? e->number("weight") : 0;
    if (e->has("weight") && !(w > 0 && std::isfinite(w))) e->fail("weight", "must be positive");
    out.push_back({absolute_path(e->text("path")), w});
  }
  return out;
}

PretokenizedShards read_shards_section(const core::FieldSource& s) {
  s.expect_only({"dir", "train", "valid", "test", "files", "split", "dtype"});
  PretokenizedShards out;
  out.dir = absolute_path(s.has("dir") ? s.text("dir") : "");
  out.train = read_shard_entries(s, "train");
  out.valid = read_shard_entries(s, "valid");
  out.test = read_shard_entries(s, "test");
  out.files = read_shard_entries(s, "files");
  if (s.has("split")) out.split = s.text("split");
  if (s.has("dtype")) out.dtype = s.text("dtype");
  return out;
}

std::vector<SourceSpec> read_sources_section(const core::FieldSource& domain) {
  std::vector<SourceSpec> out;
  for (const auto& s : domain.list("sources")) {
    if (s->is_scalar()) {
      out.push_back({s->scalar(), DocSplit::kWholeFile, "text"});
      continue;
    }
    s->expect_only({"pattern", "split", "text_field"});
    const std::string split = text_choice(*s, "split", "file", {"file", "fortune", "jsonl"});
    out.push_back({s->text("pattern"), doc_split_from(split, "split"),
                   s->has("text_field") ? s->text("text_field") : "text"});
    if (s->has("text_field") && split != "jsonl") s->fail("text_field", "is for split: jsonl only");
  }
  return out;
}

JsonlCorpus read_jsonl_section(const core::FieldSource& j) {
  j.expect_only({"files", "text_field", "split"});
  if (!j.has("files")) j.fail("", "needs files: the JSONL files, globs or directories");
  JsonlCorpus out;
  out.files = read_shard_entries(j, "files");
  if (j.has("text_field")) out.text_field = j.text("text_field");
  if (j.has("split")) out.split = j.text("split");
  return out;
}

DomainSpec read_domain_section(const core::FieldSource& e, bool pretokenized, int64_t max_bytes) {
  DomainSpec d;
  if (!e.is_scalar())
    e.expect_only({"name", "sources", "generator", "max_bytes", "shards", "jsonl"});
  d.name = e.is_scalar() ? e.scalar() : e.text("name");
  if (pretokenized) {
    if (e.is_scalar() || (e.has("shards") == e.has("jsonl")))
      e.fail("", "domain '" + d.name +
                     "' needs shards: (tokenized files) or jsonl: (text to tokenize), one of them "
                     "(data.tokenizer.kind is pretokenized)");
    for (const char* k : {"sources", "generator", "max_bytes"}) {
      if (e.has(k)) e.fail(k, "is for text domains; this domain reads pre-tokenized shards");
    }
    if (e.has("jsonl"))
      d.jsonl = read_jsonl_section(*e.child("jsonl"));
    else
      d.shards = read_shards_section(*e.child("shards"));
    return d;
  }
  if (!e.is_scalar() && e.has("jsonl"))
    e.fail("jsonl", "is for kind: pretokenized (text of a domain with a tokenizer is sources:)");
  if (!e.is_scalar() && e.has("shards")) {
    e.fail("shards",
           "needs data.tokenizer.kind: pretokenized (with the shards' vocab), for every domain");
  }
  const DomainSpec builtin = default_domain(d.name);
  d.sources = builtin.sources;
  d.generator = builtin.generator;
  d.max_bytes = max_bytes;
  if (!e.is_scalar()) {
    if (e.has("sources")) d.sources = read_sources_section(e);
    d.generator = text_choice(e, "generator", d.generator, {"math"});
    if (e.has("max_bytes")) d.max_bytes = e.integer("max_bytes", {});
  }
  if (d.sources.empty() && d.generator.empty()) {
    e.fail("", "domain '" + d.name + "' has no built-in sources; give it sources: or generator:",
           "built-in domains: general, code, law, math");
  }
  return d;
}

}  // namespace

DataSection read_data_section(const core::FieldSource& r) {
  r.expect_only({"domains", "tokenizer", "valid_fraction", "test_fraction", "max_bytes",
                 "task_examples", "seed", "boundary"});
  DataSection out;
  PrepareJobSpec& d = out.spec;
  if (r.has("tokenizer")) read_tokenizer_section(*r.child("tokenizer"), d);
  if (r.has("boundary")) {
    if (!d.pretokenized) r.fail("boundary", "is for pre-tokenized corpora");
    d.boundary.mode = text_choice(r, "boundary", "as_stored", {"as_stored", "eod"});
    if (d.boundary.mode == "eod" && d.boundary.eod < 0)
      r.fail("boundary", "eod needs data.tokenizer.eod: the end-of-document token's id");
  }
  if (!r.has("domains")) r.fail("", "needs domains: a non-empty list of domains");
  const auto domains = r.list("domains");
  if (domains.empty()) r.fail("domains", "expected a non-empty list of domains");
  const int64_t max_bytes = r.has("max_bytes") ? r.integer("max_bytes", {}) : 0;
  for (const auto& e : domains)
    d.domains.push_back(read_domain_section(*e, d.pretokenized, max_bytes));
  if (d.pretokenized) {
    d.task_examples = 0;  // built-in tasks are made from text
    for (const char* k : {"task_examples", "max_bytes", "valid_fraction", "test_fraction"}) {
      if (r.has(k)) r.fail(k, "is for text domains; pre-tokenized shards come split");
    }
  }
  if (r.has("valid_fraction")) d.valid_fraction = r.number("valid_fraction");
  if (r.has("test_fraction")) d.test_fraction = r.number("test_fraction");
  if (r.has("task_examples")) d.task_examples = r.integer("task_examples", {});
  if (r.has("seed"))
    out.seed = static_cast<uint64_t>(r.integer("seed", {0, std::numeric_limits<int64_t>::max()}));
  validate(d);
  return out;
}

const char* doc_split_name(DocSplit s) {
  switch (s) {
    case DocSplit::kFortune:
      return "fortune";
    case DocSplit::kJsonl:
      return "jsonl";
    case DocSplit::kWholeFile:
      break;
  }
  return "file";
}

DocSplit doc_split_from(const std::string& name, const std::string& field) {
  check_choice(name, field, {"file", "fortune", "jsonl"});
  return name == "fortune" ? DocSplit::kFortune
         : name == "jsonl" ? DocSplit::kJsonl
                           : DocSplit::kWholeFile;
}

void validate(const PrepareJobSpec& s) {
  check(!s.domains.empty(), "domains", "needs at least one domain");
  check(s.domains.size() <= 1024, "domains", "at most 1024 domains");
  std::set<std::string> seen;
  for (size_t i = 0; i < s.domains.size(); ++i) {
    const std::string at = "domains[" + std::to_string(i) + "]";
    validate_domain(s.domains[i], at, s.pretokenized);
    check(seen.insert(s.domains[i].name).second, at + ".name",
          "domain '" + s.domains[i].name + "' is listed twice");
  }
  if (s.pretokenized) {
    check(s.tokenizer.vocab >= 2 && s.tokenizer.vocab <= (int64_t(1) << 32), "tokenizer.vocab",
          "must be in [2, 2^32]");
    check(s.task_examples == 0, "task_examples",
          "built-in tasks are made from text; pre-tokenized data has none");
    check_choice(s.boundary.mode, "boundary", {"as_stored", "eod"});
    check(s.boundary.mode != "eod" || (s.boundary.eod >= 0 && s.boundary.eod < s.tokenizer.vocab),
          "tokenizer.eod", "boundary eod needs an end-of-document token below the vocabulary");
    check(s.tokenizer_path.empty() || s.tokenizer_sha256.size() == 64, "tokenizer.sha256",
          "must be a sha256 (64 hex digits)");
    for (size_t i = 0; i < s.domains.size(); ++i) {
      check(
          s.domains[i].jsonl.files.empty() || core::ends_with(s.tokenizer_path, ".model") ||
              core::ends_with(s.tokenizer_path, ".json"),
          "domains[" + std::to_string(i) + "].jsonl",
          "JSONL text is tokenized with data.tokenizer.path, which must be a SentencePiece .model "
          "or a Hugging Face byte-level BPE tokenizer.json");
    }
  } else if (!s.tokenizer_file.empty()) {
    check(s.tokenizer_sha256.size() == 64, "tokenizer.sha256", "must be a sha256 (64 hex digits)");
  } else {
    check(s.tokenizer.vocab >= 300 && s.tokenizer.vocab <= 1000000, "tokenizer.vocab",
          "must be in [300, 1000000] (byte fallback needs 259 pieces)");
    check(s.tokenizer.pieces == 0 ||
              (s.tokenizer.pieces >= 300 && s.tokenizer.pieces <= s.tokenizer.vocab),
          "tokenizer.pieces", "must be in [300, tokenizer.vocab] (0: vocab)");
    check_choice(s.tokenizer.model_type, "tokenizer.model_type", {"bpe", "unigram"});
    check(s.tokenizer_sample_bytes >= 1000, "tokenizer.sample_bytes", "must be >= 1000");
  }
  check(s.valid_fraction > 0 && s.test_fraction > 0 && s.valid_fraction + s.test_fraction < 1,
        "valid_fraction",
        "valid_fraction and test_fraction must be positive and sum to less than 1");
  check(s.task_examples >= 0 && s.task_examples <= 1000000, "task_examples",
        "must be in [0, 1000000]");
}

nlohmann::json to_json(const PrepareJobSpec& s) {
  nlohmann::json domains = nlohmann::json::array();
  for (const auto& d : s.domains) domains.push_back(domain_json(d, s.pretokenized));
  nlohmann::json tokenizer = {{"kind", s.pretokenized ? "pretokenized" : "sentencepiece"},
                              {"vocab", s.tokenizer.vocab}};
  if (!s.tokenizer_file.empty()) {
    tokenizer = {{"kind", "file"}, {"path", s.tokenizer_file}, {"sha256", s.tokenizer_sha256}};
  } else if (s.pretokenized) {
    if (!s.tokenizer_path.empty()) {
      tokenizer["path"] = s.tokenizer_path;
      tokenizer["sha256"] = s.tokenizer_sha256;
    }
    if (s.boundary.eod >= 0) tokenizer["eod"] = s.boundary.eod;
  } else {
    tokenizer["model_type"] = s.tokenizer.model_type;
    tokenizer["sample_bytes"] = s.tokenizer_sample_bytes;
    if (s.tokenizer.pieces > 0) tokenizer["pieces"] = s.tokenizer.pieces;  // keys stay as they were
  }
  nlohmann::json j = {{"domains", domains},
                      {"tokenizer", tokenizer},
                      {"valid_fraction", s.valid_fraction},
                      {"test_fraction", s.test_fraction},
                      {"task_examples", s.task_examples},
                      {"seed", s.seed}};
  if (s.pretokenized) j["boundary"] = s.boundary.mode;
  return j;
}

void read_spec(const SpecReader& r, PrepareJobSpec& p) {
  expect_fields(r, {"domains", "tokenizer", "valid_fraction", "test_fraction", "task_examples",
                    "seed", "boundary"});
  SpecReader tok = r.object("tokenizer");
  tok.expect_only(
      {"kind", "vocab", "pieces", "model_type", "sample_bytes", "path", "sha256", "eod"});
  const std::string kind = tok.value<std::string>("kind", "sentencepiece");
  check_choice(kind, "tokenizer.kind", {"sentencepiece", "pretokenized", "file"});
  p.pretokenized = kind == "pretokenized";
  if (kind == "file") {
    p.tokenizer_file = tok.value<std::string>("path");
    p.tokenizer_sha256 = tok.value<std::string>("sha256");
  } else {
    p.tokenizer.vocab = tok.value<int64_t>("vocab");
  }
  if (p.pretokenized) {
    p.tokenizer_path = tok.value<std::string>("path", "");
    p.tokenizer_sha256 = tok.value<std::string>("sha256", "");
    p.boundary = {r.value<std::string>("boundary", "as_stored"), tok.value<int64_t>("eod", -1)};
  }
  p.tokenizer.pieces = tok.value("pieces", p.tokenizer.pieces);
  p.tokenizer.model_type = tok.value("model_type", p.tokenizer.model_type);
  p.tokenizer_sample_bytes = tok.value("sample_bytes", p.tokenizer_sample_bytes);
  for (const auto& d : r.items("domains")) p.domains.push_back(read_domain(d));
  p.valid_fraction = r.value("valid_fraction", p.valid_fraction);
  p.test_fraction = r.value("test_fraction", p.test_fraction);
  p.task_examples = r.value("task_examples", p.task_examples);
  p.seed = r.value<uint64_t>("seed", 0);
  p.tokenizer.seed = p.seed;
  validate(p);
}

nlohmann::json key_material(const PrepareJobSpec& s, const JobRuntime& rt) {
  nlohmann::json j = to_json(s);
  if (!s.tokenizer_file.empty() || !s.tokenizer_path.empty())
    j["tokenizer"].erase("path");  // the content is keyed, not where it lies
  // SentencePiece's unigram trainer sums per-thread partial expectations (float); BPE counts
  // integers.
  if (!s.pretokenized && s.tokenizer.model_type == "unigram") j["threads"] = rt.threads;
  return j;
}

}  // namespace upcycle::stages
