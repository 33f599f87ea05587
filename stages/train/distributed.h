// Data parallelism across processes through LibTorch's c10d, with a TCPStore rendezvous at
// MASTER_ADDR:MASTER_PORT: Gloo on the CPU, NCCL on CUDA (when the build found nccl.h; otherwise
// CUDA gradients are staged through host memory for Gloo). Each rank trains on its slice of the global batch; gradients are averaged with one
// all-reduce per step, so every rank takes the same optimizer step. Rank 0 alone writes metrics and
// checkpoints.
#pragma once

#include <ATen/Tensor.h>

#include <memory>
#include <string>
#include <vector>

namespace upcycle::stages {

struct DistEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
};

/// RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT (torchrun's variables); else, under
/// srun, SLURM_PROCID, SLURM_NTASKS and SLURM_LOCALID (MASTER_ADDR/PORT still from the environment);
/// else one process. Throws StageError naming the variable for a malformed or inconsistent value.
DistEnv dist_env_from_environment();

/// True when this build has c10d's Gloo backend (the gloo headers were found at configure time).
bool distributed_available();
/// True when this build also has c10d's NCCL backend (for CUDA placements).
bool nccl_available();

class DataParallel {
 public:
  /// world_size 1: every call is a no-op. Otherwise rendezvous (blocking until every rank joins, or
  /// timing out after `timeout_s`). `device` is the placement's ("cpu" or "cuda:N"): NCCL for CUDA
  /// where built. Throws StageError when the build lacks Gloo or rendezvous fails.
  explicit DataParallel(const DistEnv& env, const std::string& device = "cpu", int timeout_s = 300);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }
  bool is_main() const { return env_.rank == 0; }

  /// Replaces every gradient with its mean over the ranks (one flattened all-reduce).
  void average_gradients(const std::vector<at::Tensor>& params);
  /// The mean of `v` over the ranks.
  double mean(double v);
  /// The maximum of `v` over the ranks (a stop flag any rank raises stops all).
  double max(double v);

 private:
  struct Impl;
  DistEnv env_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace upcycle::stages
