#include "runner/cli.h"

#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <set>

#include "analysis/render.h"
#include "analysis/report.h"
#include "analysis/tables.h"
#include "cluster/local_executor.h"
#include "core/error.h"
#include "core/log.h"
#include "runner/accounting_report.h"
#include "runner/bench.h"
#include "runner/cli_common.h"
#include "runner/cost.h"
#include "runner/job_binary.h"
#include "runner/key_docs.h"
#include "runner/memory_fit.h"
#include "runner/plan.h"
#include "runner/plan_status.h"
#include "runner/recipe.h"
#include "runner/rehearsal.h"
#include "runner/resume.h"
#include "runner/run.h"
#include "runner/run_support.h"
#include "runner/yaml_reader.h"
#include "stages/arch/accounting.h"
#include "tracking/store.h"

namespace upcycle::runner {
namespace {

namespace po = cli::po;
using cli::parse;
using cli::wants_help;

struct Command {
  const char* name;
  const char* summary;
  int (*fn)(const std::vector<std::string>& args);
};

const char* kUsage =
    "upcycle: upcycle dense LMs into Mixture-of-Experts (BAM, BTX, sparse upcycling) and track "
    "results\n"
    "\n"
    "usage: upcycle <command> [options]\n"
    "\n"
    "commands:\n";

std::vector<std::string> overrides_of(const po::variables_map& vm) {
  return vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{};
}

// The recipe at every sweep point (one without a sweep), each with its plan for the local executor.
// All the sweep's points planned at once: a grid of 10,000 points of a recipe with many stages is
// millions of jobs, so the plans together are bounded too.
constexpr size_t kMaxPlannedJobs = 200000;

std::vector<RunPoint> plan_runs(const std::string& path,
                                const std::vector<std::string>& overrides) {
  auto too_many = [&] {
    return ConfigError(
        path + ": the sweep plans more than " + std::to_string(kMaxPlannedJobs) + " jobs",
        "split the sweep into several recipes");
  };
  {  // before expanding the grid: the recipe without its sweep, times the grid's points
    const Recipe base = load_recipe(path, overrides);
    double grid = 1;
    for (const auto& axis : base.sweep) grid *= static_cast<double>(axis.values.size());
    size_t base_jobs = 0;
    try {
      if (grid > 1) base_jobs = make_plan(base, local_plan_options()).jobs.size();
    } catch (const ConfigError&) {
      // planned point by point below, where the error names the sweep point
    }
    if (grid * static_cast<double>(base_jobs) > kMaxPlannedJobs) throw too_many();
  }
  std::vector<RunPoint> points;
  size_t jobs = 0;
  for (auto& recipe : load_recipes(path, overrides)) {
    Plan plan = make_plan(recipe, local_plan_options());
    jobs += plan.jobs.size();
    if (jobs > kMaxPlannedJobs) throw too_many();
    points.push_back({std::move(recipe), std::move(plan)});
  }
  return points;
}

// The cost model's bench source: a few trainer steps here, for CPU jobs.
ThroughputBench local_bench(const std::string& root) {
  return [root](const PlannedJob& j) {
    if (j.spec.value("device", std::string("cpu")) != "cpu") {
      return 0.0;  // the bench runs on this machine's CPU; GPU shapes come from the store or the
                   // MFU
    }
    const double tps = measure_throughput(j.model, j.spec.at("batch_size").get<int64_t>(),
                                          j.spec.at("micro_batch").get<int64_t>(), 3, j.threads,
                                          root + "/bench-scratch");
    return tps * j.processes;  // data parallel: each rank its share of the batch (an upper bound)
  };
}

// After a run that succeeded: its tables, then the HTML report in ROOT/report (unless --no-report).
void show_results(const Recipe& recipe, const std::vector<std::string>& run_names, bool report) {
  tracking::Store store(recipe.store, tracking::Store::Mode::kReadOnly);
  std::set<std::string> shown;  // runs already pooled into an earlier table (a sweep over seed)
  for (const auto& run : run_names) {
    if (shown.count(run)) continue;
    for (const auto& r : analysis::seed_group(store, run)) shown.insert(r);
    // Bits per byte, perplexity per token, downstream scores; each absent without an eval stage
    // (bits per byte also with pre-tokenized data, downstream scores without tasks).
    for (const auto& t : {analysis::perplexity_table(store, "ppl", {run, "bpb"}),
                          analysis::perplexity_table(store, "ppl", {run, "ppl"}),
                          analysis::downstream_table(store, {run})}) {
      if (!t.empty()) std::cout << "\n" << analysis::render_table(t, analysis::Format::kTable);
    }
  }
  if (!report) return;
  try {
    const analysis::ReportPaths paths =
        analysis::write_report(store, run_names, recipe.root + "/report");
    std::cout << "\n";
    for (const auto& p : paths.pages) std::cout << "report: " << p << "\n";
    std::cout << "all runs: " << paths.index << "\n";
  } catch (const Error& e) {
    core::log_warn(std::string("no report: ") + e.what());
  } catch (
      const std::exception& e) {  // a bug in the report must not fail a run whose jobs succeeded
    core::log_error(std::string("no report (internal error, please report it): ") + e.what());
  }
}

int execute_and_report(const std::vector<RunPoint>& points, RunOptions opts,
                       const std::string& how_to_continue) {
  opts.job_exe = job_binary();
  RunSummary s;
  if (points[0].recipe.executor == "slurm") {
    s = cli::submit_and_maybe_wait(points, opts);
    if (!opts.wait) return kExitOk;
  } else {
    cluster::LocalExecutor executor;
    s = execute_runs(points, opts, executor);
  }
  const std::string& store_path = points[0].recipe.store;
  core::log_info(std::to_string(s.run_names.size()) + " run(s) of " + points[0].recipe.name + ": " +
                 std::to_string(s.done) + " jobs done, " + std::to_string(s.skipped) +
                 " already complete, " + std::to_string(s.failed) + " failed; store " + store_path);
  if (s.failed == 0 && !s.interrupted) show_results(points[0].recipe, s.run_names, opts.report);
  if (s.interrupted) {
    std::cerr << "[upcycle] interrupted; " << how_to_continue << "\n";
    return 130;
  }
  return s.failed ? kExitUserError : kExitOk;
}

void announce_rehearsal(const Rehearsal& r, const RunPoint& p) {
  int64_t largest = 0;
  for (const auto& j : p.plan.jobs) {
    if (j.produces_model) largest = std::max(largest, stages::count_params(j.model).total);
  }
  std::cout << "rehearsal of " << p.recipe.file << " (" << p.recipe.name << "): its models (up to "
            << largest << " parameters), " << r.steps
            << " optimizer step(s) per train stage; what it lowers or sets:\n";
  for (const auto& c : r.changes) std::cout << "  " << c << "\n";
  std::cout << "  never: width, depth, heads, vocabulary, experts, the surgery or the eval code"
            << std::endl;  // before the jobs' lines on stderr
  for (const auto& w : r.warnings) core::log_warn("rehearsal: " + w);
}

int finish_rehearsal(const RunPoint& p) {
  std::vector<RehearsalRow> rows;
  {
    tracking::Store store(p.recipe.store, tracking::Store::Mode::kReadOnly);
    rows = rehearsal_rows(store, p.recipe.run_name);
  }
  int64_t export_bytes = 0;
  const std::string exported = check_rehearsal_export(p.plan, p.recipe.root, &export_bytes);
  std::cout << "\nrehearsal: memory estimate against measured peak, per job\n"
            << describe_rehearsal(rows) << "export: " << exported;
  if (export_bytes > 0) std::cout << " (" << stages::format_bytes(double(export_bytes)) << ")";
  std::cout << "\n";
  return kExitOk;
}

// ---- commands ----

// --progress-every, for run and resume.
void add_progress_option(po::options_description& desc) {
  desc.add_options()(
      "progress-every",
      po::value<std::string>()->default_value(std::to_string(RunOptions{}.progress_every)),
      "off a terminal: seconds between progress lines, one per running job (0: none)");
}

int progress_every(const po::variables_map& vm) {
  return static_cast<int>(cli::integer_option(vm, "progress-every", {0, 86400}));
}

int cmd_run(const std::vector<std::string>& args) {
  po::options_description desc("run options");
  desc.add_options()("help,h", "show this help")("recipe", po::value<std::string>(),
                                                 "recipe YAML file")(
      "set", po::value<std::vector<std::string>>()->composing(),
      "override, key.path=value (repeatable)")(
      "force", po::value<std::vector<std::string>>()->composing(),
      "re-run this stage and everything downstream (repeatable)")(
      "max-parallel,j", po::value<std::string>()->default_value("0"),
      "jobs at once (0: cores / threads per job)")(
      "tag", po::value<std::vector<std::string>>()->composing(), "tag the run(s) (repeatable)")(
      "executor", po::value<std::string>(), "local | slurm (default: the recipe's executor:)")(
      "store", po::value<std::string>(), "SQLite store (default: the recipe's store:)")(
      "wait", "slurm: wait for the jobs and ingest them (default: return after submitting)")(
      "no-report",
      "do not write the HTML reports (ROOT/report/<run>/report.html, index.html) at the end")(
      "allow-oversubscribe",
      "run stages whose memory estimate exceeds the device's (docs/scale.md)")(
      "rehearse", po::value<std::string>()->implicit_value("1"),
      "=STEPS: a dress rehearsal: every stage with the recipe's model, STEPS optimizer steps per "
      "train stage (default 1), into runs/rehearsal/; ends with memory estimate against "
      "measured peak per stage and a reloaded export (docs/scale.md)")(
      "verify-data", po::value<std::string>(),
      "sampled (default): training checks each token shard's size, mtime and a sampled digest; "
      "full: the whole sha256 of every shard (slow for terabytes)");
  add_progress_option(desc);
  po::positional_options_description pos;
  pos.add("recipe", 1).add("set", -1);
  // A bare --rehearse takes no value: the next word is the recipe or an override, not STEPS.
  std::vector<std::string> words = args;
  for (auto& w : words) {
    if (w == "--rehearse") w = "--rehearse=1";
  }
  auto vm = parse("run", words, desc, pos);
  if (wants_help(vm, "run", "RECIPE [key.path=value ...] [--force STAGE] [-j N]", desc)) return 0;
  if (!vm.count("recipe"))
    throw ConfigError("upcycle run: missing RECIPE", "usage: upcycle run RECIPE");
  std::vector<std::string> overrides = overrides_of(vm);
  if (vm.count("executor")) overrides.push_back("executor=" + vm["executor"].as<std::string>());
  if (vm.count("store")) overrides.push_back("store=" + vm["store"].as<std::string>());
  const std::string path = vm["recipe"].as<std::string>();
  std::optional<Rehearsal> rehearsal;
  if (vm.count("rehearse")) {
    rehearsal =
        plan_rehearsal(path, overrides, cli::integer_option(vm, "rehearse", {1, int64_t(1) << 20}));
    overrides = rehearsal->overrides;
  }
  std::vector<RunPoint> points = plan_runs(path, overrides);
  if (rehearsal) check_rehearsed(load_recipe(path, rehearsal->baseline), points[0].recipe);
  if (!vm.count("allow-oversubscribe")) {
    for (const auto& p : points) refuse_oversubscribed(p.plan, p.recipe.cost);
    if (rehearsal && points[0].recipe.executor == "local")
      refuse_oversubscribed_here(points[0].plan);
  }
  if (vm.count("verify-data")) {
    const std::string v = vm["verify-data"].as<std::string>();
    if (v != "sampled" && v != "full")
      throw ConfigError("upcycle run: --verify-data must be sampled or full, not '" + v + "'");
    ::setenv("UPCYCLE_VERIFY_DATA", v.c_str(), 1);  // the jobs inherit it (local and Slurm)
  }
  RunOptions opts;
  opts.wait = vm.count("wait") > 0;
  opts.report = vm.count("no-report") == 0;
  if (vm.count("force")) opts.force = vm["force"].as<std::vector<std::string>>();
  opts.max_parallel = static_cast<int>(cli::integer_option(vm, "max-parallel", {0, 65536}));
  opts.progress_every = progress_every(vm);
  if (vm.count("tag"))
    opts.tags = cli::join_tags(vm["tag"].as<std::vector<std::string>>(), "--tag");
  if (!rehearsal) {
    return execute_and_report(points, opts,
                              "run the same command again, or `upcycle resume`, to continue");
  }
  announce_rehearsal(*rehearsal, points[0]);
  opts.wait = true;  // on Slurm too: the table needs every job
  opts.tags = opts.tags.empty() ? "rehearsal" : opts.tags + ",rehearsal";
  const int rc = execute_and_report(points, opts, "run the same command again to continue");
  if (rc != kExitOk) return rc;
  return finish_rehearsal(points[0]);
}

int cmd_resume(const std::vector<std::string>& args) {
  po::options_description desc("resume options");
  desc.add_options()("help,h", "show this help")(
      "store", po::value<std::string>()->default_value(kDefaultStore), "SQLite store")(
      "runs", po::value<std::vector<std::string>>()->composing(),
      "runs to resume (default: every unfinished run)")(
      "max-parallel,j", po::value<std::string>()->default_value("0"),
      "jobs at once (0: cores / threads per job)")(
      "wait", "slurm: wait for the jobs and ingest them (default: return after submitting)");
  add_progress_option(desc);
  po::positional_options_description pos;
  pos.add("runs", -1);
  auto vm = parse("resume", args, desc, pos);
  if (wants_help(vm, "resume", "[RUN...] [--store PATH] [-j N] [--wait] [--progress-every S]",
                 desc))
    return 0;
  RunOptions opts;  // the arguments checked before the store is opened
  opts.max_parallel = static_cast<int>(cli::integer_option(vm, "max-parallel", {0, 65536}));
  opts.progress_every = progress_every(vm);
  opts.wait = vm.count("wait") > 0;
  std::vector<RunPoint> points;
  {
    auto store = cli::open_store_ro(vm["store"].as<std::string>());
    points = runs_to_resume(store, vm.count("runs") ? vm["runs"].as<std::vector<std::string>>()
                                                    : std::vector<std::string>{});
  }
  if (points.empty()) {
    std::cout << "nothing to resume: every run in " << vm["store"].as<std::string>()
              << " is done\n";
    return kExitOk;
  }
  for (const auto& p : points) core::log_info("resuming run " + p.recipe.run_name);
  return execute_and_report(points, opts, "`upcycle resume` again to continue");
}

int cmd_plan(const std::vector<std::string>& args) {
  po::options_description desc("plan options");
  desc.add_options()("help,h", "show this help")("recipe", po::value<std::string>(),
                                                 "recipe YAML file")(
      "set", po::value<std::vector<std::string>>()->composing(), "override, key.path=value")(
      "specs", "also print every job's spec (JSON) and the command that runs it")(
      "cost", "estimate every job's wall time and GPU-hours (runner/cost.h), and say from what")(
      "bench", "with --cost: measure throughput here for shapes the store has not seen")(
      "format", po::value<std::string>()->default_value("table"),
      "with --cost: table | json (one object per job, on stdout alone)")(
      "allow-oversubscribe",
      "plan stages whose memory estimate exceeds the device's (docs/scale.md)")(
      "executor", po::value<std::string>(),
      "local | slurm: with slurm, also settle each job's time limit, requeue chain and signal "
      "against the site's partitions, and check the whole DAG (limits, node sizes, sbatch "
      "--test-only); exit 1 naming every refusal");
  po::positional_options_description pos;
  pos.add("recipe", 1).add("set", -1);
  auto vm = parse("plan", args, desc, pos);
  if (wants_help(vm, "plan",
                 "RECIPE [key.path=value ...] [--specs] [--cost [--bench] [--format json]] "
                 "[--executor slurm]",
                 desc))
    return 0;
  if (!vm.count("recipe")) throw ConfigError("upcycle plan: missing RECIPE");
  const std::string format = vm["format"].as<std::string>();
  if (format != "table" && format != "json")
    throw ConfigError("upcycle plan: --format must be table or json, not '" + format + "'");
  if (format == "json" && (!vm.count("cost") || vm.count("specs")))
    throw ConfigError("upcycle plan: --format json goes with --cost (and not --specs)");
  std::vector<std::string> overrides = overrides_of(vm);
  if (vm.count("executor")) overrides.push_back("executor=" + vm["executor"].as<std::string>());
  std::vector<RunPoint> points = plan_runs(vm["recipe"].as<std::string>(), overrides);
  Plan plan = merge_plans(points);
  const Recipe& first = points[0].recipe;
  if (format == "json") {
    std::optional<tracking::Store> store;
    std::error_code ec;
    if (std::filesystem::exists(first.store, ec))
      store.emplace(first.store, tracking::Store::Mode::kReadOnly);
    ThroughputBench bench;
    if (vm.count("bench")) bench = local_bench(first.root);
    std::cout << costs_json(plan,
                            estimate_costs(plan, first.cost, store ? &*store : nullptr, bench),
                            first.cost)
                     .dump(2)
              << "\n";
    return 0;
  }
  std::cout << "recipe " << first.name << " (" << first.file << "), store " << first.store << "\n";
  if (points.size() > 1) {
    size_t total = 0;
    for (const auto& p : points) total += p.plan.jobs.size();
    std::cout << points.size() << " runs (sweep), " << total - plan.jobs.size()
              << " job(s) shared between them:\n";
    for (const auto& p : points) std::cout << "  " << p.recipe.run_name << "\n";
  }
  std::optional<tracking::Store> store;
  std::error_code ec;
  if (std::filesystem::exists(first.store, ec))
    store.emplace(first.store, tracking::Store::Mode::kReadOnly);
  std::cout << describe_plan(plan, explain_plan(plan, store ? &*store : nullptr));
  if (vm.count("cost")) {
    ThroughputBench bench;
    if (vm.count("bench")) bench = local_bench(first.root);
    std::cout << "\n"
              << describe_costs(plan,
                                estimate_costs(plan, first.cost, store ? &*store : nullptr, bench),
                                first.cost);
  }
  if (!vm.count("allow-oversubscribe")) refuse_oversubscribed(plan, first.cost);
  if (first.executor == "slurm" && !vm.count("executor")) {
    std::cout << "\n(`--executor slurm` also checks every job against the site's partitions)\n";
  } else if (first.executor == "slurm" &&
             cli::print_site_checks(plan, first, store ? &*store : nullptr) != kExitOk) {
    return kExitUserError;
  }
  if (vm.count("specs")) {
    for (const auto& j : plan.jobs) {
      const std::string t = std::to_string(j.threads);
      std::cout << "\n# " << j.stage << ": " << j.dir
                << "/spec.json, run as\n#   OMP_NUM_THREADS=" << t << " OPENBLAS_NUM_THREADS=" << t
                << " MKL_NUM_THREADS=" << t << " upcycle stage --spec " << j.dir << "/spec.json\n"
                << j.spec.dump(2) << "\n";
    }
  }
  return 0;
}

// Shared by params and flops: RECIPE-or-CONFIG [overrides] [--stage S] [--format F].
po::options_description accounting_options(const char* title) {
  po::options_description desc(title);
  desc.add_options()("help,h", "show this help")(
      "input", po::value<std::string>(),
      "recipe YAML, or a model config (YAML/JSON of model keys)")(
      "set", po::value<std::vector<std::string>>()->composing(), "recipe override, key.path=value")(
      "stage", po::value<std::string>()->default_value(""), "only this stage")(
      "format", po::value<std::string>()->default_value("table"), "table | json");
  return desc;
}

std::vector<NamedModel> accounting_models(const std::string& cmd, const po::variables_map& vm) {
  if (!vm.count("input")) throw ConfigError("upcycle " + cmd + ": missing RECIPE or CONFIG");
  return models_for_accounting(vm["input"].as<std::string>(), overrides_of(vm),
                               vm["stage"].as<std::string>());
}

int cmd_params(const std::vector<std::string>& args) {
  auto desc = accounting_options("params options");
  po::positional_options_description pos;
  pos.add("input", 1).add("set", -1);
  auto vm = parse("params", args, desc, pos);
  if (wants_help(vm, "params",
                 "RECIPE|CONFIG [key.path=value ...] [--stage S] [--format table|json]", desc))
    return 0;
  std::cout << params_report(accounting_models("params", vm), vm["format"].as<std::string>());
  return 0;
}

int cmd_flops(const std::vector<std::string>& args) {
  auto desc = accounting_options("flops options");
  desc.add_options()("context", po::value<std::string>()->default_value("0"),
                     "context length n_ctx for the attention scores (0: each model's seq_len)")(
      "compare",
      "RECIPE... side by side: embedding share, FLOP shares, BAM/BTX ratios, compute-matched "
      "token shares (--format table|markdown|json)");
  po::positional_options_description pos;
  pos.add("input", 1).add("set", -1);
  auto vm = parse("flops", args, desc, pos);
  if (wants_help(vm, "flops",
                 "RECIPE|CONFIG [--context N] [--stage S] [--format table|json]\n"
                 "       upcycle flops --compare RECIPE... [--format table|markdown|json]",
                 desc))
    return 0;
  if (vm.count("compare")) {
    if (!vm["stage"].as<std::string>().empty() || vm["context"].as<std::string>() != "0")
      throw ConfigError("upcycle flops --compare: takes recipes alone (no --stage or --context)");
    if (!vm.count("input")) throw ConfigError("upcycle flops --compare: missing RECIPE");
    std::vector<std::string> recipes{vm["input"].as<std::string>()};
    for (const auto& r : overrides_of(vm)) recipes.push_back(r);
    std::cout << proportions_report(recipes, vm["format"].as<std::string>());
    return 0;
  }
  std::cout << flops_report(accounting_models("flops", vm),
                            cli::integer_option(vm, "context", {0, int64_t(1) << 40}),
                            vm["format"].as<std::string>());
  return 0;
}

int cmd_keys(const std::vector<std::string>& args) {
  po::options_description desc("keys options");
  desc.add_options()("help,h", "show this help")("section", po::value<std::vector<std::string>>(),
                                                 "sections");
  po::positional_options_description pos;
  pos.add("section", -1);
  auto vm = parse("keys", args, desc, pos);
  std::string sections;
  for (const auto& s : key_doc_sections()) sections += (sections.empty() ? "" : "|") + s;
  const std::string synopsis = "[" + sections + " ...]   (all sections without one)";
  if (wants_help(vm, "keys", synopsis.c_str(), desc)) return 0;
  std::vector<std::string> wanted = key_doc_sections();
  if (vm.count("section")) wanted = vm["section"].as<std::vector<std::string>>();
  for (size_t i = 0; i < wanted.size(); ++i) {
    std::string table = key_docs(wanted[i]);  // every section is checked before anything prints
    wanted[i] = std::move(table);
  }
  for (size_t i = 0; i < wanted.size(); ++i) std::cout << (i ? "\n" : "") << wanted[i];
  return 0;
}

int cmd_stage(const std::vector<std::string>& args) {
  po::options_description desc("stage options");
  desc.add_options()("help,h", "show this help")("spec", po::value<std::string>(), "job spec JSON");
  auto vm = parse("stage", args, desc, {});
  if (wants_help(vm, "stage", "--spec DIR/spec.json   (internal: what executors run)", desc))
    return 0;
  if (!vm.count("spec")) throw ConfigError("upcycle stage: missing --spec");
  return exec_job(vm["spec"].as<std::string>());
}

const Command kCommands[] = {
    {"run", "run a recipe (local, or queued on Slurm); skips jobs already complete", cmd_run},
    {"plan", "resolve a recipe into its job DAG, keys and budgets; runs nothing", cmd_plan},
    {"resume", "continue the runs a stopped runner left unfinished (from the store alone)",
     cmd_resume},
    {"wait", "slurm: wait for queued jobs, ingesting each as it finishes", cli::cmd_wait},
    {"collect", "slurm: one pass: ingest finished jobs, record failures and why", cli::cmd_collect},
    {"cancel", "slurm: cancel a run's queued and running jobs", cli::cmd_cancel},
    {"status", "jobs of a run with status, attempts and timings; --all lists the runs",
     cli::cmd_status},
    {"query", "evaluation results from the store, filtered by --where (AND, OR, NOT, IN, LIKE)",
     cli::cmd_query},
    {"table", "the paper's tables from the store, the paper's numbers beside ours (--list)",
     cli::cmd_table},
    {"plot", "a plot with gnuplot: loss curves, perplexity bars, expert utilisation (--list)",
     cli::cmd_plot},
    {"report", "one self-contained HTML file: tables, plots, provenance", cli::cmd_report},
    {"compare", "runs side by side: results, and with --params the keys that differ",
     cli::cmd_compare},
    {"tag", "set a run's tags (queryable as tags)", cli::cmd_tag},
    {"export", "a model as a Hugging Face checkpoint: llama, cohere, mixtral, or native (BAM)",
     cli::cmd_export},
    {"import",
     "a Hugging Face checkpoint (Llama, Mistral, Cohere, Mixtral) as an upcycle checkpoint",
     cli::cmd_import},
    {"keys",
     "the recipe keys of a section (model, train, upcycle, eval, import): defaults, ranges, "
     "meaning",
     cmd_keys},
    {"params", "total and active parameters of every model in a recipe or config", cmd_params},
    {"flops", "forward FLOPs per token per layer (attention, FFN, routers; BAM Table 10)",
     cmd_flops},
    {"bench", "benchmarks: store ingest and query speed, sweep planning speed", cmd_bench},
    {"stage", "(internal) run one job from its spec; what executors launch", cmd_stage},
};

void print_usage(std::ostream& out) {
  out << kUsage;
  for (const auto& c : kCommands) {
    out << "  " << c.name << std::string(9 - std::string(c.name).size(), ' ') << c.summary << "\n";
  }
  out << "\n`upcycle <command> --help` describes a command's options.\n"
         "exit codes: 0 ok, 1 user error, 2 internal error, 75 job preempted\n";
}

}  // namespace

int run_cli(int argc, char** argv) {
  try {
    if (argc < 2) {
      print_usage(std::cerr);
      return kExitUserError;
    }
    std::string cmd = argv[1];
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
      print_usage(std::cout);
      return kExitOk;
    }
    std::vector<std::string> args(argv + 2, argv + argc);
    for (const auto& c : kCommands) {
      if (cmd == c.name) return c.fn(args);
    }
    std::vector<std::string> names;
    for (const auto& c : kCommands) names.push_back(c.name);
    std::string guess = closest_match(cmd, names);
    throw ConfigError(
        "unknown command '" + cmd + "'" + (guess.empty() ? "" : "; did you mean '" + guess + "'?"),
        "`upcycle --help` lists the commands");
  } catch (const Error& e) {
    std::cerr << "upcycle: error: " << e.what() << "\n";
    if (!e.hint().empty()) std::cerr << "---> HINT: " << e.hint() << "\n";
    return kExitUserError;
  } catch (const std::filesystem::filesystem_error& e) {
    // A path the user gave (a root, a store, a recipe key) the system refuses: too long, no
    // permission.
    std::cerr << "upcycle: error: " << e.path1().string() << ": " << e.code().message() << "\n";
    return kExitUserError;
  } catch (const std::exception& e) {
    std::cerr << "upcycle: internal error: " << e.what() << "\n";
    return kExitInternalError;
  }
}

}  // namespace upcycle::runner
