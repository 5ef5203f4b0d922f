#include <catch2/catch.hpp>

#include <filesystem>
#include <functional>
#include <fstream>
#include <stdexcept>
#include <string>

#include "avatar/avatar_rig.hpp"
#include "avatar_test_support.hpp"
#include "support/temp_dir.hpp"
#include "talkserve/avatar/avatar.hpp"

namespace fs = std::filesystem;
using namespace talkserve::avatar;
using talkserve::test::TempDir;
namespace avatar_test = talkserve::avatar_test;

namespace {

bool contains(const Box& outer, const Box& inner) {
  return inner.x >= outer.x && inner.y >= outer.y && inner.x + inner.width <= outer.x + outer.width &&
         inner.y + inner.height <= outer.y + outer.height;
}

void check_plausible_layout(const Avatar& a) {
  INFO("face " << a.face.x << "," << a.face.y << " " << a.face.width << "x" << a.face.height);
  INFO("mouth " << a.mouth.x << "," << a.mouth.y << " " << a.mouth.width << "x" << a.mouth.height);
  INFO("eyes " << a.left_eye.x << "," << a.left_eye.y << " / " << a.right_eye.x << "," << a.right_eye.y);
  CHECK(a.portrait.width == 512);
  CHECK(a.portrait.height == 512);
  CHECK(a.portrait.data.size() == 512u * 512u * 3u);
  CHECK(a.face.width >= 60);
  CHECK(contains(Box{0, 0, 512, 512}, a.face));
  // The mouth lies in the lower half of the face, horizontally centred on it.
  CHECK(contains(a.face, a.mouth));
  CHECK(a.mouth.y >= a.face.y + a.face.height / 2);
  CHECK(std::abs((a.mouth.x + a.mouth.width / 2) - (a.face.x + a.face.width / 2)) <= a.face.width / 10);
  // Eyes: one each side of the centre line, in the upper half of the face, above the mouth.
  const int face_mid = a.face.x + a.face.width / 2;
  CHECK(a.left_eye.x + a.left_eye.width / 2 < face_mid);
  CHECK(a.right_eye.x + a.right_eye.width / 2 > face_mid);
  for (const Box& eye : {a.left_eye, a.right_eye}) {
    const int cy = eye.y + eye.height / 2;
    CHECK(cy > a.face.y + a.face.height / 5);
    CHECK(cy < a.face.y + a.face.height / 2);
    CHECK(eye.y + eye.height < a.mouth.y);
  }
  CHECK(a.fingerprint.size() == 64);
  REQUIRE(a.rig != nullptr);
}

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(no exception)";
}

}  // namespace

TEST_CASE("Grace Hopper: face, mouth and eyes in plausible places", "[avatar][loader]") {
  AvatarLoadInfo info;
  const auto a = load_avatar(avatar_test::grace_hopper_path(), AvatarLoadOptions{}, &info);
  CHECK(info.face_detected);
  CHECK(a->id == "grace_hopper_512x512");
  check_plausible_layout(*a);
  // Her lips meet at about (262, 259) in this portrait.
  CHECK(avatar_test::inside(a->mouth, 262, 259));
}

TEST_CASE("Eileen Collins: face, mouth and eyes in plausible places", "[avatar][loader]") {
  AvatarLoadInfo info;
  const auto a = load_avatar(avatar_test::eileen_collins_path(), AvatarLoadOptions{}, &info);
  CHECK(info.face_detected);
  CHECK(info.eyes_detected);
  check_plausible_layout(*a);
  // Her smile (teeth showing) is centred at about (223, 146).
  CHECK(avatar_test::inside(a->mouth, 223, 146));
  // Her eyes are at about (201, 100) and (248, 102).
  CHECK(avatar_test::inside(a->left_eye, 201, 100));
  CHECK(avatar_test::inside(a->right_eye, 248, 102));
}

TEST_CASE("the portrait is scaled to max_size with even sides", "[avatar][loader]") {
  AvatarLoadOptions options;
  options.max_size = 255;
  const auto a = load_avatar(avatar_test::grace_hopper_path(), options);
  CHECK(a->portrait.width == 254);
  CHECK(a->portrait.height == 254);
  CHECK(a->portrait.data.size() == 254u * 254u * 3u);
  CHECK(contains(Box{0, 0, 254, 254}, a->face));
  CHECK(a->fingerprint != avatar_test::grace_hopper()->fingerprint);
}

TEST_CASE("avatar.toml names the image and overrides boxes", "[avatar][loader]") {
  TempDir dir;
  fs::copy_file(avatar_test::grace_hopper_path(), dir.path() / "portrait.jpg");
  dir.write("avatar.toml",
            "image = \"portrait.jpg\"\n"
            "id = \"grace\"\n"
            "[mouth]\nx = 200\ny = 240\nwidth = 120\nheight = 50\n"
            "[left_eye]\nx = 200\ny = 160\nwidth = 40\nheight = 40\n"
            "[right_eye]\nx = 280\ny = 150\nwidth = 40\nheight = 40\n");
  AvatarLoadInfo info;
  const auto a = load_avatar(dir.path().string(), AvatarLoadOptions{}, &info);
  CHECK(a->id == "grace");
  CHECK(a->mouth == Box{200, 240, 120, 50});
  CHECK(a->left_eye == Box{200, 160, 40, 40});
  CHECK(a->right_eye == Box{280, 150, 40, 40});
  CHECK(info.face_detected);  // no [face]: still detected
  CHECK(a->face == avatar_test::grace_hopper()->face);
  CHECK(a->fingerprint != avatar_test::grace_hopper()->fingerprint);  // the boxes are part of it

  SECTION("boxes are in the stored image's pixels and scale with it") {
    AvatarLoadOptions options;
    options.max_size = 256;
    const auto half = load_avatar(dir.path().string(), options);
    CHECK(half->mouth == Box{100, 120, 60, 25});
  }
  SECTION("a [face] box replaces detection") {
    dir.write("avatar.toml", "image = \"portrait.jpg\"\n[face]\nx = 150\ny = 90\nwidth = 230\nheight = 230\n");
    AvatarLoadInfo face_info;
    const auto b = load_avatar(dir.path().string(), AvatarLoadOptions{}, &face_info);
    CHECK_FALSE(face_info.face_detected);
    CHECK(b->face == Box{150, 90, 230, 230});
    CHECK(b->id == dir.path().filename().string());
    CHECK(contains(b->face, b->mouth));
  }
}

TEST_CASE("missing, garbage and faceless images are clear errors", "[avatar][loader]") {
  TempDir dir;
  const std::string missing = (dir.path() / "nope.png").string();
  CHECK_THAT(message_of([&] { load_avatar(missing, AvatarLoadOptions{}); }),
             Catch::Contains("no such file") && Catch::Contains(missing));

  const fs::path garbage = dir.path() / "garbage.png";
  write_file(garbage, "this is not an image at all");
  CHECK_THAT(message_of([&] { load_avatar(garbage.string(), AvatarLoadOptions{}); }),
             Catch::Contains("cannot decode") && Catch::Contains(garbage.string()));

  const fs::path empty = dir.path() / "empty.jpg";
  write_file(empty, "");
  CHECK_THAT(message_of([&] { load_avatar(empty.string(), AvatarLoadOptions{}); }),
             Catch::Contains("empty"));

  // A flat grey 64x64 image (binary PPM) decodes but has no face.
  const fs::path grey = dir.path() / "grey.ppm";
  write_file(grey, "P6\n64 64\n255\n" + std::string(64 * 64 * 3, '\x80'));
  CHECK_THAT(message_of([&] { load_avatar(grey.string(), AvatarLoadOptions{}); }),
             Catch::Contains("no face found") && Catch::Contains(grey.string()));

  SECTION("bad avatar.toml") {
    CHECK_THAT(message_of([&] { load_avatar(dir.path().string(), AvatarLoadOptions{}); }),
               Catch::Contains("without avatar.toml"));
    dir.write("avatar.toml", "image = \n");
    CHECK_THAT(message_of([&] { load_avatar(dir.path().string(), AvatarLoadOptions{}); }),
               Catch::Contains("avatar.toml:1"));
    dir.write("avatar.toml", "id = \"x\"\n");
    CHECK_THAT(message_of([&] { load_avatar(dir.path().string(), AvatarLoadOptions{}); }),
               Catch::Contains("image"));
    fs::copy_file(avatar_test::grace_hopper_path(), dir.path() / "p.jpg");
    dir.write("avatar.toml", "image = \"p.jpg\"\n[mouth]\nx = 1\ny = 2\nwidth = -5\nheight = 3\n");
    CHECK_THAT(message_of([&] { load_avatar(dir.path().string(), AvatarLoadOptions{}); }),
               Catch::Contains("mouth.width"));
    dir.write("avatar.toml", "image = \"p.jpg\"\nmouth = 3\n");
    CHECK_THAT(message_of([&] { load_avatar(dir.path().string(), AvatarLoadOptions{}); }),
               Catch::Contains("[mouth]"));
    dir.write("avatar.toml", "image = \"p.jpg\"\n[face]\nx = 900\ny = 900\nwidth = 10\nheight = 10\n");
    CHECK_THAT(message_of([&] { load_avatar(dir.path().string(), AvatarLoadOptions{}); }),
               Catch::Contains("[face] lies outside"));
  }
}

TEST_CASE("bad load options are rejected up front", "[avatar][loader]") {
  AvatarLoadOptions options;
  options.max_size = 4;
  CHECK_THROWS_AS(options.validate(), std::invalid_argument);
  CHECK_THROWS_AS(load_avatar(avatar_test::grace_hopper_path(), options), std::invalid_argument);
  options.max_size = 512;
  options.cascade_dir = "/nonexistent/cascades";
  CHECK_THAT(message_of([&] { load_avatar(avatar_test::grace_hopper_path(), options); }),
             Catch::Contains("/nonexistent/cascades/haarcascade_frontalface_default.xml"));
}

TEST_CASE("the cache round trip gives the same avatar without detection", "[avatar][loader][cache]") {
  TempDir cache;
  AvatarLoadOptions options;
  options.cache_dir = (cache.path() / "avatars").string();  // created on demand

  AvatarLoadInfo first;
  const auto a = load_avatar(avatar_test::eileen_collins_path(), options, &first);
  CHECK_FALSE(first.detection_cached);
  CHECK_FALSE(first.rig_cached);
  const fs::path rig_file = fs::path(options.cache_dir) / (a->fingerprint + ".rig");
  REQUIRE(fs::exists(rig_file));
  int files = 0;
  for (const auto& entry : fs::directory_iterator(options.cache_dir)) {
    ++files;
    CHECK(entry.path().string().find(".tmp") == std::string::npos);  // no temporaries left
  }
  CHECK(files == 2);  // the boxes and the rig

  AvatarLoadInfo second;
  const auto b = load_avatar(avatar_test::eileen_collins_path(), options, &second);
  CHECK(second.detection_cached);
  CHECK(second.rig_cached);
  CHECK(second.face_detected == first.face_detected);
  CHECK(b->fingerprint == a->fingerprint);
  CHECK(b->face == a->face);
  CHECK(b->mouth == a->mouth);
  CHECK(b->left_eye == a->left_eye);
  CHECK(b->right_eye == a->right_eye);
  CHECK(b->portrait.data == a->portrait.data);
  CHECK(serialize_rig(*b->rig) == serialize_rig(*a->rig));
  CHECK(b->fingerprint == avatar_test::eileen_collins()->fingerprint);  // same as without a cache

  SECTION("a corrupt rig file is ignored and rewritten") {
    write_file(rig_file, "talkserve-rig-v3\ngarbage");
    AvatarLoadInfo third;
    const auto c = load_avatar(avatar_test::eileen_collins_path(), options, &third);
    CHECK(third.detection_cached);
    CHECK_FALSE(third.rig_cached);
    CHECK(serialize_rig(*c->rig) == serialize_rig(*a->rig));
    AvatarLoadInfo fourth;
    load_avatar(avatar_test::eileen_collins_path(), options, &fourth);
    CHECK(fourth.rig_cached);
  }
}

TEST_CASE("rig serialisation round-trips and rejects damage", "[avatar][rig]") {
  const AvatarRig& rig = *avatar_test::grace_hopper()->rig;
  const std::string bytes = serialize_rig(rig);
  const auto back = parse_rig(bytes);
  REQUIRE(back);
  CHECK(serialize_rig(*back) == bytes);
  CHECK_FALSE(parse_rig(bytes.substr(0, bytes.size() - 1)));
  CHECK_FALSE(parse_rig(bytes + "x"));
  CHECK_FALSE(parse_rig("talkserve-rig-v0\n" + bytes.substr(17)));
  CHECK_FALSE(parse_rig(""));
}
