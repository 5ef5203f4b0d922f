#include "avatar/face_compositor.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace talkserve::avatar {
namespace {

float smoothstep(float edge0, float edge1, float x) {
  const float t = std::clamp((x - edge0) / (edge1 - edge0), 0.0f, 1.0f);
  return t * t * (3 - 2 * t);
}

// Length of the overlap of pixel row y (covering [y - 0.5, y + 0.5]) with [a, b].
float row_overlap(float y, float a, float b) {
  return std::max(0.0f, std::min(y + 0.5f, b) - std::max(y - 0.5f, a));
}

// Bilinear sample; exact (no rounding change) at integer coordinates.
void sample(const media::RgbFrame& img, float x, float y, float rgb[3]) {
  x = std::clamp(x, 0.0f, static_cast<float>(img.width - 1));
  y = std::clamp(y, 0.0f, static_cast<float>(img.height - 1));
  const int x0 = static_cast<int>(x), y0 = static_cast<int>(y);
  const int x1 = std::min(x0 + 1, img.width - 1), y1 = std::min(y0 + 1, img.height - 1);
  const float fx = x - x0, fy = y - y0;
  const std::uint8_t* r0 = img.data.data() + static_cast<std::size_t>(y0) * img.width * 3;
  const std::uint8_t* r1 = img.data.data() + static_cast<std::size_t>(y1) * img.width * 3;
  for (int c = 0; c < 3; ++c) {
    const float top = r0[x0 * 3 + c] * (1 - fx) + r0[x1 * 3 + c] * fx;
    const float bottom = r1[x0 * 3 + c] * (1 - fx) + r1[x1 * 3 + c] * fx;
    rgb[c] = top * (1 - fy) + bottom * fy;
  }
}

std::uint8_t to_byte(float v) { return static_cast<std::uint8_t>(std::clamp(v + 0.5f, 0.0f, 255.0f)); }

// Writes `value` over the base pixel with feather weight mask/255 (255 = value exactly).
void blend_out(std::uint8_t* px, const float value[3], std::uint8_t mask) {
  if (mask == 255) {
    for (int c = 0; c < 3; ++c) px[c] = to_byte(value[c]);
    return;
  }
  const float w = mask * (1.0f / 255.0f);
  for (int c = 0; c < 3; ++c) px[c] = to_byte(px[c] + (value[c] - px[c]) * w);
}

// What changes per column of the mouth region in one frame.
struct MouthColumn {
  float dx;       // from the lip centre, pixels
  float u;        // dx over the current (rounded/spread) lip half-width
  float lip;      // lip line row
  float gap_top;  // the upper lip's edge: lip - up
  float gap_bot;  // the lower lip's edge: lip + down
  float up, down; // upper lip lift and jaw drop at this column
  float press;    // lip thinning, pixels
  float warp_x;   // horizontal warp strength (before the vertical fade)
  float teeth_h;  // height of the visible upper teeth
};

}  // namespace

void draw_mouth(const MouthRig& rig, const media::RgbFrame& portrait, const MouthPose& pose,
                std::uint8_t* out) {
  if (is_rest(pose) || rig.region.empty()) return;
  const float hw = rig.half_width;
  const float width = std::clamp(pose.width, 0.5f, 1.5f);
  const float open_px = std::clamp(pose.open, 0.0f, 1.2f) * rig.max_open;
  const float press_px = std::clamp(pose.press, 0.0f, 1.0f) * 0.07f * hw;
  const float teeth = std::clamp(pose.teeth, 0.0f, 1.0f);
  // Rounding narrows the lips by sampling further out: dest cx + d shows source cx + d / width.
  const float warp = 1.0f / width - 1.0f;
  const float warp_reach = 1.5f * hw;
  const float warp_fade = 0.5f * (rig.bottom - rig.top);

  const Box& r = rig.region;
  std::vector<MouthColumn> cols(static_cast<std::size_t>(r.width));
  for (int i = 0; i < r.width; ++i) {
    MouthColumn& c = cols[i];
    c.dx = static_cast<float>(r.x + i) - rig.centre_x;
    c.u = c.dx / (hw * width);
    c.lip = rig.lip_y + rig.lip_tilt * c.dx + rig.lip_curve * c.dx * c.dx;
    const float s = std::max(0.0f, 1.0f - c.u * c.u);
    const float gap = open_px * s * std::sqrt(s);  // lens-shaped opening, smooth at the corners
    c.up = 0.22f * gap;
    c.down = 0.78f * gap;
    c.gap_top = c.lip - c.up;
    c.gap_bot = c.lip + c.down;
    const float u0 = c.dx / hw;
    const float p = std::max(0.0f, 1.0f - u0 * u0);
    c.press = press_px * p * p;
    c.warp_x = c.dx * warp * (1.0f - smoothstep(0.0f, warp_reach, std::abs(c.dx)));
    c.teeth_h = teeth * std::min(0.38f * gap, 0.2f * hw) * (1.0f - smoothstep(0.55f, 0.85f, std::abs(c.u)));
  }

  const auto press_profile = [](float t) {  // 0 at the lip line and far away, 1 near the lips
    return smoothstep(0.0f, 0.25f, t) * (1.0f - smoothstep(0.25f, 1.0f, t));
  };
  const std::size_t stride = static_cast<std::size_t>(portrait.width) * 3;
  for (int j = 0; j < r.height; ++j) {
    const int y = r.y + j;
    const float yf = static_cast<float>(y);
    const std::uint8_t* mask_row = rig.mask.data() + static_cast<std::size_t>(j) * r.width;
    std::uint8_t* out_row = out + y * stride;
    for (int i = 0; i < r.width; ++i) {
      const std::uint8_t m = mask_row[i];
      if (m == 0) continue;
      const MouthColumn& c = cols[i];
      // Vertical displacement: above the gap the upper lip lifts, below it lips and chin drop,
      // both fading smoothly to nothing at the region's top and bottom.
      float sy;
      if (yf <= c.gap_top) {
        const float t = std::clamp((c.gap_top - yf) / std::max(1.0f, c.gap_top - rig.top), 0.0f, 1.0f);
        sy = yf + c.up * (1.0f - smoothstep(0.0f, 1.0f, t)) - c.press * press_profile(t);
      } else if (yf >= c.gap_bot) {
        const float t = std::clamp((yf - c.gap_bot) / std::max(1.0f, rig.bottom - c.gap_bot), 0.0f, 1.0f);
        sy = yf - c.down * (1.0f - smoothstep(0.0f, 1.0f, t)) + c.press * press_profile(t);
      } else {
        sy = c.lip;
      }
      const float fade = 1.0f - smoothstep(0.0f, warp_fade, std::abs(yf - c.lip));
      const float sx = static_cast<float>(r.x + i) + c.warp_x * fade;
      float value[3];
      sample(portrait, sx, sy, value);

      const float gap_cov = row_overlap(yf, c.gap_top, c.gap_bot);
      if (gap_cov > 0) {
        // Inner mouth: dark, darkest in the middle; upper teeth along the top of the gap.
        const float teeth_cov = std::min(gap_cov, row_overlap(yf, c.gap_top, c.gap_top + c.teeth_h));
        const float shade = 0.55f + 0.45f * std::min(1.0f, std::abs(c.u));
        const float teeth_shade = 1.0f - 0.35f * std::min(1.0f, std::abs(c.u));
        for (int k = 0; k < 3; ++k)
          value[k] = value[k] * (1 - gap_cov) + rig.inner[k] * shade * (gap_cov - teeth_cov) +
                     rig.teeth[k] * teeth_shade * teeth_cov;
      }
      blend_out(out_row + (r.x + i) * 3, value, m);
    }
  }
}

void draw_eyelid(const EyeRig& rig, const media::RgbFrame& portrait, float closure,
                 std::uint8_t* out) {
  closure = std::clamp(closure, 0.0f, 1.0f);
  if (closure <= 1e-3f || rig.region.empty()) return;
  // The lid sweeps an ellipse a little larger than the eye opening; the rig mask feathers its
  // ends into the skin around it. Its texture is the skin just above the eye, pulled down and
  // tinted towards the sampled lid colour, shaded towards its edge, with a soft lash line.
  const float rx = 1.12f * rig.radius_x, ry = 1.2f * rig.radius_y;
  const float fade_in = std::min(1.0f, closure * 5.0f);
  const Box& r = rig.region;
  const std::size_t stride = static_cast<std::size_t>(portrait.width) * 3;
  for (int j = 0; j < r.height; ++j) {
    const float y = static_cast<float>(r.y + j);
    const std::uint8_t* mask_row = rig.mask.data() + static_cast<std::size_t>(j) * r.width;
    std::uint8_t* out_row = out + (r.y + j) * stride;
    for (int i = 0; i < r.width; ++i) {
      const std::uint8_t m = mask_row[i];
      if (m == 0) continue;
      const float x = static_cast<float>(r.x + i);
      const float dx = (x - rig.centre_x) / rx;
      if (std::abs(dx) >= 1.0f) continue;
      const float h = ry * std::sqrt(1.0f - dx * dx);
      const float top = rig.centre_y - h;
      const float edge = top + closure * 2.0f * h;
      const float cover = std::clamp((edge - y) / 1.5f + 0.5f, 0.0f, 1.0f) *
                          smoothstep(top - 0.4f * ry, top + 0.4f * ry, y) * fade_in;
      const float lash = std::clamp(1.0f - std::abs(y - edge) / 1.2f, 0.0f, 1.0f) * 0.4f *
                         closure * closure * smoothstep(0.0f, 0.5f, h / ry);
      if (cover <= 0 && lash <= 0) continue;
      const float crease = 1.0f - 0.2f * closure * std::clamp(1.0f - (edge - y) / (0.8f * ry), 0.0f, 1.0f);
      float skin[3];
      sample(portrait, x, top - 0.7f * ry + 0.25f * (y - top), skin);
      std::uint8_t* px = out_row + (r.x + i) * 3;
      float value[3];
      for (int k = 0; k < 3; ++k) {
        const float base = px[k];
        const float lid = (0.7f * skin[k] + 0.3f * rig.lid[k]) * 0.96f * crease;
        const float covered = base + (lid - base) * cover;
        value[k] = covered + (rig.lash[k] - covered) * lash;
      }
      blend_out(px, value, m);
    }
  }
}

}  // namespace talkserve::avatar
