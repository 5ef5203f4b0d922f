// Wav2LipModel: the plain-C++ face of the torch network (wav2lip_network.cpp). c10::Error stops
// here and leaves as std::runtime_error.

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <openssl/evp.h>
#include <ATen/core/ivalue.h>  // first: clang (C++20) needs c10::IValue complete in libtorch 1.13's torch.h
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>

#include "avatar/wav2lip/wav2lip_network.hpp"
#include "talkserve/avatar/wav2lip.hpp"

// Debian's libtorch runs its GEMMs through OpenBLAS, whose pool ignores at::set_num_threads
// (see llm/model/model_loader.cpp). Weak: the build does not depend on the BLAS.
extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace talkserve::avatar {

struct Wav2LipModel::Impl {
  std::string path;
  std::string fingerprint;
  torch::Device device = torch::kCPU;
  detail::Wav2LipWeights weights;
};

namespace {

constexpr std::size_t kMelValues = static_cast<std::size_t>(kWav2LipMelBands) * kWav2LipMelStep;
constexpr std::size_t kFaceValues = 6ull * kWav2LipFaceSize * kWav2LipFaceSize;
constexpr std::size_t kOutValues = 3ull * kWav2LipFaceSize * kWav2LipFaceSize;

torch::Device parse_device(const std::string& device) {
  if (device == "cpu") return torch::kCPU;
  int index = 0;
  if (device.rfind("cuda:", 0) == 0 && device.size() > 5 &&
      device.find_first_not_of("0123456789", 5) == std::string::npos && device.size() < 9) {
    index = std::stoi(device.substr(5));
  } else if (device != "cuda") {
    throw std::invalid_argument("wav2lip.device must be cpu, cuda or cuda:N, got \"" + device + "\"");
  }
  if (!torch::cuda::is_available() || index >= static_cast<int>(torch::cuda::device_count())) {
    throw std::runtime_error("wav2lip: device " + device + " requested but this libtorch has no such CUDA device");
  }
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

// First 16 hex digits of the file's sha256: the weights part of the renderer's version().
std::string file_fingerprint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("wav2lip: cannot open weights file " + path);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("wav2lip: sha256 unavailable");
  }
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (in.gcount() > 0) EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) throw std::runtime_error("wav2lip: read error in " + path);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &length);
  std::string hex;
  char two[3];
  for (unsigned int i = 0; i < 8 && i < length; ++i) {
    std::snprintf(two, sizeof two, "%02x", digest[i]);
    hex += two;
  }
  return hex;
}

}  // namespace

Wav2LipModel::Wav2LipModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Wav2LipModel::~Wav2LipModel() = default;

std::shared_ptr<const Wav2LipModel> Wav2LipModel::load(const std::string& path, const std::string& device,
                                                       int threads) {
  std::error_code ec;
  if (path.empty()) throw std::invalid_argument("wav2lip.weights is empty");
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw std::runtime_error("wav2lip: weights file " + path + " does not exist");
  }
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->device = parse_device(device);
  if (threads > 0) {
    at::set_num_threads(threads);
    if (openblas_set_num_threads != nullptr) openblas_set_num_threads(threads);
  }
  try {
    c10::InferenceMode guard;
    impl->weights = detail::load_wav2lip_weights(path, impl->device);
  } catch (const c10::Error& e) {
    throw std::runtime_error("wav2lip: loading " + path + ": " + e.what_without_backtrace());
  }
  impl->fingerprint = file_fingerprint(path);
  return std::make_shared<const Wav2LipModel>(std::move(impl));
}

std::vector<float> Wav2LipModel::forward(std::span<const float> mels, std::span<const float> faces,
                                         std::size_t n) const {
  if (mels.size() != n * kMelValues || faces.size() != n * kFaceValues) {
    throw std::runtime_error("wav2lip: forward of " + std::to_string(n) + " frames needs " +
                             std::to_string(n * kMelValues) + " mel and " + std::to_string(n * kFaceValues) +
                             " face values, got " + std::to_string(mels.size()) + " and " +
                             std::to_string(faces.size()));
  }
  if (n == 0) return {};
  try {
    c10::InferenceMode guard;
    const auto B = static_cast<std::int64_t>(n);
    // from_blob does not copy; the clone onto the device does (the spans are const).
    torch::Tensor m = torch::from_blob(const_cast<float*>(mels.data()), {B, 1, kWav2LipMelBands, kWav2LipMelStep})
                          .to(impl_->device, /*non_blocking=*/false, /*copy=*/true);
    torch::Tensor f = torch::from_blob(const_cast<float*>(faces.data()), {B, 6, kWav2LipFaceSize, kWav2LipFaceSize})
                          .to(impl_->device, false, true);
    torch::Tensor out = detail::wav2lip_forward(impl_->weights, m, f).to(torch::kCPU).contiguous();
    const float* p = out.data_ptr<float>();
    return std::vector<float>(p, p + n * kOutValues);
  } catch (const c10::Error& e) {
    throw std::runtime_error("wav2lip " + impl_->path + ": inference failed: " + e.what_without_backtrace());
  } catch (const std::bad_alloc&) {
    throw std::runtime_error("wav2lip " + impl_->path + ": out of memory for a batch of " + std::to_string(n) +
                             " frames");
  }
}

const std::string& Wav2LipModel::fingerprint() const { return impl_->fingerprint; }
const std::string& Wav2LipModel::path() const { return impl_->path; }

}  // namespace talkserve::avatar
