#include "stages/data/bpe_tokenizer.h"

#include <algorithm>
#include <queue>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/job_files.h"
#include "core/utf8.h"
#include "stages/data/bpe_pretokenize.h"

namespace upcycle::stages {

const std::array<std::string, 256>& byte_level_chars() {
  static const std::array<std::string, 256> chars = [] {
    std::array<std::string, 256> c;
    auto utf8 = [](uint32_t cp) {
      std::string s;
      if (cp < 0x80) {
        s += static_cast<char>(cp);
      } else {  // the map stays below U+0800
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
      }
      return s;
    };
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
      c[b] = utf8(printable ? b : next++);
    }
    return c;
  }();
  return chars;
}

namespace {

// A vocabulary entry spelled in byte-level characters, as bytes; false when it has a character
// the map does not have (such an entry can only be an added token's).
bool from_byte_level(const std::string& token, std::string& out) {
  static const std::unordered_map<std::string, char> inverse = [] {
    std::unordered_map<std::string, char> m;
    for (int b = 0; b < 256; ++b)
      m[byte_level_chars()[static_cast<size_t>(b)]] = static_cast<char>(b);
    return m;
  }();
  out.clear();
  for (size_t i = 0; i < token.size();) {
    const size_t len = (static_cast<unsigned char>(token[i]) & 0x80) == 0 ? 1 : 2;
    auto it = inverse.find(token.substr(i, len));
    if (it == inverse.end()) return false;
    out += it->second;
    i += len;
  }
  return true;
}

// Ids index per-token tables: a bound keeps a hostile file from allocating gigabytes (the largest
// real vocabularies have about 2^18 tokens).
constexpr int64_t kMaxTokenId = int64_t{1} << 22;

uint32_t checked_id(const nlohmann::json& v, const std::string& where) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= kMaxTokenId) {
    throw StageError(where + ": not a token id (an integer in [0, 2^22))");
  }
  return static_cast<uint32_t>(v.get<int64_t>());
}

void refuse_if(bool bad, const std::string& where, const std::string& what) {
  if (bad) throw StageError(where + ": " + what);
}

// The White_Space code point a UTF-8 sequence at s[i] starts with: its length, or 0.
size_t white_space_at(std::string_view s, size_t i) {
  static const std::array<std::string_view, 8> wide = {
      "\xC2\x85",     "\xC2\xA0",     "\xE1\x9A\x80", "\xE2\x80\xA8",
      "\xE2\x80\xA9", "\xE2\x80\xAF", "\xE2\x81\x9F", "\xE3\x80\x80"};
  const unsigned char c = static_cast<unsigned char>(s[i]);
  if (c == ' ' || (c >= '\t' && c <= '\r')) return 1;
  for (std::string_view w : wide) {
    if (s.compare(i, w.size(), w) == 0) return w.size();
  }
  if (c == 0xE2 && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
      static_cast<unsigned char>(s[i + 2]) <= 0x8A) {
    return 3;  // U+2000..U+200A
  }
  return 0;
}

size_t white_space_before(std::string_view s, size_t i, size_t floor) {
  while (i > floor) {
    size_t b = i - 1;  // the start of the previous character
    while (b > floor && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
    if (white_space_at(s, b) != i - b) break;
    i = b;
  }
  return i;
}

}  // namespace

BpeTokenizer::BpeTokenizer(const std::string& path) {
  nlohmann::json j;
  try {
    j = core::read_json_file(path);
  } catch (const Error& e) {
    throw StageError(std::string(e.what()), "expected a Hugging Face tokenizer.json");
  }
  try {
    refuse_if(!j.is_object() || !j.contains("model"), path, "no \"model\": not a tokenizer.json");
    read_model(j["model"], path + ": model");
    const nlohmann::json& norm = j.value("normalizer", nlohmann::json());
    const std::string ntype = norm.is_object() ? norm.value("type", "") : "";
    nfc_ = ntype == "NFC" || (ntype == "Sequence" && norm.at("normalizers").size() == 1 &&
                              norm["normalizers"][0].value("type", "") == "NFC");
    refuse_if(!norm.is_null() && !nfc_, path + ": normalizer",
              "type " + ntype + " is not supported (NFC or none)");
    pre_ = std::make_unique<const bpe::PreTokenizer>(bpe::PreTokenizer::from_json(
        j.value("pre_tokenizer", nlohmann::json()), path + ": pre_tokenizer"));
    read_added(j.value("added_tokens", nlohmann::json::array()), path + ": added_tokens");
  } catch (const nlohmann::json::exception& e) {
    throw StageError(path + ": " + e.what(), "expected a Hugging Face tokenizer.json");
  }
}

BpeTokenizer::~BpeTokenizer() = default;
BpeTokenizer::BpeTokenizer(BpeTokenizer&&) noexcept = default;

void BpeTokenizer::read_model(const nlohmann::json& m, const std::string& where) {
  refuse_if(m.value("type", "") != "BPE", where + ".type",
            m.value("type", "(none)") + " is not supported (BPE)");
  refuse_if(!m.value("dropout", nlohmann::json()).is_null(), where + ".dropout",
            "BPE dropout is not supported");
  refuse_if(m.value("byte_fallback", false), where + ".byte_fallback",
            "true is a SentencePiece-style BPE, not byte-level");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const nlohmann::json v = m.value(key, nlohmann::json());
    refuse_if(!v.is_null() && v != "", where + "." + key, "is not supported");
  }
  ignore_merges_ = m.value("ignore_merges", false);
  std::unordered_map<std::string, uint32_t> by_chars;
  std::string raw;
  for (const auto& [token, id_json] : m.at("vocab").items()) {
    const uint32_t id = checked_id(id_json, where + ".vocab[" + token + "]");
    if (id >= bytes_.size()) bytes_.resize(id + 1);
    by_chars[token] = id;
    const bool byte_level = from_byte_level(token, raw);
    bytes_[id] = byte_level ? raw : token;
    if (byte_level) ids_.emplace(raw, id);
  }
  for (int b = 0; b < 256; ++b) {
    auto it = by_chars.find(byte_level_chars()[static_cast<size_t>(b)]);
    refuse_if(it == by_chars.end(), where + ".vocab",
              "has no token for byte " + std::to_string(b) + ": not a byte-level vocabulary");
    byte_id_[static_cast<size_t>(b)] = it->second;
  }
  const nlohmann::json& merges = m.at("merges");
  for (size_t r = 0; r < merges.size(); ++r) {
    const nlohmann::json& mj = merges[r];
    std::string a, b;
    if (mj.is_array() && mj.size() == 2) {
      a = mj[0].get<std::string>(), b = mj[1].get<std::string>();
    } else if (mj.is_string() && mj.get<std::string>().find(' ') != std::string::npos) {
      const std::string s = mj.get<std::string>();
      a = s.substr(0, s.find(' ')), b = s.substr(s.find(' ') + 1);
    } else {
      throw StageError(where + ".merges[" + std::to_string(r) + "]: not a pair of tokens");
    }
    auto ia = by_chars.find(a), ib = by_chars.find(b), iab = by_chars.find(a + b);
    refuse_if(ia == by_chars.end() || ib == by_chars.end() || iab == by_chars.end(),
              where + ".merges[" + std::to_string(r) + "]",
              "\"" + a + " " + b + "\" has a token the vocabulary lacks");
    const uint64_t key = uint64_t{ia->second} << 32 | ib->second;
    merges_.emplace(key, Merge{static_cast<uint32_t>(r), iab->second});  // the first rank wins
  }
}

void BpeTokenizer::read_added(const nlohmann::json& list, const std::string& where) {
  for (size_t i = 0; i < list.size(); ++i) {
    const nlohmann::json& t = list[i];
    const std::string at = where + "[" + std::to_string(i) + "]";
    Added a;
    a.id = checked_id(t.at("id"), at + ".id");
    a.content = t.at("content").get<std::string>();
    refuse_if(a.content.empty() || core::invalid_utf8_at(a.content) != core::kValidUtf8,
              at + ".content", "empty or not UTF-8");
    refuse_if(t.value("single_word", false), at + ".single_word", "true is not supported");
    a.lstrip = t.value("lstrip", false);
    a.rstrip = t.value("rstrip", false);
    a.special = t.value("special", false);
    a.normalized = t.value("normalized", !a.special);
    if (a.normalized && nfc_) a.content = bpe::nfc(a.content);
    if (a.id >= bytes_.size()) bytes_.resize(a.id + 1);
    bytes_[a.id] = a.content;
    added_.push_back(std::move(a));
  }
  std::stable_sort(added_.begin(), added_.end(), [](const Added& x, const Added& y) {
    return x.content.size() > y.content.size();
  });
  special_.assign(bytes_.size(), 0);
  for (uint32_t k = 0; k < added_.size(); ++k) {
    first_[static_cast<unsigned char>(added_[k].content[0])].push_back(k);
    special_[added_[k].id] = added_[k].special ? 1 : 0;
  }
}

int64_t BpeTokenizer::added_id(std::string_view content) const {
  for (const Added& a : added_) {
    if (a.content == content) return a.id;
  }
  return -1;
}

bool BpeTokenizer::is_special(uint32_t id) const {
  return id < special_.size() && special_[id] != 0;
}

template <typename Gap>
void BpeTokenizer::split_added(std::string_view text, bool normalized, std::vector<uint32_t>& out,
                               Gap&& gap) const {
  size_t done = 0;  // text before this is emitted
  for (size_t i = 0; i < text.size(); ++i) {
    const Added* hit = nullptr;
    for (uint32_t k : first_[static_cast<unsigned char>(text[i])]) {
      const Added& a = added_[k];
      if (a.normalized == normalized && text.compare(i, a.content.size(), a.content) == 0) {
        hit = &a;  // longest first: the first hit is the longest
        break;
      }
    }
    if (hit == nullptr) continue;
    size_t begin = i, end = i + hit->content.size();
    if (hit->lstrip) begin = white_space_before(text, begin, done);
    if (hit->rstrip) {
      for (size_t w; end < text.size() && (w = white_space_at(text, end)) > 0;) end += w;
    }
    if (begin > done) gap(text.substr(done, begin - done));
    out.push_back(hit->id);
    done = end;
    i = end - 1;
  }
  if (done < text.size()) gap(text.substr(done));
}

std::vector<uint32_t> BpeTokenizer::encode(std::string_view text) const {
  std::string valid;
  if (core::invalid_utf8_at(text) != core::kValidUtf8) {
    valid = core::replace_invalid_utf8(text);
    text = valid;
  }
  std::vector<uint32_t> out;
  out.reserve(text.size() / 3 + 1);
  split_added(text, false, out, [&](std::string_view gap) { encode_segment(gap, out); });
  return out;
}

void BpeTokenizer::encode_segment(std::string_view text, std::vector<uint32_t>& out) const {
  std::string normalized;
  if (nfc_) {
    normalized = bpe::nfc(text);
    text = normalized;
  }
  split_added(text, true, out, [&](std::string_view gap) {
    pre_->split(gap, [&](std::string_view word) { encode_word(word, out); });
  });
}

void BpeTokenizer::encode_word(std::string_view word, std::vector<uint32_t>& out) const {
  if (word.size() == 1) {
    out.push_back(byte_id_[static_cast<unsigned char>(word[0])]);
    return;
  }
  if (ignore_merges_) {
    auto it = ids_.find(std::string(word));
    if (it != ids_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  // Symbols in a linked list; a min-heap of candidate merges by (rank, position), as tokenizers.
  struct Sym {
    uint32_t id;
    int32_t prev, next;
  };
  struct Cand {
    uint32_t rank;
    int32_t pos;
    uint32_t left, right;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  static constexpr uint32_t kDead = UINT32_MAX;
  const int32_t n = static_cast<int32_t>(word.size());
  std::vector<Sym> s(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    s[static_cast<size_t>(i)] = {byte_id_[static_cast<unsigned char>(word[static_cast<size_t>(i)])],
                                 i - 1, i + 1 < n ? i + 1 : -1};
  }
  std::priority_queue<Cand, std::vector<Cand>, std::greater<>> heap;
  auto push = [&](int32_t pos) {
    if (pos < 0 || s[static_cast<size_t>(pos)].next < 0) return;
    const uint32_t l = s[static_cast<size_t>(pos)].id;
    const uint32_t r = s[static_cast<size_t>(s[static_cast<size_t>(pos)].next)].id;
    auto it = merges_.find(uint64_t{l} << 32 | r);
    if (it != merges_.end()) heap.push({it->second.rank, pos, l, r});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    Sym& a = s[static_cast<size_t>(c.pos)];
    if (a.id != c.left || a.next < 0 || s[static_cast<size_t>(a.next)].id != c.right) continue;
    Sym& b = s[static_cast<size_t>(a.next)];
    a.id = merges_.at(uint64_t{c.left} << 32 | c.right).id;
    b.id = kDead;
    a.next = b.next;
    if (b.next >= 0) s[static_cast<size_t>(b.next)].prev = c.pos;
    push(a.prev);
    push(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = s[static_cast<size_t>(i)].next) {
    out.push_back(s[static_cast<size_t>(i)].id);
  }
}

std::string BpeTokenizer::decode(const std::vector<uint32_t>& ids) const {
  std::string out;
  for (uint32_t id : ids) {
    if (id >= bytes_.size()) {
      throw StageError("token id " + std::to_string(id) + " is outside the vocabulary of " +
                       std::to_string(bytes_.size()));
    }
    out += bytes_[id];
  }
  return out;
}

}  // namespace upcycle::stages
