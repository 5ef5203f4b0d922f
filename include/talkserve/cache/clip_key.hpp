#pragma once
// Content addresses for rendered clips: the id of a clip is the SHA-256 of everything that
// determines its bytes, so a repeated request (same avatar, same audio or TTS text and voice,
// same renderer and model versions, same render parameters) finds the earlier render.
//
//   std::string id = ClipKeyBuilder()
//                        .avatar(avatar_fingerprint)
//                        .tts("Hello there", "en-us-1")
//                        .renderer("wav2lip", "1.2.0")
//                        .model("wav2lip", "sha256:ab12...")
//                        .param("fps", 25)
//                        .param("width", 512)
//                        .finish();   // 64 lowercase hex characters
//
// Each field is hashed as (length of name, name, length of value, value) with 64-bit
// little-endian lengths, so no two different field lists hash the same bytes: ("ab","c") and
// ("a","bc") give different ids. The order of calls is part of the key: callers add fields in
// one fixed order (a std::map of parameters iterates in a fixed order). The hash starts with a
// schema tag; bump kClipKeySchema when the meaning of a field changes so old clips stop
// matching.
//
// Thread-safety: a builder is used by one thread; is_clip_id() is pure.

#include <concepts>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

namespace talkserve::cache {

inline constexpr std::string_view kClipKeySchema = "talkserve.clip.v1";

// True for exactly 64 lowercase hex characters (the only form ids are created and served in).
bool is_clip_id(std::string_view s);

class ClipKeyBuilder {
 public:
  ClipKeyBuilder();
  ~ClipKeyBuilder();
  ClipKeyBuilder(ClipKeyBuilder&&) noexcept;
  ClipKeyBuilder& operator=(ClipKeyBuilder&&) noexcept;
  ClipKeyBuilder(const ClipKeyBuilder&) = delete;
  ClipKeyBuilder& operator=(const ClipKeyBuilder&) = delete;

  // A raw named field. The typed helpers below are fields with fixed names.
  ClipKeyBuilder& field(std::string_view name, std::string_view value);
  ClipKeyBuilder& field(std::string_view name, std::span<const std::byte> value);

  ClipKeyBuilder& avatar(std::string_view fingerprint) { return field("avatar", fingerprint); }
  // The driving audio, as encoded bytes or raw samples (std::as_bytes(span_of_floats)).
  ClipKeyBuilder& audio(std::string_view bytes) { return field("audio", bytes); }
  ClipKeyBuilder& audio(std::span<const std::byte> bytes) { return field("audio", bytes); }
  // Text to be spoken and the voice speaking it (instead of audio()).
  ClipKeyBuilder& tts(std::string_view text, std::string_view voice);
  ClipKeyBuilder& renderer(std::string_view name, std::string_view version);
  ClipKeyBuilder& model(std::string_view name, std::string_view version);

  // A render parameter. The value's type is part of the key: param("fps", 25) and
  // param("fps", "25") differ. Doubles are written in their shortest round-trip form.
  ClipKeyBuilder& param(std::string_view name, std::string_view value);
  ClipKeyBuilder& param(std::string_view name, const char* value) {
    return param(name, std::string_view(value));
  }
  template <typename T>
  requires std::integral<T> || std::floating_point<T> ClipKeyBuilder& param(std::string_view name,
                                                                            T value) {
    if constexpr (std::is_same_v<T, bool>) {
      return typed_param(name, 'b', value ? "true" : "false");
    } else if constexpr (std::floating_point<T>) {
      return param_double(name, static_cast<double>(value));
    } else if constexpr (std::is_signed_v<T>) {
      return param_int(name, static_cast<long long>(value));
    } else {
      return param_uint(name, static_cast<unsigned long long>(value));
    }
  }

  // The id: 64 lowercase hex characters. The builder is spent afterwards (std::logic_error
  // on further use).
  std::string finish();

 private:
  ClipKeyBuilder& typed_param(std::string_view name, char type, std::string_view value);
  ClipKeyBuilder& param_int(std::string_view name, long long value);
  ClipKeyBuilder& param_uint(std::string_view name, unsigned long long value);
  ClipKeyBuilder& param_double(std::string_view name, double value);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace talkserve::cache
