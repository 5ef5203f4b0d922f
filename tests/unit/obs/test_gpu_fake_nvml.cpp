// A stand-in for libnvidia-ml.so.1, built as a shared library so the tests exercise the real
// dlopen/dlsym path of open_nvml_provider() on machines without an NVIDIA driver. It exports
// the NVML entry points the provider binds, with the C ABI NVML documents, and answers with
// fixed readings:
//   GPU 0 "Fake GPU A": 4 GiB of 16 GiB used, 37 % busy, 55 C
//   GPU 1 "Fake GPU B": 1 GiB of 8 GiB used, no utilisation reading (NOT_SUPPORTED), 41 C
// A second build of this file with TALKSERVE_FAKE_NVML_FAIL_INIT fails nvmlInit_v2 the way a
// node with the user-space library but no kernel driver does.

#include <cstring>

namespace {

struct Device {
  const char* name;
  unsigned long long total, used;
  int utilization;  // < 0: not supported
  unsigned temperature;
};
const Device kDevices[] = {
    {"Fake GPU A", 16ull << 30, 4ull << 30, 37, 55},
    {"Fake GPU B", 8ull << 30, 1ull << 30, -1, 41},
};
constexpr int kSuccess = 0, kUninitialized = 1, kInvalidArgument = 2, kNotSupported = 3,
              kDriverNotLoaded = 9;
int init_count = 0;

const Device* device(void* handle) {
  for (const auto& d : kDevices) {
    if (handle == &d) return &d;
  }
  return nullptr;
}

}  // namespace

extern "C" {

struct FakeMemory {
  unsigned long long total, free, used;
};
struct FakeUtilization {
  unsigned gpu, memory;
};

__attribute__((visibility("default"))) int nvmlInit_v2() {
#ifdef TALKSERVE_FAKE_NVML_FAIL_INIT
  return kDriverNotLoaded;
#else
  ++init_count;
  return kSuccess;
#endif
}
__attribute__((visibility("default"))) int nvmlShutdown() {
  if (init_count == 0) return kUninitialized;
  --init_count;
  return kSuccess;
}
__attribute__((visibility("default"))) int nvmlDeviceGetCount_v2(unsigned* count) {
  if (init_count == 0) return kUninitialized;
  *count = sizeof(kDevices) / sizeof(kDevices[0]);
  return kSuccess;
}
__attribute__((visibility("default"))) int nvmlDeviceGetHandleByIndex_v2(unsigned i, void** out) {
  if (i >= sizeof(kDevices) / sizeof(kDevices[0])) return kInvalidArgument;
  *out = const_cast<Device*>(&kDevices[i]);
  return kSuccess;
}
__attribute__((visibility("default"))) int nvmlDeviceGetMemoryInfo(void* h, FakeMemory* m) {
  const Device* d = device(h);
  if (!d) return kInvalidArgument;
  m->total = d->total;
  m->used = d->used;
  m->free = d->total - d->used;
  return kSuccess;
}
__attribute__((visibility("default"))) int nvmlDeviceGetUtilizationRates(void* h,
                                                                         FakeUtilization* u) {
  const Device* d = device(h);
  if (!d) return kInvalidArgument;
  if (d->utilization < 0) return kNotSupported;
  u->gpu = static_cast<unsigned>(d->utilization);
  u->memory = 0;
  return kSuccess;
}
__attribute__((visibility("default"))) int nvmlDeviceGetTemperature(void* h, int sensor,
                                                                    unsigned* t) {
  const Device* d = device(h);
  if (!d || sensor != 0) return kInvalidArgument;
  *t = d->temperature;
  return kSuccess;
}
__attribute__((visibility("default"))) int nvmlDeviceGetName(void* h, char* name, unsigned len) {
  const Device* d = device(h);
  if (!d) return kInvalidArgument;
  if (std::strlen(d->name) + 1 > len) return 7;  // NVML_ERROR_INSUFFICIENT_SIZE
  std::strcpy(name, d->name);
  return kSuccess;
}
__attribute__((visibility("default"))) const char* nvmlErrorString(int rc) {
  return rc == kDriverNotLoaded ? "Driver Not Loaded" : "Unknown Error";
}
}
