// upcycle-job: the LibTorch half of upcycle, kept out of the CLI so that `upcycle status`, `query`,
// `plan` and Slurm submission start without loading LibTorch. The CLI and the executors run it:
//   upcycle-job stage --spec DIR/spec.json     one job (stages/job_runner.h); `upcycle stage` execs this
//   upcycle-job cuda                           prints 1 when LibTorch sees a CUDA device, else 0
//   upcycle-job throughput MODEL_JSON BATCH MICRO STEPS THREADS DIR
//                                              prints tokens_per_s=X (stages/train/throughput.h)
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "stages/job_runner.h"
#include "stages/train/device.h"
#include "stages/train/throughput.h"

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: upcycle-job stage --spec DIR/spec.json | cuda | "
               "throughput MODEL_JSON BATCH MICRO STEPS THREADS DIR\n");
  return upcycle::kExitUserError;
}

int throughput(char** a) {
  using namespace upcycle::stages;
  const ModelConfig m = model_config_from_json(nlohmann::json::parse(a[0]));
  m.validate();
  set_torch_threads(std::atoi(a[4]));
  std::printf("tokens_per_s=%.1f\n", train_tokens_per_s(m, std::atoll(a[1]), std::atoll(a[2]), std::atoll(a[3]), a[5]));
  return upcycle::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGXFSZ, SIG_IGN);  // past ulimit -f, writes fail with EFBIG and name their file
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "stage" && argc == 4 && std::string(argv[2]) == "--spec") return upcycle::stages::run_job(argv[3]);
  if (cmd == "cuda" && argc == 2) {
    std::printf("%d\n", upcycle::stages::cuda_available() ? 1 : 0);
    return upcycle::kExitOk;
  }
  if (cmd == "throughput" && argc == 8) {
    try {
      return throughput(argv + 2);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "upcycle-job throughput: %s\n", e.what());
      return upcycle::kExitUserError;
    }
  }
  return usage();
}
