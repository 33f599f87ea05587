#include "stages/data/builtin_tasks.h"

#include <algorithm>
#include <optional>

namespace upcycle::stages {
namespace {

constexpr size_t kContextBytes = 320;
constexpr size_t kContinuationBytes = 48;
constexpr size_t kMaxExtensionBytes = 48;  // past the minimum, looking for a space

// The cut between context and continuation: two thirds in, at most kContextBytes, at a space.
size_t cut_point(const std::string& text) {
  size_t want = std::min(text.size() * 2 / 3, kContextBytes);
  size_t cut = text.rfind(' ', want);
  return cut == std::string::npos || cut < 16 ? std::string::npos : cut;
}

// `min_bytes` or more from `at`, extended to the next space when one is near, else to the next
// UTF-8 character boundary.
std::string continuation(const std::string& text, size_t at,
                         size_t min_bytes = kContinuationBytes) {
  const size_t want = std::min(text.size(), at + min_bytes);
  size_t end = text.find(' ', want);
  if (end == std::string::npos || end > want + kMaxExtensionBytes) {
    end = want;
    while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) ++end;
  }
  return text.substr(at, end - at);
}

// A passage cut into the context a model reads and the true continuation it should prefer.
struct Cut {
  std::string context, truth;
  int gold_seed = 0;  ///< from the document's hash, to place the truth among the choices
};

Cut cut_passage(const Document& d, size_t i) {
  const std::string& text = d.text;
  const size_t cut = cut_point(text);
  const size_t start = cut > kContextBytes ? text.find(' ', cut - kContextBytes) : 0;
  return {text.substr(start, cut - start), continuation(text, cut),
          static_cast<int>((std::stoul(d.sha256.substr(0, 2), nullptr, 16) + i) % 1024)};
}

// Long documents (source files, licenses) give one passage per kPassageBytes; only passages long
// enough to cut are kept.
std::vector<Document> usable_passages(const std::vector<Document>& docs) {
  constexpr size_t kPassageBytes = 1024;
  std::vector<Document> out;
  for (const auto& d : docs) {
    for (size_t at = 0; at < d.text.size();) {
      size_t end = at + kPassageBytes >= d.text.size() ? d.text.size()
                                                       : d.text.find(' ', at + kPassageBytes);
      if (end == std::string::npos) end = d.text.size();
      Document p{d.text.substr(at, end - at), d.origin, d.sha256};
      const size_t cut = cut_point(p.text);
      if (cut != std::string::npos && p.text.size() >= cut + kContinuationBytes)
        out.push_back(std::move(p));
      at = end;
    }
  }
  return out;
}

// The truth at position gold_seed % choices among the distractors; nullopt when a distractor equals
// it.
std::optional<nlohmann::json> choice_example(const std::string& task, const Cut& c,
                                             std::vector<std::string> choices) {
  if (std::find(choices.begin(), choices.end(), c.truth) != choices.end()) return std::nullopt;
  const int gold = c.gold_seed % static_cast<int>(choices.size() + 1);
  choices.insert(choices.begin() + gold, c.truth);
  return nlohmann::json{
      {"task", task}, {"context", c.context}, {"choices", choices}, {"gold", gold}};
}

std::vector<nlohmann::json> continuation_examples(const std::string& domain,
                                                  const std::vector<Document>& ok,
                                                  int64_t max_examples) {
  std::vector<nlohmann::json> out;
  if (ok.size() < 4) return out;
  // Distractors a quarter of the list apart: passages of one document are neighbours in the list.
  const size_t stride = std::max<size_t>(1, ok.size() / 4);
  for (size_t i = 0; i < ok.size() && static_cast<int64_t>(out.size()) < max_examples; ++i) {
    std::vector<std::string> choices;
    for (size_t k = 1; k <= 3; ++k) {
      const std::string& other = ok[(i + k * stride) % ok.size()].text;
      choices.push_back(continuation(other, cut_point(other)));
    }
    if (auto e = choice_example("cont/" + domain, cut_passage(ok[i], i), choices))
      out.push_back(*e);
  }
  return out;
}

// One distractor per other domain, as long as the truth, from that domain's passages in turn.
std::vector<nlohmann::json> domain_examples(
    const std::string& domain, const std::map<std::string, std::vector<Document>>& passages,
    int64_t max_examples) {
  std::vector<nlohmann::json> out;
  const auto& own = passages.at(domain);
  for (const auto& [name, ps] : passages) {
    if (ps.empty()) return out;  // a domain without passages: no fair set of distractors
  }
  if (passages.size() < 2) return out;
  for (size_t i = 0; i < own.size() && static_cast<int64_t>(out.size()) < max_examples; ++i) {
    const Cut c = cut_passage(own[i], i);
    std::vector<std::string> choices;
    for (const auto& [name, ps] : passages) {
      if (name == domain) continue;
      const std::string& other = ps[i % ps.size()].text;
      choices.push_back(continuation(other, cut_point(other), c.truth.size()));
    }
    if (auto e = choice_example("domain/" + domain, c, choices)) out.push_back(*e);
  }
  return out;
}

// The first problem of each document, whose answer is the asked one.
struct Problem {
  std::string text;    ///< the problem and its worked solution, through the "Answer:" line
  std::string answer;  ///< extracted from that line
};

std::optional<Problem> first_problem(const Document& d) {
  std::string first = d.text.substr(0, d.text.find("\nProblem:"));
  std::string answer = extract_answer(first);
  if (first.rfind("Problem:", 0) != 0 || first.find("\nSolution:") == std::string::npos ||
      answer.empty() || answer.size() > 24) {
    return std::nullopt;
  }
  return Problem{std::move(first), std::move(answer)};
}

std::vector<nlohmann::json> arithmetic_examples(const std::string& domain,
                                                const std::vector<Document>& docs,
                                                int64_t max_examples) {
  std::vector<nlohmann::json> out;
  for (const auto& d : docs) {
    if (static_cast<int64_t>(out.size()) >= max_examples) break;
    auto p = first_problem(d);
    if (!p) continue;
    const size_t sol = p->text.find("\nSolution:");
    out.push_back({{"task", "arith/" + domain},
                   {"prompt", p->text.substr(0, sol + 10)},
                   {"answer", p->answer},
                   {"until", {"\nProblem:"}}});
  }
  return out;
}

// The kind of a problem: its first line without digits ("Problem: Compute  * ."), so that
// distractors come from problems of the same kind and share the answer's form.
std::string problem_kind(const std::string& text) {
  std::string kind;
  for (char c : text.substr(0, text.find('\n'))) {
    if (c < '0' || c > '9') kind += c;
  }
  return kind;
}

// Distractors: the answers of the next problems of the same kind (same form, other values), so a
// model must read the worked solution to tell them apart, not only know the form of an answer.
std::vector<nlohmann::json> arithmetic_choice_examples(const std::string& domain,
                                                       const std::vector<Document>& docs,
                                                       int64_t max_examples) {
  std::vector<Problem> problems;
  for (const auto& d : docs) {
    if (auto p = first_problem(d)) problems.push_back(std::move(*p));
  }
  std::vector<nlohmann::json> out;
  for (size_t i = 0; i < problems.size() && static_cast<int64_t>(out.size()) < max_examples; ++i) {
    const Problem& p = problems[i];
    const std::string kind = problem_kind(p.text);
    std::vector<std::string> wrong;
    for (size_t k = 1; k < problems.size() && wrong.size() < 3; ++k) {
      const Problem& q = problems[(i + k) % problems.size()];
      const std::string w = " " + q.answer;
      if (problem_kind(q.text) == kind && q.answer != p.answer &&
          std::find(wrong.begin(), wrong.end(), w) == wrong.end()) {
        wrong.push_back(w);
      }
    }
    if (wrong.size() < 3) continue;
    const int gold_seed =
        static_cast<int>(std::stoul(docs[i % docs.size()].sha256.substr(0, 4), nullptr, 16) + i);
    Cut c{p.text.substr(0, p.text.rfind("Answer:") + 7), " " + p.answer, gold_seed};
    if (auto e = choice_example("arith-mc/" + domain, c, wrong)) out.push_back(*e);
  }
  return out;
}

bool generated(const std::vector<Document>& docs) {
  return !docs.empty() && std::all_of(docs.begin(), docs.end(), [](const Document& d) {
    return d.origin.rfind("generator:", 0) == 0;
  });
}

std::vector<Document> by_hash(std::vector<Document> docs) {
  std::sort(docs.begin(), docs.end(),
            [](const Document& a, const Document& b) { return a.sha256 < b.sha256; });
  return docs;
}

}  // namespace

std::string builtin_task_path(const std::string& data_dir, const std::string& domain) {
  return data_dir + "/tasks/" + domain + ".jsonl";
}

namespace {
constexpr const char* kFamilies[] = {"domain", "arith-mc", "cont", "arith"};
}  // namespace

bool is_builtin_tasks(const std::string& entry) {
  if (entry == "builtin") return true;
  for (const char* f : kFamilies) {
    if (entry == std::string("builtin/") + f) return true;
  }
  return false;
}

bool in_builtin_tasks(const std::string& entry, const std::string& task) {
  if (entry == "builtin") return true;
  const std::string family = entry.substr(std::string("builtin/").size());
  return task.compare(0, family.size() + 1, family + "/") == 0;
}

std::vector<nlohmann::json> make_builtin_examples(const std::string& domain,
                                                  const TestDocuments& test_docs,
                                                  int64_t max_examples) {
  std::map<std::string, std::vector<Document>> passages;
  for (const auto& [name, docs] : test_docs) passages[name] = usable_passages(by_hash(docs));
  std::vector<nlohmann::json> out = domain_examples(domain, passages, max_examples);
  const std::vector<Document> own = by_hash(test_docs.at(domain));
  std::vector<nlohmann::json> more =
      generated(own) ? arithmetic_choice_examples(domain, own, max_examples)
                     : continuation_examples(domain, passages.at(domain), max_examples);
  out.insert(out.end(), more.begin(), more.end());
  if (generated(own)) {
    more = arithmetic_examples(domain, own, max_examples);
    out.insert(out.end(), more.begin(), more.end());
  }
  return out;
}

std::string extract_answer(const std::string& generation) {
  size_t at = generation.rfind("Answer:");
  if (at == std::string::npos) return "";
  size_t start = at + 7, end = generation.find('\n', start);
  return trim_space(
      generation.substr(start, end == std::string::npos ? std::string::npos : end - start));
}

}  // namespace upcycle::stages
