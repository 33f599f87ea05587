// The eval job: perplexity per model and domain, BTM ensembles, downstream tasks.
#include <torch/torch.h>

#include <filesystem>
#include <optional>

#include "core/atomic_file.h"
#include "core/log.h"
#include "core/result_names.h"
#include "core/sha256.h"
#include "stages/data/builtin_tasks.h"
#include "stages/data/data_layout.h"
#include "stages/data/prepare.h"
#include "stages/data/tokenizer.h"
#include "stages/eval/perplexity.h"
#include "stages/eval/tasks.h"
#include "stages/io/checkpoint.h"
#include "stages/jobs/job_kinds.h"
#include "stages/spec/eval.h"
#include "stages/train/device.h"

namespace upcycle::stages {
namespace {

// One model's perplexity on one domain: the ppl row, the nll row (stderr of the mean NLL), and with
// text data the bytes the tokens cover and bits per byte, each with n = the predicted tokens, so
// that bpb = nll * n / (bytes * ln 2) can be recomputed from the store.
void add_perplexity(core::JobResult& r, const std::string& model, const std::string& domain,
                    const PerplexityResult& res) {
  const std::string task = core::perplexity_task(domain);
  r.evals.push_back(
      {model, task, "ppl", res.ppl, res.ppl_stderr, res.tokens, "none", std::nullopt});
  r.evals.push_back({model, task, "nll", res.nll, res.ppl > 0 ? res.ppl_stderr / res.ppl : 0,
                     res.tokens, "none", std::nullopt});
  if (res.bytes > 0) {
    r.evals.push_back(
        {model, task, "bytes", double(res.bytes), std::nullopt, res.tokens, "none", std::nullopt});
    r.evals.push_back(
        {model, task, "bpb", res.bpb, res.bpb_stderr, res.tokens, "none", std::nullopt});
  }
  // Routing on this domain (task routing/<domain>, metric <ffn|attn>/l<layer>/e<expert>): whether
  // experts specialise by domain, as BAM's analysis asks.
  for (const auto& [router, table] :
       {std::pair{"ffn", &res.ffn_util}, std::pair{"attn", &res.attn_gate}}) {
    for (size_t l = 0; l < table->size(); ++l) {
      for (size_t e = 0; e < (*table)[l].size(); ++e) {
        r.evals.push_back({model, core::routing_task(domain),
                           core::router_metric(router, int64_t(l), int64_t(e)), (*table)[l][e],
                           std::nullopt, res.tokens, "none", std::nullopt});
      }
    }
  }
  core::log_info("eval: " + model + " on " + domain + ": ppl " + std::to_string(res.ppl));
}

// "builtin" stands for the prepare job's task file of every evaluated domain. A user's task file
// must still be the one the job was planned (and keyed) with.
std::vector<TaskExample> load_examples(const EvalJobSpec& e) {
  std::vector<TaskExample> examples;
  for (const auto& t : e.tasks) {
    std::vector<std::string> files;
    if (is_builtin_tasks(t.path)) {
      for (const auto& d : e.domains) {
        const std::string path = builtin_task_path(e.data_dir, d);
        if (std::filesystem::exists(path)) files.push_back(verified_data_file(e.data_dir, path));
      }
    } else {
      if (core::sha256_file(t.path) != t.sha256) {
        throw StageError(t.path + ": task file changed since the job was planned",
                         "re-run the recipe so the job is keyed by the file's new content");
      }
      files.push_back(t.path);
    }
    for (const auto& f : files) {
      for (auto& ex : load_task_file(f)) {
        if (!is_builtin_tasks(t.path) || in_builtin_tasks(t.path, ex.task))
          examples.push_back(std::move(ex));
      }
    }
  }
  return examples;
}

// Each example's scores as JSON lines {model, task, doc_id, acc, acc_norm | exact_match}; doc_id
// counts the task's examples in file order, as the harness's samples files do.
std::string examples_jsonl(const std::string& model, const ExampleScores& scores) {
  std::string out;
  for (const auto& [task, metrics] : scores) {
    const size_t n = metrics.begin()->second.size();
    for (size_t i = 0; i < n; ++i) {
      nlohmann::json line = {{"model", model}, {"task", task}, {"doc_id", i}};
      for (const auto& [metric, values] : metrics) line[metric] = values.at(i);
      out += line.dump() + "\n";
    }
  }
  return out;
}

// The models the job holds at once: each model alone, then each ensemble's members together.
MemoryEstimate eval_memory_estimate(const EvalJobSpec& e) {
  std::vector<std::vector<ModelConfig>> groups;
  for (const auto& m : e.models) groups.push_back({read_checkpoint_meta(m.checkpoint).model});
  for (const auto& ens : e.ensembles) {
    groups.emplace_back();
    for (const auto& m : ens.members)
      groups.back().push_back(read_checkpoint_meta(m.checkpoint).model);
  }
  return estimate_eval_memory(groups, e.max_windows);
}

bool run_eval_job(const SpecReader& s, const JobContext& ctx, core::JobResult& r) {
  EvalJobSpec e;
  read_spec(s, e);
  const std::vector<TaskExample> examples = load_examples(e);
  std::unique_ptr<Tokenizer>
      tok;  // text data has one; pre-tokenized data has neither tasks nor bytes
  if (const std::string path = text_tokenizer(e.data_dir); !path.empty()) {
    tok = std::make_unique<Tokenizer>(path);
  } else if (!examples.empty()) {
    throw StageError(e.data_dir + ": tasks need the data's tokenizer, and it has none",
                     "pre-tokenized data has no text to make tasks from");
  }
  const std::optional<TokenBytes> bytes =
      tok ? std::optional<TokenBytes>(tok->token_bytes()) : std::nullopt;
  const TokenBytes* tb = bytes ? &*bytes : nullptr;
  // The forward passes run under bf16 autocast where the placement says so (CUDA by default); token
  // log-likelihoods come out of fp32 log-softmax / cross-entropy (autocast's fp32 ops) and are
  // summed in fp64 on the host.
  const Placement placement = resolve_placement(ctx.runtime.device, e.precision, 0);
  const torch::Device device(placement.device);
  AutocastScope autocast(placement.device, placement.bf16);
  const JobMemory memory(placement.device);
  if (placement.bf16) core::log_info("eval: on " + placement.device + " with bf16 autocast");
  auto load_on_device = [&](const std::string& ckpt) {
    TransformerLm m = load_model(ckpt);
    m->to(device);
    m->eval();
    return m;
  };
  std::string per_example;  // examples.jsonl: one line per model, task and example
  for (const auto& m : e.models) {
    TransformerLm model = load_on_device(m.checkpoint);
    for (const auto& d : e.domains) {
      add_perplexity(r, m.name, d,
                     perplexity(model, shard_path(e.data_dir, d, e.split), e.max_windows, tb));
    }
    if (examples.empty()) continue;
    ExampleScores scores;
    for (const auto& t : evaluate_tasks(model, *tok, examples, e.max_examples, e.max_new_tokens,
                                        e.kv_cache, &scores)) {
      r.evals.push_back(
          {m.name, t.task, t.metric, t.value, t.stderr_value, t.n, "none", std::nullopt});
      core::log_info("eval: " + m.name + " on " + t.task + ": " + t.metric + " " +
                     std::to_string(t.value) + " (n " + std::to_string(t.n) + ")");
    }
    per_example += examples_jsonl(m.name, scores);
  }
  if (!per_example.empty() && e.examples_file) {
    const std::string path = ctx.dir + "/" + EvalJobSpec::kExamplesFile;
    core::write_file_atomic(path, per_example);
    r.artifacts.push_back({path, "examples", core::sha256_hex(per_example),
                           static_cast<int64_t>(per_example.size())});
  }
  for (const auto& ens : e.ensembles) {  // BTM: eval-only ensembles
    std::vector<TransformerLm> members;
    for (const auto& m : ens.members) members.push_back(load_on_device(m.checkpoint));
    for (const auto& d : e.domains) {
      add_perplexity(
          r, ens.name, d,
          ensemble_perplexity(members, shard_path(e.data_dir, d, e.split), e.max_windows, tb));
    }
  }
  memory.report(ctx, eval_memory_estimate(e));
  return true;
}

}  // namespace

JobKind eval_job_kind() {
  return {EvalJobSpec::kKind, EvalJobSpec::kOutputVersion, check_spec<EvalJobSpec>, run_eval_job};
}

}  // namespace upcycle::stages
