// ZeRO-1 and ZeRO-2 (optimizer.h). Layout: the trained parameters in reverse registration order
// (about the order backward finishes them) are cut into buckets of about bucket_bytes; bucket b
// holds n_b elements, padded to L_b = d * l_b. Rank r owns elements [r l_b, (r+1) l_b) of every
// bucket: its shard is the concatenation of those pieces, S = sum_b l_b elements, and it keeps the
// AdamW moments (and the gradient, under ZeRO-2) of its shard only. Collectives go bucket by
// bucket, in index order on every rank, so the ranks' calls match.
#include <torch/torch.h>

#include <cmath>
#include <mutex>

#include "core/error.h"
#include "stages/train/optimizer.h"

namespace upcycle::stages {
namespace {

struct Bucket {
  std::vector<size_t> members;   ///< indices into params
  std::vector<int64_t> offsets;  ///< each member's offset in the bucket
  int64_t size = 0;              ///< n_b
  int64_t piece = 0;             ///< l_b = ceil(n_b / d)
  int64_t shard_offset = 0;      ///< where this rank's piece sits in its shard
  at::Tensor grads;              ///< ZeRO-1: the flat gradient buffer [L_b] the .grads view
  at::Tensor arriving;           ///< ZeRO-2: this backward's gradients as they arrive [L_b]
  size_t pending = 0;            ///< ZeRO-2: gradients still to arrive in this backward
};

class ShardedAdamW final : public StepOptimizer {
 public:
  ShardedAdamW(std::vector<at::Tensor> params, const OptimSpec& o, DataParallel& dp, int64_t zero,
               int64_t bucket_bytes)
      : params_(std::move(params)), o_(o), dp_(dp), zero_(zero), arrived_(params_.size()) {
    const int64_t d = dp_.world_size();
    const auto f32 = torch::dtype(torch::kFloat32).device(params_.at(0).device());
    for (size_t k = params_.size(); k-- > 0;) {
      if (buckets_.empty() || buckets_.back().size * 4 >= bucket_bytes) buckets_.emplace_back();
      Bucket& b = buckets_.back();
      b.members.push_back(k);
      b.offsets.push_back(b.size);
      b.size += params_[k].numel();
    }
    int64_t shard = 0;
    for (auto& b : buckets_) {
      b.piece = (b.size + d - 1) / d;
      b.shard_offset = shard;
      shard += b.piece;
    }
    m_S_ = torch::zeros({shard}, f32);
    v_S_ = torch::zeros({shard}, f32);
    wd_S_ = torch::zeros({shard}, f32);
    for (auto& b : buckets_) {
      for (size_t i = 0; i < b.members.size(); ++i) {
        const at::Tensor& p = params_[b.members[i]];
        if (p.dim() >= 2) mine(b, b.offsets[i], p.numel(), wd_S_).fill_(o_.weight_decay);
      }
    }
    if (zero_ == 1) {
      torch::NoGradGuard no_grad;
      for (auto& b : buckets_) {
        b.grads = torch::zeros({b.piece * d}, f32);
        for (size_t i = 0; i < b.members.size(); ++i) {
          at::Tensor& p = params_[b.members[i]];
          p.mutable_grad() = b.grads.narrow(0, b.offsets[i], p.numel()).view(p.sizes());
        }
      }
    } else {
      g_S_ = torch::zeros({shard}, f32);
      slot_.resize(params_.size());
      for (size_t b = 0; b < buckets_.size(); ++b) {
        for (size_t i = 0; i < buckets_[b].members.size(); ++i)
          slot_[buckets_[b].members[i]] = {b, buckets_[b].offsets[i]};
      }
      for (size_t k = 0; k < params_.size(); ++k) {
        params_[k].register_hook([this, k](const at::Tensor& g) { on_gradient(k, g); });
      }
    }
  }

  void zero_grad() override {
    if (zero_ == 1) {
      for (auto& b : buckets_) b.grads.zero_();
    } else {
      g_S_.zero_();
      start_backward();
    }
  }

  void after_backward() override {
    if (zero_ != 2) return;
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t k = 0; k < params_.size(); ++k) {  // no gradient this backward: zeros
      if (!arrived_[k]) arrive(k, at::Tensor());
    }
    launch_ready();
    drop_grads();
    start_backward();
  }

  at::Tensor step(double lr, double grad_clip) override {
    torch::NoGradGuard no_grad;
    const int64_t d = dp_.world_size();
    at::Tensor g_S = zero_ == 1 ? torch::empty_like(m_S_) : g_S_;
    if (zero_ == 1) {
      for (auto& b : buckets_) {
        at::Tensor piece = g_S.narrow(0, b.shard_offset, b.piece);
        reduce_scatter(b.grads, piece);
      }
    }
    g_S.div_(double(d));
    const double norm = std::sqrt(dp_.sum(g_S.pow(2).sum().item<double>()));
    if (grad_clip > 0) g_S.mul_(std::min(1.0, grad_clip / (norm + 1e-6)));
    ++step_;
    const double bc1 = 1 - std::pow(o_.beta1, double(step_));
    const double bc2_sqrt = std::sqrt(1 - std::pow(o_.beta2, double(step_)));
    for (auto& b : buckets_) {
      at::Tensor flat = gather_params(b);
      at::Tensor p = flat.narrow(0, dp_.rank() * b.piece, b.piece).clone();
      auto g = g_S.narrow(0, b.shard_offset, b.piece);
      auto m = m_S_.narrow(0, b.shard_offset, b.piece);
      auto v = v_S_.narrow(0, b.shard_offset, b.piece);
      // AdamW as LibTorch's fused kernel computes it: decoupled decay, then the moment update.
      p.mul_(1 - lr * wd_S_.narrow(0, b.shard_offset, b.piece));
      m.lerp_(g, 1 - o_.beta1);
      v.mul_(o_.beta2).addcmul_(g, g, 1 - o_.beta2);
      p.addcdiv_(m, (v.sqrt() / bc2_sqrt).add_(o_.eps), -lr / bc1);
      all_gather(p, flat);
      scatter_params(b, flat);
    }
    return torch::full({}, norm, m_S_.options());
  }

  std::vector<MomentSlice> state_slices() override {
    std::vector<MomentSlice> out;
    if (step_ == 0) return out;  // no state yet
    for (auto& b : buckets_) {
      for (size_t i = 0; i < b.members.size(); ++i) {
        const int64_t n = params_[b.members[i]].numel(), lo = first_mine(b, b.offsets[i]);
        at::Tensor m = mine(b, b.offsets[i], n, m_S_);
        if (m.numel() == 0) continue;
        out.push_back({b.members[i], lo, m, mine(b, b.offsets[i], n, v_S_), step_});
      }
    }
    return out;
  }

  void load(const MomentSource& source) override {
    torch::NoGradGuard no_grad;
    step_ = 0;  // one count for all (every step updates every element, gradient or not)
    for (size_t k = 0; k < params_.size(); ++k) step_ = std::max(step_, source.step(k));
    for (auto& b : buckets_) {
      for (size_t i = 0; i < b.members.size(); ++i) {
        const size_t k = b.members[i];
        const int64_t n = params_[k].numel(), lo = first_mine(b, b.offsets[i]);
        at::Tensor m = mine(b, b.offsets[i], n, m_S_), v = mine(b, b.offsets[i], n, v_S_);
        if (m.numel() == 0) continue;
        const at::Tensor saved = source.read(k, 0, lo, m.numel());
        if (!saved.defined()) continue;  // never stepped
        m.copy_(saved);
        v.copy_(source.read(k, 1, lo, v.numel()));
      }
    }
  }

  int64_t state_bytes() const override { return 2 * m_S_.numel() * 4; }

 private:
  // This rank's part of the bucket range [offset, offset + n), as a view of a shard tensor.
  at::Tensor mine(const Bucket& b, int64_t offset, int64_t n, const at::Tensor& shard_S) const {
    const int64_t lo = std::max(offset, dp_.rank() * b.piece);
    const int64_t hi = std::min(offset + n, (dp_.rank() + 1) * b.piece);
    if (hi <= lo) return shard_S.narrow(0, 0, 0);
    return shard_S.narrow(0, b.shard_offset + lo - dp_.rank() * b.piece, hi - lo);
  }

  // The first element of the parameter at `offset` in the bucket that this rank holds, counted
  // from the parameter's start.
  int64_t first_mine(const Bucket& b, int64_t offset) const {
    return std::max(offset, dp_.rank() * b.piece) - offset;
  }

  at::Tensor gather_params(const Bucket& b) const {
    std::vector<at::Tensor> parts;
    for (size_t k : b.members) parts.push_back(params_[k].detach().reshape({-1}));
    const int64_t pad = b.piece * dp_.world_size() - b.size;
    if (pad > 0) parts.push_back(torch::zeros({pad}, m_S_.options()));
    return torch::cat(parts);
  }

  void scatter_params(const Bucket& b, const at::Tensor& flat) {
    for (size_t i = 0; i < b.members.size(); ++i) {
      at::Tensor p = params_[b.members[i]].detach();
      p.copy_(flat.narrow(0, b.offsets[i], p.numel()).view(p.sizes()));
    }
  }

  // The collectives on their device (the GPU under NCCL, the host under Gloo).
  void reduce_scatter(const at::Tensor& flat, at::Tensor& piece) {
    const at::Device dev = dp_.collective_device();
    at::Tensor in = flat.to(dev), out = piece.device() == dev ? piece : piece.to(dev);
    dp_.reduce_scatter(in, out);
    if (!out.is_same(piece)) piece.copy_(out);
  }
  void all_gather(const at::Tensor& piece, at::Tensor& flat) {
    const at::Device dev = dp_.collective_device();
    at::Tensor in = piece.to(dev), out = flat.device() == dev ? flat : flat.to(dev);
    dp_.all_gather(in, out);
    if (!out.is_same(flat)) flat.copy_(out);
  }

  // ---- ZeRO-2: gradients reduce-scattered as backward completes each bucket ----

  void start_backward() {
    std::fill(arrived_.begin(), arrived_.end(), 0);
    for (auto& b : buckets_) b.pending = b.members.size();
    next_launch_ = 0;
  }

  void on_gradient(size_t k, const at::Tensor& g) {
    std::lock_guard<std::mutex> lock(mu_);
    drop_grads();
    if (arrived_[k]) return;
    arrive(k, g);
    launch_ready();
  }

  void arrive(size_t k, const at::Tensor& g) {
    torch::NoGradGuard no_grad;
    const auto [bi, offset] = slot_[k];
    Bucket& b = buckets_[bi];
    if (!b.arriving.defined())
      b.arriving = torch::zeros({b.piece * dp_.world_size()}, m_S_.options());
    if (g.defined()) b.arriving.narrow(0, offset, g.numel()).copy_(g.reshape({-1}));
    arrived_[k] = 1;
    --b.pending;
    finished_.push_back(k);
  }

  void launch_ready() {
    torch::NoGradGuard no_grad;
    while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) {
      Bucket& b = buckets_[next_launch_++];
      at::Tensor piece = torch::empty({b.piece}, m_S_.options());
      reduce_scatter(b.arriving, piece);
      g_S_.narrow(0, b.shard_offset, b.piece).add_(piece);
      b.arriving = at::Tensor();
    }
  }

  // The gradients autograd accumulated for parameters already copied into a bucket.
  void drop_grads() {
    for (size_t k : finished_) params_[k].mutable_grad() = at::Tensor();
    finished_.clear();
  }

  std::vector<at::Tensor> params_;
  OptimSpec o_;
  DataParallel& dp_;
  int64_t zero_;
  std::vector<Bucket> buckets_;
  at::Tensor m_S_, v_S_, wd_S_, g_S_;
  int64_t step_ = 0;
  std::vector<std::pair<size_t, int64_t>> slot_;  ///< ZeRO-2: per parameter, bucket and offset
  std::vector<char> arrived_;
  std::vector<size_t> finished_;
  size_t next_launch_ = 0;
  std::mutex mu_;
};

}  // namespace

std::unique_ptr<StepOptimizer> make_sharded_adamw(const std::vector<at::Tensor>& params,
                                                  const OptimSpec& o, DataParallel& dp,
                                                  int64_t zero, int64_t bucket_bytes) {
  if (zero != 1 && zero != 2) throw StageError("train.zero must be 0, 1 or 2");
  return std::make_unique<ShardedAdamW>(params, o, dp, zero, bucket_bytes);
}

}  // namespace upcycle::stages
