#include "stages/data/builtin_tasks.h"

#include <algorithm>

namespace upcycle::stages {
namespace {

constexpr size_t kContextBytes = 320;
constexpr size_t kContinuationBytes = 48;

// The cut between context and continuation: two thirds in, at most kContextBytes, at a space.
size_t cut_point(const std::string& text) {
  size_t want = std::min(text.size() * 2 / 3, kContextBytes);
  size_t cut = text.rfind(' ', want);
  return cut == std::string::npos || cut < 16 ? std::string::npos : cut;
}

// kContinuationBytes or more from `at`, extended to the next space (ASCII: UTF-8 safe).
std::string continuation(const std::string& text, size_t at) {
  size_t end = text.find(' ', std::min(text.size(), at + kContinuationBytes));
  return text.substr(at, (end == std::string::npos ? text.size() : end) - at);
}

bool usable(const Document& d) {
  size_t cut = cut_point(d.text);
  return cut != std::string::npos && d.text.size() >= cut + kContinuationBytes;
}

// Long documents (source files, licenses) give one passage per kPassageBytes, each a candidate.
std::vector<Document> passages(const std::vector<Document>& docs) {
  constexpr size_t kPassageBytes = 1024;
  std::vector<Document> out;
  for (const auto& d : docs) {
    for (size_t at = 0; at < d.text.size();) {
      size_t end = at + kPassageBytes >= d.text.size() ? d.text.size() : d.text.find(' ', at + kPassageBytes);
      if (end == std::string::npos) end = d.text.size();
      out.push_back({d.text.substr(at, end - at), d.origin, d.sha256});
      at = end;
    }
  }
  return out;
}

std::vector<nlohmann::json> continuation_examples(const std::string& domain, const std::vector<Document>& docs,
                                                  int64_t max_examples) {
  const std::vector<Document> parts = passages(docs);
  std::vector<const Document*> ok;
  for (const auto& d : parts) {
    if (usable(d)) ok.push_back(&d);
  }
  std::vector<nlohmann::json> out;
  if (ok.size() < 4) return out;
  // Distractors a quarter of the list apart: passages of one document are neighbours in the list.
  const size_t stride = std::max<size_t>(1, ok.size() / 4);
  for (size_t i = 0; i < ok.size() && static_cast<int64_t>(out.size()) < max_examples; ++i) {
    const std::string& text = ok[i]->text;
    size_t cut = cut_point(text);
    size_t start = cut > kContextBytes ? text.find(' ', cut - kContextBytes) : 0;
    std::string context = text.substr(start, cut - start);
    std::vector<std::string> choices;
    for (size_t k = 1; k <= 3; ++k) {
      const std::string& other = ok[(i + k * stride) % ok.size()]->text;
      choices.push_back(continuation(other, cut_point(other)));
    }
    std::string truth = continuation(text, cut);
    if (std::find(choices.begin(), choices.end(), truth) != choices.end()) continue;
    int gold = static_cast<int>((std::stoul(ok[i]->sha256.substr(0, 2), nullptr, 16) + i) % 4);
    choices.insert(choices.begin() + gold, truth);
    out.push_back({{"task", "cont/" + domain}, {"context", context}, {"choices", choices}, {"gold", gold}});
  }
  return out;
}

std::vector<nlohmann::json> arithmetic_examples(const std::string& domain, const std::vector<Document>& docs,
                                                int64_t max_examples) {
  std::vector<nlohmann::json> out;
  for (const auto& d : docs) {
    if (static_cast<int64_t>(out.size()) >= max_examples) break;
    // A document holds several problems: the question is its first, so the answer is the first's.
    size_t sol = d.text.find("\nSolution:");
    std::string answer = extract_answer(d.text.substr(0, d.text.find("\nProblem:")));
    if (d.text.rfind("Problem:", 0) != 0 || sol == std::string::npos || answer.empty() || answer.size() > 24) {
      continue;
    }
    out.push_back({{"task", "arith/" + domain}, {"prompt", d.text.substr(0, sol + 10)}, {"answer", answer},
                   {"until", {"\nProblem:"}}});
  }
  return out;
}

}  // namespace

std::string builtin_task_path(const std::string& data_dir, const std::string& domain) {
  return data_dir + "/tasks/" + domain + ".jsonl";
}

std::vector<nlohmann::json> make_builtin_examples(const std::string& domain, std::vector<Document> test_docs,
                                                  int64_t max_examples) {
  std::sort(test_docs.begin(), test_docs.end(),
            [](const Document& a, const Document& b) { return a.sha256 < b.sha256; });
  bool generated = !test_docs.empty() && std::all_of(test_docs.begin(), test_docs.end(), [](const Document& d) {
    return d.origin.rfind("generator:", 0) == 0;
  });
  return generated ? arithmetic_examples(domain, test_docs, max_examples)
                   : continuation_examples(domain, test_docs, max_examples);
}

std::string extract_answer(const std::string& generation) {
  size_t at = generation.rfind("Answer:");
  if (at == std::string::npos) return "";
  size_t start = at + 7, end = generation.find('\n', start);
  return trim_space(generation.substr(start, end == std::string::npos ? std::string::npos : end - start));
}

}  // namespace upcycle::stages
