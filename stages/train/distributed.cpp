#include "stages/train/distributed.h"

#include <torch/torch.h>

#include <chrono>
#include <cstdlib>

#include "core/error.h"

#ifdef UPCYCLE_HAVE_GLOO
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
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < 0 || x > 1000000) {
    throw StageError(std::string("environment variable ") + name + "='" + v + "' is not a non-negative integer");
  }
  return static_cast<int>(x);
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
  e.master_port = env_int("MASTER_PORT", e.master_port);
  if (e.world_size < 1) throw StageError("WORLD_SIZE must be >= 1");
  if (e.rank >= e.world_size) {
    throw StageError("rank " + std::to_string(e.rank) + " is not below the world size " + std::to_string(e.world_size));
  }
  if (e.master_port < 1 || e.master_port > 65535) throw StageError("MASTER_PORT must be in [1, 65535]");
  return e;
}

#ifdef UPCYCLE_HAVE_GLOO

bool distributed_available() { return true; }

namespace {

// The interface this rank's Gloo binds: GLOO_SOCKET_IFNAME when set; loopback when the rendezvous is
// on loopback (every rank on this machine); otherwise this node's own address, not MASTER_ADDR's,
// which no other node could bind.
std::shared_ptr<::gloo::transport::Device> gloo_device(const std::string& master_addr) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname) {
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  }
  if (master_addr == "localhost" || master_addr.rfind("127.", 0) == 0 || master_addr == "::1") {
    return c10d::ProcessGroupGloo::createDeviceForHostname(master_addr);
  }
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

}  // namespace

struct DataParallel::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> pg;
  at::Device device{at::kCPU};  ///< where collectives run: CPU for Gloo, the GPU for NCCL

  void all_reduce(at::Tensor& t, c10d::ReduceOp op) {
    std::vector<at::Tensor> v{t};
    c10d::AllreduceOptions o;
    o.reduceOp = op;
    pg->allreduce(v, o)->wait();
  }
};

DataParallel::DataParallel(const DistEnv& env, const std::string& device, int timeout_s) : env_(env) {
  if (env.world_size == 1) return;
  try {
    impl_ = std::make_unique<Impl>();
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(env.master_port);
    so.isServer = env.rank == 0;
    so.numWorkers = env.world_size;
    so.timeout = std::chrono::seconds(timeout_s);
    impl_->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
#ifdef UPCYCLE_HAVE_NCCL
    if (const at::Device dev(device); dev.is_cuda()) {
      c10::cuda::set_device(dev.index());
      auto nccl = c10d::ProcessGroupNCCL::Options::create();
      nccl->timeout = std::chrono::seconds(timeout_s);
      impl_->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, env.rank, env.world_size, nccl);
      impl_->device = dev;
      return;
    }
#endif
    auto opts = c10d::ProcessGroupGloo::Options::create();
    opts->timeout = std::chrono::seconds(timeout_s);
    opts->devices.push_back(gloo_device(env.master_addr));
    impl_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, env.rank, env.world_size, opts);
  } catch (const std::exception& e) {
    throw StageError("data parallel rendezvous at " + env.master_addr + ":" + std::to_string(env.master_port) +
                     " (rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size) +
                     ") failed: " + e.what());
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
  for (const auto& g : grads) flat_parts.push_back(g.detach().to(impl_->device, torch::kFloat32).reshape({-1}));
  at::Tensor flat = torch::cat(flat_parts);
  impl_->all_reduce(flat, c10d::ReduceOp::SUM);
  flat.div_(static_cast<double>(env_.world_size));
  int64_t at = 0;
  for (auto& g : grads) {
    int64_t n = g.numel();
    g.copy_(flat.narrow(0, at, n).view(g.sizes()));
    at += n;
  }
}

double DataParallel::mean(double v) {
  if (!impl_) return v;
  at::Tensor t = torch::tensor({v}, torch::kFloat64).to(impl_->device);
  impl_->all_reduce(t, c10d::ReduceOp::SUM);
  return t.item<double>() / env_.world_size;
}

double DataParallel::max(double v) {
  if (!impl_) return v;
  at::Tensor t = torch::tensor({v}, torch::kFloat64).to(impl_->device);
  impl_->all_reduce(t, c10d::ReduceOp::MAX);
  return t.item<double>();
}

#else  // no Gloo in this build

bool distributed_available() { return false; }
struct DataParallel::Impl {};

DataParallel::DataParallel(const DistEnv& env, const std::string&, int) : env_(env) {
  if (env.world_size > 1) {
    throw StageError("WORLD_SIZE is " + std::to_string(env.world_size) +
                     " but this build has no c10d Gloo backend (install libgloo-dev and rebuild)");
  }
}
void DataParallel::average_gradients(const std::vector<at::Tensor>&) {}
double DataParallel::mean(double v) { return v; }
double DataParallel::max(double v) { return v; }

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
