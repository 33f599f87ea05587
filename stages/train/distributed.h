// Data parallelism across processes through LibTorch's c10d, with a TCPStore rendezvous at
// MASTER_ADDR:MASTER_PORT: Gloo on the CPU, NCCL on CUDA (when the build found nccl.h; otherwise
// CUDA gradients are staged through host memory for Gloo). Each rank trains on its slice of the
// global batch and every rank takes the same optimizer step. Rank 0 alone writes metrics; every
// rank writes its part of a checkpoint (train_checkpoint.h).
// Gradient buckets (overlap_gradients): the parameters in reverse registration order (about the
// order backward finishes them) cut into buckets of about UPCYCLE_DDP_BUCKET_KB (default 25 MiB, as
// PyTorch DDP). In the step's last backward a hook on each parameter copies its complete gradient
// (the earlier micro-batches' sum plus this one) into its bucket; a bucket whose every gradient has
// arrived is all-reduced at once, asynchronously, while backward goes on with the layers below.
// Buckets are launched in index order on every rank (a bucket ready early waits for the ones before
// it), so the ranks' collectives match. finish_gradients waits for them and writes the means back.
// The element-wise sums are those of one flat all-reduce, so bucket sizes do not change results.
// Control values (mean, max: loss, stop flags) go through a CPU Gloo group even when gradients use
// NCCL, so they never wait on the GPU.
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
  int64_t bucket_bytes = 25 << 20;  ///< gradient bucket size (UPCYCLE_DDP_BUCKET_KB)
};

/// RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT (torchrun's variables); else, under
/// srun, SLURM_PROCID, SLURM_NTASKS and SLURM_LOCALID (MASTER_ADDR/PORT still from the
/// environment); else one process. UPCYCLE_DDP_BUCKET_KB sets the gradient bucket size. Throws
/// StageError naming the variable for a malformed or inconsistent value.
DistEnv dist_env_from_environment();

/// True when this build has c10d's Gloo backend (the gloo headers were found at configure time).
bool distributed_available();
/// True when this build also has c10d's NCCL backend (for CUDA placements).
bool nccl_available();

class DataParallel {
 public:
  /// world_size 1: every call is a no-op, unless `group_of_one` (tests: the collectives with one
  /// rank). Otherwise rendezvous (blocking until every rank joins, or timing out after
  /// `timeout_s`). `device` is the placement's ("cpu" or "cuda:N"): NCCL for CUDA where built.
  /// Throws StageError when the build lacks Gloo or rendezvous fails.
  explicit DataParallel(const DistEnv& env, const std::string& device = "cpu", int timeout_s = 300,
                        bool group_of_one = false);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }
  bool is_main() const { return env_.rank == 0; }

  /// Replaces every gradient with its mean over the ranks (one flattened all-reduce).
  void average_gradients(const std::vector<at::Tensor>& params);
  /// Averages `params`' gradients in buckets while backward runs (above). Call once, before
  /// training; a no-op for one process.
  void overlap_gradients(const std::vector<at::Tensor>& params);
  /// The next backward is the step's last: its hooks launch the buckets.
  void arm_gradient_sync();
  /// After that backward: waits for every bucket (launching any whose gradients never came) and
  /// replaces each gradient with its mean over the ranks. Without overlap_gradients,
  /// average_gradients.
  void finish_gradients(const std::vector<at::Tensor>& params);
  /// How many buckets overlap_gradients made (0 without it).
  int64_t bucket_count() const;
  /// The mean of `v` over the ranks.
  double mean(double v);
  /// The sum of `v` over the ranks.
  double sum(double v);
  /// ZeRO's collectives (zero.h), on flat fp32 tensors on the gradient collectives' device:
  /// `piece` is the rank-th of world_size equal parts of `flat`. reduce_scatter sums every rank's
  /// `flat` and leaves this rank's part in `piece`; all_gather fills `flat` with every rank's
  /// `piece`. With one process: copies.
  void reduce_scatter(at::Tensor& flat, at::Tensor& piece);
  void all_gather(at::Tensor& piece, at::Tensor& flat);
  /// Where gradient collectives run: the CPU (Gloo), or the GPU (NCCL).
  at::Device collective_device() const;
  /// The maximum of `v` over the ranks (a stop flag any rank raises stops all).
  double max(double v);

 private:
  struct Impl;
  DistEnv env_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace upcycle::stages
