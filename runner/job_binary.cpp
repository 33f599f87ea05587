#include "runner/job_binary.h"

#include <cstring>
#include <filesystem>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "core/process.h"

namespace upcycle::runner {

std::string job_binary() {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) throw InternalError("cannot resolve /proc/self/exe: " + ec.message());
  std::string job = (self.parent_path() / "upcycle-job").string();
  if (!std::filesystem::exists(job))
    throw InternalError(job + ": missing (it is built with upcycle)");
  return job;
}

int exec_job(const std::string& spec) {
  const std::string job = job_binary();
  core::exec_process({job, "stage", "--spec", spec});
}

bool local_cuda() {
  static const bool cuda = [] {
    if (!std::filesystem::exists("/dev/nvidiactl"))
      return false;  // no NVIDIA driver: no CUDA device
    const core::ProcessResult r = core::run_process({job_binary(), "cuda"}, 120);
    return r.exit_code == 0 && r.out.rfind('1', 0) == 0;
  }();
  return cuda;
}

double measure_throughput(const stages::ModelConfig& m, int64_t batch, int64_t micro_batch,
                          int64_t steps, int threads, const std::string& scratch,
                          const std::string& device, const std::string& precision) {
  const core::ProcessResult r =
      core::run_process({job_binary(), "throughput", stages::to_json(m).dump(),
                         std::to_string(batch), std::to_string(micro_batch), std::to_string(steps),
                         std::to_string(threads), scratch, device, precision},
                        3600);
  const size_t at = r.out.find("tokens_per_s=");
  if (r.exit_code != 0 || at == std::string::npos) {
    core::log_warn("throughput bench failed (exit " + std::to_string(r.exit_code) + "): " + r.err);
    return 0;
  }
  return std::atof(r.out.c_str() + at + 13);
}

constexpr double kConversionTimeoutS = 24 * 3600.0;

std::string run_job_tool(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {job_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  const core::ProcessResult r = core::run_process(argv, kConversionTimeoutS);
  if (r.exit_code != 0) {
    std::string err = r.err;
    while (!err.empty() && err.back() == '\n') err.pop_back();
    const std::string prefix = "upcycle-job " + args.at(0) + ": ";
    if (err.rfind(prefix, 0) == 0) err = err.substr(prefix.size());
    throw StageError(err.empty() ? "upcycle-job " + args.at(0) + " exited with code " +
                                       std::to_string(r.exit_code)
                                 : err);
  }
  return r.out;
}

}  // namespace upcycle::runner
