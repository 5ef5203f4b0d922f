#pragma once
// Where the face, mouth and eyes are in a portrait: Haar cascades for the face and eyes, face
// proportions refined by the lip line for the mouth. Used once per avatar load.
//
// Thread-safety: reentrant (each call loads its own classifiers).

#include <optional>
#include <string>

#include <opencv2/core.hpp>

#include "talkserve/avatar/avatar.hpp"

namespace talkserve::avatar::detail {

// The largest frontal face in an 8-bit grey image, or nullopt. Throws std::runtime_error if the
// cascade file cannot be loaded.
std::optional<Box> detect_face(const cv::Mat& grey, const std::string& cascade_dir);

// Both eyes inside the upper half of `face` (image-left first), or nullopt when the eye cascade
// does not find one on each side.
std::optional<std::pair<Box, Box>> detect_eyes(const cv::Mat& grey, const Box& face,
                                               const std::string& cascade_dir);

// Eye boxes from average face proportions (the fallback when the cascade finds no eyes).
std::pair<Box, Box> proportional_eyes(const Box& face);

// The mouth: the lower third of the face, centre 60% of its width, moved vertically so that
// the lip line (a dark, reddish horizontal band) sits at 40% of the box height. `rgb` is the
// portrait (CV_8UC3, RGB order).
Box estimate_mouth(const cv::Mat& rgb, const Box& face);

// Row (absolute y) of the lip line in the band [y0, y1) over columns [x0, x1): the middle of
// the strongest cluster of lip-red rows, where red rows separated by at most `max_gap` other
// rows (teeth in a smile, the dark line between closed lips) count as one cluster. Shared by
// estimate_mouth() and the rig builder.
float find_lip_row(const cv::Mat& rgb, int x0, int x1, int y0, int y1, int max_gap);

Box clip_box(const Box& box, int width, int height);

}  // namespace talkserve::avatar::detail
