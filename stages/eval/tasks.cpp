#include "stages/eval/tasks.h"

#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "stages/data/builtin_tasks.h"

namespace upcycle::stages {
namespace {

int64_t code_points(const std::string& s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// Sum of log p(continuation tokens): `tokens` = context + continuation, the last `n_cont` scored.
double continuation_loglik(TransformerLm& model, std::vector<uint32_t> tokens, size_t n_cont) {
  const size_t T = static_cast<size_t>(model->config.seq_len);
  if (tokens.size() > T + 1) tokens.erase(tokens.begin(), tokens.end() - static_cast<long>(T + 1));
  n_cont = std::min(n_cont, tokens.size() - 1);
  auto all = torch::tensor(std::vector<int64_t>(tokens.begin(), tokens.end()), torch::kInt64).unsqueeze(0);
  const int64_t L = all.size(1) - 1;
  auto logp = torch::log_softmax(model->forward(all.narrow(1, 0, L)).logits_BTV.to(torch::kCPU, torch::kFloat64), -1);
  auto tgt = all.narrow(1, 1, L);
  auto picked = logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1);  // [1, L]
  return picked.narrow(1, L - static_cast<int64_t>(n_cont), static_cast<int64_t>(n_cont)).sum().item<double>();
}

std::string generate_greedy(TransformerLm& model, const Tokenizer& tok, const TaskExample& ex, int64_t max_new) {
  const size_t T = static_cast<size_t>(model->config.seq_len);
  std::vector<uint32_t> ids = tok.encode(ex.prompt);
  std::vector<uint32_t> gen;
  std::string text;
  for (int64_t i = 0; i < max_new; ++i) {
    std::vector<int64_t> window(ids.size() > T ? ids.end() - static_cast<long>(T) : ids.begin(), ids.end());
    auto logits = model->forward(torch::tensor(window, torch::kInt64).unsqueeze(0)).logits_BTV;
    auto next = static_cast<uint32_t>(logits[0][-1].argmax().item<int64_t>());
    if (next == tok.eos_id()) break;
    ids.push_back(next);
    gen.push_back(next);
    text = tok.decode(gen);
    bool stop = false;
    for (const auto& u : ex.until) {
      size_t at = text.find(u);
      if (at != std::string::npos) {
        text.resize(at);
        stop = true;
      }
    }
    if (stop) break;
  }
  return text;
}

}  // namespace

std::vector<TaskExample> load_task_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw StageError(path + ": task file not found or not readable");
  std::vector<TaskExample> out;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(n) + ": ";
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw StageError(where + "not a JSON object");
    try {
      TaskExample e;
      e.task = j.at("task").get<std::string>();
      if (j.contains("choices")) {
        e.context = j.at("context").get<std::string>();
        e.choices = j.at("choices").get<std::vector<std::string>>();
        e.gold = j.at("gold").get<int>();
        if (e.choices.size() < 2 || e.gold < 0 || e.gold >= static_cast<int>(e.choices.size())) {
          throw StageError(where + "needs 2 or more choices and 0 <= gold < choices");
        }
      } else {
        e.prompt = j.at("prompt").get<std::string>();
        e.answer = j.at("answer").get<std::string>();
        if (j.contains("until")) e.until = j.at("until").get<std::vector<std::string>>();
        if (e.prompt.empty()) throw StageError(where + "empty prompt");
      }
      out.push_back(std::move(e));
    } catch (const nlohmann::json::exception& ex) {
      throw StageError(where + "expected {task, context, choices, gold} or {task, prompt, answer, until}: " +
                       ex.what());
    }
  }
  return out;
}

std::pair<double, double> mean_and_stderr(const std::vector<double>& xs) {
  if (xs.empty()) return {0, 0};
  double mean = 0;
  for (double x : xs) mean += x;
  mean /= double(xs.size());
  if (xs.size() < 2) return {mean, 0};
  double ss = 0;
  for (double x : xs) ss += (x - mean) * (x - mean);
  return {mean, std::sqrt(ss / double(xs.size() - 1) / double(xs.size()))};
}

size_t first_argmax(const std::vector<double>& xs) {
  size_t best = 0;
  for (size_t i = 1; i < xs.size(); ++i) {
    if (xs[i] > xs[best]) best = i;
  }
  return best;
}

std::vector<TaskScore> evaluate_tasks(TransformerLm& model, const Tokenizer& tok,
                                      const std::vector<TaskExample>& examples, int64_t max_examples,
                                      int64_t max_new_tokens) {
  torch::NoGradGuard no_grad;
  model->eval();
  std::vector<std::string> order;
  std::map<std::string, std::map<std::string, std::vector<double>>> values;  // task -> metric -> 0/1
  std::map<std::string, int64_t> seen;
  for (const auto& ex : examples) {
    if (max_examples > 0 && seen[ex.task] >= max_examples) continue;
    if (seen[ex.task]++ == 0) order.push_back(ex.task);
    if (ex.is_generation()) {
      std::string out = generate_greedy(model, tok, ex, max_new_tokens);
      std::string got = extract_answer(out);
      if (got.empty() && ex.answer.find('\n') == std::string::npos && out.find("Answer:") == std::string::npos) {
        got = trim_space(out);
      }
      values[ex.task]["exact_match"].push_back(got == trim_space(ex.answer) ? 1.0 : 0.0);
      continue;
    }
    const auto ctx = tok.encode(ex.context);
    std::vector<double> ll, ll_norm;
    for (const auto& choice : ex.choices) {
      auto whole = tok.encode(ex.context + choice);
      size_t n_cont = whole.size() > ctx.size() ? whole.size() - ctx.size() : 1;
      ll.push_back(continuation_loglik(model, whole, n_cont));
      ll_norm.push_back(ll.back() / double(std::max<int64_t>(1, code_points(choice))));
    }
    values[ex.task]["acc"].push_back(first_argmax(ll) == static_cast<size_t>(ex.gold) ? 1.0 : 0.0);
    values[ex.task]["acc_norm"].push_back(first_argmax(ll_norm) == static_cast<size_t>(ex.gold) ? 1.0 : 0.0);
  }
  std::vector<TaskScore> out;
  for (const auto& task : order) {
    for (const auto& [metric, xs] : values[task]) {
      auto [mean, se] = mean_and_stderr(xs);
      out.push_back({task, metric, mean, se, static_cast<int64_t>(xs.size())});
    }
  }
  return out;
}

}  // namespace upcycle::stages
