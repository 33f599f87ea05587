#include "stages/eval/perplexity.h"

#include <torch/torch.h>

#include <cmath>
#include <functional>

#include "core/error.h"
#include "stages/data/domain_tokens.h"

namespace upcycle::stages {

namespace {

// Token NLLs [rows, T] of every window, per scoring function, then the summary statistics.
using WindowScorer = std::function<at::Tensor(const at::Tensor& idx_BT, const at::Tensor& tgt_BT)>;

// Sums of per-batch routing statistics, per layer (token-weighted by the batch's rows).
struct RoutingSums {
  std::vector<at::Tensor> ffn, attn;
  int64_t rows = 0;
  void add(const LmOutput& out, int64_t batch_rows) {
    ffn.resize(out.ffn_stats.size());
    attn.resize(out.ffn_stats.size());
    for (size_t l = 0; l < out.ffn_stats.size(); ++l) {
      const auto& st = out.ffn_stats[l];
      auto acc = [&](at::Tensor& sum, const at::Tensor& x) {
        if (!x.defined() || x.numel() < 2) return;  // a dense layer
        auto w = x.to(torch::kCPU, torch::kFloat64) * static_cast<double>(batch_rows);
        sum = sum.defined() ? sum + w : w;
      };
      acc(ffn[l], st.util_E);
      acc(attn[l], st.attn_gate_E);
    }
    rows += batch_rows;
  }
  static std::vector<std::vector<double>> mean(const std::vector<at::Tensor>& sums, int64_t rows) {
    std::vector<std::vector<double>> out;
    for (const auto& s : sums) {
      std::vector<double> row;
      if (s.defined()) {
        auto m = s / static_cast<double>(rows);
        for (int64_t e = 0; e < m.numel(); ++e) row.push_back(m[e].item<double>());
      }
      out.push_back(std::move(row));
    }
    return out;
  }
};

at::Tensor token_nll(TransformerLm& model, const at::Tensor& idx_BT, const at::Tensor& tgt_BT,
                     RoutingSums* routing = nullptr) {
  const LmOutput out = model->forward(idx_BT);
  if (routing) routing->add(out, idx_BT.size(0));
  const at::Tensor& logits = out.logits_BTV;
  return torch::nn::functional::cross_entropy(
             logits.reshape({-1, logits.size(-1)}), tgt_BT.reshape({-1}).to(logits.device()),
             torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone))
      .view(tgt_BT.sizes())
      .to(torch::kCPU);
}

// Bytes covered by the predicted tokens (columns 1..T) of windows b [rows, T+1].
int64_t covered_bytes(const at::Tensor& b, const TokenBytes& tb) {
  auto ids = b.accessor<int64_t, 2>();
  int64_t sum = 0;
  for (int64_t r = 0; r < b.size(0); ++r) {
    for (int64_t t = 1; t < b.size(1); ++t) {
      sum += tb.of(static_cast<uint32_t>(ids[r][t]), static_cast<uint32_t>(ids[r][t - 1]));
    }
  }
  return sum;
}

PerplexityResult score_windows(const std::string& shard_path, int64_t T, int64_t vocab,
                               int64_t max_windows, int64_t batch, const TokenBytes* bytes,
                               const WindowScorer& nll_of) {
  torch::NoGradGuard no_grad;
  const DomainTokens shard(shard_path);  // the prepare stage's shard, or a blend of user files
  int64_t windows = (shard.size() - 1) / T;
  if (windows < 1) {
    throw StageError(shard_path + ": " + std::to_string(shard.size()) +
                     " tokens, fewer than one evaluation window of " + std::to_string(T + 1));
  }
  if (max_windows > 0) windows = std::min(windows, max_windows);
  std::vector<double> window_nll;
  int64_t covered = 0;
  for (int64_t w0 = 0; w0 < windows; w0 += batch) {
    int64_t rows = std::min(batch, windows - w0);
    auto b = torch::empty({rows, T + 1}, torch::kInt64);
    for (int64_t r = 0; r < rows; ++r)
      shard.copy_to((w0 + r) * T, T + 1, b[r].data_ptr<int64_t>(), vocab);
    if (bytes) covered += covered_bytes(b, *bytes);
    auto per_window = nll_of(b.narrow(1, 0, T), b.narrow(1, 1, T)).to(torch::kFloat64).mean(1);
    for (int64_t r = 0; r < rows; ++r) window_nll.push_back(per_window[r].item<double>());
  }
  PerplexityResult res;
  res.windows = static_cast<int64_t>(window_nll.size());
  res.tokens = res.windows * T;
  double sum = 0, sq = 0;
  for (double x : window_nll) sum += x;
  res.nll = sum / res.windows;  // equal-length windows: the window mean is the token mean
  for (double x : window_nll) sq += (x - res.nll) * (x - res.nll);
  double se = res.windows > 1 ? std::sqrt(sq / (res.windows - 1) / res.windows) : 0.0;
  res.ppl = std::exp(res.nll);
  res.ppl_stderr = res.ppl * se;
  if (covered > 0) {
    const double per_nat = double(res.tokens) / (double(covered) * std::log(2.0));
    res.bytes = covered;
    res.bpb = res.nll * per_nat;
    res.bpb_stderr = se * per_nat;
  }
  return res;
}

}  // namespace

PerplexityResult perplexity(TransformerLm& model, const std::string& shard_path,
                            int64_t max_windows, const TokenBytes* bytes, int64_t batch) {
  RoutingSums routing;
  PerplexityResult r =
      score_windows(shard_path, model->config.seq_len, model->config.vocab, max_windows, batch,
                    bytes, [&](const at::Tensor& idx, const at::Tensor& tgt) {
                      return token_nll(model, idx, tgt, &routing);
                    });
  r.ffn_util = RoutingSums::mean(routing.ffn, routing.rows);
  r.attn_gate = RoutingSums::mean(routing.attn, routing.rows);
  return r;
}

PerplexityResult ensemble_perplexity(std::vector<TransformerLm>& experts,
                                     const std::string& shard_path, int64_t max_windows,
                                     const TokenBytes* bytes, int64_t batch) {
  if (experts.empty()) throw StageError("a BTM ensemble needs at least one expert");
  const int64_t T = experts[0]->config.seq_len;
  for (auto& e : experts) {
    if (e->config.seq_len != T || e->config.vocab != experts[0]->config.vocab) {
      throw StageError("BTM ensemble members must share seq_len and vocab");
    }
  }
  const double log_n = std::log(double(experts.size()));
  return score_windows(shard_path, T, experts[0]->config.vocab, max_windows, batch, bytes,
                       [&](const at::Tensor& idx, const at::Tensor& tgt) {
                         std::vector<at::Tensor> logp;  // log p_j(x_t | x_<t), [B, T] each
                         for (auto& e : experts)
                           logp.push_back(-token_nll(e, idx, tgt).to(torch::kFloat64));
                         auto logp_JBT = torch::stack(logp);
                         // log prior-weighted prefix likelihood: cumulative log-prob of x_<t (0 at
                         // t = 0), minus log J.
                         auto prefix_JBT = torch::cumsum(logp_JBT, 2) - logp_JBT - log_n;
                         auto log_w_JBT =
                             prefix_JBT - torch::logsumexp(prefix_JBT, 0, /*keepdim=*/true);
                         return -torch::logsumexp(log_w_JBT + logp_JBT, 0);
                       });
}

}  // namespace upcycle::stages
