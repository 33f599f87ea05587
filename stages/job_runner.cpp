#include "stages/job_runner.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/file.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <chrono>
#include <cstdlib>
#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/host.h"
#include "core/job_files.h"
#include "core/log.h"
#include "core/metric_sink.h"
#include "core/sha256.h"
#include "stages/command/command.h"
#include "stages/command/lm_eval_results.h"
#include "stages/data/data_layout.h"
#include "stages/data/prepare.h"
#include "stages/data/builtin_tasks.h"
#include "stages/data/tokenizer.h"
#include "stages/eval/perplexity.h"
#include "stages/eval/tasks.h"
#include "stages/io/checkpoint.h"
#include "stages/train/trainer.h"
#include "stages/upcycle/surgery.h"

namespace upcycle::stages {
namespace {

using json = nlohmann::json;

template <typename T>
T opt(const json& j, const char* key, T fallback) {
  return j.contains(key) ? j.at(key).get<T>() : fallback;
}

core::ArtifactRow checkpoint_artifact(const std::string& dir) {
  std::string path = dir + "/" + kWeightsFile;
  return {dir, "checkpoint", core::sha256_file(path),
          static_cast<int64_t>(std::filesystem::file_size(path))};
}

ModelConfig model_from(const json& j) {
  try {
    return model_config_from_json(j);
  } catch (const std::invalid_argument& e) {
    throw StageError(std::string("model.") + e.what());
  }
}

// ---- one function per stage kind ----

void run_prepare_job(const json& s, const std::string& dir, core::JobResult& r) {
  PrepareSpec p;
  p.out_dir = dir + "/data";
  p.seed = s.at("seed").get<uint64_t>();
  p.valid_fraction = opt(s, "valid_fraction", 0.05);
  p.test_fraction = opt(s, "test_fraction", 0.05);
  p.task_examples = opt<int64_t>(s, "task_examples", 200);
  const json& tok = s.at("tokenizer");
  p.tokenizer = {tok.at("vocab").get<int64_t>(), opt<std::string>(tok, "model_type", "bpe"),
                 opt(s, "threads", 1), p.seed};
  p.tokenizer_sample_bytes = opt<int64_t>(tok, "sample_bytes", 200000);
  p.pretokenized = opt<std::string>(tok, "kind", "sentencepiece") == "pretokenized";
  for (const auto& jd : s.at("domains")) {
    DomainSpec d;
    d.name = jd.at("name").get<std::string>();
    d.generator = opt<std::string>(jd, "generator", "");
    d.max_bytes = opt<int64_t>(jd, "max_bytes", 0);
    if (jd.contains("shards")) {
      const json& sh = jd.at("shards");
      d.shards = {opt<std::string>(sh, "dir", ""), opt<std::string>(sh, "train", ""),
                  opt<std::string>(sh, "valid", ""), opt<std::string>(sh, "test", ""),
                  sh.at("dtype").get<std::string>()};
    }
    for (const auto& src : opt(jd, "sources", json::array())) {
      const std::string split = opt<std::string>(src, "split", "file");
      d.sources.push_back({src.at("pattern").get<std::string>(),
                           split == "fortune" ? DocSplit::kFortune
                           : split == "jsonl" ? DocSplit::kJsonl
                                              : DocSplit::kWholeFile,
                           opt<std::string>(src, "text_field", "text")});
    }
    p.domains.push_back(d);
  }
  PrepareOutput out = run_prepare(p);
  r.outputs["data_dir"] = p.out_dir;
  r.outputs["manifest_sha256"] = out.manifest_sha256;
  r.artifacts = out.artifacts;
}

bool run_train_job(const json& s, const std::string& dir, core::JobResult& r) {
  TrainSpec t;
  t.out_dir = dir;
  t.model = s.contains("model") ? model_from(s.at("model")) : ModelConfig{};
  t.init_checkpoint = opt<std::string>(s, "init", "");
  t.data_dir = s.at("data_dir").get<std::string>();
  t.mix = s.at("mix").get<std::map<std::string, double>>();
  t.tokens = s.at("tokens").get<int64_t>();
  t.batch_size = opt<int64_t>(s, "batch_size", 8);
  t.micro_batch = opt<int64_t>(s, "micro_batch", 0);
  t.seed = s.at("seed").get<uint64_t>();
  t.log_every = opt<int64_t>(s, "log_every", 10);
  t.eval_every = opt<int64_t>(s, "eval_every", 0);
  t.eval_windows = opt<int64_t>(s, "eval_windows", 8);
  t.checkpoint_every = opt<int64_t>(s, "checkpoint_every", 0);
  const json o = opt(s, "optim", json::object());
  t.optim.lr = opt(o, "lr", t.optim.lr);
  t.optim.min_lr_ratio = opt(o, "min_lr_ratio", t.optim.min_lr_ratio);
  t.optim.warmup = opt(o, "warmup", t.optim.warmup);
  t.optim.weight_decay = opt(o, "weight_decay", t.optim.weight_decay);
  t.optim.beta1 = opt(o, "beta1", t.optim.beta1);
  t.optim.beta2 = opt(o, "beta2", t.optim.beta2);
  t.optim.eps = opt(o, "eps", t.optim.eps);
  t.optim.grad_clip = opt(o, "grad_clip", t.optim.grad_clip);
  const DistEnv env = dist_env_from_environment();
  t.placement = resolve_placement(opt<std::string>(s, "device", "cpu"), opt<std::string>(s, "precision", "auto"),
                                  env.local_rank);
  DataParallel dp(env, t.placement.device);
  t.data_parallel = &dp;
  if (dp.world_size() > 1) {
    core::log_info("data parallel: rank " + std::to_string(dp.rank()) + " of " + std::to_string(dp.world_size()));
  }
  if (t.placement.device != "cpu" || t.placement.bf16) {
    core::log_info("train: on " + t.placement.device + (t.placement.bf16 ? " with bf16 autocast" : " in fp32"));
  }
  core::JsonlMetricSink sink(dir + "/" + core::kMetricsFile);
  TrainOutcome out = train(t, sink);
  if (out.preempted) return false;
  if (!dp.is_main()) return true;  // rank 0 reports the outputs (and alone wrote the checkpoint)
  r.outputs["checkpoint"] = out.checkpoint_dir;
  r.outputs["final_loss"] = std::to_string(out.final_loss);
  r.outputs["val_loss"] = std::to_string(out.val_loss);
  r.outputs["tokens"] = std::to_string(out.tokens);
  r.outputs["tokens_per_s"] = std::to_string(out.tokens_per_s);
  r.artifacts.push_back(checkpoint_artifact(out.checkpoint_dir));
  return true;
}

void run_upcycle_job(const json& s, const std::string& dir, core::JobResult& r) {
  UpcycleSpec u;
  u.method = s.at("method").get<std::string>();
  u.inputs = s.at("inputs").get<std::vector<std::string>>();
  u.mixture = model_from(opt(s, "mixture", json::object()));
  u.shared_kv_init = opt<std::string>(s, "shared_kv_init", "average");
  u.average_weights = opt(s, "average_weights", std::vector<double>{});
  u.extra_seed_experts = opt<int64_t>(s, "extra_seed_experts", 0);
  u.virtual_groups = opt(s, "virtual_groups", true);
  u.weight_scaling = opt<std::string>(s, "weight_scaling", "all");
  u.seed = s.at("seed").get<uint64_t>();
  UpcycleResult res = upcycle_dense(u);
  CheckpointMeta meta;
  meta.model = res.config;
  meta.extra = {{"method", u.method}, {"sources", u.inputs}};
  std::string ckpt = dir + "/checkpoint";
  save_checkpoint(ckpt, res.state, meta);
  r.outputs["checkpoint"] = ckpt;
  r.artifacts.push_back(checkpoint_artifact(ckpt));
}

// One model's perplexity on one domain: the ppl row and the nll row (stderr of the mean NLL).
void add_perplexity(core::JobResult& r, const std::string& model, const std::string& domain,
                    const PerplexityResult& res) {
  r.evals.push_back({model, "ppl/" + domain, "ppl", res.ppl, res.ppl_stderr, res.tokens, "none",
                     std::nullopt});
  r.evals.push_back({model, "ppl/" + domain, "nll", res.nll, res.ppl > 0 ? res.ppl_stderr / res.ppl : 0,
                     res.tokens, "none", std::nullopt});
  core::log_info("eval: " + model + " on " + domain + ": ppl " + std::to_string(res.ppl));
}

void run_eval_job(const json& s, core::JobResult& r) {
  const std::string data_dir = s.at("data_dir").get<std::string>();
  const std::string split = opt<std::string>(s, "split", "test");
  const auto domains = s.at("domains").get<std::vector<std::string>>();
  const int64_t max_windows = opt<int64_t>(s, "max_windows", 0);
  // Downstream tasks: "builtin" stands for the prepare stage's task file of every evaluated domain.
  std::vector<TaskExample> examples;
  for (const auto& t : opt(s, "tasks", std::vector<std::string>{})) {
    std::vector<std::string> files;
    if (t == "builtin") {
      for (const auto& d : domains) {
        if (std::filesystem::exists(builtin_task_path(data_dir, d))) files.push_back(builtin_task_path(data_dir, d));
      }
    } else {
      files.push_back(t);
    }
    for (const auto& f : files) {
      auto ex = load_task_file(f);
      examples.insert(examples.end(), ex.begin(), ex.end());
    }
  }
  const int64_t max_examples = opt<int64_t>(s, "max_examples", 0);
  const int64_t max_new_tokens = opt<int64_t>(s, "max_new_tokens", 64);
  std::unique_ptr<Tokenizer> tok;
  if (!examples.empty()) tok = std::make_unique<Tokenizer>(tokenizer_path(data_dir));
  // Eval runs in fp32 on whichever device the job has.
  const torch::Device device(resolve_placement(opt<std::string>(s, "device", "cpu"), "fp32", 0).device);
  auto load_on_device = [&](const std::string& ckpt) {
    TransformerLm m = load_model(ckpt);
    m->to(device);
    m->eval();
    return m;
  };
  for (const auto& m : s.at("models")) {
    std::string name = m.at("name").get<std::string>();
    TransformerLm model = load_on_device(m.at("checkpoint").get<std::string>());
    for (const auto& d : domains) {
      add_perplexity(r, name, d, perplexity(model, shard_path(data_dir, d, split), max_windows));
    }
    if (examples.empty()) continue;
    for (const auto& t : evaluate_tasks(model, *tok, examples, max_examples, max_new_tokens)) {
      r.evals.push_back({name, t.task, t.metric, t.value, t.stderr_value, t.n, "none", std::nullopt});
      core::log_info("eval: " + name + " on " + t.task + ": " + t.metric + " " + std::to_string(t.value) +
                     " (n " + std::to_string(t.n) + ")");
    }
  }
  for (const auto& ens : opt(s, "ensembles", json::array())) {  // BTM: eval-only ensembles
    std::string name = ens.at("name").get<std::string>();
    std::vector<TransformerLm> members;
    for (const auto& ck : ens.at("checkpoints")) members.push_back(load_on_device(ck.get<std::string>()));
    for (const auto& d : domains) {
      add_perplexity(r, name, d, ensemble_perplexity(members, shard_path(data_dir, d, split), max_windows));
    }
  }
}

// An external program; its results come in through the named parser.
void run_command_job(const json& s, const std::string& dir, core::JobResult& r) {
  CommandSpec c;
  c.argv = s.at("argv").get<std::vector<std::string>>();
  c.env = s.at("env").get<std::map<std::string, std::string>>();
  c.cwd = dir;
  const std::string out = s.at("out").get<std::string>();
  std::filesystem::remove_all(out);  // a retry starts from an empty output directory
  std::filesystem::create_directories(out);
  std::string line;
  for (const auto& a : c.argv) line += (line.empty() ? "" : " ") + a;
  core::log_info("command: " + line);
  int code = run_command(c);
  if (code != 0) throw StageError("command exited with code " + std::to_string(code) + ": " + line);
  r.outputs["out"] = out;
  const std::string parser = s.at("parser").get<std::string>();
  if (parser == "lm_eval") {
    std::string path = find_lm_eval_results(s.at("results").get<std::string>());
    r.evals = parse_lm_eval_results(core::read_json_file(path), s.at("model").get<std::string>(), path);
    if (r.evals.empty()) throw StageError(path + ": lm-evaluation-harness results hold no numeric metric");
    r.artifacts.push_back({path, "results", core::sha256_file(path),
                           static_cast<int64_t>(std::filesystem::file_size(path))});
    core::log_info("command: " + std::to_string(r.evals.size()) + " results from " + path);
  } else if (parser != "none") {
    throw StageError("command: unknown parser '" + parser + "'");
  }
}

// Holds DIR/.lock for the job's lifetime. A runner that died (kill -9) leaves its job running until
// it has checkpointed; a resumed attempt of the same job waits here instead of writing beside it.
int lock_job_dir(const std::string& dir, int rank) {
  const std::string path = dir + "/.lock" + (rank == 0 ? "" : "." + std::to_string(rank));
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw StageError(path + ": cannot open the job lock: " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    core::log_warn("an earlier attempt of this job is still running; waiting for it to stop");
    while (::flock(fd, LOCK_EX) != 0 && errno == EINTR) {
    }
  }
  return fd;  // closed (and released) at exit
}

}  // namespace

void set_torch_threads(int threads) {
  torch::set_num_threads(threads);
  torch::set_num_interop_threads(1);
  // Training frees and allocates the same activation sizes every step. With glibc's defaults the
  // large blocks go back to the kernel (mmap threshold, heap trimming) and every step page-faults
  // and zeroes them again, a few percent of a CPU step (perf). Keep them in the heap instead.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

int run_job(const std::string& spec_path) {
  auto t0 = std::chrono::steady_clock::now();
  try {
    json s = core::read_json_file(spec_path);
    const std::string kind = s.at("kind").get<std::string>();
    const std::string dir = std::filesystem::path(spec_path).parent_path().string();
    int threads = opt(s, "threads", 1);
    set_torch_threads(threads);
    core::JobResult r;
    r.key = s.at("key").get<std::string>();
    const DistEnv env = dist_env_from_environment();  // rank 0 alone writes the result
    lock_job_dir(dir, env.rank);
    if (auto done = core::read_job_result(dir); done && done->status == "done" && done->key == r.key) {
      core::log_info("already complete (an earlier attempt finished it)");
      return kExitOk;
    }
    if (kind == "prepare") {
      run_prepare_job(s, dir, r);
    } else if (kind == "train") {
      if (!run_train_job(s, dir, r)) {
        core::log_warn("preempted: checkpoint written, exiting for requeue");
        return kExitPreempted;
      }
    } else if (kind == "upcycle") {
      run_upcycle_job(s, dir, r);
    } else if (kind == "eval") {
      run_eval_job(s, r);
    } else if (kind == "command") {
      run_command_job(s, dir, r);
    } else {
      throw StageError(spec_path + ": unknown job kind '" + kind + "'");
    }
    r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.host = core::host_name();
    r.device = torch::cuda::is_available() ? "cuda" : "cpu";
    r.torch_version = TORCH_VERSION;
    if (env.rank == 0) core::write_job_result(dir, r);
    return kExitOk;
  } catch (const Error& e) {
    core::log_error(e.what());
    if (!e.hint().empty()) core::log_error("---> HINT: " + e.hint());
    return kExitUserError;
  } catch (const json::exception& e) {
    core::log_error(spec_path + ": malformed job spec: " + e.what());
    return kExitUserError;
  } catch (const c10::Error& e) {
    core::log_error(std::string("torch: ") + e.what_without_backtrace());
    return kExitInternalError;
  } catch (const std::exception& e) {
    core::log_error(std::string("internal error: ") + e.what());
    return kExitInternalError;
  }
}

}  // namespace upcycle::stages
