// upcycle-job: the LibTorch half of upcycle, kept out of the CLI so that `upcycle status`, `query`,
// `plan` and Slurm submission start without loading LibTorch. The CLI and the executors run it:
//   upcycle-job stage --spec DIR/spec.json     one job (stages/jobs/job_runner.h); `upcycle stage`
//   execs this upcycle-job cuda                           prints 1 when LibTorch sees a CUDA
//   device, else 0 upcycle-job build-info                     prints what this build has: LibTorch
//   version, a CUDA
//                                              LibTorch, c10d Gloo and NCCL, grouped GEMM (JSON)
//   upcycle-job throughput MODEL_JSON BATCH MICRO STEPS THREADS DIR [DEVICE PRECISION]
//                                              prints tokens_per_s=X (stages/train/throughput.h)
//   upcycle-job export CHECKPOINT TOKENIZER FORMAT DTYPE SHARD_BYTES OUT
//                                              a checkpoint as a Hugging Face one
//                                              (stages/io/hf_export.h)
//   upcycle-job import HF_DIR OUT [SEQ_LEN]    a Hugging Face checkpoint as ours; prints its config
//   upcycle-job compare CHECKPOINT CHECKPOINT  whether two checkpoints hold the same model: their
//                                              configs and every tensor (JSON: equal, tensors,
//                                              max_abs_diff, the first difference)
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include <torch/torch.h>
#include <torch/version.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/integer.h"
#include "core/output_dir.h"
#include "stages/io/checkpoint.h"
#include "stages/io/hf_export.h"
#include "stages/jobs/job_runner.h"
#include "stages/model/moe_ffn.h"
#include "stages/train/device.h"
#include "stages/train/distributed.h"
#include "stages/train/throughput.h"

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: upcycle-job stage --spec DIR/spec.json | cuda | build-info | "
               "throughput MODEL_JSON BATCH MICRO STEPS THREADS DIR [DEVICE PRECISION] | "
               "export CHECKPOINT TOKENIZER FORMAT DTYPE SHARD_BYTES OUT force|keep | import "
               "HF_DIR OUT force|keep [SEQ_LEN] | compare CHECKPOINT CHECKPOINT\n");
  return upcycle::kExitUserError;
}

// An integer argument, through the one checked parser.
int64_t arg_integer(const char* text, const char* what, upcycle::core::IntegerRange range) {
  try {
    return upcycle::core::parse_integer(text, range, false);
  } catch (const std::logic_error& e) {
    throw std::invalid_argument(std::string(what) + ": " + e.what());
  }
}

int throughput(int argc, char** a) {
  using namespace upcycle::stages;
  const ModelConfig m = model_config_from_json(nlohmann::json::parse(a[0]));
  m.validate();
  set_torch_threads(static_cast<int>(arg_integer(a[4], "threads", {1, 4096})));
  const std::string device = argc == 8 ? a[6] : "cpu", precision = argc == 8 ? a[7] : "auto";
  std::printf(
      "tokens_per_s=%.1f\n",
      train_tokens_per_s(m, arg_integer(a[1], "batch", {1}), arg_integer(a[2], "micro-batch", {0}),
                         arg_integer(a[3], "steps", {1}), a[5], device, precision));
  return upcycle::kExitOk;
}

int run_export(char** a) {
  using namespace upcycle::stages;
  HfExportOptions o;
  o.format = hf_format_from(a[2]);
  o.dtype = hf_dtype_from(a[3]);
  o.max_shard_bytes = arg_integer(a[4], "shard bytes", {1});
  o.out = {std::string(a[6]) == "force",
           {{"the checkpoint it exports", a[0]}, {"its tokenizer", a[1]}}};
  export_hf(a[0], a[1], a[5], o);
  return upcycle::kExitOk;
}

int run_import(int argc, char** a) {
  using namespace upcycle::stages;
  std::optional<int64_t> seq_len;
  if (argc == 4) seq_len = arg_integer(a[3], "seq_len", {1});
  upcycle::core::OutputDir dest(
      a[1], {std::string(a[2]) == "force", {{"the checkpoint it imports", a[0]}}});
  const HfImportResult r = import_hf(a[0], dest.path(), seq_len);
  dest.commit();
  nlohmann::json out = {{"format", hf_format_name(r.model.format)},
                        {"model", to_json(r.model.model)},
                        {"notes", r.model.notes},
                        {"weights_sha256", r.weights_sha256}};
  std::printf("%s\n", out.dump().c_str());
  return upcycle::kExitOk;
}

// Two checkpoints' configs and tensors, name by name: what a reloaded export is checked with.
int compare(char** a) {
  using namespace upcycle::stages;
  CheckpointMeta ma, mb;
  const TensorMap x = load_checkpoint_state(a[0], &ma), y = load_checkpoint_state(a[1], &mb);
  std::string first;  // the first difference, for people
  if (to_json(ma.model) != to_json(mb.model)) first = "the model configs differ";
  double max_diff = 0;
  for (const auto& [name, t] : x) {
    const auto it = y.find(name);
    if (it == y.end() || it->second.sizes() != t.sizes()) {
      if (first.empty()) first = name + ": missing or of another shape in " + a[1];
      continue;
    }
    const double d =
        t.numel() == 0 ? 0.0 : (t - it->second.to(t.scalar_type())).abs().max().item<double>();
    if (d > max_diff && first.empty()) first = name + ": differs by " + std::to_string(d);
    max_diff = std::max(max_diff, d);
  }
  for (const auto& [name, t] : y) {
    if (!x.count(name) && first.empty()) first = name + ": only in " + std::string(a[1]);
  }
  nlohmann::json out = {{"equal", first.empty()},
                        {"tensors", x.size()},
                        {"max_abs_diff", max_diff},
                        {"first_difference", first}};
  std::printf("%s\n", out.dump().c_str());
  return upcycle::kExitOk;
}

// What CMake found (stages/CMakeLists.txt): scripts/check_cuda_build.sh fails CI when CUDA or
// NCCL drop out of a build that requires them.
int build_info() {
  using namespace upcycle::stages;
#ifdef UPCYCLE_TORCH_CUDA
  const bool cuda_build = true;
#else
  const bool cuda_build = false;
#endif
  nlohmann::json j = {{"torch", TORCH_VERSION},
                      {"cuda_build", cuda_build},
                      {"gloo", distributed_available()},
                      {"nccl", nccl_available()},
                      {"grouped_mm", grouped_mm_available()},
                      {"cuda_device", cuda_available()}};
  std::printf("%s\n", j.dump().c_str());
  return upcycle::kExitOk;
}

// A subcommand's errors: a user error names what is wrong and exits 1.
template <typename F>
int guarded(const char* name, F&& f) {
  try {
    return f();
  } catch (const upcycle::InternalError& e) {
    std::fprintf(stderr, "upcycle-job %s: internal error: %s\n", name, e.what());
    return upcycle::kExitInternalError;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "upcycle-job %s: %s\n", name, e.what());
    return upcycle::kExitUserError;
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGXFSZ, SIG_IGN);  // past ulimit -f, writes fail with EFBIG and name their file
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "stage" && argc == 4 && std::string(argv[2]) == "--spec")
    return upcycle::stages::run_job(argv[3]);
  if (cmd == "cuda" && argc == 2) {
    std::printf("%d\n", upcycle::stages::cuda_available() ? 1 : 0);
    return upcycle::kExitOk;
  }
  if (cmd == "build-info" && argc == 2) return build_info();
  if (cmd == "throughput" && (argc == 8 || argc == 10)) {
    return guarded("throughput", [&] { return throughput(argc - 2, argv + 2); });
  }
  if (cmd == "export" && argc == 9) return guarded("export", [&] { return run_export(argv + 2); });
  if (cmd == "import" && (argc == 5 || argc == 6))
    return guarded("import", [&] { return run_import(argc - 2, argv + 2); });
  if (cmd == "compare" && argc == 4) return guarded("compare", [&] { return compare(argv + 2); });
  return usage();
}
