#include "llm/model/cpu_caching_allocator.hpp"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace talkserve::llm::detail {
namespace {

constexpr std::size_t kAlignment = 64;             // as c10's own CPU allocator
constexpr std::size_t kMinCached = 256 * 1024;     // smaller blocks: malloc's bins are fast
constexpr std::size_t kPage = 4096;

class CachingCpuAllocator final : public c10::Allocator {
 public:
  explicit CachingCpuAllocator(std::size_t cap) : cap_(cap) {}

  c10::DataPtr allocate(std::size_t n) const override {
    void* p = take(n);
    return {p, p, &release, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  std::size_t cap() const { return cap_; }
  void trim() const {
    std::unordered_map<std::size_t, std::vector<void*>> blocks;
    {
      std::lock_guard lock(mutex_);
      blocks.swap(free_);
      cached_ = 0;
    }
    for (auto& [size, list] : blocks) {
      for (void* p : list) std::free(p);
    }
  }
  std::size_t cached() const {
    std::lock_guard lock(mutex_);
    return cached_;
  }

  static CachingCpuAllocator* instance;

 private:
  static std::size_t rounded(std::size_t n) { return n < kMinCached ? n : (n + kPage - 1) / kPage * kPage; }

  void* take(std::size_t n) const {
    if (n == 0) return nullptr;
    const std::size_t size = rounded(n);
    if (size >= kMinCached) {
      std::lock_guard lock(mutex_);
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_ -= size;
        live_[p] = size;
        return p;
      }
    }
    void* p = nullptr;
    if (posix_memalign(&p, kAlignment, size) != 0 || p == nullptr) throw std::bad_alloc();
    if (size >= kMinCached) {
      std::lock_guard lock(mutex_);
      live_[p] = size;
    }
    return p;
  }

  void give_back(void* p) const {
    if (p == nullptr) return;
    {
      std::lock_guard lock(mutex_);
      auto it = live_.find(p);
      if (it != live_.end()) {
        const std::size_t size = it->second;
        live_.erase(it);
        if (cached_ + size <= cap_) {
          free_[size].push_back(p);
          cached_ += size;
          return;
        }
      }
    }
    std::free(p);
  }

  static void release(void* p) { instance->give_back(p); }

  const std::size_t cap_;
  mutable std::mutex mutex_;
  mutable std::unordered_map<std::size_t, std::vector<void*>> free_;  // by rounded size
  mutable std::unordered_map<void*, std::size_t> live_;               // cached-size blocks in use
  mutable std::size_t cached_ = 0;
};

CachingCpuAllocator* CachingCpuAllocator::instance = nullptr;

}  // namespace

void install_cpu_caching_allocator(std::size_t max_cached_bytes) {
  static std::once_flag once;
  std::call_once(once, [max_cached_bytes] {
    // Never destroyed: tensors may be freed during static destruction.
    CachingCpuAllocator::instance = new CachingCpuAllocator(max_cached_bytes);
    c10::SetCPUAllocator(CachingCpuAllocator::instance, /*priority=*/1);
  });
}

std::size_t cpu_caching_allocator_cached_bytes() {
  return CachingCpuAllocator::instance != nullptr ? CachingCpuAllocator::instance->cached() : 0;
}

void cpu_caching_allocator_trim() {
  if (CachingCpuAllocator::instance != nullptr) CachingCpuAllocator::instance->trim();
}

std::size_t cpu_caching_allocator_cap() {
  return CachingCpuAllocator::instance != nullptr ? CachingCpuAllocator::instance->cap() : 0;
}

}  // namespace talkserve::llm::detail
