// ZeRO-1 and ZeRO-2 (optimizer.h). Layout: the trained parameters in reverse registration order
// (about the order backward finishes them) are cut into buckets of about bucket_bytes; bucket b
// holds n_b elements, padded to L_b = d * l_b. Rank r owns elements [r l_b, (r+1) l_b) of every
// bucket: its shard is the concatenation of those pieces, S = sum_b l_b elements, and it keeps the
// AdamW moments (and the gradient, under ZeRO-2; the fp32 master weights, with bf16 weights) of
// its shard only. Collectives go bucket by bucket, in index order on every rank, so the ranks'
// calls match.
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
  at::Tensor grads;              ///< ZeRO-1: the flat fp32 gradient buffer [L_b]
  at::Tensor arriving;           ///< ZeRO-2: this backward's gradients as they arrive [L_b]
  size_t pending = 0;            ///< ZeRO-2: gradients still to arrive in this backward
  /// Where weight decay applies in this rank's piece (matrices, not norms): (start, length).
  std::vector<std::pair<int64_t, int64_t>> decayed;
};

class ShardedAdamW final : public StepOptimizer {
 public:
  ShardedAdamW(std::vector<at::Tensor> params, const OptimSpec& o, DataParallel& dp, int64_t zero,
               int64_t bucket_bytes, bool bf16_weights)
      : params_(std::move(params)),
        o_(o),
        dp_(dp),
        zero_(zero),
        master_(bf16_weights),
        arrived_(params_.size()) {
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
    for (auto& b : buckets_) {
      for (size_t i = 0; i < b.members.size(); ++i) {
        if (params_[b.members[i]].dim() < 2) continue;
        const auto [lo, n] = in_piece(b, b.offsets[i], params_[b.members[i]].numel());
        if (n > 0) b.decayed.emplace_back(lo, n);
      }
    }
    slot_.resize(params_.size());
    for (size_t b = 0; b < buckets_.size(); ++b) {
      for (size_t i = 0; i < buckets_[b].members.size(); ++i)
        slot_[buckets_[b].members[i]] = {b, buckets_[b].offsets[i]};
    }
    torch::NoGradGuard no_grad;
    if (master_) {  // the fp32 masters of this rank's pieces, then the weights become bf16
      p_S_ = torch::empty({shard}, f32);
      for (auto& b : buckets_)
        p_S_.narrow(0, b.shard_offset, b.piece)
            .copy_(gather_params(b).narrow(0, first(b), b.piece));
      for (auto& p : params_) p.set_data(p.detach().to(torch::kBFloat16));
    }
    if (zero_ == 1) {
      for (auto& b : buckets_) b.grads = torch::zeros({b.piece * d}, f32);
    } else {
      g_S_ = torch::zeros({shard}, f32);
    }
    if (zero_ == 1 && !master_) {  // autograd accumulates straight into the buffers
      for (auto& b : buckets_) {
        for (size_t i = 0; i < b.members.size(); ++i) {
          at::Tensor& p = params_[b.members[i]];
          p.mutable_grad() = b.grads.narrow(0, b.offsets[i], p.numel()).view(p.sizes());
        }
      }
    } else {  // bf16 gradients, or ZeRO-2: each parameter's gradient taken as it is computed
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
    std::lock_guard<std::mutex> lock(mu_);
    if (zero_ == 1) return drop_grads();
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
      // The fp32 values of this rank's piece: its masters, or the weights themselves.
      at::Tensor flat, p;
      if (master_) {
        p = p_S_.narrow(0, b.shard_offset, b.piece);
        flat = torch::empty({b.piece * d}, m_S_.options());
      } else {
        flat = gather_params(b);
        p = flat.narrow(0, first(b), b.piece).clone();
      }
      auto g = g_S.narrow(0, b.shard_offset, b.piece);
      auto m = m_S_.narrow(0, b.shard_offset, b.piece);
      auto v = v_S_.narrow(0, b.shard_offset, b.piece);
      // AdamW as LibTorch's fused kernel computes it: decoupled decay, then the moment update.
      for (const auto& [lo, n] : b.decayed) p.narrow(0, lo, n).mul_(1 - lr * o_.weight_decay);
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
        out.push_back({b.members[i], lo, m, mine(b, b.offsets[i], n, v_S_),
                       master_ ? mine(b, b.offsets[i], n, p_S_) : at::Tensor(), step_});
      }
    }
    return out;
  }

  void load(const MomentSource& source) override {
    torch::NoGradGuard no_grad;
    if (!master_) restore_master_weights(params_, source);
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
        if (!master_) continue;
        const at::Tensor master = source.read(k, 2, lo, m.numel());  // else: the loaded weights
        if (master.defined()) mine(b, b.offsets[i], n, p_S_).copy_(master);
      }
    }
  }

  int64_t state_bytes() const override { return (master_ ? 3 : 2) * m_S_.numel() * 4; }

 private:
  // The first element of this rank's piece of bucket `b`, in the bucket.
  int64_t first(const Bucket& b) const { return dp_.rank() * b.piece; }

  // This rank's part of the bucket range [offset, offset + n): (start in the piece, length >= 0).
  std::pair<int64_t, int64_t> in_piece(const Bucket& b, int64_t offset, int64_t n) const {
    const int64_t lo = std::max(offset, first(b));
    const int64_t hi = std::min(offset + n, first(b) + b.piece);
    return {lo - first(b), std::max<int64_t>(0, hi - lo)};
  }

  // The same part as a view of a shard tensor (m_S_, v_S_, p_S_).
  at::Tensor mine(const Bucket& b, int64_t offset, int64_t n, const at::Tensor& shard_S) const {
    const auto [lo, len] = in_piece(b, offset, n);
    return shard_S.narrow(0, len > 0 ? b.shard_offset + lo : 0, len);
  }

  // The first element of the parameter at `offset` in the bucket that this rank holds, counted
  // from the parameter's start.
  int64_t first_mine(const Bucket& b, int64_t offset) const {
    return std::max(offset, first(b)) - offset;
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
    if (zero_ == 1) {  // bf16 weights: summed into the fp32 buffer, every micro-batch
      torch::NoGradGuard no_grad;
      const auto [bi, offset] = slot_[k];
      buckets_[bi].grads.narrow(0, offset, g.numel()).add_(g.reshape({-1}));
      finished_.push_back(k);
      return;
    }
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
  bool master_;  ///< bf16 weights, fp32 masters p_S_
  std::vector<Bucket> buckets_;
  at::Tensor m_S_, v_S_, g_S_, p_S_;
  int64_t step_ = 0;
  std::vector<std::pair<size_t, int64_t>> slot_;  ///< per parameter, bucket and offset
  std::vector<char> arrived_;
  std::vector<size_t> finished_;
  size_t next_launch_ = 0;
  std::mutex mu_;
};

}  // namespace

std::unique_ptr<StepOptimizer> make_sharded_adamw(const std::vector<at::Tensor>& params,
                                                  const OptimSpec& o, DataParallel& dp,
                                                  int64_t zero, int64_t bucket_bytes,
                                                  bool bf16_weights) {
  if (zero != 1 && zero != 2) throw StageError("train.zero must be 0, 1 or 2");
  return std::make_unique<ShardedAdamW>(params, o, dp, zero, bucket_bytes, bf16_weights);
}

}  // namespace upcycle::stages
