#include "stages/eval/tasks.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/log.h"
#include "stages/data/builtin_tasks.h"
#include "stages/eval/generate.h"

namespace upcycle::stages {
namespace {

int64_t code_points(const std::string& s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// Sum of log p(continuation tokens) of each sequence: `seqs[i]` = context + continuation, its last
// `n_cont[i]` tokens scored. The prefix the sequences share (up to the first scored position) runs
// once into a KV cache; the rest of every sequence runs as one batch from that cache, right-padded:
// no position sees the padding after it.
std::vector<double> continuation_logliks(TransformerLm& model,
                                         std::vector<std::vector<uint32_t>> seqs,
                                         const std::vector<size_t>& n_cont) {
  const size_t T = static_cast<size_t>(model->config.seq_len);
  const int64_t N = static_cast<int64_t>(seqs.size());
  size_t shared = SIZE_MAX;  // positions before every sequence's first scored one, equal in all
  for (size_t i = 0; i < seqs.size(); ++i) {
    auto& s = seqs[i];
    if (s.size() > T + 1) s.erase(s.begin(), s.end() - static_cast<long>(T + 1));
    shared = std::min(shared, s.size() - 1 - std::min(n_cont[i], s.size() - 1));
    for (size_t t = 0; t < shared; ++t) {
      if (s[t] != seqs[0][t]) shared = t;
    }
  }
  int64_t L = 1;  // the longest rest
  for (const auto& s : seqs) L = std::max<int64_t>(L, static_cast<int64_t>(s.size() - 1 - shared));
  auto idx_NL = torch::zeros({N, L}, torch::kInt64), tgt_NL = torch::zeros({N, L}, torch::kInt64);
  auto scored_NL = torch::zeros({N, L}, torch::kFloat64);
  auto idx = idx_NL.accessor<int64_t, 2>(), tgt = tgt_NL.accessor<int64_t, 2>();
  auto scored = scored_NL.accessor<double, 2>();
  for (int64_t i = 0; i < N; ++i) {
    const auto& s = seqs[static_cast<size_t>(i)];
    const size_t n = s.size() - 1, first_scored = n - std::min(n_cont[static_cast<size_t>(i)], n);
    for (size_t t = shared; t < n; ++t) {
      const auto at = static_cast<int64_t>(t - shared);
      idx[i][at] = s[t];
      tgt[i][at] = s[t + 1];
      scored[i][at] = t >= first_scored ? 1.0 : 0.0;
    }
  }
  KvCache cache;
  if (shared > 0) {
    model->forward(torch::tensor(std::vector<int64_t>(seqs[0].begin(),
                                                      seqs[0].begin() + static_cast<long>(shared)),
                                 torch::kInt64)
                       .unsqueeze(0),
                   &cache, Logits::kNone);  // the prefix only fills the cache: no output head
    cache = cache.repeated(N);
  }
  auto logp = torch::log_softmax(
      model->forward(idx_NL, &cache).logits_BTV.to(torch::kCPU, torch::kFloat64), -1);
  auto sums = (logp.gather(-1, tgt_NL.unsqueeze(-1)).squeeze(-1) * scored_NL).sum(1);
  return std::vector<double>(sums.data_ptr<double>(), sums.data_ptr<double>() + N);
}

// A generation's text up to the first of the example's stop strings.
std::string cut_at_stop(std::string text, const TaskExample& ex) {
  for (const auto& u : ex.until) {
    size_t at = text.find(u);
    if (at != std::string::npos) text.resize(at);
  }
  return text;
}

double exact_match(const TaskExample& ex, const std::string& out) {
  std::string got = extract_answer(out);
  if (got.empty() && ex.answer.find('\n') == std::string::npos &&
      out.find("Answer:") == std::string::npos) {
    got = trim_space(out);
  }
  return got == trim_space(ex.answer) ? 1.0 : 0.0;
}

// Exact match of each generation example, generated kGenerationBatch prompts at a time.
std::vector<double> score_generations(TransformerLm& model, const Tokenizer& tok,
                                      const std::vector<const TaskExample*>& exs, int64_t max_new,
                                      bool kv_cache) {
  constexpr size_t kGenerationBatch = 16;
  std::vector<double> scores;
  for (size_t b0 = 0; b0 < exs.size(); b0 += kGenerationBatch) {
    const size_t n = std::min(kGenerationBatch, exs.size() - b0);
    std::vector<std::vector<uint32_t>> prompts;
    for (size_t i = 0; i < n; ++i) prompts.push_back(tok.encode(exs[b0 + i]->prompt));
    GreedyOptions opts;
    opts.max_new_tokens = max_new;
    opts.kv_cache = kv_cache;
    opts.eos = tok.eos_id();
    opts.stop = [&](size_t row, const std::vector<uint32_t>& gen) {
      const std::string text = tok.decode(gen);
      return cut_at_stop(text, *exs[b0 + row]).size() < text.size();
    };
    const auto gens = generate_greedy_batch(model, prompts, opts);
    for (size_t i = 0; i < n; ++i)
      scores.push_back(exact_match(*exs[b0 + i], cut_at_stop(tok.decode(gens[i]), *exs[b0 + i])));
  }
  return scores;
}

// acc and acc_norm of one multiple-choice example. As the harness's _encode_pair: the context's
// trailing whitespace belongs to the choice, so the context is encoded without it. nullopt when a
// choice's own tokens outnumber the context window (seq_len): no window scores it whole, and
// lm-evaluation-harness refuses such an example too (its max_length assertion).
std::optional<std::pair<double, double>> score_choices(TransformerLm& model, const Tokenizer& tok,
                                                       const TaskExample& ex) {
  const size_t kept = ex.context.find_last_not_of(" \t\n\r\f\v");
  const auto ctx = tok.encode(ex.context.substr(0, kept == std::string::npos ? 0 : kept + 1));
  std::vector<std::vector<uint32_t>> seqs;
  std::vector<size_t> n_cont;
  for (const auto& choice : ex.choices) {
    seqs.push_back(tok.encode(ex.context + choice));
    n_cont.push_back(seqs.back().size() > ctx.size() ? seqs.back().size() - ctx.size() : 1);
    if (n_cont.back() > static_cast<size_t>(model->config.seq_len)) return std::nullopt;
  }
  const std::vector<double> ll = continuation_logliks(model, seqs, n_cont);
  std::vector<double> ll_norm;
  for (size_t c = 0; c < ex.choices.size(); ++c) {
    ll_norm.push_back(ll[c] / double(std::max<int64_t>(1, code_points(ex.choices[c]))));
  }
  const auto gold = static_cast<size_t>(ex.gold);
  return std::make_pair(first_argmax(ll) == gold ? 1.0 : 0.0,
                        first_argmax(ll_norm) == gold ? 1.0 : 0.0);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
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
      throw StageError(
          where +
          "expected {task, context, choices, gold} or {task, prompt, answer, until}: " + ex.what());
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
                                      const std::vector<TaskExample>& examples,
                                      int64_t max_examples, int64_t max_new_tokens, bool kv_cache,
                                      ExampleScores* per_example) {
  torch::NoGradGuard no_grad;
  model->eval();
  std::vector<std::string> order;
  std::map<std::string, std::map<std::string, std::vector<double>>>
      values;  // task -> metric -> 0/1
  std::map<std::string, int64_t> seen, too_long;
  std::vector<const TaskExample*> generation;
  const auto started = std::chrono::steady_clock::now();
  for (const auto& ex : examples) {
    if (max_examples > 0 && seen[ex.task] >= max_examples) continue;
    if (seen[ex.task]++ == 0) order.push_back(ex.task);
    if (ex.is_generation()) {
      generation.push_back(&ex);
      continue;
    }
    const auto scored = score_choices(model, tok, ex);
    if (!scored) {
      ++too_long[ex.task];
      continue;
    }
    values[ex.task]["acc"].push_back(scored->first);
    values[ex.task]["acc_norm"].push_back(scored->second);
  }
  for (const auto& [task, n] : too_long) {
    core::log_warn("eval: " + task + ": " + std::to_string(n) +
                   " examples not scored: a choice has more tokens than the context (seq_len " +
                   std::to_string(model->config.seq_len) + "), as lm-evaluation-harness refuses");
  }
  const double choice_s = seconds_since(started);
  const auto scores = score_generations(model, tok, generation, max_new_tokens, kv_cache);
  for (size_t i = 0; i < generation.size(); ++i)
    values[generation[i]->task]["exact_match"].push_back(scores[i]);
  const double generation_s = seconds_since(started) - choice_s;
  char timing[200];
  std::snprintf(timing, sizeof(timing),
                "eval: tasks took %.1f s: multiple choice %.1f s, generation %.1f s (%zu examples, "
                "KV cache %s)",
                choice_s + generation_s, choice_s, generation_s, generation.size(),
                kv_cache ? "on" : "off");
  core::log_info(timing);
  if (per_example) *per_example = values;
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
