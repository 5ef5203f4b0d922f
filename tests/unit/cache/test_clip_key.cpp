// Clip ids: stable across builds (a golden value computed independently from the documented
// encoding), field-boundary safe, typed parameters, lowercase hex.

#include <catch2/catch.hpp>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "talkserve/cache/clip_key.hpp"

using talkserve::cache::ClipKeyBuilder;
using talkserve::cache::is_clip_id;

namespace {

std::string example_key() {
  return ClipKeyBuilder()
      .avatar("face-1")
      .tts("Hello there", "en-us-1")
      .renderer("wav2lip", "1.2.0")
      .model("wav2lip", "sha256:ab12")
      .param("fps", 25)
      .param("scale", 0.5)
      .param("mode", "fast")
      .param("mirror", true)
      .finish();
}

}  // namespace

TEST_CASE("clip key: stable golden value", "[cache][key]") {
  // sha256 over (u64le len, name, u64le len, value) for each field, starting with the schema
  // tag; computed with Python's hashlib from that description.
  CHECK(example_key() == "5c247bddd035f760fdaeeb9962062d2398d4bb9da71f97d50a3137c0c9b16661");
  CHECK(example_key() == example_key());
}

TEST_CASE("clip key: 64 lowercase hex", "[cache][key]") {
  auto id = ClipKeyBuilder().field("x", "y").finish();
  CHECK(id.size() == 64);
  CHECK(is_clip_id(id));
  CHECK(is_clip_id(ClipKeyBuilder().finish()));
}

TEST_CASE("clip key: field boundaries are part of the key", "[cache][key]") {
  auto k = [](std::string_view a, std::string_view b) {
    return ClipKeyBuilder().field(a, b).finish();
  };
  CHECK(k("ab", "c") != k("a", "bc"));
  CHECK(ClipKeyBuilder().field("f", "ab").field("g", "c").finish() !=
        ClipKeyBuilder().field("f", "a").field("g", "bc").finish());
  CHECK(ClipKeyBuilder().tts("ab", "c").finish() != ClipKeyBuilder().tts("a", "bc").finish());
  CHECK(ClipKeyBuilder().renderer("r", "1.0").finish() !=
        ClipKeyBuilder().renderer("r1", ".0").finish());
  CHECK(ClipKeyBuilder().model("a.b", "c").finish() != ClipKeyBuilder().model("a", "b.c").finish());
  // An empty value is a field too.
  CHECK(ClipKeyBuilder().field("a", "").finish() != ClipKeyBuilder().finish());
  // Embedded NUL bytes count.
  CHECK(k("a", std::string("b\0c", 3)) != k("a", "b"));
}

TEST_CASE("clip key: every input changes the id", "[cache][key]") {
  auto base = [] {
    ClipKeyBuilder b;
    b.avatar("face-1").audio("RIFF....").renderer("wav2lip", "1.2.0").model("m", "1");
    return b;
  };
  auto ref = base().param("fps", 25).finish();
  CHECK(base().param("fps", 30).finish() != ref);
  CHECK(base().param("fps", "25").finish() != ref);  // the type is part of the key
  CHECK(base().param("fps", 25.0).finish() != ref);
  CHECK(base().param("fps", 25u).finish() == ref);  // signedness is not
  CHECK(ClipKeyBuilder()
            .avatar("face-2")
            .audio("RIFF....")
            .renderer("wav2lip", "1.2.0")
            .model("m", "1")
            .param("fps", 25)
            .finish() != ref);
  CHECK(ClipKeyBuilder()
            .avatar("face-1")
            .audio("RIFF...!")
            .renderer("wav2lip", "1.2.0")
            .model("m", "1")
            .param("fps", 25)
            .finish() != ref);
  CHECK(ClipKeyBuilder()
            .avatar("face-1")
            .audio("RIFF....")
            .renderer("wav2lip", "1.2.1")
            .model("m", "1")
            .param("fps", 25)
            .finish() != ref);
  CHECK(ClipKeyBuilder()
            .avatar("face-1")
            .audio("RIFF....")
            .renderer("wav2lip", "1.2.0")
            .model("m", "2")
            .param("fps", 25)
            .finish() != ref);
  // Audio and TTS text with the same bytes are different inputs.
  CHECK(ClipKeyBuilder().audio("hello").finish() !=
        ClipKeyBuilder().field("tts.text", "hello").finish());
  // Field order is part of the key.
  CHECK(ClipKeyBuilder().param("a", 1).param("b", 2).finish() !=
        ClipKeyBuilder().param("b", 2).param("a", 1).finish());
}

TEST_CASE("clip key: audio as bytes or as samples hashes the same bytes", "[cache][key]") {
  std::vector<float> samples{0.0f, 0.25f, -1.0f};
  auto bytes = std::as_bytes(std::span<const float>(samples));
  std::string copy(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  CHECK(ClipKeyBuilder().audio(bytes).finish() == ClipKeyBuilder().audio(copy).finish());
}

TEST_CASE("clip key: a finished builder is spent", "[cache][key]") {
  ClipKeyBuilder b;
  b.field("a", "b");
  b.finish();
  CHECK_THROWS_AS(b.finish(), std::logic_error);
  CHECK_THROWS_AS(b.field("c", "d"), std::logic_error);
}

TEST_CASE("is_clip_id: exactly 64 lowercase hex", "[cache][key]") {
  std::string ok(64, 'a');
  CHECK(is_clip_id(ok));
  CHECK(is_clip_id("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
  CHECK_FALSE(is_clip_id(std::string(63, 'a')));
  CHECK_FALSE(is_clip_id(std::string(65, 'a')));
  CHECK_FALSE(is_clip_id(std::string(64, 'A')));
  CHECK_FALSE(is_clip_id(std::string(63, 'a') + "g"));
  CHECK_FALSE(is_clip_id(std::string(62, 'a') + ".."));
  CHECK_FALSE(is_clip_id(std::string(63, 'a') + "/"));
  CHECK_FALSE(is_clip_id(""));
}
