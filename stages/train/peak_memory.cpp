#include "stages/train/peak_memory.h"

#include <c10/core/CPUAllocator.h>
#include <torch/torch.h>

#include <atomic>
#include <mutex>
#include <unordered_map>

#ifdef UPCYCLE_HAVE_CUDA_ALLOC
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace upcycle::stages {
namespace {

std::atomic<int64_t> g_in_use{0};
std::atomic<int64_t> g_peak{0};

// Wraps the CPU allocator that was current: every allocation is counted until its storage is
// freed. The wrapped DataPtr is kept in a table by address, so the DataPtr handed out is a simple
// one (context == data, as raw_allocate requires) and the original deleter still frees the memory.
class ReportingAllocator final : public c10::Allocator {
 public:
  explicit ReportingAllocator(c10::Allocator* inner) : inner_(inner) {}

  c10::DataPtr allocate(size_t n) override {
    c10::DataPtr inner = inner_->allocate(n);
    void* data = inner.get();
    const c10::Device device = inner.device();
    if (!data) return inner;  // zero bytes: nothing to count
    {
      std::lock_guard<std::mutex> lock(mu());
      live().emplace(data, Held{std::move(inner), static_cast<int64_t>(n)});
    }
    const int64_t now = g_in_use.fetch_add(int64_t(n)) + int64_t(n);
    int64_t peak = g_peak.load();
    while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {
    }
    return {data, data, &release, device};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

 private:
  struct Held {
    c10::DataPtr inner;
    int64_t bytes;
  };
  static std::mutex& mu() {
    static std::mutex m;
    return m;
  }
  static std::unordered_map<void*, Held>& live() {
    static auto* m = new std::unordered_map<void*, Held>();  // outlives static destructors
    return *m;
  }
  static void release(void* data) {
    Held held;
    {
      std::lock_guard<std::mutex> lock(mu());
      auto it = live().find(data);
      if (it == live().end()) return;
      held = std::move(it->second);
      live().erase(it);
    }
    g_in_use.fetch_sub(held.bytes);
  }  // held.inner frees the memory here
  c10::Allocator* inner_;
};

bool is_cuda(const std::string& device) { return device.rfind("cuda", 0) == 0; }

}  // namespace

void track_cpu_memory() {
  static std::once_flag once;
  std::call_once(once, [] {
    static ReportingAllocator reporting(c10::GetCPUAllocator());
    c10::SetCPUAllocator(&reporting, /*priority=*/std::numeric_limits<uint8_t>::max());
  });
}

int64_t memory_in_use(const std::string& device) {
#ifdef UPCYCLE_HAVE_CUDA_ALLOC
  if (is_cuda(device)) {
    const auto s = c10::cuda::CUDACachingAllocator::getDeviceStats(at::Device(device).index());
    return s.allocated_bytes[0].current;
  }
#endif
  return is_cuda(device) ? 0 : g_in_use.load();
}

int64_t memory_peak(const std::string& device) {
#ifdef UPCYCLE_HAVE_CUDA_ALLOC
  if (is_cuda(device)) {
    const auto s = c10::cuda::CUDACachingAllocator::getDeviceStats(at::Device(device).index());
    return s.allocated_bytes[0].peak;
  }
#endif
  return is_cuda(device) ? 0 : g_peak.load();
}

void reset_memory_peak(const std::string& device) {
#ifdef UPCYCLE_HAVE_CUDA_ALLOC
  if (is_cuda(device)) {
    c10::cuda::CUDACachingAllocator::resetPeakStats(at::Device(device).index());
    return;
  }
#endif
  if (!is_cuda(device)) g_peak.store(g_in_use.load());
}

}  // namespace upcycle::stages
