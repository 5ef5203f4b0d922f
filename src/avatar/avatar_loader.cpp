// load_avatar(): image (+ avatar.toml) -> scaled RGB portrait, boxes (cache, overrides or
// detection), fingerprint, rig (cache or built).
//
// Cache layout under AvatarLoadOptions::cache_dir:
//   boxes-<sha256(image bytes, portrait size, overrides, detector version)>.txt  detection result
//   <fingerprint>.rig                                                            the AvatarRig
// Both are written atomically; unreadable or stale entries are ignored and rewritten.

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <spdlog/spdlog.h>
#include <toml++/toml.h>

#include "avatar/avatar_rig.hpp"
#include "avatar/cache_files.hpp"
#include "avatar/face_layout.hpp"
#include "talkserve/avatar/avatar.hpp"

namespace talkserve::avatar {
namespace {

namespace fs = std::filesystem;

// Bump when detection or mouth estimation changes, so cached boxes are recomputed.
constexpr std::string_view kDetectorVersion = "detector-3";

constexpr std::array<const char*, 4> kBoxNames = {"face", "mouth", "left_eye", "right_eye"};

struct AvatarSource {
  std::string id;
  std::string image_path;
  std::string toml_path;                        // "" for a bare image file
  std::array<std::optional<Box>, 4> overrides;  // in image-file pixels, order of kBoxNames
};

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error("avatar: " + what); }

Box read_box(const toml::table& table, const std::string& file, const char* name) {
  const toml::node* node = table.get(name);
  if (!node->is_table()) fail(file + ": [" + name + "] must be a table with x, y, width, height");
  const toml::table& t = *node->as_table();
  auto field = [&](const char* key, bool positive) {
    const std::optional<std::int64_t> v = t[key].value<std::int64_t>();
    if (!v || *v < 0 || (positive && *v == 0) || *v > 1'000'000)
      fail(file + ": " + name + "." + key + " must be a " + (positive ? "positive" : "non-negative") +
           " integer");
    return static_cast<int>(*v);
  };
  return Box{field("x", false), field("y", false), field("width", true), field("height", true)};
}

AvatarSource resolve_source(const std::string& path) {
  std::error_code ec;
  const fs::path p(path);
  if (!fs::exists(p, ec)) fail("no such file or directory: " + path);
  AvatarSource src;
  if (!fs::is_directory(p, ec)) {
    src.id = p.stem().string();
    src.image_path = path;
    return src;
  }
  src.toml_path = (p / "avatar.toml").string();
  if (!fs::exists(src.toml_path, ec)) fail(path + " is a directory without avatar.toml");
  toml::table table;
  try {
    table = toml::parse_file(src.toml_path);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << src.toml_path << ":" << e.source().begin.line << ": " << e.description();
    fail(msg.str());
  }
  const std::optional<std::string> image = table["image"].value<std::string>();
  if (!image || image->empty()) fail(src.toml_path + ": image must name the portrait file");
  src.image_path = (p / *image).string();  // an absolute `image` replaces the directory
  if (table.contains("id")) {
    const std::optional<std::string> id = table["id"].value<std::string>();
    if (!id || id->empty()) fail(src.toml_path + ": id must be a non-empty string");
    src.id = *id;
  } else {
    src.id = fs::weakly_canonical(p, ec).filename().string();
    if (src.id.empty()) src.id = p.filename().string();
  }
  for (std::size_t i = 0; i < kBoxNames.size(); ++i)
    if (table.contains(kBoxNames[i])) src.overrides[i] = read_box(table, src.toml_path, kBoxNames[i]);
  return src;
}

// Even width and height, longer side at most max_size, never scaled up.
cv::Mat scale_portrait(const cv::Mat& image, int max_size) {
  const double scale = std::min(1.0, static_cast<double>(max_size) / std::max(image.cols, image.rows));
  const int width = std::max(2, static_cast<int>(std::lround(image.cols * scale)) & ~1);
  const int height = std::max(2, static_cast<int>(std::lround(image.rows * scale)) & ~1);
  if (width == image.cols && height == image.rows) return image;
  cv::Mat scaled;
  cv::resize(image, scaled, cv::Size(width, height), 0, 0, cv::INTER_AREA);
  return scaled;
}

std::string box_text(const Box& b) {
  return std::to_string(b.x) + " " + std::to_string(b.y) + " " + std::to_string(b.width) + " " +
         std::to_string(b.height);
}

struct Layout {
  std::array<Box, 4> boxes;  // order of kBoxNames
  bool face_detected = false;
  bool eyes_detected = false;
};

std::string serialize_layout(const Layout& l) {
  std::string out(kDetectorVersion);
  out += "\n";
  for (std::size_t i = 0; i < l.boxes.size(); ++i) out += std::string(kBoxNames[i]) + " " + box_text(l.boxes[i]) + "\n";
  out += "detected " + std::to_string(l.face_detected) + " " + std::to_string(l.eyes_detected) + "\n";
  return out;
}

std::optional<Layout> parse_layout(const std::string& text, int width, int height) {
  std::istringstream in(text);
  std::string word;
  if (!(in >> word) || word != kDetectorVersion) return std::nullopt;
  Layout l;
  for (std::size_t i = 0; i < l.boxes.size(); ++i) {
    Box& b = l.boxes[i];
    if (!(in >> word >> b.x >> b.y >> b.width >> b.height) || word != kBoxNames[i]) return std::nullopt;
    if (b.empty() || detail::clip_box(b, width, height) != b) return std::nullopt;
  }
  if (!(in >> word >> l.face_detected >> l.eyes_detected) || word != "detected") return std::nullopt;
  return l;
}

Layout detect_layout(const cv::Mat& rgb, const AvatarSource& src,
                     const std::array<std::optional<Box>, 4>& overrides,
                     const AvatarLoadOptions& options) {
  Layout l;
  cv::Mat grey;
  cv::cvtColor(rgb, grey, cv::COLOR_RGB2GRAY);
  if (overrides[0]) {
    l.boxes[0] = *overrides[0];
  } else {
    const std::optional<Box> face = detail::detect_face(grey, options.cascade_dir);
    if (!face) fail("no face found in " + src.image_path + " (give a [face] box in avatar.toml)");
    l.boxes[0] = *face;
    l.face_detected = true;
  }
  const Box& face = l.boxes[0];
  l.boxes[1] = overrides[1] ? *overrides[1] : detail::estimate_mouth(rgb, face);
  if (overrides[2] && overrides[3]) {
    l.boxes[2] = *overrides[2];
    l.boxes[3] = *overrides[3];
  } else {
    auto eyes = detail::detect_eyes(grey, face, options.cascade_dir);
    l.eyes_detected = eyes.has_value();
    if (!eyes) eyes = detail::proportional_eyes(face);
    l.boxes[2] = overrides[2] ? *overrides[2] : eyes->first;
    l.boxes[3] = overrides[3] ? *overrides[3] : eyes->second;
  }
  return l;
}

std::string cache_path(const AvatarLoadOptions& options, const std::string& name) {
  return (fs::path(options.cache_dir) / name).string();
}

bool rig_fits(const AvatarRig& rig, int width, int height) {
  auto inside = [&](const Box& b) { return detail::clip_box(b, width, height) == b; };
  return inside(rig.mouth.region) && inside(rig.eyes[0].region) && inside(rig.eyes[1].region);
}

}  // namespace

void AvatarLoadOptions::validate() const {
  if (max_size < 16 || max_size > 8192)
    throw std::invalid_argument("avatar: max_size must be within 16..8192, got " + std::to_string(max_size));
}

std::shared_ptr<const Avatar> load_avatar(const std::string& path, const AvatarLoadOptions& given,
                                          AvatarLoadInfo* info) {
  given.validate();
  AvatarLoadOptions options = given;
  if (options.cascade_dir.empty()) options.cascade_dir = TALKSERVE_OPENCV_CASCADE_DIR;
  const AvatarSource src = resolve_source(path);
  const std::optional<std::string> bytes = detail::read_whole_file(src.image_path);
  if (!bytes) fail("cannot read image " + src.image_path);
  if (bytes->empty()) fail("image " + src.image_path + " is empty");
  const cv::Mat encoded(1, static_cast<int>(bytes->size()), CV_8UC1,
                        const_cast<char*>(bytes->data()));
  cv::Mat bgr = cv::imdecode(encoded, cv::IMREAD_COLOR);
  if (bgr.empty()) fail("cannot decode image " + src.image_path + " (not a PNG or JPEG file?)");
  const int source_width = bgr.cols, source_height = bgr.rows;
  bgr = scale_portrait(bgr, options.max_size);
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);

  // Overrides are given in the stored image's pixels; scale them with the image.
  const double sx = static_cast<double>(rgb.cols) / source_width;
  const double sy = static_cast<double>(rgb.rows) / source_height;
  std::array<std::optional<Box>, 4> overrides;
  std::string override_text;
  for (std::size_t i = 0; i < overrides.size(); ++i) {
    if (!src.overrides[i]) continue;
    const Box& b = *src.overrides[i];
    const Box scaled{static_cast<int>(std::lround(b.x * sx)), static_cast<int>(std::lround(b.y * sy)),
                     std::max(1, static_cast<int>(std::lround(b.width * sx))),
                     std::max(1, static_cast<int>(std::lround(b.height * sy)))};
    overrides[i] = detail::clip_box(scaled, rgb.cols, rgb.rows);
    if (overrides[i]->empty())
      fail(src.toml_path + ": [" + kBoxNames[i] + "] lies outside the " + std::to_string(source_width) +
           "x" + std::to_string(source_height) + " image");
    override_text += std::string(kBoxNames[i]) + " " + box_text(*overrides[i]) + ";";
  }

  const bool use_cache = !options.cache_dir.empty();
  if (use_cache) {
    std::error_code ec;
    fs::create_directories(options.cache_dir, ec);
    if (ec) spdlog::warn("avatar: cannot create cache dir {}: {}", options.cache_dir, ec.message());
  }
  AvatarLoadInfo local_info;
  AvatarLoadInfo& load_info = info != nullptr ? *info : local_info;
  load_info = AvatarLoadInfo{};

  const std::string size_text = std::to_string(rgb.cols) + "x" + std::to_string(rgb.rows);
  const std::string layout_key = detail::sha256_hex(*bytes + "|" + size_text + "|" + override_text +
                                                    "|" + std::string(kDetectorVersion) + "|" +
                                                    options.cascade_dir);
  const std::string layout_file = cache_path(options, "boxes-" + layout_key + ".txt");
  std::optional<Layout> layout;
  if (use_cache) {
    if (const auto text = detail::read_whole_file(layout_file))
      layout = parse_layout(*text, rgb.cols, rgb.rows);
    load_info.detection_cached = layout.has_value();
  }
  if (!layout) {
    layout = detect_layout(rgb, src, overrides, options);
    for (Box& b : layout->boxes) b = detail::clip_box(b, rgb.cols, rgb.rows);
    if (use_cache && !detail::write_file_atomic(layout_file, serialize_layout(*layout)))
      spdlog::warn("avatar: cannot write cache file {}", layout_file);
  }
  load_info.face_detected = layout->face_detected;
  load_info.eyes_detected = layout->eyes_detected;

  auto avatar = std::make_shared<Avatar>();
  avatar->id = src.id;
  avatar->face = layout->boxes[0];
  avatar->mouth = layout->boxes[1];
  avatar->left_eye = layout->boxes[2];
  avatar->right_eye = layout->boxes[3];
  if (avatar->left_eye.x > avatar->right_eye.x) std::swap(avatar->left_eye, avatar->right_eye);
  avatar->portrait.width = rgb.cols;
  avatar->portrait.height = rgb.rows;
  avatar->portrait.data.assign(rgb.data, rgb.data + rgb.total() * rgb.elemSize());
  std::string fingerprint_input = *bytes + "|" + size_text;
  for (const Box* b : {&avatar->face, &avatar->mouth, &avatar->left_eye, &avatar->right_eye})
  {
    fingerprint_input += '|';
    fingerprint_input += box_text(*b);
  }
  avatar->fingerprint = detail::sha256_hex(fingerprint_input);

  const std::string rig_file = cache_path(options, avatar->fingerprint + ".rig");
  std::optional<AvatarRig> rig;
  if (use_cache) {
    if (const auto cached = detail::read_whole_file(rig_file)) {
      rig = parse_rig(*cached);
      if (rig && !rig_fits(*rig, rgb.cols, rgb.rows)) rig.reset();
    }
    load_info.rig_cached = rig.has_value();
  }
  if (!rig) {
    rig = build_rig(*avatar);
    if (use_cache && !detail::write_file_atomic(rig_file, serialize_rig(*rig)))
      spdlog::warn("avatar: cannot write cache file {}", rig_file);
  }
  avatar->rig = std::make_shared<const AvatarRig>(std::move(*rig));

  spdlog::debug("avatar {}: {} face {} mouth {} eyes {} / {} (face {}, eyes {}, cache {}/{})",
                avatar->id, size_text, box_text(avatar->face), box_text(avatar->mouth),
                box_text(avatar->left_eye), box_text(avatar->right_eye),
                load_info.face_detected ? "detected" : "given",
                load_info.eyes_detected ? "detected" : "estimated", load_info.detection_cached,
                load_info.rig_cached);
  return avatar;
}

}  // namespace talkserve::avatar
