#include <catch2/catch.hpp>

#include "talkserve/net/multipart.hpp"

using namespace talkserve::net;

namespace {
using namespace std::string_literals;
// A std::string literal ("..."s): the file part holds a NUL byte.
const std::string kBody =
    "preamble\r\n"
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=\"model\"\r\n"
    "\r\n"
    "whisper-1\r\n"
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".wav\"\r\n"
    "Content-Type: audio/wav\r\n"
    "\r\n"
    "RIFF\r\n--not-a-boundary\0bin"
    "\r\n"
    "--XyZ--\r\n"s;
}  // namespace

TEST_CASE("form_data_boundary reads the boundary and ignores other types") {
  CHECK(form_data_boundary("multipart/form-data; boundary=XyZ") == "XyZ");
  CHECK(form_data_boundary("Multipart/Form-Data; charset=utf-8; boundary=\"a b\"") == "a b");
  CHECK_FALSE(form_data_boundary("application/json").has_value());
  CHECK_THROWS_AS(form_data_boundary("multipart/form-data"), MultipartError);
  CHECK_THROWS_AS(form_data_boundary("multipart/form-data; boundary="), MultipartError);
}

TEST_CASE("parse_form_data splits fields and files, keeping binary data intact") {
  auto parts = parse_form_data(kBody, "XyZ");
  REQUIRE(parts.size() == 2);
  CHECK(parts[0].name == "model");
  CHECK_FALSE(parts[0].filename.has_value());
  CHECK(parts[0].data == "whisper-1");
  CHECK(parts[1].name == "file");
  CHECK(parts[1].filename == "a \"b\".wav");
  CHECK(parts[1].content_type == "audio/wav");
  CHECK(parts[1].data == "RIFF\r\n--not-a-boundary\0bin"s);
}

TEST_CASE("malformed multipart bodies are errors, not crashes") {
  CHECK_THROWS_WITH(parse_form_data("", "XyZ"), Catch::Contains("no multipart boundary"));
  CHECK_THROWS_WITH(
      parse_form_data("--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nabc", "XyZ"),
      Catch::Contains("truncated"));
  CHECK_THROWS_WITH(parse_form_data("--XyZ\r\nContent-Type: text/plain\r\n\r\nabc\r\n--XyZ--",
                                    "XyZ"),
                    Catch::Contains("Content-Disposition"));
  CHECK_THROWS_WITH(parse_form_data("--XyZ\r\nContent-Disposition: form-data\r\n\r\nabc\r\n--XyZ--",
                                    "XyZ"),
                    Catch::Contains("no name"));
  CHECK_THROWS_AS(parse_form_data("--XyZ garbage", "XyZ"), MultipartError);
  std::string many;
  for (int i = 0; i < 5; ++i) many += "--B\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nv\r\n";
  many += "--B--";
  CHECK(parse_form_data(many, "B", 5).size() == 5);
  CHECK_THROWS_WITH(parse_form_data(many, "B", 4), Catch::Contains("too many"));
}
