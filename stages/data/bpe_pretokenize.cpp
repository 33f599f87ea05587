#include "stages/data/bpe_pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace upcycle::stages::bpe {

// GPT-2's pre-tokenizer regex (ByteLevel with use_regex), as the tokenizers library has it.
static const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Oniguruma's \s: the White_Space property.
static const char* const kOnigSpace =
    R"(\t-\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

class Regex {
 public:
  Regex(const std::string& pattern, const std::string& where) {
    int err = 0;
    PCRE2_SIZE at = 0;
    const std::string pcre = onig_to_pcre2(pattern, where);
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pcre.data()), pcre.size(),
                          PCRE2_UTF | PCRE2_UCP, &err, &at, nullptr);
    if (code_ == nullptr) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      throw StageError(where + ": pattern " + pattern + " does not compile at offset " +
                       std::to_string(at) + ": " + reinterpret_cast<const char*>(msg));
    }
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // the interpreter runs where JIT is missing
  }
  ~Regex() { pcre2_code_free(code_); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  /// Calls fn(begin, end) for each non-overlapping match in `text` (valid UTF-8), left to right.
  template <typename Fn>
  void find_all(std::string_view text, Fn&& fn) const {
    const std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> md(
        pcre2_match_data_create_from_pattern(code_, nullptr), pcre2_match_data_free);
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t at = 0;
    while (at < text.size()) {
      const int rc =
          pcre2_match(code_, subject, text.size(), at, PCRE2_NO_UTF_CHECK, md.get(), nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;  // the rest is one gap
      if (rc < 0) {  // a match or depth limit (a pattern that backtracks without end): not silent
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        throw StageError(std::string("pre-tokenizer regex: ") + reinterpret_cast<const char*>(msg) +
                         " at byte " + std::to_string(at) + " of a " + std::to_string(text.size()) +
                         "-byte piece");
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
      if (ov[1] == ov[0]) {  // an empty match: step over one character
        at = ov[0] + 1;
        while (at < text.size() && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) ++at;
        continue;
      }
      fn(ov[0], ov[1]);
      at = ov[1];
    }
  }

 private:
  pcre2_code* code_ = nullptr;
};

std::string onig_to_pcre2(std::string_view pattern, const std::string& where) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[++i];
      if (e == 's') {
        out += in_class ? std::string(kOnigSpace) : "[" + std::string(kOnigSpace) + "]";
      } else if (e == 'S') {
        if (in_class) throw StageError(where + ": \\S inside a character class is not supported");
        out += "[^" + std::string(kOnigSpace) + "]";
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];  // a literal ]
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

std::string nfc(std::string_view text) {
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                   static_cast<utf8proc_ssize_t>(text.size()), &out,
                   static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) throw StageError(std::string("NFC normalisation failed: ") + utf8proc_errmsg(n));
  std::string s(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return s;
}

namespace {

std::string type_of(const nlohmann::json& j) {
  return j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>()
                                                                      : "";
}

PreStep split_step(const nlohmann::json& j, const std::string& where) {
  if (j.value("invert", false)) throw StageError(where + ".invert: true is not supported");
  const std::string behavior = j.value("behavior", "");
  if (behavior != "Isolated" && behavior != "Removed") {
    throw StageError(where + ".behavior: " + behavior + " is not supported (Isolated or Removed)");
  }
  const nlohmann::json& pat = j.at("pattern");
  std::string regex;
  if (pat.contains("Regex")) {
    regex = pat["Regex"].get<std::string>();
  } else if (pat.contains("String")) {  // a literal: quote it for PCRE2
    regex = "\\Q" + pat["String"].get<std::string>() + "\\E";
  } else {
    throw StageError(where + ".pattern: neither Regex nor String");
  }
  PreStep s;
  s.kind = PreStep::Kind::kSplit;
  s.regex = std::make_shared<const Regex>(regex, where + ".pattern");
  s.remove_matches = behavior == "Removed";
  return s;
}

PreStep byte_level_step(const nlohmann::json& j, const std::string& where) {
  PreStep s;
  s.kind = PreStep::Kind::kByteLevel;
  s.add_prefix_space = j.value("add_prefix_space", false);
  if (j.value("use_regex", true)) s.regex = std::make_shared<const Regex>(kGpt2Pattern, where);
  return s;
}

void add_steps(const nlohmann::json& j, const std::string& where, std::vector<PreStep>& out,
               int depth) {
  if (depth > 8) throw StageError(where + ": Sequence nested deeper than 8");
  const std::string type = type_of(j);
  if (type == "Sequence") {
    const nlohmann::json& list = j.at("pretokenizers");
    for (size_t i = 0; i < list.size(); ++i) {
      add_steps(list[i], where + ".pretokenizers[" + std::to_string(i) + "]", out, depth + 1);
    }
  } else if (type == "Split") {
    out.push_back(split_step(j, where));
  } else if (type == "Digits") {
    PreStep s;
    s.kind = PreStep::Kind::kDigits;
    s.individual_digits = j.value("individual_digits", false);
    out.push_back(s);
  } else if (type == "ByteLevel") {
    out.push_back(byte_level_step(j, where));
  } else {
    throw StageError(where + ".type: " + (type.empty() ? "(none)" : type) +
                     " is not supported (byte-level BPE: Sequence, Split, Digits, ByteLevel)");
  }
}

bool is_numeric(utf8proc_int32_t cp) {  // Rust's char::is_numeric: Nd, Nl, No
  const utf8proc_category_t c = utf8proc_category(cp);
  return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

// Digits: each numeric character its own piece, or each run of them.
void split_digits(std::string_view text, bool individual, const PieceFn& fn) {
  size_t start = 0;  // of the pending piece
  bool pending_numeric = false;
  size_t i = 0;
  while (i < text.size()) {
    utf8proc_int32_t cp = 0;
    const utf8proc_ssize_t n =
        utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + i),
                         static_cast<utf8proc_ssize_t>(text.size() - i), &cp);
    const size_t len = n > 0 ? static_cast<size_t>(n) : 1;
    const bool numeric = n > 0 && is_numeric(cp);
    if (i > start && (numeric != pending_numeric || (numeric && individual))) {
      fn(text.substr(start, i - start));
      start = i;
    }
    pending_numeric = numeric;
    i += len;
  }
  if (i > start) fn(text.substr(start, i - start));
}

}  // namespace

PreTokenizer PreTokenizer::from_json(const nlohmann::json& pre, const std::string& where) {
  PreTokenizer p;
  try {
    add_steps(pre, where, p.steps_, 0);
  } catch (const nlohmann::json::exception& e) {
    throw StageError(where + ": " + e.what());
  }
  size_t byte_level = 0;
  for (size_t i = 0; i < p.steps_.size(); ++i) {
    if (p.steps_[i].kind != PreStep::Kind::kByteLevel) continue;
    if (++byte_level > 1) throw StageError(where + ": more than one ByteLevel step");
    if (i + 1 != p.steps_.size()) {
      throw StageError(where + ": a Split or Digits step after ByteLevel is not supported");
    }
  }
  if (byte_level == 0) {
    throw StageError(where + ": no ByteLevel step; only byte-level BPE tokenizers are read");
  }
  return p;
}

void PreTokenizer::split(std::string_view text, const PieceFn& fn) const { apply(0, text, fn); }

void PreTokenizer::apply(size_t step, std::string_view text, const PieceFn& fn) const {
  if (text.empty()) return;
  if (step == steps_.size()) return fn(text);
  const PreStep& s = steps_[step];
  auto next = [&](std::string_view piece) { apply(step + 1, piece, fn); };
  if (s.kind == PreStep::Kind::kDigits) return split_digits(text, s.individual_digits, next);
  std::string prefixed;
  if (s.kind == PreStep::Kind::kByteLevel && s.add_prefix_space && text.front() != ' ') {
    prefixed = " " + std::string(text);
    text = prefixed;
  }
  if (!s.regex) return next(text);
  size_t gap = 0;
  s.regex->find_all(text, [&](size_t b, size_t e) {
    if (b > gap) next(text.substr(gap, b - gap));
    if (!s.remove_matches) next(text.substr(b, e - b));
    gap = e;
  });
  if (gap < text.size()) next(text.substr(gap));
}

}  // namespace upcycle::stages::bpe
