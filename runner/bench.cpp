#include "runner/bench.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <random>

#include "analysis/query.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/job_files.h"
#include "core/metric_sink.h"
#include "core/output_dir.h"
#include "core/result_names.h"
#include "runner/cli_common.h"
#include "runner/job_binary.h"
#include "runner/run.h"
#include "stages/arch/accounting.h"
#include "stages/data/jsonl_tokenize.h"
#include "tracking/store.h"

namespace upcycle::runner {
namespace {

namespace po = cli::po;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void print(const std::string& key, double v) { std::printf("%s=%.4g\n", key.c_str(), v); }

// The scratch space: a fresh temp sibling of --dir (default $TMPDIR/upcycle-bench), removed when
// the bench ends. --dir itself is never written, and must be absent or empty (core/output_dir.h).
core::OutputDir scratch_dir(const po::variables_map& vm) {
  std::string dir = vm["dir"].as<std::string>();
  if (dir.empty()) dir = (std::filesystem::temp_directory_path() / "upcycle-bench").string();
  try {
    return core::OutputDir(dir, {});
  } catch (const Error& e) {
    throw ConfigError("--dir: " + std::string(e.what()), e.hint());
  }
}

// A finished job as the runner sees it: metrics.jsonl with `steps` lines of `keys` metrics each.
core::JobResult fake_finished_job(const std::string& dir, const std::string& key, int64_t steps,
                                  int keys, int64_t evals, int64_t salt) {
  core::make_dirs(dir);
  if (steps > 0) {
    core::JsonlMetricSink sink(dir + "/" + core::kMetricsFile);
    std::map<std::string, double> v;
    for (int64_t s = 1; s <= steps; ++s) {
      for (int k = 0; k < keys; ++k)
        v[std::string("m").append(std::to_string(k))] =
            1.0 / double(s + k);  // "m" + ... trips GCC 12's -Wrestrict
      sink.log(s, v);
    }
  }
  core::JobResult r;
  r.key = key;
  for (int64_t e = 0; e < evals; ++e) {
    r.evals.push_back({"model", core::perplexity_task("d" + std::to_string(e)), "ppl",
                       10.0 + double((salt * 7 + e) % 50), 0.1, 1000, "none", std::nullopt});
  }
  return r;
}

// Ingest: `jobs` jobs x `steps` lines x `keys` metrics, through the runner's one ingest path.
// Query: `runs` runs with params and results, then a --where over params, results and tags.
int bench_store(const po::variables_map& vm) {
  const core::OutputDir scratch = scratch_dir(vm);
  const std::string& dir = scratch.path();
  const int64_t rows = cli::integer_option(vm, "rows", {1}),
                runs = cli::integer_option(vm, "runs", {1});
  const int keys = 10, jobs = 100;
  const int64_t steps = rows / (int64_t(keys) * jobs);
  tracking::Store store(dir + "/store.sqlite");
  int64_t run_id = store.upsert_run({"bench-ingest", "bench", "bench-ingest", "{}"});
  std::vector<std::pair<std::string, core::JobResult>> done;
  for (int j = 0; j < jobs; ++j) {
    std::string key = "ingest-" + std::to_string(j), jdir = dir + "/jobs/" + key;
    store.upsert_job(run_id,
                     {0, key, "train/" + std::to_string(j), "train", core::JobStatus::kPending, 0,
                      std::nullopt, jdir, "", "", "", "{}", ""});
    done.emplace_back(jdir, fake_finished_job(jdir, key, steps, keys, 0, j));
  }
  auto t0 = Clock::now();
  for (const auto& [jdir, result] : done) store.ingest_job(result.key, jdir, result);
  double ingest_s = seconds_since(t0);
  auto n = store.select("SELECT COUNT(*) FROM metrics");
  print("metric_rows", double(std::get<int64_t>(n.rows[0][0])));
  print("ingest_s", ingest_s);
  print("ingest_rows_per_s", double(std::get<int64_t>(n.rows[0][0])) / ingest_s);

  t0 = Clock::now();
  for (int64_t r = 0; r < runs; ++r) {
    std::string name = "sweep/seed=" + std::to_string(r);
    int64_t id = store.upsert_run({"run-" + std::to_string(r), "sweep", name, "{}"});
    store.record_params(id, {{"seed", std::to_string(r % 100)},
                             {"stages.bam.ffn.top_k", std::to_string(1 + r % 2)},
                             {"model.d_model", "256"},
                             {"stages.seed.optim.lr", "0.001"}});
    std::string key = "eval-" + std::to_string(r), jdir = dir + "/jobs/" + key;
    store.upsert_job(id, {0, key, "eval", "eval", core::JobStatus::kPending, 0, std::nullopt, jdir,
                          "", "", "", "{}", ""});
    store.ingest_job(key, jdir, fake_finished_job(jdir, key, 0, 0, 4, r));
  }
  print("runs", double(runs));
  print("populate_s", seconds_since(t0));
  auto q = analysis::compile_query(
      "params.seed IN (3, 5) AND params.stages.bam.ffn.top_k = 2 AND metric = ppl AND value < 40 "
      "AND status != failed");
  tracking::Store reader(dir + "/store.sqlite", tracking::Store::Mode::kReadOnly);
  reader.select(q.sql, q.binds);  // warm the page cache, as a user's second query would be
  const int reps = 5;
  t0 = Clock::now();
  size_t matched = 0;
  for (int i = 0; i < reps; ++i) matched = reader.select(q.sql, q.binds).rows.size();
  print("query_rows", double(matched));
  print("query_ms", 1000.0 * seconds_since(t0) / reps);
  return 0;
}

// Planning: the recipe swept over `seed` until the union of the plans has at least `jobs` jobs.
int bench_plan(const po::variables_map& vm) {
  if (!vm.count("recipe")) throw ConfigError("upcycle bench plan: give a RECIPE");
  const std::string recipe = vm["recipe"].as<std::string>();
  const int64_t want = cli::integer_option(vm, "jobs", {1});
  const size_t per_point = make_plan(load_recipe(recipe)).jobs.size();
  const int64_t points = (want + int64_t(per_point) - 1) / int64_t(per_point);
  std::string seeds;
  for (int64_t i = 0; i < points; ++i) seeds += (i ? "," : "") + std::to_string(i + 1);
  const core::OutputDir scratch = scratch_dir(vm);
  const std::string& dir = scratch.path();
  core::write_file_atomic(dir + "/sweep.yaml",
                          "include: " + std::filesystem::absolute(recipe).string() +
                              "\nsweep: { seed: [" + seeds + "] }\n");
  auto t0 = Clock::now();
  std::vector<RunPoint> runs;
  for (auto& r : load_recipes(dir + "/sweep.yaml")) {
    Plan p = make_plan(r);
    runs.push_back({std::move(r), std::move(p)});
  }
  Plan merged = merge_plans(runs);
  double s = seconds_since(t0);
  print("runs", double(runs.size()));
  print("jobs", double(merged.jobs.size()));
  print("plan_s", s);
  return 0;
}

// The real trainer on synthetic tokens (uniform, as the Python peer draws them), for a model given
// by the peer's flags. Prints tokens_per_s=<x> last: throughput after 2 untimed warm-up steps.
int bench_train(const po::variables_map& vm) {
  const int threads = static_cast<int>(cli::integer_option(vm, "threads", {1, 4096}));
  const double peak_tflops = vm["peak-tflops"].as<double>();
  if (!(peak_tflops > 0) || !std::isfinite(peak_tflops))
    throw ConfigError("--peak-tflops: must be a positive number");
  stages::ModelConfig m;
  m.d_model = cli::integer_option(vm, "d", {1, 1 << 20});
  m.layers = cli::integer_option(vm, "layers", {1, 4096});
  m.heads = m.kv_heads = cli::integer_option(vm, "heads", {1, 4096});
  m.ffn_hidden = cli::integer_option(vm, "ffn", {0, 1 << 24}) > 0
                     ? cli::integer_option(vm, "ffn", {0, 1 << 24})
                     : 8 * m.d_model / 3;
  m.seq_len = cli::integer_option(vm, "seq", {1, 1 << 24});
  m.vocab = cli::integer_option(vm, "vocab", {2, 1 << 24});
  m.block = core::enum_from(stages::kBlockNames, vm["block"].as<std::string>(), "--block");
  if (cli::integer_option(vm, "experts", {0, 4096}) >
      0) {  // the peer's MoE: softmax, top-k, renormalised
    m.ffn_experts = cli::integer_option(vm, "experts", {0, 4096});
    m.ffn_top_k = cli::integer_option(vm, "topk", {1, 4096});
    m.ffn_routing = stages::FfnRouting::kSoftmaxThenTopK;
    m.ffn_renormalize = true;
  }
  if (cli::integer_option(vm, "attn-experts", {0, 4096}) >
      1) {  // BAM's soft-routed attention experts (no peer has them)
    m.attn_experts = cli::integer_option(vm, "attn-experts", {0, 4096});
    m.attn_kv = core::enum_from(stages::kKvModeNames, vm["attn-kv"].as<std::string>(), "--attn-kv");
  }
  try {
    m.validate();
  } catch (const core::FieldError& e) {
    throw ConfigError(std::string("upcycle bench train: ") + e.what());
  }
  const core::OutputDir scratch = scratch_dir(vm);
  const double tps =
      measure_throughput(m, cli::integer_option(vm, "batch", {1, 1 << 24}),
                         cli::integer_option(vm, "micro", {0, 1 << 24}),
                         cli::integer_option(vm, "steps", {1, 1 << 30}), threads, scratch.path(),
                         vm["device"].as<std::string>(), vm["precision"].as<std::string>());
  if (tps <= 0) throw StageError("upcycle bench train: the measurement failed (see above)");
  const stages::ParamCount n = stages::count_params(m);
  print("params", double(n.total));
  print("active_params", double(n.active));
  // Model FLOPs utilisation against --peak-tflops (989: an H100/H200's dense bf16), two ways: the
  // 6·N_active approximation, and our accounting's training FLOPs per token (attention scores too).
  const double peak = vm["peak-tflops"].as<double>() * 1e12;
  print("mfu_6n", 6.0 * double(n.active) * tps / peak);
  print("mfu", double(stages::count_flops(m).training()) * tps / peak);
  print("train_flops_per_token", double(stages::count_flops(m).training()));
  std::printf("tokens_per_s=%.0f\n", tps);
  return 0;
}

// JSONL -> Megatron tokenization (stages/data/jsonl_tokenize.h): --threads copies of --jsonl at
// once, one per thread, as the prepare stage tokenizes a domain's files.
int bench_tokenize(const po::variables_map& vm) {
  if (!vm.count("jsonl") || !vm.count("tokenizer"))
    throw ConfigError("upcycle bench tokenize: needs --jsonl FILE and --tokenizer MODEL");
  const int threads = int(cli::integer_option(vm, "threads", {1, 1024}));
  const core::OutputDir scratch = scratch_dir(vm);
  const std::string& dir = scratch.path();
  const stages::Tokenizer tok(vm["tokenizer"].as<std::string>());
  std::vector<std::string> paths(threads, vm["jsonl"].as<std::string>()), prefixes;
  for (int t = 0; t < threads; ++t) prefixes.push_back(dir + "/copy" + std::to_string(t));
  const auto t0 = std::chrono::steady_clock::now();
  const auto done = stages::tokenize_jsonl_files(paths, prefixes,
                                                 vm["text-field"].as<std::string>(), tok, threads);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int64_t tokens = 0, docs = 0, bytes = 0;
  for (const auto& d : done) {
    tokens += d.tokens;
    docs += d.documents;
    bytes += d.text_bytes;
  }
  std::printf(
      "tokenize threads=%d documents=%lld text_bytes=%lld tokens=%lld seconds=%.3f "
      "tokens_per_s=%.0f tokens_per_s_per_thread=%.0f\n",
      threads, (long long)docs, (long long)bytes, (long long)tokens, secs, double(tokens) / secs,
      double(tokens) / secs / threads);
  return 0;
}

}  // namespace

int cmd_bench(const std::vector<std::string>& args) {
  po::options_description desc("bench options");
  desc.add_options()("help,h", "show this help")("what", po::value<std::string>(), "store | plan")(
      "recipe", po::value<std::string>(), "plan: the recipe to sweep")(
      "rows", po::value<std::string>()->default_value("1000000"), "store: metric rows to ingest")(
      "runs", po::value<std::string>()->default_value("10000"), "store: runs to query over")(
      "jobs", po::value<std::string>()->default_value("1000"), "plan: jobs in the sweep")(
      "dir", po::value<std::string>()->default_value(""),
      "scratch directory (default: $TMPDIR/upcycle-bench)")(
      "d", po::value<std::string>()->default_value("256"), "train: d_model")(
      "layers", po::value<std::string>()->default_value("4"), "train: layers")(
      "heads", po::value<std::string>()->default_value("4"), "train: heads")(
      "ffn", po::value<std::string>()->default_value("0"), "train: SwiGLU hidden (0: 8d/3)")(
      "seq", po::value<std::string>()->default_value("256"), "train: sequence length")(
      "batch", po::value<std::string>()->default_value("16"), "train: sequences per step")(
      "block", po::value<std::string>()->default_value("parallel"), "train: parallel | sequential")(
      "experts", po::value<std::string>()->default_value("0"), "train: MoE FFN experts (0: dense)")(
      "topk", po::value<std::string>()->default_value("2"), "train: experts per token")(
      "vocab", po::value<std::string>()->default_value("4096"), "train: vocabulary")(
      "steps", po::value<std::string>()->default_value("20"),
      "train: timed steps (after 2 warm-up steps)")(
      "micro", po::value<std::string>()->default_value("0"), "train: micro-batch (0: the batch)")(
      "attn-experts", po::value<std::string>()->default_value("0"),
      "train: BAM attention experts (0: dense attention)")(
      "attn-kv", po::value<std::string>()->default_value("expert"),
      "train: expert | shared (with --attn-experts)")(
      "device", po::value<std::string>()->default_value("cpu"), "train: cpu | cuda | auto")(
      "precision", po::value<std::string>()->default_value("auto"), "train: auto | fp32 | bf16")(
      "jsonl", po::value<std::string>(), "tokenize: a .jsonl(.gz/.zst) file")(
      "tokenizer", po::value<std::string>(), "tokenize: a SentencePiece .model")(
      "text-field", po::value<std::string>()->default_value("text"), "tokenize: the text field")(
      "peak-tflops", po::value<double>()->default_value(989.0),
      "train: the device's peak, for MFU")("threads", po::value<std::string>()->default_value("1"),
                                           "train, tokenize: threads");
  po::positional_options_description pos;
  pos.add("what", 1).add("recipe", 1);
  auto vm = cli::parse("bench", args, desc, pos);
  if (cli::wants_help(vm, "bench",
                      "store [--rows N] [--runs N] | plan RECIPE [--jobs N] | train [--d ...] | "
                      "tokenize --jsonl F --tokenizer M [--threads N]",
                      desc)) {
    return 0;
  }
  std::string what = vm.count("what") ? vm["what"].as<std::string>() : "";
  if (what == "store") return bench_store(vm);
  if (what == "plan") return bench_plan(vm);
  if (what == "train") return bench_train(vm);
  if (what == "tokenize") return bench_tokenize(vm);
  throw ConfigError("upcycle bench: expected store, plan, train or tokenize, got '" + what + "'");
}

}  // namespace upcycle::runner
