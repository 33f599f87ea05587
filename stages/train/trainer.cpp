#include "stages/train/trainer.h"

#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

#include "core/log.h"

#include "core/error.h"
#include "stages/io/checkpoint.h"
#include "stages/model/transformer.h"
#include "stages/train/adamw.h"
#include "stages/train/batch_sampler.h"
#include "stages/train/lr_schedule.h"
#include "stages/train/preemption.h"

namespace upcycle::stages {
namespace {

using Clock = std::chrono::steady_clock;

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

// AdamW with weight decay on matrices only; norms (1-D) are not decayed.
std::unique_ptr<torch::optim::AdamW> make_optimizer(TransformerLm& model, const OptimSpec& o) {
  std::vector<at::Tensor> decay, no_decay;
  for (auto& p : model->parameters()) (p.dim() >= 2 ? decay : no_decay).push_back(p);
  auto opts = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(o.lr).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, opts(o.weight_decay));
  groups.emplace_back(no_decay, opts(0.0));
  return std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(o.lr));
}

void set_lr(torch::optim::Optimizer& opt, double lr) {
  for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

// The forward pass and loss of one batch [B, T + 1], under autocast when the placement asks for
// bf16.
std::pair<LmOutput, at::Tensor> forward_loss(TransformerLm& model, const at::Tensor& b,
                                             const Placement& where) {
  const int64_t T = b.size(1) - 1;
  AutocastScope autocast(where.device, where.bf16);
  auto res = model->forward(b.narrow(1, 0, T));
  auto loss = lm_loss(res.logits_BTV, b.narrow(1, 1, T));
  return {std::move(res), loss};
}

// A CPU batch onto the device: through pinned memory and without waiting on CUDA, so the host can
// queue the step's kernels ahead of the GPU (a pageable copy would synchronise).
at::Tensor to_device(const at::Tensor& b, const torch::Device& device) {
  if (!device.is_cuda()) return b;
  return b.pin_memory().to(device, /*non_blocking=*/true);
}

// clip_grad_norm_ as LibTorch computes it (per-gradient 2-norms, their 2-norm, one clamped factor),
// but returns the norm as a device tensor: LibTorch's returns a double, a host sync every step.
at::Tensor clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  std::vector<at::Tensor> norms;
  for (const auto& p : params) {
    if (p.grad().defined()) norms.push_back(p.grad().detach().norm(2));
  }
  if (norms.empty()) return torch::zeros({});
  auto total = torch::stack(norms).norm(2);
  auto factor = torch::clamp(max_norm / (total + 1e-6), c10::nullopt, 1.0);
  for (const auto& p : params) {
    if (p.grad().defined()) p.grad().detach().mul_(factor);
  }
  return total;
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
    const std::string layer = "/l" + std::to_string(l);
    xs.insert(xs.end(), {stats[l].load_balance, stats[l].z_loss, stats[l].util_E});
    names.push_back("lb_loss" + layer);
    names.push_back("z_loss" + layer);
    for (int64_t e = 0; e < stats[l].util_E.numel(); ++e)
      names.push_back("util" + layer + "/e" + std::to_string(e));
  }
  const std::vector<double> values = read_scalars(xs);
  for (size_t i = 0; i < names.size(); ++i) v[names[i]] = values[i];
}

double validation_loss(TransformerLm& model, const MixtureSampler& val, int64_t windows,
                       const Placement& where) {
  torch::NoGradGuard no_grad;
  // The same windows every time.
  auto b = to_device(val.batch(/*step=*/0, /*first_row=*/0, windows), torch::Device(where.device));
  return forward_loss(model, b, where).second.item<double>();
}

// ---- checkpoints with the trainer's state ----

constexpr const char* kOptimizerFile = "optimizer.pt";
constexpr const char* kTrainStepKey = "train_step";
constexpr const char* kInitTokensKey = "init_tokens";

// Weights, optimizer state and position; the data order is a function of (seed, step), and nothing
// else draws random numbers during training, so this is everything an exact resume needs.
void save_training_checkpoint(const std::string& dir, TransformerLm& model,
                              torch::optim::AdamW& opt, nlohmann::json extra, int64_t step,
                              int64_t tokens, int64_t init_tokens) {
  std::ostringstream optimizer;
  torch::save(opt, optimizer);
  extra[kTrainStepKey] = step;
  extra[kInitTokensKey] = init_tokens;
  CheckpointMeta m;
  m.step = step;
  m.tokens = tokens;
  m.extra = extra;
  save_checkpoint(dir, model, m, {{kOptimizerFile, optimizer.str()}});
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

}  // namespace

// ---- the loop ----

TrainOutcome train(const TrainSpec& spec, core::MetricSink& sink) {
  install_preemption_handlers();
  const std::string ckpt_dir = spec.out_dir + "/checkpoint";
  // A checkpoint of this job's own (the job directory is content-keyed) means a preempted or failed
  // attempt: resume from it. Otherwise start from the init checkpoint or a fresh model.
  const bool resume =
      checkpoint_exists(ckpt_dir) && read_checkpoint_meta(ckpt_dir).extra.contains(kTrainStepKey);
  CheckpointMeta meta;
  TransformerLm model = resume ? load_model(ckpt_dir, &meta) : build_model(spec, &meta);
  const int64_t start_step = resume ? meta.extra.at(kTrainStepKey).get<int64_t>() : 0;
  const int64_t init_tokens = resume ? meta.extra.at(kInitTokensKey).get<int64_t>() : meta.tokens;
  const torch::Device device(spec.placement.device);
  model->to(device);  // before the optimizer takes the parameters
  const ModelConfig& cfg = model->config;
  const int64_t T = cfg.seq_len, B = spec.batch_size;
  DataParallel single(DistEnv{});
  DataParallel& dp = spec.data_parallel ? *spec.data_parallel : single;
  const int64_t world = dp.world_size();
  if (B % world != 0) {
    throw StageError("batch_size " + std::to_string(B) + " is not divisible by the " +
                     std::to_string(world) + " data-parallel processes");
  }
  const int64_t local_B = B / world,
                first_row = dp.rank() * local_B;  // this rank's slice of the batch
  const int64_t micro = spec.micro_batch > 0 ? spec.micro_batch : local_B;
  if (local_B % micro != 0)
    throw StageError("batch_size per process must be a multiple of micro_batch");
  const int64_t accum = local_B / micro, tokens_per_step = B * T;
  const int64_t steps = std::max<int64_t>(1, (spec.tokens + tokens_per_step - 1) / tokens_per_step);
  MixtureSampler data(spec.data_dir, spec.mix, "train", T, spec.seed, model->config.vocab);
  MixtureSampler val(spec.data_dir, spec.mix, "valid", T, spec.seed, model->config.vocab);
  auto opt = make_optimizer(model, spec.optim);
  if (resume) {
    std::istringstream in(read_checkpoint_file(ckpt_dir, kOptimizerFile));
    torch::load(*opt, in, device);
    core::log_info("resuming " + ckpt_dir + " at step " + std::to_string(start_step) + " of " +
                   std::to_string(steps));
  }
  LrSchedule schedule{spec.optim.lr, spec.optim.warmup, steps, spec.optim.min_lr_ratio};
  const bool tty = ::isatty(STDERR_FILENO) && dp.is_main();
  core::NullMetricSink no_metrics;
  core::MetricSink& metrics = dp.is_main() ? sink : no_metrics;  // rank 0 alone writes

  TrainOutcome out;
  // Throughput is measured after 2 untimed steps (allocator and kernel warm-up), as the Python peer
  // (shared/bench/ref_train.py) does, unless the run is too short to have a steady state.
  const int64_t timed_from = start_step + (steps - start_step > 4 ? 2 : 0);
  auto t0 = Clock::now(), last_line = t0;
  std::string last_good = resume ? "step " + std::to_string(start_step) : "none yet";
  if (start_step >= steps) {
    // The final checkpoint of an attempt that finished but left no result (it was deleted, or the
    // process died just before writing it): report that checkpoint rather than train again.
    core::log_info(
        "the checkpoint is at the final step: validating it and reporting it as the result");
    out.steps = steps;
    out.tokens = steps * tokens_per_step;
    out.final_loss =
        std::numeric_limits<double>::quiet_NaN();  // not recomputed: the metrics hold it
    out.val_loss = validation_loss(model, val, spec.eval_windows, spec.placement);
    out.checkpoint_dir = ckpt_dir;
    return out;
  }
  // The step's loss, aux loss and grad norm stay on the device; the host reads them (one copy) at
  // log steps and when a progress line is due, so it can queue steps ahead of the GPU. A non-finite
  // loss is caught at the next read, and always before a checkpoint is written: `first_bad` holds
  // the first step whose loss was not finite (0 = none).
  const auto scalar = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  at::Tensor first_bad = torch::zeros({}, scalar.dtype(torch::kInt64));
  dp.overlap_gradients(model->parameters());
  if (dp.bucket_count() > 0) {
    core::log_info("data parallel: " + std::to_string(dp.bucket_count()) +
                   " gradient buckets, each all-reduced as soon as backward completes it");
  }
  synchronize(spec.placement);
  auto check_finite = [&](const std::vector<double>& read) {
    const double bad =
        -dp.max(read.back() > 0 ? -read.back() : -1e18);  // the earliest over the ranks
    if (bad < 1e18) {
      throw StageError("the loss became non-finite at step " + std::to_string(int64_t(bad)) +
                           "; training stopped, the last good checkpoint (" + last_good +
                           ") is kept",
                       "lower optim.lr or raise optim.warmup");
    }
  };
  for (int64_t step = start_step; step < steps; ++step) {
    double lr = schedule.at(step);
    set_lr(*opt, lr);
    opt->zero_grad();
    at::Tensor loss_sum = torch::zeros({}, scalar), aux_sum = torch::zeros({}, scalar);
    std::vector<RouterStats> stats;
    for (int64_t m = 0; m < accum; ++m) {
      auto b = to_device(data.batch(step, first_row + m * micro, micro), device);
      auto [res, loss] = forward_loss(model, b, spec.placement);  // backward runs outside autocast
      if (m + 1 == accum) dp.arm_gradient_sync();
      ((loss + res.aux_loss) / double(accum)).backward();
      loss_sum += loss.detach() / double(accum);
      aux_sum += res.aux_loss.detach() / double(accum);
      stats = std::move(res.ffn_stats);
    }
    dp.finish_gradients(model->parameters());
    first_bad = torch::where(first_bad.eq(0).logical_and(loss_sum.isfinite().logical_not()),
                             torch::full({}, step + 1, first_bad.options()), first_bad);
    at::Tensor gnorm = spec.optim.grad_clip > 0
                           ? clip_grad_norm(model->parameters(), spec.optim.grad_clip)
                           : torch::zeros({}, scalar);
    adamw_step(*opt);
    out.steps = step + 1;
    out.tokens = out.steps * tokens_per_step;
    if (out.steps == timed_from) {
      synchronize(spec.placement);
      t0 = Clock::now();
    }

    const bool last = step + 1 == steps;
    const bool log_step = out.steps % spec.log_every == 0 || last || step == 0;
    const bool eval_step =
        log_step && ((spec.eval_every > 0 && out.steps % spec.eval_every == 0) || last);
    // Every rank stops at the same step when any of them is asked to.
    const bool preempt =
        dp.max(preemption_requested() || out.steps == spec.stop_after_steps ? 1.0 : 0.0) > 0;
    const bool ckpt_step =
        (spec.checkpoint_every > 0 && out.steps % spec.checkpoint_every == 0) || last || preempt;
    const auto since_line = Clock::now() - last_line;
    const bool line_due = dp.is_main() && (tty ? since_line > std::chrono::milliseconds(500)
                                               : since_line > std::chrono::seconds(10));
    // Whether to read the device values: every rank decides alike (log and checkpoint steps are
    // common; a progress line on rank 0 alone needs no collective).
    if (log_step || ckpt_step || line_due || last) {
      const std::vector<double> read =
          read_scalars({loss_sum, aux_sum, gnorm, first_bad.to(torch::kFloat64)});
      if (log_step || ckpt_step) check_finite(read);
      out.final_loss = log_step ? dp.mean(read[0]) : read[0];
      if (out.steps > timed_from) {
        double secs = std::chrono::duration<double>(Clock::now() - t0).count();
        out.tokens_per_s = double((out.steps - timed_from) * tokens_per_step) / secs;
      }
      if (log_step) {
        std::map<std::string, double> v = {{"loss", out.final_loss},
                                           {"lr", lr},
                                           {"grad_norm", read[2]},
                                           {"tokens", double(out.tokens)},
                                           {"tokens_per_s", out.tokens_per_s},
                                           {"aux_loss", dp.mean(read[1])}};
        add_router_metrics(stats, v);
        if (eval_step) {
          out.val_loss = validation_loss(model, val, spec.eval_windows, spec.placement);
          v["val_loss"] = out.val_loss;
        }
        metrics.log(out.steps, v);
      }
      if (dp.is_main() && (tty || last || line_due)) {
        print_progress(out.steps, steps, out.tokens, out.final_loss, out.tokens_per_s, tty);
        last_line = Clock::now();
      }
    }
    if (ckpt_step) {
      out.checkpoint_dir = ckpt_dir;
      // A finite loss was computed before this step's update; the update itself can still overflow.
      std::vector<at::Tensor> finite;
      for (const auto& p : model->parameters()) finite.push_back(torch::isfinite(p).all());
      if (!torch::stack(finite).all().item<bool>()) {
        throw StageError("parameters became non-finite at step " + std::to_string(out.steps) +
                             "; training stopped, the last good checkpoint (" + last_good +
                             ") is kept",
                         "lower optim.lr, raise optim.warmup or enable optim.grad_clip");
      }
      last_good = "step " + std::to_string(out.steps);
      if (dp.is_main()) {
        save_training_checkpoint(ckpt_dir, model, *opt, meta.extra, out.steps,
                                 init_tokens + out.tokens, init_tokens);
      }
    }
    if (preempt && !last) {
      out.preempted = true;
      break;
    }
  }
  return out;
}

}  // namespace upcycle::stages
