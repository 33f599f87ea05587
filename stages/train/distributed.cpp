#include "stages/train/distributed.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <mutex>

#include "core/error.h"
#include "core/integer.h"

#ifdef UPCYCLE_HAVE_GLOO
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#ifdef UPCYCLE_HAVE_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace upcycle::stages {
namespace {

// The integer value of environment variable `name`, or `fallback` when unset.
int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  try {
    return static_cast<int>(core::parse_integer(v, {0, 1000000}, false));
  } catch (const std::logic_error& e) {
    throw StageError(std::string("environment variable ") + name + ": " + e.what());
  }
}

}  // namespace

DistEnv dist_env_from_environment() {
  DistEnv e;
  if (std::getenv("WORLD_SIZE")) {
    e.world_size = env_int("WORLD_SIZE", 1);
    e.rank = env_int("RANK", 0);
    e.local_rank = env_int("LOCAL_RANK", e.rank);
  } else if (std::getenv("SLURM_NTASKS") && std::getenv("SLURM_PROCID")) {
    e.world_size = env_int("SLURM_NTASKS", 1);
    e.rank = env_int("SLURM_PROCID", 0);
    e.local_rank = env_int("SLURM_LOCALID", 0);
  }
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) e.master_addr = a;
  if (std::getenv("UPCYCLE_DDP_BUCKET_KB"))
    e.bucket_bytes = int64_t(std::max(1, env_int("UPCYCLE_DDP_BUCKET_KB", 0))) << 10;
  e.master_port = env_int("MASTER_PORT", e.master_port);
  if (e.world_size < 1) throw StageError("WORLD_SIZE must be >= 1");
  if (e.rank >= e.world_size) {
    throw StageError("rank " + std::to_string(e.rank) + " is not below the world size " +
                     std::to_string(e.world_size));
  }
  if (e.master_port < 1 || e.master_port > 65535)
    throw StageError("MASTER_PORT must be in [1, 65535]");
  return e;
}

#ifdef UPCYCLE_HAVE_GLOO

bool distributed_available() { return true; }

namespace {

// Waits for a collective. A peer that died (killed, out of memory, preempted apart from the
// others) makes Gloo or NCCL fail it: that is the message, not an internal error.
void wait_for(const c10::intrusive_ptr<c10d::Work>& work) {
  try {
    work->wait();
  } catch (const std::exception& e) {
    std::string why = e.what();
    why = why.substr(0, why.find('\n'));
    throw StageError("a collective across the data-parallel ranks failed, most likely because " +
                     std::string("another rank died (see its log): ") + why);
  }
}

// The interface this rank's Gloo binds: GLOO_SOCKET_IFNAME when set; loopback when the rendezvous
// is on loopback (every rank on this machine); otherwise this node's own address, not
// MASTER_ADDR's, which no other node could bind.
std::shared_ptr<::gloo::transport::Device> gloo_device(const std::string& master_addr) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname) {
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  }
  if (master_addr == "localhost" || master_addr.rfind("127.", 0) == 0 || master_addr == "::1") {
    return c10d::ProcessGroupGloo::createDeviceForHostname(master_addr);
  }
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

c10::intrusive_ptr<c10d::Backend> make_gloo(const c10::intrusive_ptr<c10d::Store>& store,
                                            const DistEnv& env, int timeout_s) {
  auto opts = c10d::ProcessGroupGloo::Options::create();
  opts->timeout = std::chrono::seconds(timeout_s);
  opts->devices.push_back(gloo_device(env.master_addr));
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world_size, opts);
}

c10::intrusive_ptr<c10d::Work> all_reduce_async(c10d::Backend& pg, at::Tensor& t,
                                                c10d::ReduceOp op) {
  std::vector<at::Tensor> v{t};
  c10d::AllreduceOptions o;
  o.reduceOp = op;
  return pg.allreduce(v, o);
}

// The gradient buckets of overlap_gradients (distributed.h). The parameters' hooks hold it weakly.
struct Buckets {
  struct Bucket {
    std::vector<size_t> members;  ///< indices into params
    at::Tensor flat;              ///< fp32, on the collective's device
    size_t pending = 0;           ///< gradients still to arrive in the armed backward
    c10::intrusive_ptr<c10d::Work> work;
  };
  c10d::Backend* pg = nullptr;
  std::vector<at::Tensor> params;
  std::vector<std::pair<size_t, int64_t>> slot;  ///< per parameter: bucket, offset in its flat
  std::vector<char> arrived;                     ///< per parameter, in the armed backward
  std::vector<Bucket> buckets;
  std::mutex mu;
  bool armed = false;
  size_t next_launch = 0;

  Buckets(c10d::Backend* group, std::vector<at::Tensor> ps, int64_t bucket_bytes,
          const at::Device& device)
      : pg(group), params(std::move(ps)), slot(params.size()), arrived(params.size()) {
    std::vector<int64_t> sizes;
    for (size_t k = params.size(); k-- > 0;) {  // reverse registration order
      if (buckets.empty() || sizes.back() * 4 >= bucket_bytes) {
        buckets.emplace_back();
        sizes.push_back(0);
      }
      slot[k] = {buckets.size() - 1, sizes.back()};
      buckets.back().members.push_back(k);
      sizes.back() += params[k].numel();
    }
    for (size_t b = 0; b < buckets.size(); ++b)
      buckets[b].flat = torch::zeros({sizes[b]}, torch::dtype(torch::kFloat32).device(device));
  }

  at::Tensor slot_of(size_t k) {
    const auto [b, offset] = slot[k];
    return buckets[b].flat.narrow(0, offset, params[k].numel());
  }

  void arm() {
    std::lock_guard<std::mutex> lock(mu);
    armed = true;
    next_launch = 0;
    std::fill(arrived.begin(), arrived.end(), 0);
    for (auto& b : buckets) b.pending = b.members.size();
  }

  // Called by parameter k's hook with this backward's gradient g, before it is accumulated.
  void on_gradient(size_t k, const at::Tensor& g) {
    std::lock_guard<std::mutex> lock(mu);
    if (!armed || arrived[k]) return;
    const at::Tensor& sum = params[k].grad();
    slot_of(k).copy_((sum.defined() ? sum + g : g).reshape({-1}));
    arrived[k] = 1;
    --buckets[slot[k].first].pending;
    launch_ready();
  }

  void launch_ready() {
    while (next_launch < buckets.size() && buckets[next_launch].pending == 0) {
      buckets[next_launch].work =
          all_reduce_async(*pg, buckets[next_launch].flat, c10d::ReduceOp::SUM);
      ++next_launch;
    }
  }

  void finish(int world_size) {
    {
      std::lock_guard<std::mutex> lock(mu);
      for (size_t k = 0; k < params.size();
           ++k) {  // no gradient this backward: the sum so far, or 0
        if (arrived[k]) continue;
        const at::Tensor& sum = params[k].grad();
        sum.defined() ? slot_of(k).copy_(sum.reshape({-1})) : slot_of(k).zero_();
        arrived[k] = 1;
        --buckets[slot[k].first].pending;
      }
      launch_ready();
      armed = false;
    }
    for (auto& b : buckets) {
      wait_for(b.work);
      b.work.reset();
    }
    torch::NoGradGuard no_grad;
    for (size_t k = 0; k < params.size(); ++k) {
      auto mean = slot_of(k).view(params[k].sizes()) / static_cast<double>(world_size);
      if (params[k].grad().defined()) {
        params[k].mutable_grad().copy_(mean);
      } else {
        params[k].mutable_grad() = mean.to(params[k].device(), params[k].scalar_type());
      }
    }
  }
};

}  // namespace

struct DataParallel::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> pg;       ///< gradients: Gloo, or NCCL for CUDA placements
  c10::intrusive_ptr<c10d::Backend> control;  ///< scalars on the CPU (Gloo): pg itself unless NCCL
  at::Device device{at::kCPU};  ///< where gradient collectives run: CPU for Gloo, the GPU for NCCL
  std::shared_ptr<Buckets> buckets;

  // A scalar through the control group, on the host.
  double reduce_scalar(double v, c10d::ReduceOp op) {
    at::Tensor t = torch::tensor({v}, torch::kFloat64);
    wait_for(all_reduce_async(*control, t, op));
    return t.item<double>();
  }
};

DataParallel::DataParallel(const DistEnv& env, const std::string& device, int timeout_s,
                           bool group_of_one)
    : env_(env) {
  if (env.world_size == 1 && !group_of_one) return;
  try {
    impl_ = std::make_unique<Impl>();
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(env.master_port);
    so.isServer = env.rank == 0;
    so.numWorkers = env.world_size;
    so.timeout = std::chrono::seconds(timeout_s);
    impl_->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    impl_->control =
        make_gloo(c10::make_intrusive<c10d::PrefixStore>("control", impl_->store), env, timeout_s);
    impl_->pg = impl_->control;
#ifdef UPCYCLE_HAVE_NCCL
    if (const at::Device dev(device); dev.is_cuda()) {
      c10::cuda::set_device(dev.index());
      auto nccl = c10d::ProcessGroupNCCL::Options::create();
      nccl->timeout = std::chrono::seconds(timeout_s);
      impl_->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(
          c10::make_intrusive<c10d::PrefixStore>("grad", impl_->store), env.rank, env.world_size,
          nccl);
      impl_->device = dev;
    }
#endif
  } catch (const std::exception& e) {
    throw StageError("data parallel rendezvous at " + env.master_addr + ":" +
                     std::to_string(env.master_port) + " (rank " + std::to_string(env.rank) +
                     " of " + std::to_string(env.world_size) + ") failed: " + e.what());
  }
}

void DataParallel::average_gradients(const std::vector<at::Tensor>& params) {
  if (!impl_) return;
  std::vector<at::Tensor> grads;
  for (const auto& p : params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return;
  // One flat fp32 buffer, one collective per step: in host memory for Gloo, on the GPU for NCCL.
  std::vector<at::Tensor> flat_parts;
  for (const auto& g : grads)
    flat_parts.push_back(g.detach().to(impl_->device, torch::kFloat32).reshape({-1}));
  at::Tensor flat = torch::cat(flat_parts);
  wait_for(all_reduce_async(*impl_->pg, flat, c10d::ReduceOp::SUM));
  flat.div_(static_cast<double>(env_.world_size));
  int64_t at = 0;
  for (auto& g : grads) {
    int64_t n = g.numel();
    g.copy_(flat.narrow(0, at, n).view(g.sizes()));
    at += n;
  }
}

void DataParallel::overlap_gradients(const std::vector<at::Tensor>& params) {
  if (!impl_) return;
  std::vector<at::Tensor> trained;
  for (const auto& p : params) {
    if (p.requires_grad()) trained.push_back(p);
  }
  impl_->buckets =
      std::make_shared<Buckets>(impl_->pg.get(), trained, env_.bucket_bytes, impl_->device);
  std::weak_ptr<Buckets> weak = impl_->buckets;
  for (size_t k = 0; k < trained.size(); ++k) {
    trained[k].register_hook([weak, k](const at::Tensor& g) {
      if (auto b = weak.lock()) b->on_gradient(k, g);
    });
  }
}

void DataParallel::arm_gradient_sync() {
  if (impl_ && impl_->buckets) impl_->buckets->arm();
}

void DataParallel::finish_gradients(const std::vector<at::Tensor>& params) {
  if (!impl_) return;
  if (!impl_->buckets) return average_gradients(params);
  impl_->buckets->finish(env_.world_size);
}

int64_t DataParallel::bucket_count() const {
  return impl_ && impl_->buckets ? static_cast<int64_t>(impl_->buckets->buckets.size()) : 0;
}

double DataParallel::mean(double v) {
  if (!impl_) return v;
  return impl_->reduce_scalar(v, c10d::ReduceOp::SUM) / env_.world_size;
}

double DataParallel::max(double v) {
  if (!impl_) return v;
  return impl_->reduce_scalar(v, c10d::ReduceOp::MAX);
}

double DataParallel::sum(double v) {
  if (!impl_) return v;
  return impl_->reduce_scalar(v, c10d::ReduceOp::SUM);
}

void DataParallel::reduce_scatter(at::Tensor& flat, at::Tensor& piece) {
  if (!impl_) {
    piece.copy_(flat);
    return;
  }
  c10d::ReduceScatterOptions o;
  o.reduceOp = c10d::ReduceOp::SUM;
  wait_for(impl_->pg->_reduce_scatter_base(piece, flat, o));
}

void DataParallel::all_gather(at::Tensor& piece, at::Tensor& flat) {
  if (!impl_) {
    flat.copy_(piece);
    return;
  }
  wait_for(impl_->pg->_allgather_base(flat, piece));
}

at::Device DataParallel::collective_device() const {
  return impl_ ? impl_->device : at::Device(at::kCPU);
}

#else  // no Gloo in this build

bool distributed_available() { return false; }
struct DataParallel::Impl {};

DataParallel::DataParallel(const DistEnv& env, const std::string&, int, bool group_of_one)
    : env_(env) {
  if (env.world_size > 1 || group_of_one) {
    throw StageError("WORLD_SIZE is " + std::to_string(env.world_size) +
                     " but this build has no c10d Gloo backend (install libgloo-dev and rebuild)");
  }
}
void DataParallel::average_gradients(const std::vector<at::Tensor>&) {}
void DataParallel::overlap_gradients(const std::vector<at::Tensor>&) {}
void DataParallel::arm_gradient_sync() {}
void DataParallel::finish_gradients(const std::vector<at::Tensor>&) {}
int64_t DataParallel::bucket_count() const { return 0; }
double DataParallel::mean(double v) { return v; }
double DataParallel::max(double v) { return v; }
double DataParallel::sum(double v) { return v; }
void DataParallel::reduce_scatter(at::Tensor& flat, at::Tensor& piece) { piece.copy_(flat); }
void DataParallel::all_gather(at::Tensor& piece, at::Tensor& flat) { flat.copy_(piece); }
at::Device DataParallel::collective_device() const { return at::Device(at::kCPU); }

#endif

DataParallel::~DataParallel() = default;

bool nccl_available() {
#ifdef UPCYCLE_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

}  // namespace upcycle::stages
