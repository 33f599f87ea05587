#include "stages/jobs/job_runner.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/file.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <chrono>
#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/host.h"
#include "core/job_files.h"
#include "core/log.h"
#include "core/provenance.h"
#include "core/tensorboard.h"
#include "stages/jobs/job_kinds.h"
#include "stages/train/distributed.h"

namespace upcycle::stages {
namespace {

using json = nlohmann::json;

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

// Under Slurm an attempt is its job id and restart count: Slurm runs one instance of a job id at a
// time and a requeue raises the count, and flock is not to be trusted across the hosts of a shared
// filesystem. Rank 0 records the attempt in DIR/attempt; a later attempt overwrites it, and an
// earlier one that outlived it (a lost node coming back) sees that before it writes a result.
std::string slurm_attempt() {
  const char* job = std::getenv("SLURM_JOB_ID");
  if (!job || !*job) return "";
  const char* restart = std::getenv("SLURM_RESTART_COUNT");
  return std::string("slurm job ") + job + " restart " + (restart && *restart ? restart : "0");
}

// Under Slurm, rank 0 appends each attempt's start and end to DIR/attempts.jsonl: the runner's
// ledger learns from it when each requeued attempt ran (Slurm keeps only the last one's times).
void record_attempt_event(const std::string& dir, int rank, const char* event, int exit_code) {
  const char* job = std::getenv("SLURM_JOB_ID");
  if (rank != 0 || !job || !*job) return;
  const char* restart = std::getenv("SLURM_RESTART_COUNT");
  const char* task = std::getenv("SLURM_ARRAY_TASK_ID");
  const char* array = std::getenv("SLURM_ARRAY_JOB_ID");
  json e = {
      {"event", event},
      {"scheduler_id",
       array && *array && task && *task ? std::string(array) + "_" + task : std::string(job)},
      {"restart", restart && *restart ? std::atoi(restart) : 0},
      {"time",
       std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count()},
      {"host", core::host_name()}};
  if (std::string(event) == "end") e["exit"] = exit_code;
  try {
    core::append_line(dir + "/" + core::kAttemptsFile, e.dump());
  } catch (const Error& err) {
    core::log_warn(std::string("cannot record the attempt: ") + err.what());
  }
}

void claim_job_dir(const std::string& dir, int rank) {
  const std::string attempt = slurm_attempt();
  if (attempt.empty()) {
    lock_job_dir(dir, rank);
  } else if (rank == 0) {
    core::write_file_atomic(dir + "/attempt", attempt + "\n");
  }
}

bool still_own_job_dir(const std::string& dir) {
  const std::string attempt = slurm_attempt();
  if (attempt.empty()) return true;  // the flock is held until exit
  std::string owner;
  try {
    owner = core::read_file(dir + "/attempt");
  } catch (const Error&) {
  }
  if (owner == attempt + "\n") return true;
  core::log_error("a later attempt (" + owner.substr(0, owner.find('\n')) +
                  ") owns this job directory; " + attempt + " does not write its result");
  return false;
}

}  // namespace

void set_torch_threads(int threads) {
  torch::set_num_threads(threads);
  static const bool once = [] {  // LibTorch allows this once per process, before any parallel work
    torch::set_num_interop_threads(1);
    return true;
  }();
  (void)once;
  // Training frees and allocates the same activation sizes every step. With glibc's defaults the
  // large blocks go back to the kernel (mmap threshold, heap trimming) and every step page-faults
  // and zeroes them again, a few percent of a CPU step (perf). Keep them in the heap instead.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

namespace {

// One attempt of the job: `dir` and `rank` are set once known, so that its end can be recorded.
int run_job_attempt(const std::string& spec_path, std::string& dir, int& rank) {
  auto t0 = std::chrono::steady_clock::now();
  try {
    const json j = core::read_json_file(spec_path);
    const SpecReader s(j);
    JobContext ctx{std::filesystem::path(spec_path).parent_path().string(), read_header(s),
                   read_runtime(s)};
    const JobKind& kind = find_job_kind(ctx.header.kind);
    if (ctx.header.version != kind.output_version) {
      throw core::FieldError("version", "the spec was planned for output version " +
                                            std::to_string(ctx.header.version) + " of kind " +
                                            kind.name + "; this binary produces version " +
                                            std::to_string(kind.output_version) +
                                            " (plan it again)");
    }
    kind.check(s);  // every field, before any work or lock
    set_torch_threads(ctx.runtime.threads);
    core::JobResult r;
    r.key = ctx.header.key;
    const DistEnv env = dist_env_from_environment();  // rank 0 alone writes the result
    claim_job_dir(ctx.dir, env.rank);
    dir = ctx.dir;
    rank = env.rank;
    record_attempt_event(dir, rank, "start", 0);
    if (auto done = core::read_job_result(ctx.dir);
        done && done->status == "done" && done->key == r.key) {
      core::log_info("already complete (an earlier attempt finished it)");
      return kExitOk;
    }
    if (!kind.run(s, ctx, r)) {
      core::log_warn("preempted: checkpoint written, exiting for requeue");
      return kExitPreempted;
    }
    r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.host = core::host_name();
    r.device = torch::cuda::is_available() ? "cuda" : "cpu";
    r.torch_version = TORCH_VERSION;
    r.code = core::this_code();
    if (env.rank != 0) return kExitOk;
    if (!still_own_job_dir(ctx.dir)) return kExitUserError;
    if (!r.evals.empty()) core::write_eval_events(ctx.dir, r.evals);  // for TensorBoard
    core::write_job_result(ctx.dir, r);
    return kExitOk;
  } catch (const core::FieldError& e) {
    core::log_error(spec_path + ": " + e.what());
    return kExitUserError;
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
  } catch (const std::bad_alloc&) {
    core::log_error("out of memory: the model, batch or data does not fit this machine's memory");
    core::log_error(
        "---> HINT: a smaller micro_batch, or a machine with more memory (`upcycle plan --cost`)");
    return kExitUserError;
  } catch (const std::exception& e) {
    core::log_error(std::string("internal error: ") + e.what());
    return kExitInternalError;
  }
}

}  // namespace

int run_job(const std::string& spec_path) {
  std::string dir;
  int rank = -1;
  const int rc = run_job_attempt(spec_path, dir, rank);
  if (!dir.empty()) record_attempt_event(dir, rank, "end", rc);
  return rc;
}

}  // namespace upcycle::stages
