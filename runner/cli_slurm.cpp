// The CLI's Slurm side: submitting a run (and waiting for it), `plan --executor slurm`'s checks
// against the site, and wait, collect and cancel.
#include <iostream>

#include "core/error.h"
#include "core/log.h"
#include "runner/cli_common.h"
#include "runner/job_binary.h"
#include "runner/run_support.h"
#include "runner/slurm_limits.h"
#include "runner/slurm_run.h"

namespace upcycle::runner::cli {
namespace {

// wait, collect and cancel: the store's Slurm jobs (of RUN..., or every run), as the store's one
// writer.
int slurm_command(const std::string& cmd, const std::vector<std::string>& args) {
  po::options_description desc(cmd + " options");
  desc.add_options()("help,h", "show this help")(
      "store", po::value<std::string>()->default_value(kDefaultStore), "SQLite store")(
      "runs", po::value<std::vector<std::string>>()->composing(), "runs (default: every run)");
  if (cmd == "wait") {
    desc.add_options()("unreachable-grace",
                       po::value<std::string>()->default_value(
                           std::to_string(static_cast<int>(kUnreachableGraceS))),
                       "seconds to keep retrying a Slurm controller that does not answer before "
                       "giving up (the jobs keep running)");
  }
  po::positional_options_description pos;
  pos.add("runs", -1);
  auto vm = parse(cmd, args, desc, pos);
  if (wants_help(vm, cmd, "[RUN...] [--store PATH]", desc)) return 0;
  const double grace =
      cmd == "wait" ? double(integer_option(vm, "unreachable-grace", {0, 86400 * 7})) : 0;
  const std::string path = vm["store"].as<std::string>();
  open_store_ro(path);  // "no store here" when there is none
  const auto runs =
      vm.count("runs") ? vm["runs"].as<std::vector<std::string>>() : std::vector<std::string>{};
  RunnerLock lock(path);
  tracking::Store store(path);
  for (const auto& run : runs) {
    if (store.select("SELECT 1 FROM runs WHERE name = ?", {run}).rows.empty()) {
      throw StoreError(path + ": no run named '" + run + "'",
                       "`upcycle status --all` lists the runs");
    }
  }
  cluster::SlurmExecutor slurm = slurm_executor(".", "");
  if (cmd == "cancel") {
    std::cout << cancel_runs(store, slurm, runs) << " job(s) cancelled\n";
    return kExitOk;
  }
  CollectSummary c =
      cmd == "wait" ? wait_for(store, slurm, runs, grace) : collect(store, slurm, runs);
  if (cmd == "collect") {
    for (const auto& e : c.events) std::cout << e << "\n";
  } else {
    for (const auto& e : c.events) core::log_error(e);  // wait: each job that failed, and why
  }
  std::cout << c.done << " done, " << c.failed << " failed, " << c.active
            << " still queued or running\n";
  return c.failed ? kExitUserError : kExitOk;
}

int cmd_wait(const std::vector<std::string>& args) { return slurm_command("wait", args); }
int cmd_collect(const std::vector<std::string>& args) { return slurm_command("collect", args); }
int cmd_cancel(const std::vector<std::string>& args) { return slurm_command("cancel", args); }

}  // namespace

RunSummary submit_and_maybe_wait(const std::vector<RunPoint>& points, const RunOptions& opts) {
  cluster::SlurmExecutor slurm = slurm_executor(points[0].recipe.root, opts.job_exe);
  RunSummary s = submit_runs(points, opts, slurm);
  core::log_info(std::to_string(s.submitted) + " job(s) queued on Slurm, " +
                 std::to_string(s.skipped) + " already complete; store " + points[0].recipe.store);
  if (!opts.wait) {
    std::cout << "submitted; follow with `upcycle status`, block with `upcycle wait`, stop with "
                 "`upcycle cancel`\n";
    return s;
  }
  RunnerLock lock(points[0].recipe.store);
  tracking::Store store(points[0].recipe.store);
  CollectSummary c = wait_for(store, slurm, s.run_names, kUnreachableGraceS, opts.progress_every);
  s.done = c.done;
  s.failed = c.failed;
  return s;
}

int print_site_checks(Plan& plan, const Recipe& recipe, tracking::Store* store) {
  const auto site = cluster::query_partitions();
  std::cout << "\nSlurm (what each job asks for, against the site's partitions):\n";
  for (const auto& line : settle_slurm_limits(plan, recipe.cost, store, site))
    std::cout << "  " << line << "\n";
  const auto refusals = slurm_refusals(plan, site, slurm_executor(recipe.root, job_binary()));
  if (!refusals.empty()) {
    std::cout << "Slurm would refuse " << refusals.size() << " job(s):\n";
    for (const auto& r : refusals) std::cout << "  " << r << "\n";
    return kExitUserError;
  }
  std::cout << "  every job passes the partitions' limits and sbatch --test-only\n";
  return kExitOk;
}

int cmd_wait(const std::vector<std::string>& args) { return slurm_command("wait", args); }
int cmd_collect(const std::vector<std::string>& args) { return slurm_command("collect", args); }
int cmd_cancel(const std::vector<std::string>& args) { return slurm_command("cancel", args); }

}  // namespace upcycle::runner::cli
