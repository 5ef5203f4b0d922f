#pragma once
// The device string of a speech model's options ("cpu", "cuda", "cuda:N"): its validation and
// the torch::Device it names. Internal to src/speech/torch.

#include <ATen/core/ivalue.h>  // first: clang (C++20) needs c10::IValue complete in libtorch 1.13's torch.h
#include <torch/torch.h>

#include <string>

#include "talkserve/speech/asr.hpp"

namespace talkserve::speech::detail {

inline bool valid_device_name(const std::string& device) {
  if (device == "cpu" || device == "cuda") return true;
  return device.rfind("cuda:", 0) == 0 && device.size() > 5 && device.size() < 9 &&
         device.find_first_not_of("0123456789", 5) == std::string::npos;
}

// Throws AsrError ("<model>: device ... requested but ...") when this libtorch has no such
// CUDA device. `device` passed valid_device_name().
inline torch::Device parse_device(const std::string& device, const std::string& model) {
  if (device == "cpu") return torch::kCPU;
  int index = 0;
  if (device != "cuda") index = std::stoi(device.substr(5));
  if (!torch::cuda::is_available() || index >= static_cast<int>(torch::cuda::device_count())) {
    throw AsrError(model + ": device " + device + " requested but this libtorch has no such CUDA device");
  }
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

}  // namespace talkserve::speech::detail
