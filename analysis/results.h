// Results as typed values: every eval row of a run as a Metric (what was measured, on which domain
// and split, its value, stderr and count) and each training job's last logged metrics, read once
// from the store; tables and plots select from these instead of cutting names apart
// (core/result_names.h names them). No LibTorch.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/result_names.h"
#include "tracking/store.h"

namespace upcycle::analysis {

struct Metric {
  std::string stage;  ///< the eval (or command) stage that measured it
  std::string model;  ///< the model measured: "seed", "experts/code", "bam_dm"
  core::ResultKind kind = core::ResultKind::kTask;
  std::string task;    ///< a downstream task's name (kTask)
  std::string domain;  ///< perplexity and routing: the domain
  std::string split;   ///< "test" for perplexity and routing (the eval job's split); "" for tasks
  std::string name;    ///< ppl, nll, bpb, bytes, acc, acc_norm, exact_match, ffn/l0/e1, ...
  std::string filter = "none";  ///< lm-evaluation-harness's filter
  double value = 0;
  std::optional<double> stderr_value;  ///< none where the harness said N/A
  int64_t count = 0;                   ///< tokens (perplexity, routing) or examples (tasks)
};

/// Every eval result of `run`, in the order they were stored.
std::vector<Metric> read_results(tracking::Store& store, const std::string& run);

/// A training stage's metric at its last logged step.
struct LastMetric {
  std::string stage;
  std::string name;  ///< "loss", "val_loss", "tokens", "util/l0/e1", ...
  double value = 0;
};

/// The last logged value of every metric of every job of `run`, in plan order.
std::vector<LastMetric> read_last_metrics(tracking::Store& store, const std::string& run);

}  // namespace upcycle::analysis
