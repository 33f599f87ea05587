#include "stages/train/train_checkpoint.h"

#include <torch/torch.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <limits>

#include "core/error.h"
#include "core/integer.h"
#include "core/log.h"
#include "stages/arch/memory.h"
#include "stages/io/checkpoint_shards.h"

namespace upcycle::stages {
namespace {

// A shard's sha256 and size travel to rank 0 as bytes in fp32 lanes (exact below 2^24), through
// the all-gather ZeRO uses: 32 digest bytes and 8 size bytes per file.
constexpr int64_t kLanesPerFile = 40;

void encode(const ShardFile& f, float* lanes) {
  for (int i = 0; i < 32; ++i)
    lanes[i] = float(std::stoi(f.sha256.substr(size_t(2 * i), 2), nullptr, 16));
  for (int i = 0; i < 8; ++i) lanes[32 + i] = float((f.bytes >> (8 * i)) & 0xff);
}

ShardFile decode(const float* lanes, std::string file) {
  static const char* kHex = "0123456789abcdef";
  ShardFile f{std::move(file), "", 0};
  for (int i = 0; i < 32; ++i) {
    const int b = int(lanes[i]);
    f.sha256 += kHex[b >> 4];
    f.sha256 += kHex[b & 15];
  }
  for (int i = 0; i < 8; ++i) f.bytes |= uint64_t(lanes[32 + i]) << (8 * i);
  return f;
}

// Every rank's (weights, optimizer) shard files, on every rank.
std::vector<ShardFile> gather_shards(DataParallel& dp, const std::vector<ShardFile>& mine,
                                     std::vector<std::string> names_by_rank) {
  const int64_t per_rank = kLanesPerFile * int64_t(mine.size());
  at::Tensor piece = torch::zeros({per_rank}, torch::kFloat32);
  for (size_t i = 0; i < mine.size(); ++i)
    encode(mine[i], piece.data_ptr<float>() + kLanesPerFile * int64_t(i));
  at::Tensor all = torch::zeros({per_rank * dp.world_size()}, torch::kFloat32);
  const at::Device dev = dp.collective_device();
  at::Tensor in = piece.to(dev), out = all.to(dev);
  dp.all_gather(in, out);
  all = out.to(torch::kCPU);
  std::vector<ShardFile> files;
  for (size_t i = 0; i < names_by_rank.size(); ++i)
    files.push_back(
        decode(all.data_ptr<float>() + kLanesPerFile * int64_t(i), std::move(names_by_rank[i])));
  return files;
}

// Step 3 on rank 0: the manifest lists every rank's files (weights, then optimizer when kept,
// alternating).
void commit_manifest(const std::string& dir, const std::string& tmp, const CheckpointMeta& meta,
                     TransformerLm& model, const std::vector<ShardFile>& all, bool with_optimizer) {
  CheckpointMeta m = meta;
  m.model = model->config;
  m.weights.clear();
  m.optimizer.clear();
  uint64_t bytes = 0;
  const size_t per_rank = with_optimizer ? 2 : 1;
  for (size_t i = 0; i < all.size(); ++i) {
    (i % per_rank == 0 ? m.weights : m.optimizer).push_back(all[i]);
    bytes += all[i].bytes;
  }
  commit_checkpoint(dir, tmp, m);
  core::log_info("checkpoint written: step " + std::to_string(m.step) + ", " +
                 std::to_string(all.size() / per_rank) + " rank(s), " +
                 format_bytes(double(bytes)) + (with_optimizer ? "" : " (weights only)") + " in " +
                 dir);
}

void maybe_die_for_test(int64_t step) {
  const char* v = std::getenv("UPCYCLE_TEST_KILL_IN_SAVE");
  if (v && *v && core::parse_integer(v, {0, std::numeric_limits<int64_t>::max()}, false) == step) {
    core::log_warn("UPCYCLE_TEST_KILL_IN_SAVE: killing this rank in the middle of its save");
    ::raise(SIGKILL);
  }
}

// Throws on every rank when any rank's `error` is set.
void agree(DataParallel& dp, const std::string& error, const std::string& what) {
  if (dp.max(error.empty() ? 0.0 : 1.0) == 0) return;
  throw StageError(error.empty() ? what + ": another rank failed (see its log)" : error);
}

}  // namespace

std::vector<std::string> trained_parameter_names(TransformerLm& model) {
  std::vector<std::string> out;
  for (const auto& p : model->named_parameters()) {
    if (p.value().requires_grad()) out.push_back(p.key());
  }
  return out;
}

void save_train_checkpoint(const std::string& dir, TransformerLm& model, StepOptimizer& opt,
                           const std::vector<std::string>& names, const CheckpointMeta& meta,
                           DataParallel& dp, bool with_optimizer) {
  const int rank = dp.rank(), world = dp.world_size();
  // 1. Rank 0 creates the temp directory; its process id, which names it, reaches every rank.
  std::string error;
  double pid = 0;
  if (dp.is_main()) {
    try {
      begin_checkpoint(dir);
      pid = double(::getpid());
    } catch (const std::exception& e) {  // ours, the file system's, LibTorch's
      error = e.what();
    }
  }
  agree(dp, error, dir + ": could not start the checkpoint");
  const std::string tmp = checkpoint_temp(dir, int64_t(dp.max(pid)));
  // 2. Every rank streams its shards.
  std::vector<ShardFile> mine;
  try {
    mine.push_back(write_weight_shard(tmp, model, rank, world));
    maybe_die_for_test(meta.step);
    if (with_optimizer) {
      std::vector<MomentPiece> pieces;
      for (const auto& s : opt.state_slices())
        pieces.push_back({names.at(s.param), s.lo, s.exp_avg, s.exp_avg_sq, s.master, s.step});
      mine.push_back(write_optimizer_shard(tmp, pieces, rank, world));
    }
  } catch (const std::exception& e) {
    error = std::string(e.what()) + " (rank " + std::to_string(rank) + ")";
  }
  agree(dp, error, dir + ": a rank could not write its checkpoint shard");
  // 3. Rank 0 lists them in the manifest and swaps the checkpoint in.
  std::vector<std::string> files;
  for (int r = 0; r < world; ++r) {
    files.push_back(weight_shard_name(r, world));
    if (with_optimizer) files.push_back(optimizer_shard_name(r, world));
  }
  const std::vector<ShardFile> all = gather_shards(dp, mine, files);
  if (dp.is_main()) {
    try {
      commit_manifest(dir, tmp, meta, model, all, with_optimizer);
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  // Every rank returns once the checkpoint is in place (or all throw): a preempted rank that
  // exits after this has its state on disk.
  agree(dp, error, dir + ": rank 0 could not write the checkpoint's manifest");
}

void load_optimizer_state(const std::string& dir, const CheckpointMeta& meta, StepOptimizer& opt,
                          const std::vector<std::string>& names) {
  if (meta.optimizer.empty()) {
    throw StageError(dir + ": the checkpoint holds no AdamW state in this format (written by an " +
                     "earlier upcycle?); move it away to restart the job from its start");
  }
  OptimizerStateReader reader(dir, meta);
  opt.load({[&](size_t k, int moment, int64_t lo, int64_t n) {
              return reader.read(names.at(k), kMomentNames[moment], lo, n);
            },
            [&](size_t k) { return reader.step(names.at(k)); }});
}

}  // namespace upcycle::stages
