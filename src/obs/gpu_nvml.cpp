// GpuProvider over NVML, the NVIDIA driver's management library, opened with dlopen.
//
// No nvml.h: it comes with the CUDA toolkit, which CPU builds do not have. The few types and
// signatures used here are declared below as the NVML API reference documents them; they have
// been stable ABI since the _v2 entry points (driver 325+).

#include <dlfcn.h>

#include <array>
#include <stdexcept>
#include <string>

#include "talkserve/obs/gpu_monitor.hpp"

namespace talkserve::obs {

namespace {

using nvmlReturn_t = int;  // an enum in nvml.h; 0 is NVML_SUCCESS
using nvmlDevice_t = struct NvmlDeviceOpaque*;
constexpr nvmlReturn_t kNvmlSuccess = 0;
constexpr int kNvmlTemperatureGpu = 0;        // NVML_TEMPERATURE_GPU
constexpr unsigned kNvmlDeviceNameSize = 96;  // NVML_DEVICE_NAME_V2_BUFFER_SIZE

struct NvmlMemory {  // nvmlMemory_t
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
struct NvmlUtilization {  // nvmlUtilization_t, percentages over the last sample period
  unsigned int gpu;
  unsigned int memory;
};

struct NvmlApi {
  nvmlReturn_t (*init)();
  nvmlReturn_t (*shutdown)();
  nvmlReturn_t (*device_count)(unsigned int*);
  nvmlReturn_t (*device_by_index)(unsigned int, nvmlDevice_t*);
  nvmlReturn_t (*memory_info)(nvmlDevice_t, NvmlMemory*);
  nvmlReturn_t (*utilization)(nvmlDevice_t, NvmlUtilization*);
  nvmlReturn_t (*temperature)(nvmlDevice_t, int, unsigned int*);
  nvmlReturn_t (*name)(nvmlDevice_t, char*, unsigned int);
  const char* (*error_string)(nvmlReturn_t);
};

class NvmlProvider final : public GpuProvider {
 public:
  NvmlProvider(void* handle, NvmlApi api) : handle_(handle), api_(api) {}
  ~NvmlProvider() override {
    api_.shutdown();
    dlclose(handle_);
  }

  std::string description() const override {
    unsigned count = 0;
    if (api_.device_count(&count) != kNvmlSuccess) return "NVML";
    return "NVML, " + std::to_string(count) + (count == 1 ? " GPU" : " GPUs");
  }

  std::vector<GpuSample> sample() override {
    unsigned count = 0;
    if (nvmlReturn_t rc = api_.device_count(&count); rc != kNvmlSuccess) {
      throw std::runtime_error(std::string("nvmlDeviceGetCount_v2: ") + api_.error_string(rc));
    }
    std::vector<GpuSample> out;
    out.reserve(count);
    for (unsigned i = 0; i < count; ++i) {
      GpuSample s;
      s.index = i;
      nvmlDevice_t dev = nullptr;
      // A GPU that cannot be opened (lost, no permission) is left out of this sample; its
      // gauges keep their last values and the next sample tries again.
      if (api_.device_by_index(i, &dev) != kNvmlSuccess) continue;
      std::array<char, kNvmlDeviceNameSize> name{};
      if (api_.name(dev, name.data(), kNvmlDeviceNameSize) == kNvmlSuccess) {
        s.name = name.data();
      }
      // Each reading on its own: consumer boards report no utilisation, some no temperature.
      NvmlMemory mem{};
      if (api_.memory_info(dev, &mem) == kNvmlSuccess) {
        s.memory_used_bytes = mem.used;
        s.memory_total_bytes = mem.total;
      }
      NvmlUtilization util{};
      if (api_.utilization(dev, &util) == kNvmlSuccess) s.utilization = util.gpu / 100.0;
      unsigned temp = 0;
      if (api_.temperature(dev, kNvmlTemperatureGpu, &temp) == kNvmlSuccess) {
        s.temperature_c = temp;
      }
      out.push_back(std::move(s));
    }
    return out;
  }

 private:
  void* handle_;
  NvmlApi api_;
};

template <typename Fn>
bool bind(void* handle, const char* symbol, Fn& out, std::string* why) {
  void* p = dlsym(handle, symbol);
  if (!p) {
    if (why) *why = std::string("no symbol ") + symbol;
    return false;
  }
  out = reinterpret_cast<Fn>(p);
  return true;
}

}  // namespace

std::unique_ptr<GpuProvider> open_nvml_provider(const std::string& library,
                                                std::string* why_absent) {
  // RTLD_LOCAL: NVML's symbols must not satisfy anybody else's lookups.
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    if (why_absent) {
      const char* err = dlerror();
      *why_absent = err ? err : library + ": cannot be loaded";
    }
    return nullptr;
  }
  NvmlApi api{};
  std::string why;
  const bool bound = bind(handle, "nvmlInit_v2", api.init, &why) &&
                     bind(handle, "nvmlShutdown", api.shutdown, &why) &&
                     bind(handle, "nvmlDeviceGetCount_v2", api.device_count, &why) &&
                     bind(handle, "nvmlDeviceGetHandleByIndex_v2", api.device_by_index, &why) &&
                     bind(handle, "nvmlDeviceGetMemoryInfo", api.memory_info, &why) &&
                     bind(handle, "nvmlDeviceGetUtilizationRates", api.utilization, &why) &&
                     bind(handle, "nvmlDeviceGetTemperature", api.temperature, &why) &&
                     bind(handle, "nvmlDeviceGetName", api.name, &why) &&
                     bind(handle, "nvmlErrorString", api.error_string, &why);
  if (!bound) {
    if (why_absent) *why_absent = library + ": " + why;
    dlclose(handle);
    return nullptr;
  }
  // Fails when the library is present but the kernel driver is not loaded (a container image
  // with the user-space driver on a node without a GPU, for instance).
  if (nvmlReturn_t rc = api.init(); rc != kNvmlSuccess) {
    if (why_absent) *why_absent = std::string("nvmlInit_v2: ") + api.error_string(rc);
    dlclose(handle);
    return nullptr;
  }
  return std::make_unique<NvmlProvider>(handle, api);
}

}  // namespace talkserve::obs
