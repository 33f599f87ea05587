#include "stages/data/domain_tokens.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/job_files.h"
#include "core/strings.h"
#include "stages/data/megatron_index.h"

namespace upcycle::stages {
namespace {

nlohmann::json info_json(const ShardInfo& i) {
  return {{"dtype", i.dtype},
          {"tokens", i.tokens},
          {"sha256", i.sha256},
          {"sample_sha256", i.sample_sha256},
          {"mtime_ns", i.mtime_ns}};
}

ShardInfo info_from(const nlohmann::json& j) {
  return {j.at("dtype").get<std::string>(), j.at("tokens").get<int64_t>(),
          j.at("sha256").get<std::string>(), j.at("sample_sha256").get<std::string>(),
          j.at("mtime_ns").get<int64_t>()};
}

}  // namespace

struct DomainTokens::Part {
  std::string name;
  TokenShard shard;
  std::unique_ptr<MegatronIndex> index;  ///< Megatron parts
  int64_t first = 0, last = 0;           ///< the token range in shard
  int64_t doc_begin = 0, doc_end = 0;
  int64_t eod = -1;  ///< >= 0: read after every document
  int64_t size = 0;
  double weight = 1;

  Part(std::string n, TokenShard s) : name(std::move(n)), shard(std::move(s)) {}

  // Where position v of the part lies: the document k with v in its span (document tokens plus
  // its end-of-document token).
  int64_t doc_of(int64_t v) const {
    int64_t lo = doc_begin, hi = doc_end - 1;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo + 1) / 2;
      if (index->doc_start(mid) - first + (mid - doc_begin) <= v)
        lo = mid;
      else
        hi = mid - 1;
    }
    return lo;
  }

  void copy(int64_t start, int64_t n, int64_t* out, int64_t vocab) const {
    if (eod < 0) return shard.copy_to(first + start, n, out, vocab);
    int64_t k = doc_of(start), v = start;
    while (n > 0) {
      const int64_t doc_first = index->doc_start(k), doc_last = index->doc_start(k + 1);
      const int64_t span_v = doc_first - first + (k - doc_begin);  // where doc k starts in v
      const int64_t in_doc = v - span_v;
      const int64_t take = std::min(n, doc_last - doc_first - in_doc);
      if (take > 0) {
        shard.copy_to(doc_first + in_doc, take, out, vocab);
        out += take, v += take, n -= take;
      }
      if (n > 0) {
        *out++ = eod, ++v, --n;
        ++k;
      }
    }
  }
};

std::string parts_path(const std::string& shard_path) {
  const std::string stem = shard_path.size() > 4 && core::ends_with(shard_path, ".bin")
                               ? shard_path.substr(0, shard_path.size() - 4)
                               : shard_path;
  return stem + ".parts.json";
}

void write_parts(const std::string& shard_path, const std::vector<PartRecord>& parts,
                 const Boundary& boundary) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& p : parts) {
    nlohmann::json j = {
        {"path", p.path}, {"format", p.format}, {"bin", info_json(p.bin)}, {"weight", p.weight}};
    if (p.format == "megatron") {
      j["idx"] = info_json(p.idx);
      j["documents"] = {p.doc_begin, p.doc_end};
    }
    list.push_back(j);
  }
  nlohmann::json doc = {
      {"format_version", 1}, {"boundary", boundary.mode}, {"eod", boundary.eod}, {"parts", list}};
  core::write_file_atomic(parts_path(shard_path), doc.dump(1) + "\n");
}

DomainTokens::DomainTokens(const std::string& shard_path, ShardCheck check) : path_(shard_path) {
  if (core::file_exists(shard_path)) {  // the prepare stage's own shard
    auto part = std::make_unique<Part>(shard_path, TokenShard(shard_path, check));
    part->last = part->size = part->shard.size();
    size_ = part->size;
    parts_.push_back(std::move(part));
    return;
  }
  const std::string list = parts_path(shard_path);
  if (!core::file_exists(list)) throw StageError(shard_path + ": no such shard (nor " + list + ")");
  nlohmann::json doc;
  try {
    doc = core::read_json_file(list);
    const Boundary b{doc.at("boundary").get<std::string>(), doc.at("eod").get<int64_t>()};
    for (const auto& j : doc.at("parts")) {
      const std::string path = j.at("path").get<std::string>();
      const bool megatron = j.at("format").get<std::string>() == "megatron";
      const std::string bin = megatron ? path + ".bin" : path;
      auto part = std::make_unique<Part>(path, TokenShard(bin, info_from(j.at("bin")), check));
      part->weight = j.at("weight").get<double>();
      part->last = part->shard.size();
      if (megatron) {
        TokenShard idx_check(path + ".idx", info_from(j.at("idx")), check);  // digests only
        part->index = std::make_unique<MegatronIndex>(path);
        part->doc_begin = j.at("documents").at(0).get<int64_t>();
        part->doc_end = j.at("documents").at(1).get<int64_t>();
        if (part->doc_begin < 0 || part->doc_end > part->index->documents() ||
            part->doc_begin >= part->doc_end)
          throw StageError(list + ": documents of " + path + " out of range");
        part->first = part->index->doc_start(part->doc_begin);
        part->last = part->index->doc_start(part->doc_end);
        if (b.mode == "eod") part->eod = b.eod;
      }
      part->size =
          part->last - part->first + (part->eod >= 0 ? part->doc_end - part->doc_begin : 0);
      size_ += part->size;
      parts_.push_back(std::move(part));
    }
  } catch (const nlohmann::json::exception& e) {
    throw StageError(list + ": malformed parts list: " + e.what(),
                     "re-run the prepare stage: upcycle run RECIPE --force data");
  }
  if (parts_.empty()) throw StageError(list + ": lists no part");
}

DomainTokens::~DomainTokens() = default;
DomainTokens::DomainTokens(DomainTokens&&) noexcept = default;

int64_t DomainTokens::parts() const { return int64_t(parts_.size()); }
const std::string& DomainTokens::part_name(int64_t p) const { return parts_[p]->name; }
double DomainTokens::weight(int64_t p) const { return parts_[p]->weight; }
int64_t DomainTokens::part_size(int64_t p) const { return parts_[p]->size; }

void DomainTokens::copy_part(int64_t p, int64_t start, int64_t n, int64_t* out,
                             int64_t vocab) const {
  parts_[p]->copy(start, n, out, vocab);
}

void DomainTokens::copy_to(int64_t start, int64_t n, int64_t* out, int64_t vocab) const {
  for (const auto& part : parts_) {
    if (n == 0) return;
    if (start >= part->size) {
      start -= part->size;
      continue;
    }
    const int64_t take = std::min(n, part->size - start);
    part->copy(start, take, out, vocab);
    out += take, n -= take, start = 0;
  }
}

}  // namespace upcycle::stages
