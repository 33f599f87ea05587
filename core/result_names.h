// The names eval results and training metrics are stored under, made and read in this one place:
// eval tasks "ppl/<domain>" (perplexity, nll, bytes, bpb on the domain's test split) and
// "routing/<domain>", router metrics "<router>/l<layer>/e<expert>" (eval: ffn, attn; training:
// util) and per-layer metrics "<name>/l<layer>". Writers (the eval job, the trainer) call the
// makers, readers (analysis/) the parsers; nobody else cuts these strings.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace upcycle::core {

enum class ResultKind {
  kPerplexity,  ///< "ppl/<domain>"
  kRouting,     ///< "routing/<domain>"
  kTask,        ///< anything else: a downstream task's name ("cont/code", "mmlu")
};

struct ResultTask {
  ResultKind kind = ResultKind::kTask;
  std::string domain;  ///< perplexity and routing
  std::string task;    ///< the task's name (kTask)
};

std::string perplexity_task(const std::string& domain);
std::string routing_task(const std::string& domain);
ResultTask parse_result_task(const std::string& task);

/// One router's share for one expert in one layer.
struct RouterCell {
  std::string router;  ///< "ffn", "attn" (eval) or "util" (training)
  int64_t layer = 0;
  int64_t expert = 0;
};
std::string router_metric(const std::string& router, int64_t layer, int64_t expert);
/// nullopt unless `name` is exactly ROUTER/l<digits>/e<digits> (ROUTER: lowercase letters).
std::optional<RouterCell> parse_router_metric(const std::string& name);

/// "<name>/l<layer>" (lb_loss/l0, z_loss/l1).
std::string layer_metric(const std::string& name, int64_t layer);

}  // namespace upcycle::core
