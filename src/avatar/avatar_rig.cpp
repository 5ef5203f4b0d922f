#include "avatar/avatar_rig.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include <opencv2/core.hpp>

#include "avatar/face_layout.hpp"

namespace talkserve::avatar {
namespace {

float smoothstep(float edge0, float edge1, float x) {
  const float t = std::clamp((x - edge0) / (edge1 - edge0), 0.0f, 1.0f);
  return t * t * (3 - 2 * t);
}

Box ellipse_bounds(float cx, float cy, float ax, float ay, int width, int height) {
  const int x0 = static_cast<int>(std::floor(cx - ax)), y0 = static_cast<int>(std::floor(cy - ay));
  const int x1 = static_cast<int>(std::ceil(cx + ax)) + 1, y1 = static_cast<int>(std::ceil(cy + ay)) + 1;
  return detail::clip_box(Box{x0, y0, x1 - x0, y1 - y0}, width, height);
}

// Feather weights of an ellipse: 255 inside normalised radius `inner`, smoothly down to exactly
// 0 at radius `outer` (and beyond).
std::vector<std::uint8_t> ellipse_mask(const Box& region, float cx, float cy, float rx, float ry,
                                       float inner, float outer) {
  std::vector<std::uint8_t> mask(static_cast<std::size_t>(region.width) * region.height, 0);
  for (int y = 0; y < region.height; ++y) {
    for (int x = 0; x < region.width; ++x) {
      const float dx = (region.x + x - cx) / rx, dy = (region.y + y - cy) / ry;
      const float r = std::sqrt(dx * dx + dy * dy);
      const float w = 1.0f - smoothstep(inner, outer, r);
      mask[static_cast<std::size_t>(y) * region.width + x] =
          static_cast<std::uint8_t>(std::lround(w * 255.0f));
    }
  }
  return mask;
}

Colour mean_colour(const cv::Mat& rgb, Box box, bool median) {
  box = detail::clip_box(box, rgb.cols, rgb.rows);
  if (box.empty()) return Colour{128, 128, 128};
  std::array<std::vector<float>, 3> values;
  for (int y = box.y; y < box.y + box.height; ++y) {
    const auto* row = rgb.ptr<cv::Vec3b>(y);
    for (int x = box.x; x < box.x + box.width; ++x)
      for (int c = 0; c < 3; ++c) values[c].push_back(row[x][c]);
  }
  Colour out{};
  for (int c = 0; c < 3; ++c) {
    auto& v = values[c];
    if (median) {
      std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
      out[c] = v[v.size() / 2];
    } else {
      double sum = 0;
      for (float f : v) sum += f;
      out[c] = static_cast<float>(sum / v.size());
    }
  }
  return out;
}

MouthRig build_mouth(const cv::Mat& rgb, const Box& m) {
  MouthRig rig;
  rig.centre_x = m.x + m.width / 2.0f;
  rig.half_width = std::max(2.0f, 0.3f * m.width);
  const float hw = rig.half_width;
  auto col = [&](float rel) { return static_cast<int>(std::lround(rig.centre_x + rel * hw)); };
  auto row = [&](float rel) { return static_cast<int>(std::lround(m.y + rel * m.height)); };
  // The lip line: in the middle of the lips, then at both sides for tilt and curvature (a smile
  // curves it up at the corners). Corner offsets are limited so one bad estimate stays harmless.
  const int max_gap = std::max(1, static_cast<int>(std::lround(0.28f * m.height)));  // teeth
  const float centre = detail::find_lip_row(rgb, col(-0.4f), col(0.4f), row(0.1f), row(0.7f), max_gap);
  const int band = std::max(3, static_cast<int>(0.4f * m.height));
  const int mid = static_cast<int>(centre);
  const float left = detail::find_lip_row(rgb, col(-1.0f), col(-0.45f), mid - band, mid + band + 1, max_gap);
  const float right = detail::find_lip_row(rgb, col(0.45f), col(1.0f), mid - band, mid + band + 1, max_gap);
  const float side_dx = 0.72f * hw;
  const float max_dev = 0.12f * m.height;
  rig.lip_y = centre;
  rig.lip_tilt = std::clamp((right - left) / (2 * side_dx), -max_dev / side_dx, max_dev / side_dx);
  rig.lip_curve = std::clamp(((left + right) / 2 - centre) / (side_dx * side_dx),
                             -max_dev / (side_dx * side_dx), max_dev / (side_dx * side_dx));

  // The work ellipse around the mouth box; the feathered rim starts at 70% of its radius.
  const float cx = rig.centre_x, cy = m.y + m.height / 2.0f;
  const float ax = 0.55f * m.width, ay = 0.725f * m.height;
  rig.region = ellipse_bounds(cx, cy, ax, ay, rgb.cols, rgb.rows);
  rig.mask = ellipse_mask(rig.region, cx, cy, ax, ay, 0.7f, 1.0f);
  rig.top = cy - ay;
  rig.bottom = cy + ay;
  rig.max_open = std::min(0.7f * hw, 0.5f * (rig.bottom - rig.lip_y));

  const Colour lips = mean_colour(rgb, Box{col(-0.5f), static_cast<int>(centre) - band / 2,
                                           static_cast<int>(hw), std::max(1, band)}, false);
  for (int c = 0; c < 3; ++c) rig.inner[c] = 0.32f * lips[c];
  const float luma = 0.299f * lips[0] + 0.587f * lips[1] + 0.114f * lips[2];
  const float light = std::clamp(luma / 130.0f, 0.8f, 1.05f);
  rig.teeth = Colour{228 * light, 222 * light, 205 * light};
  return rig;
}

EyeRig build_eye(const cv::Mat& rgb, const Box& e) {
  EyeRig rig;
  rig.centre_x = e.x + e.width / 2.0f;
  rig.centre_y = e.y + 0.52f * e.height;
  rig.radius_x = std::max(2.0f, 0.36f * e.width);
  rig.radius_y = std::max(1.5f, 0.2f * e.height);
  constexpr float kOuter = 1.35f;
  rig.region = ellipse_bounds(rig.centre_x, rig.centre_y, kOuter * rig.radius_x,
                              kOuter * rig.radius_y, rgb.cols, rgb.rows);
  rig.mask = ellipse_mask(rig.region, rig.centre_x, rig.centre_y, rig.radius_x, rig.radius_y, 1.0f,
                          kOuter);
  // Lid skin: the median colour of a strip just above the eye opening (median, so an eyebrow
  // or a glasses frame crossing the strip does not tint it).
  const Box strip{static_cast<int>(rig.centre_x - 0.8f * rig.radius_x),
                  static_cast<int>(rig.centre_y - 2.3f * rig.radius_y),
                  std::max(1, static_cast<int>(1.6f * rig.radius_x)),
                  std::max(1, static_cast<int>(0.9f * rig.radius_y))};
  rig.lid = mean_colour(rgb, strip, true);
  for (int c = 0; c < 3; ++c) rig.lash[c] = 0.3f * rig.lid[c];
  return rig;
}

// --- serialisation: magic, then fields in a fixed order, native little-endian ---------------

// Bump with any change to build_rig() or the layout: cached rigs of other versions are rebuilt.
constexpr std::string_view kMagic = "talkserve-rig-v3\n";

class Writer {
 public:
  template <typename T>
  void put(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    out_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void put_bytes(const std::vector<std::uint8_t>& v) {
    put(static_cast<std::uint64_t>(v.size()));
    out_.append(reinterpret_cast<const char*>(v.data()), v.size());
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  template <typename T>
  bool get(T& v) {
    if (in_.size() < sizeof v) return false;
    std::memcpy(&v, in_.data(), sizeof v);
    in_.remove_prefix(sizeof v);
    return true;
  }
  bool get_bytes(std::vector<std::uint8_t>& v) {
    std::uint64_t n = 0;
    if (!get(n) || in_.size() < n) return false;
    v.assign(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(n));
    in_.remove_prefix(n);
    return true;
  }
  bool done() const { return in_.empty(); }

 private:
  std::string_view in_;
};

bool mask_fits(const Box& region, const std::vector<std::uint8_t>& mask) {
  return region.width >= 0 && region.height >= 0 &&
         mask.size() == static_cast<std::size_t>(region.width) * region.height;
}

}  // namespace

AvatarRig build_rig(const Avatar& avatar) {
  const media::RgbFrame& p = avatar.portrait;
  // Read-only view; build_* never write through it.
  const cv::Mat rgb(p.height, p.width, CV_8UC3, const_cast<std::uint8_t*>(p.data.data()));
  AvatarRig rig;
  rig.mouth = build_mouth(rgb, avatar.mouth);
  rig.eyes[0] = build_eye(rgb, avatar.left_eye);
  rig.eyes[1] = build_eye(rgb, avatar.right_eye);
  return rig;
}

std::string serialize_rig(const AvatarRig& rig) {
  Writer w;
  for (char c : kMagic) w.put(c);
  const MouthRig& m = rig.mouth;
  w.put(m.region);
  w.put_bytes(m.mask);
  for (float f : {m.centre_x, m.half_width, m.lip_y, m.lip_tilt, m.lip_curve, m.top, m.bottom,
                  m.max_open})
    w.put(f);
  w.put(m.inner);
  w.put(m.teeth);
  for (const EyeRig& e : rig.eyes) {
    w.put(e.region);
    w.put_bytes(e.mask);
    for (float f : {e.centre_x, e.centre_y, e.radius_x, e.radius_y}) w.put(f);
    w.put(e.lid);
    w.put(e.lash);
  }
  return w.take();
}

std::optional<AvatarRig> parse_rig(std::string_view bytes) {
  if (bytes.substr(0, kMagic.size()) != kMagic) return std::nullopt;
  Reader r(bytes.substr(kMagic.size()));
  AvatarRig rig;
  MouthRig& m = rig.mouth;
  bool ok = r.get(m.region) && r.get_bytes(m.mask) && mask_fits(m.region, m.mask);
  for (float* f : {&m.centre_x, &m.half_width, &m.lip_y, &m.lip_tilt, &m.lip_curve, &m.top,
                   &m.bottom, &m.max_open})
    ok = ok && r.get(*f);
  ok = ok && r.get(m.inner) && r.get(m.teeth);
  for (EyeRig& e : rig.eyes) {
    ok = ok && r.get(e.region) && r.get_bytes(e.mask) && mask_fits(e.region, e.mask);
    for (float* f : {&e.centre_x, &e.centre_y, &e.radius_x, &e.radius_y}) ok = ok && r.get(*f);
    ok = ok && r.get(e.lid) && r.get(e.lash);
  }
  if (!ok || !r.done()) return std::nullopt;
  return rig;
}

}  // namespace talkserve::avatar
