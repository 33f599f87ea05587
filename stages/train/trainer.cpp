#include "stages/train/trainer.h"

#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>

#include "core/error.h"
#include "core/log.h"
#include "core/result_names.h"
#include "stages/arch/memory.h"
#include "stages/io/checkpoint.h"
#include "stages/model/transformer.h"
#include "stages/train/batch_sampler.h"
#include "stages/train/lr_schedule.h"
#include "stages/train/optimizer.h"
#include "stages/train/peak_memory.h"
#include "stages/train/preemption.h"
#include "stages/train/train_checkpoint.h"

namespace upcycle::stages {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kTrainStepKey = "train_step";
constexpr const char* kConsumedSamplesKey = "consumed_samples";
constexpr const char* kInitTokensKey = "init_tokens";

// ---- setup ----

TransformerLm build_model(const TrainSpec& spec, CheckpointMeta* meta) {
  torch::manual_seed(spec.seed);
  if (!spec.init_checkpoint.empty()) return load_model(spec.init_checkpoint, meta);
  try {
    spec.model.validate();
  } catch (const core::FieldError& e) {
    throw StageError("model." + e.path() + ": " + e.reason());
  }
  return TransformerLm(spec.model);
}

// How the global batch is cut: per step, per rank and per micro-batch.
struct Geometry {
  int64_t T = 0, B = 0, local_B = 0, first_row = 0, micro = 0, accum = 0, steps = 0;
  int64_t tokens_per_step() const { return B * T; }
};

Geometry geometry(const TrainSpec& spec, int64_t seq_len, const DataParallel& dp) {
  Geometry g;
  g.T = seq_len;
  g.B = spec.batch_size;
  const int64_t world = dp.world_size();
  if (g.B % world != 0) {
    throw StageError("batch_size " + std::to_string(g.B) + " is not divisible by the " +
                     std::to_string(world) + " data-parallel processes");
  }
  g.local_B = g.B / world;
  g.first_row = dp.rank() * g.local_B;  // this rank's slice of the batch
  g.micro = spec.micro_batch > 0 ? std::min(spec.micro_batch, g.local_B) : g.local_B;
  if (g.local_B % g.micro != 0)
    throw StageError("batch_size per process must be a multiple of micro_batch");
  g.accum = g.local_B / g.micro;
  g.steps = std::max<int64_t>(1, (spec.tokens + g.tokens_per_step() - 1) / g.tokens_per_step());
  return g;
}

// Where a resumed run starts: after the samples its checkpoint consumed, which the global batch
// (the same on any number of ranks) turns into steps.
int64_t resume_step(const CheckpointMeta& meta, const Geometry& g, const std::string& dir) {
  const int64_t step = meta.extra.at(kTrainStepKey).get<int64_t>();
  const int64_t consumed = meta.extra.value(kConsumedSamplesKey, step * g.B);
  if (consumed != step * g.B) {
    throw StageError(dir + ": the checkpoint consumed " + std::to_string(consumed) +
                     " samples in " + std::to_string(step) + " steps, not batches of " +
                     std::to_string(g.B) + " (batch_size changed?)");
  }
  return step;
}

// A CPU batch onto the device: through pinned memory and without waiting on CUDA, so the host can
// queue the step's kernels ahead of the GPU (a pageable copy would synchronise).
at::Tensor to_device(const at::Tensor& b, const torch::Device& device) {
  if (!device.is_cuda()) return b;
  return b.pin_memory().to(device, /*non_blocking=*/true);
}

// The loss of one batch [B, T + 1] through the chunked head, and the forward's router statistics.
std::pair<LmOutput, at::Tensor> forward_loss(TransformerLm& model, const at::Tensor& b,
                                             const TrainSpec& spec) {
  const int64_t T = b.size(1) - 1;
  AutocastScope autocast(spec.placement.device, spec.placement.bf16);
  auto res = model->forward_hidden(b.narrow(1, 0, T), spec.checkpoint_activations);
  auto loss = lm_loss_chunked(*model, res.hidden_BTD, b.narrow(1, 1, T), spec.loss_chunk_tokens);
  res.hidden_BTD = at::Tensor();
  return {std::move(res), loss};
}

// Scalars on the device read with one device-to-host copy.
std::vector<double> read_scalars(const std::vector<at::Tensor>& xs) {
  if (xs.empty()) return {};
  std::vector<at::Tensor> flat;
  for (const auto& x : xs) flat.push_back(x.detach().reshape({-1}).to(torch::kFloat64));
  auto host = torch::cat(flat).to(torch::kCPU);
  return std::vector<double>(host.data_ptr<double>(), host.data_ptr<double>() + host.numel());
}

// The per-layer router statistics of a log step.
void add_router_metrics(const std::vector<RouterStats>& stats, std::map<std::string, double>& v) {
  std::vector<at::Tensor> xs;
  std::vector<std::string> names;
  for (size_t l = 0; l < stats.size(); ++l) {
    if (stats[l].util_E.numel() <= 1) continue;
    xs.insert(xs.end(), {stats[l].load_balance, stats[l].z_loss, stats[l].util_E});
    names.push_back(core::layer_metric("lb_loss", int64_t(l)));
    names.push_back(core::layer_metric("z_loss", int64_t(l)));
    for (int64_t e = 0; e < stats[l].util_E.numel(); ++e)
      names.push_back(core::router_metric("util", int64_t(l), e));
  }
  const std::vector<double> values = read_scalars(xs);
  for (size_t i = 0; i < names.size(); ++i) v[names[i]] = values[i];
}

// The same windows every time, a micro-batch at a time, through the chunked head without grads.
double validation_loss(TransformerLm& model, const MixtureSampler& val, int64_t windows,
                       int64_t micro, const TrainSpec& spec) {
  torch::NoGradGuard no_grad;
  const torch::Device device(spec.placement.device);
  at::Tensor sum = torch::zeros({}, torch::dtype(torch::kFloat64).device(device));
  for (int64_t row = 0; row < windows; row += micro) {
    const int64_t rows = std::min(micro, windows - row);
    auto b = to_device(val.batch(row, rows), device);
    sum += forward_loss(model, b, spec).second.to(torch::kFloat64) * double(rows);
  }
  return sum.item<double>() / double(windows);
}

// On a terminal, one line redrawn every step; otherwise (log.txt) one line at most every 10 s and
// at the end, so a long job's log shows how far it is.
void print_progress(int64_t step, int64_t steps, int64_t tokens, double loss, double tps,
                    bool tty) {
  double eta = tps > 0 ? double(steps - step) * double(tokens) / double(step) / tps : 0;
  std::fprintf(stderr, "%s[train] step %lld/%lld  tokens %lld  loss %.4f  %.0f tok/s  ETA %.0fs%s",
               tty ? "\r" : "", (long long)step, (long long)steps, (long long)tokens, loss, tps,
               eta, tty ? "   " : "\n");
  if (tty && step == steps) std::fprintf(stderr, "\n");
}

// What the memory model (stages/arch/memory.h) expects of this rank.
MemoryEstimate memory_estimate(const TrainSpec& spec, const ModelConfig& cfg, const Geometry& g,
                               int64_t world) {
  MemoryPlan p;
  p.micro_batch = g.micro;
  p.world = world;
  p.zero = spec.zero;
  p.recompute = spec.checkpoint_activations;
  p.loss_chunk_tokens = spec.loss_chunk_tokens;
  p.bf16 = spec.placement.bf16;
  p.cuda = spec.placement.device.rfind("cuda", 0) == 0;
  p.eval_windows = spec.eval_windows;
  p.bucket_bytes = dist_env_from_environment().bucket_bytes;
  return estimate_memory(cfg, p);
}

// ---- the run ----

// Everything one training attempt holds, and its steps as named parts; train() is the loop.
class Run {
 public:
  Run(const TrainSpec& spec, core::MetricSink& sink, DataParallel& dp);
  bool finished_already() const { return start_step_ >= g_.steps; }
  TrainOutcome report_final_checkpoint();
  void step(int64_t step);        // micro-batches, gradient sync, optimizer
  bool after_step(int64_t step);  // log, validate, checkpoint; true = stop (preempted)
  TrainOutcome& outcome() { return out_; }
  /// The realised blend of the samples consumed so far (rank 0 reports it).
  void replay_blend() {
    if (dp_.is_main()) out_.realised = data_->realised(out_.steps * g_.B);
  }
  int64_t start_step() const { return start_step_; }
  int64_t steps() const { return g_.steps; }

 private:
  void log(bool eval, const std::vector<double>& read);
  void check_finite(const std::vector<double>& read);
  void checkpoint();

  const TrainSpec& spec_;
  DataParallel& dp_;
  core::NullMetricSink no_metrics_;
  core::MetricSink& metrics_;  // rank 0 alone writes
  std::string ckpt_dir_;
  CheckpointMeta meta_;
  TransformerLm model_{nullptr};
  int64_t start_step_ = 0, init_tokens_ = 0;
  Geometry g_;
  std::unique_ptr<MixtureSampler> data_, val_;
  std::unique_ptr<StepOptimizer> opt_;
  std::vector<std::string> names_;  ///< of the trained parameters, in the optimizer's order
  LrSchedule schedule_;
  MemoryEstimate estimate_;
  bool tty_ = false;
  TrainOutcome out_;
  int64_t timed_from_ = 0;
  Clock::time_point t0_, last_line_;
  std::string last_good_;
  double lr_ = 0;
  // The step's loss, aux loss and grad norm stay on the device; the host reads them (one copy) at
  // log steps and when a progress line is due, so it can queue steps ahead of the GPU. `first_bad`
  // holds the first step whose loss was not finite (0 = none), caught at the next read and always
  // before a checkpoint is written.
  at::Tensor loss_sum_, aux_sum_, gnorm_, first_bad_;
  std::vector<RouterStats> stats_;
};

Run::Run(const TrainSpec& spec, core::MetricSink& sink, DataParallel& dp)
    : spec_(spec),
      dp_(dp),
      metrics_(dp.is_main() ? sink : no_metrics_),
      ckpt_dir_(spec.out_dir + "/checkpoint") {
  // A checkpoint of this job's own (the job directory is content-keyed) means a preempted or failed
  // attempt: resume from it. Otherwise start from the init checkpoint or a fresh model.
  const bool resume =
      checkpoint_exists(ckpt_dir_) && read_checkpoint_meta(ckpt_dir_).extra.contains(kTrainStepKey);
  model_ = resume ? load_model(ckpt_dir_, &meta_) : build_model(spec, &meta_);
  const torch::Device device(spec.placement.device);
  model_->to(device);  // before the optimizer takes the parameters
  const ModelConfig& cfg = model_->config;
  g_ = geometry(spec, cfg.seq_len, dp);
  if (resume) start_step_ = resume_step(meta_, g_, ckpt_dir_);
  init_tokens_ = resume ? meta_.extra.at(kInitTokensKey).get<int64_t>() : meta_.tokens;
  data_ = std::make_unique<MixtureSampler>(spec.data_dir, spec.mix, "train", g_.T, spec.seed,
                                           cfg.vocab);
  val_ = std::make_unique<MixtureSampler>(spec.data_dir, spec.mix, "valid", g_.T, spec.seed,
                                          cfg.vocab);
  opt_ = make_step_optimizer(model_->parameters(), spec.optim, dp, spec.zero,
                             dist_env_from_environment().bucket_bytes,
                             bf16_weights(spec.placement.bf16, spec.zero));
  names_ = trained_parameter_names(model_);
  if (resume && start_step_ < g_.steps) {  // a finished job's last checkpoint may hold no state
    load_optimizer_state(ckpt_dir_, meta_, *opt_, names_);
    core::log_info("resuming " + ckpt_dir_ + " at step " + std::to_string(start_step_) + " of " +
                   std::to_string(g_.steps) + " (" + std::to_string(start_step_ * g_.B) +
                   " samples consumed) on " + std::to_string(dp.world_size()) + " rank(s)");
  }
  schedule_ = {spec.optim.lr, spec.optim.warmup, g_.steps, spec.optim.min_lr_ratio};
  estimate_ = memory_estimate(spec, cfg, g_, dp.world_size());
  if (dp.is_main()) {
    core::log_info("optimizer: " +
                   std::string(spec.zero == 0   ? "replicated"
                               : spec.zero == 1 ? "ZeRO-1"
                                                : "ZeRO-2") +
                   " over " + std::to_string(dp.world_size()) + " rank(s), " +
                   format_bytes(double(opt_->state_bytes())) + " of AdamW state on this rank" +
                   (bf16_weights(spec.placement.bf16, spec.zero)
                        ? " (bf16 weights, fp32 masters in the optimizer)"
                        : ""));
    core::log_info("memory model: " + describe_memory(estimate_));
  }
  tty_ = ::isatty(STDERR_FILENO) && dp.is_main();
  // Throughput is measured after 2 untimed steps (allocator and kernel warm-up), as the Python peer
  // (shared/bench/ref_train.py) does, unless the run is too short to have a steady state.
  timed_from_ = start_step_ + (g_.steps - start_step_ > 4 ? 2 : 0);
  t0_ = last_line_ = Clock::now();
  last_good_ = resume ? "step " + std::to_string(start_step_) : "none yet";
  const auto scalar = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  first_bad_ = torch::zeros({}, scalar.dtype(torch::kInt64));
  loss_sum_ = torch::zeros({}, scalar);
  synchronize(spec.placement);
}

// The final checkpoint of an attempt that finished but left no result (it was deleted, or the
// process died just before writing it): report that checkpoint rather than train again.
TrainOutcome Run::report_final_checkpoint() {
  core::log_info(
      "the checkpoint is at the final step: validating it and reporting it as the result");
  out_.steps = g_.steps;
  out_.tokens = g_.steps * g_.tokens_per_step();
  out_.final_loss =
      std::numeric_limits<double>::quiet_NaN();  // not recomputed: the metrics hold it
  out_.val_loss = validation_loss(model_, *val_, spec_.eval_windows, g_.micro, spec_);
  out_.checkpoint_dir = ckpt_dir_;
  return out_;
}

void Run::step(int64_t step) {
  lr_ = schedule_.at(step);
  opt_->zero_grad();
  const auto scalar = loss_sum_.options();
  loss_sum_ = torch::zeros({}, scalar);
  aux_sum_ = torch::zeros({}, scalar);
  for (int64_t m = 0; m < g_.accum; ++m) {
    auto b = to_device(data_->batch(step * g_.B + g_.first_row + m * g_.micro, g_.micro),
                       torch::Device(spec_.placement.device));
    auto [res, loss] = forward_loss(model_, b, spec_);  // backward runs outside autocast
    if (m + 1 == g_.accum) opt_->before_last_backward();
    ((loss + res.aux_loss) / double(g_.accum)).backward();
    opt_->after_backward();
    loss_sum_ += loss.detach() / double(g_.accum);
    aux_sum_ += res.aux_loss.detach() / double(g_.accum);
    stats_ = std::move(res.ffn_stats);
  }
  first_bad_ = torch::where(first_bad_.eq(0).logical_and(loss_sum_.isfinite().logical_not()),
                            torch::full({}, step + 1, first_bad_.options()), first_bad_);
  gnorm_ = opt_->step(lr_, spec_.optim.grad_clip);
  out_.steps = step + 1;
  out_.tokens = out_.steps * g_.tokens_per_step();
  if (out_.steps == timed_from_) {
    synchronize(spec_.placement);
    t0_ = Clock::now();
  }
}

void Run::check_finite(const std::vector<double>& read) {
  const double bad = -dp_.max(read.back() > 0 ? -read.back() : -1e18);  // the earliest over ranks
  if (bad < 1e18) {
    throw StageError("the loss became non-finite at step " + std::to_string(int64_t(bad)) +
                         "; training stopped, the last good checkpoint (" + last_good_ +
                         ") is kept",
                     "lower optim.lr or raise optim.warmup");
  }
}

void Run::log(bool eval, const std::vector<double>& read) {
  std::map<std::string, double> v = {{"loss", out_.final_loss},
                                     {"lr", lr_},
                                     {"grad_norm", read[2]},
                                     {"tokens", double(out_.tokens)},
                                     {"tokens_per_s", out_.tokens_per_s},
                                     {"aux_loss", dp_.mean(read[1])}};
  add_router_metrics(stats_, v);
  if (eval) {
    out_.val_loss = validation_loss(model_, *val_, spec_.eval_windows, g_.micro, spec_);
    v["val_loss"] = out_.val_loss;
  }
  // The measured peak (peak_memory.h) of every rank, the largest, and the memory model's estimate.
  const double mine = double(memory_peak(spec_.placement.device));
  for (int r = 0; r < dp_.world_size(); ++r)
    v["memory/peak_bytes/rank" + std::to_string(r)] = dp_.sum(dp_.rank() == r ? mine : 0.0);
  v["memory/peak_bytes"] = dp_.max(mine);
  v["memory/estimate_bytes"] = double(estimate_.peak);
  metrics_.log(out_.steps, v);
}

void Run::checkpoint() {
  out_.checkpoint_dir = ckpt_dir_;
  // A finite loss was computed before this step's update; the update itself can still overflow.
  std::vector<at::Tensor> finite;
  for (const auto& p : model_->parameters()) finite.push_back(torch::isfinite(p).all());
  if (!torch::stack(finite).all().item<bool>()) {
    throw StageError("parameters became non-finite at step " + std::to_string(out_.steps) +
                         "; training stopped, the last good checkpoint (" + last_good_ +
                         ") is kept",
                     "lower optim.lr, raise optim.warmup or enable optim.grad_clip");
  }
  last_good_ = "step " + std::to_string(out_.steps);
  // Weights, optimizer state and position; the data order is a function of (seed, samples
  // consumed), and nothing else draws random numbers during training, so this is everything an
  // exact resume needs, on any number of ranks.
  CheckpointMeta m;
  m.step = out_.steps;
  m.tokens = init_tokens_ + out_.tokens;
  m.extra = meta_.extra;
  m.extra[kTrainStepKey] = out_.steps;
  m.extra[kConsumedSamplesKey] = out_.steps * g_.B;
  m.extra[kInitTokensKey] = init_tokens_;
  const bool final = out_.steps == g_.steps;
  const auto t0 = std::chrono::steady_clock::now();
  save_train_checkpoint(ckpt_dir_, model_, *opt_, names_, m, dp_,
                        !final || spec_.final_optimizer_state);  // collective
  // The slowest rank's save time: what `slurm.signal_seconds: auto` leaves before a time limit.
  const double save_s = dp_.max(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());  // collective
  out_.checkpoint_save_s = std::max(out_.checkpoint_save_s, save_s);
}

bool Run::after_step(int64_t step) {
  const bool last = step + 1 == g_.steps;
  const bool log_step = out_.steps % spec_.log_every == 0 || last || step == 0;
  const bool eval_step =
      log_step && ((spec_.eval_every > 0 && out_.steps % spec_.eval_every == 0) || last);
  // Every rank stops at the same step when any of them is asked to.
  const bool preempt =
      dp_.max(preemption_requested() || out_.steps == spec_.stop_after_steps ? 1.0 : 0.0) > 0;
  const bool ckpt_step =
      (spec_.checkpoint_every > 0 && out_.steps % spec_.checkpoint_every == 0) || last || preempt;
  const auto since_line = Clock::now() - last_line_;
  const bool line_due = dp_.is_main() && (tty_ ? since_line > std::chrono::milliseconds(500)
                                               : since_line > std::chrono::seconds(10));
  // Whether to read the device values: every rank decides alike (log and checkpoint steps are
  // common; a progress line on rank 0 alone needs no collective).
  if (log_step || ckpt_step || line_due) {
    const std::vector<double> read =
        read_scalars({loss_sum_, aux_sum_, gnorm_, first_bad_.to(torch::kFloat64)});
    if (log_step || ckpt_step) check_finite(read);
    out_.final_loss = log_step ? dp_.mean(read[0]) : read[0];
    if (out_.steps > timed_from_) {
      const double secs = std::chrono::duration<double>(Clock::now() - t0_).count();
      out_.tokens_per_s = double((out_.steps - timed_from_) * g_.tokens_per_step()) / secs;
    }
    if (log_step) log(eval_step, read);
    if (dp_.is_main() && (tty_ || last || line_due)) {
      print_progress(out_.steps, g_.steps, out_.tokens, out_.final_loss, out_.tokens_per_s, tty_);
      last_line_ = Clock::now();
    }
  }
  if (ckpt_step) checkpoint();
  out_.preempted = preempt && !last;
  return out_.preempted;
}

}  // namespace

// ---- the loop ----

TrainOutcome train(const TrainSpec& spec, core::MetricSink& sink) {
  install_preemption_handlers();
  track_cpu_memory();
  reset_memory_peak(spec.placement.device);
  DataParallel single(DistEnv{});
  Run run(spec, sink, spec.data_parallel ? *spec.data_parallel : single);
  if (run.finished_already()) {
    run.report_final_checkpoint();
  } else {
    for (int64_t step = run.start_step(); step < run.steps(); ++step) {
      run.step(step);
      if (run.after_step(step)) break;
    }
  }
  run.replay_blend();
  return run.outcome();
}

}  // namespace upcycle::stages
