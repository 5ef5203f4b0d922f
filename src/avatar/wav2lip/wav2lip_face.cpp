#include "avatar/wav2lip/wav2lip_face.hpp"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace talkserve::avatar::detail {
namespace {

constexpr int kSize = kWav2LipFaceSize;
constexpr std::size_t kPlane = static_cast<std::size_t>(kSize) * kSize;

float smoothstep(float t) {
  t = std::clamp(t, 0.0f, 1.0f);
  return t * t * (3 - 2 * t);
}

Box crop_box(const Avatar& avatar, const Wav2LipOptions& options) {
  const Box& f = avatar.face;
  const media::RgbFrame& p = avatar.portrait;
  if (f.empty()) throw std::invalid_argument("wav2lip: avatar '" + avatar.id + "' has no face box");
  const int pad = static_cast<int>(std::lround(options.face_pad_bottom * f.height));
  const int x1 = std::max(0, f.x), y1 = std::max(0, f.y);
  const int x2 = std::min(p.width, f.x + f.width), y2 = std::min(p.height, f.y + f.height + pad);
  if (x2 - x1 < 2 || y2 - y1 < 2) {
    throw std::invalid_argument("wav2lip: avatar '" + avatar.id + "' has its face box outside the portrait");
  }
  return Box{x1, y1, x2 - x1, y2 - y1};
}

}  // namespace

FaceCrop prepare_face(const Avatar& avatar, const Wav2LipOptions& options) {
  FaceCrop crop;
  crop.box = crop_box(avatar, options);
  const Box& b = crop.box;
  const media::RgbFrame& p = avatar.portrait;
  const cv::Mat portrait(p.height, p.width, CV_8UC3, const_cast<std::uint8_t*>(p.data.data()));
  cv::Mat face;
  cv::resize(portrait(cv::Rect(b.x, b.y, b.width, b.height)), face, cv::Size(kSize, kSize), 0, 0, cv::INTER_LINEAR);

  crop.input.assign(6 * kPlane, 0.0f);
  for (int y = 0; y < kSize; ++y) {
    const std::uint8_t* row = face.ptr<std::uint8_t>(y);
    for (int x = 0; x < kSize; ++x) {
      const std::size_t i = static_cast<std::size_t>(y) * kSize + x;
      for (int c = 0; c < 3; ++c) {
        const float v = row[3 * x + (2 - c)] / 255.0f;  // RGB portrait -> BGR planes
        if (y < kSize / 2) crop.input[c * kPlane + i] = v;  // img_masked[:, 48:] = 0
        crop.input[(3 + c) * kPlane + i] = v;
      }
    }
  }

  // The generated face replaces the portrait below blend_top (the masked half the network
  // fills in), fading in over `feather` of the height and out towards the sides and the bottom
  // so that the crop's edges never show.
  crop.alpha.resize(static_cast<std::size_t>(b.width) * b.height);
  const float feather = std::max(options.feather, 1e-3f);
  for (int y = 0; y < b.height; ++y) {
    const float fy = (y + 0.5f) / b.height;
    const float top = smoothstep((fy - options.blend_top) / feather);
    const float bottom = smoothstep((1.0f - fy) / feather);
    for (int x = 0; x < b.width; ++x) {
      const float fx = (x + 0.5f) / b.width;
      const float side = smoothstep(std::min(fx, 1.0f - fx) / feather);
      crop.alpha[static_cast<std::size_t>(y) * b.width + x] = top * bottom * side;
    }
  }
  return crop;
}

void paste_face(const FaceCrop& crop, std::span<const float> generated, media::RgbFrame& frame) {
  if (generated.size() != 3 * kPlane) throw std::invalid_argument("wav2lip: generated face must be 3 x 96 x 96");
  cv::Mat face(kSize, kSize, CV_8UC3);
  for (int y = 0; y < kSize; ++y) {
    std::uint8_t* row = face.ptr<std::uint8_t>(y);
    for (int x = 0; x < kSize; ++x) {
      const std::size_t i = static_cast<std::size_t>(y) * kSize + x;
      for (int c = 0; c < 3; ++c) {
        // (p * 255.).astype(np.uint8) truncates; the clamp only guards against rounding at 1.
        const float v = std::clamp(generated[(2 - c) * kPlane + i] * 255.0f, 0.0f, 255.0f);
        row[3 * x + c] = static_cast<std::uint8_t>(v);
      }
    }
  }
  const Box& b = crop.box;
  cv::Mat resized;
  cv::resize(face, resized, cv::Size(b.width, b.height), 0, 0, cv::INTER_LINEAR);
  for (int y = 0; y < b.height; ++y) {
    const std::uint8_t* src = resized.ptr<std::uint8_t>(y);
    const float* a = crop.alpha.data() + static_cast<std::size_t>(y) * b.width;
    std::uint8_t* dst = frame.data.data() + (static_cast<std::size_t>(b.y + y) * frame.width + b.x) * 3;
    for (int x = 0; x < b.width; ++x) {
      if (a[x] <= 0.0f) continue;
      for (int c = 0; c < 3; ++c) {
        const float v = a[x] * src[3 * x + c] + (1.0f - a[x]) * dst[3 * x + c];
        dst[3 * x + c] = static_cast<std::uint8_t>(std::lround(v));
      }
    }
  }
}

}  // namespace talkserve::avatar::detail
