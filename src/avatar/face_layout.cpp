#include "avatar/face_layout.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include <opencv2/imgproc.hpp>
#include <opencv2/objdetect.hpp>

namespace talkserve::avatar::detail {
namespace {

cv::CascadeClassifier load_cascade(const std::string& cascade_dir, const char* file) {
  const std::string path = cascade_dir + "/" + file;
  cv::CascadeClassifier cascade;
  if (!cascade.load(path)) throw std::runtime_error("avatar: cannot load Haar cascade " + path);
  return cascade;
}

Box to_box(const cv::Rect& r) { return Box{r.x, r.y, r.width, r.height}; }

int round_int(double v) { return static_cast<int>(std::lround(v)); }

}  // namespace

Box clip_box(const Box& box, int width, int height) {
  const int x0 = std::clamp(box.x, 0, width), y0 = std::clamp(box.y, 0, height);
  const int x1 = std::clamp(box.x + box.width, 0, width);
  const int y1 = std::clamp(box.y + box.height, 0, height);
  return Box{x0, y0, std::max(0, x1 - x0), std::max(0, y1 - y0)};
}

std::optional<Box> detect_face(const cv::Mat& grey, const std::string& cascade_dir) {
  cv::CascadeClassifier cascade = load_cascade(cascade_dir, "haarcascade_frontalface_default.xml");
  cv::Mat equalised;
  cv::equalizeHist(grey, equalised);
  const int min_side = std::max(24, std::min(grey.cols, grey.rows) / 12);
  std::vector<cv::Rect> faces;
  cascade.detectMultiScale(equalised, faces, 1.1, 5, 0, cv::Size(min_side, min_side));
  if (faces.empty()) return std::nullopt;
  const auto largest = std::max_element(faces.begin(), faces.end(),
      [](const cv::Rect& a, const cv::Rect& b) { return a.area() < b.area(); });
  return to_box(*largest);
}

std::optional<std::pair<Box, Box>> detect_eyes(const cv::Mat& grey, const Box& face,
                                               const std::string& cascade_dir) {
  cv::CascadeClassifier cascade = load_cascade(cascade_dir, "haarcascade_eye.xml");
  const Box upper = clip_box(Box{face.x, face.y, face.width, face.height / 2}, grey.cols, grey.rows);
  if (upper.empty()) return std::nullopt;
  cv::Mat roi;
  cv::equalizeHist(grey(cv::Rect(upper.x, upper.y, upper.width, upper.height)), roi);
  std::vector<cv::Rect> found;
  const int min_side = std::max(8, face.width / 10), max_side = std::max(min_side + 1, face.width / 3);
  cascade.detectMultiScale(roi, found, 1.1, 3, 0, cv::Size(min_side, min_side),
                           cv::Size(max_side, max_side));
  // One eye per side of the face's vertical centre line, the largest on each side. Eyes lie in
  // the band 20%..55% of the face height; detections above (eyebrows) are ignored.
  std::optional<Box> left, right;
  const double mid_x = face.width / 2.0;
  for (const cv::Rect& r : found) {
    const double cx = r.x + r.width / 2.0, cy = upper.y - face.y + r.y + r.height / 2.0;
    if (cy < 0.2 * face.height || cy > 0.55 * face.height) continue;
    Box b{upper.x + r.x, upper.y + r.y, r.width, r.height};
    std::optional<Box>& side = cx < mid_x ? left : right;
    if (!side || side->width * side->height < b.width * b.height) side = b;
  }
  if (left && right) return std::make_pair(*left, *right);
  // One eye found (glasses often hide the other from the cascade): mirror it about the face's
  // centre line, which is where a frontal portrait's other eye is.
  if (left || right) {
    const Box& e = left ? *left : *right;
    const Box mirrored{face.x + face.width - (e.x - face.x) - e.width, e.y, e.width, e.height};
    return left ? std::make_pair(e, mirrored) : std::make_pair(mirrored, e);
  }
  return std::nullopt;
}

std::pair<Box, Box> proportional_eyes(const Box& face) {
  const int side = round_int(0.2 * face.width);
  const int cy = face.y + round_int(0.38 * face.height);
  auto at = [&](double rel_x) {
    return Box{face.x + round_int(rel_x * face.width) - side / 2, cy - side / 2, side, side};
  };
  return {at(0.31), at(0.69)};
}

float find_lip_row(const cv::Mat& rgb, int x0, int x1, int y0, int y1, int max_gap) {
  x0 = std::clamp(x0, 0, rgb.cols - 1);
  x1 = std::clamp(x1, x0 + 1, rgb.cols);
  y0 = std::clamp(y0, 0, rgb.rows - 1);
  y1 = std::clamp(y1, y0 + 1, rgb.rows);
  const int rows = y1 - y0;
  // Lip redness per row: R - G relative to brightness, so shadowed lips still count and bright
  // skin does not; lightly smoothed.
  std::vector<double> raw(rows), red(rows);
  for (int y = y0; y < y1; ++y) {
    const auto* row = rgb.ptr<cv::Vec3b>(y);
    double sum = 0;
    for (int x = x0; x < x1; ++x) {
      const double r = row[x][0], g = row[x][1], b = row[x][2];
      sum += (r - g) / (r + g + b + 30.0);
    }
    raw[y - y0] = sum / (x1 - x0);
  }
  for (int i = 0; i < rows; ++i)
    red[i] = (raw[std::max(0, i - 1)] + 2 * raw[i] + raw[std::min(rows - 1, i + 1)]) / 4;
  std::vector<double> sorted = red;
  std::nth_element(sorted.begin(), sorted.begin() + rows / 2, sorted.end());
  const double skin = sorted[rows / 2];
  const double peak = *std::max_element(red.begin(), red.end());
  if (peak - skin < 1e-3) return static_cast<float>(y0 + rows / 2);  // no lips to see
  const double threshold = skin + 0.4 * (peak - skin);

  // Clusters of red rows; the best has the most redness above the skin, discounted towards
  // the band's edges where nostrils and the chin shadow sit.
  double best_score = -1;
  int best_first = rows / 2, best_last = rows / 2;
  for (int i = 0; i < rows;) {
    if (red[i] < threshold) {
      ++i;
      continue;
    }
    int first = i, last = i, gap = 0;
    double mass = 0;
    for (; i < rows && gap <= max_gap; ++i) {
      if (red[i] >= threshold) {
        last = i;
        gap = 0;
        mass += red[i] - skin;
      } else {
        ++gap;
      }
    }
    i = last + 1;
    const double rel = ((first + last) / 2.0 - rows / 2.0) / rows;
    const double score = mass * (1.0 - std::abs(rel));
    if (score > best_score) {
      best_score = score;
      best_first = first;
      best_last = last;
    }
  }
  return static_cast<float>(y0 + (best_first + best_last) / 2.0);
}

Box estimate_mouth(const cv::Mat& rgb, const Box& face) {
  const int width = round_int(0.6 * face.width);
  const int height = std::max(4, round_int(0.24 * face.height));
  // Search the lip line between 66% and 92% of the face height, over the central 30% (the lips,
  // not the cheeks).
  const float lip = find_lip_row(rgb, face.x + round_int(0.35 * face.width),
                                 face.x + round_int(0.65 * face.width),
                                 face.y + round_int(0.66 * face.height),
                                 face.y + round_int(0.92 * face.height),
                                 std::max(1, round_int(0.07 * face.height)));
  Box mouth{face.x + (face.width - width) / 2, round_int(lip - 0.4 * height), width, height};
  // Keep it in the lower half of the face and inside the portrait.
  mouth.y = std::clamp(mouth.y, face.y + face.height / 2, face.y + face.height - height);
  return clip_box(mouth, rgb.cols, rgb.rows);
}

}  // namespace talkserve::avatar::detail
