#include <catch2/catch.hpp>

#include "talkserve/net/api_error.hpp"
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

TEST_CASE("is_valid_utf8 accepts UTF-8 and refuses overlongs, surrogates and stray bytes",
          "[net][multipart][utf8]") {
  CHECK(is_valid_utf8(""));
  CHECK(is_valid_utf8("plain ascii"));
  CHECK(is_valid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF"));
  CHECK_FALSE(is_valid_utf8("\x80"));               // continuation without a lead
  CHECK_FALSE(is_valid_utf8("caf\xC3"));            // truncated
  CHECK_FALSE(is_valid_utf8("\xC0\xAF"));           // overlong '/'
  CHECK_FALSE(is_valid_utf8("\xE0\x80\xAF"));       // overlong '/' in three bytes
  CHECK_FALSE(is_valid_utf8("\xED\xA0\x80"));       // UTF-16 surrogate U+D800
  CHECK_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));   // past U+10FFFF
  CHECK_FALSE(is_valid_utf8("\xFF\xFE"));
}

TEST_CASE("form_data_of refuses a text field that is not UTF-8 and allows binary files",
          "[net][multipart][utf8]") {
  auto request = [](std::string field) {
    Request req{http::verb::post, "/v1/talk", 11};
    req.set(http::field::content_type, "multipart/form-data; boundary=B");
    req.body() = "--B\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n" + field +
                 "\r\n--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n"
                 "\r\n\xFF\xFE\x80\r\n--B--\r\n";
    return req;
  };
  auto good = request("caf\xC3\xA9");
  auto parts = form_data_of(good);
  REQUIRE(parts);
  CHECK(parts->size() == 2);
  auto bad = request("caf\xC3");
  try {
    form_data_of(bad);
    FAIL("no error for invalid UTF-8");
  } catch (const ApiError& e) {
    CHECK(e.status == 400);
    CHECK(std::string(e.what()).find("'text' is not valid UTF-8") != std::string::npos);
  }
}

TEST_CASE("an empty part whose delimiter follows at once stays inside the body, in order",
          "[net][multipart]") {
  // Found by fuzz_multipart: "\r\n\r\n--B" made the part's data start past the delimiter and
  // run to the end of the body (an unsigned length wrapped).
  const std::string body =
      "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n--B\r\n"  // headers, then the delimiter
      "Content-Disposition: form-data; name=\"c\"\r\n\r\nxyz\r\n--B--\r\n";
  const auto parts = parse_form_data(body, "B", 8);
  REQUIRE(parts.size() == 2);
  const char* prev_end = body.data();
  for (const auto& p : parts) {
    CHECK(p.data.data() >= prev_end);
    CHECK(p.data.data() + p.data.size() <= body.data() + body.size());
    prev_end = p.data.data() + p.data.size();
  }
  CHECK(parts[0].name == "a");
  CHECK(parts[0].data.empty());
  CHECK(parts[1].name == "c");
  CHECK(parts[1].data == "xyz");
  // No headers and no data: refused (no Content-Disposition), not read out of bounds.
  CHECK_THROWS_AS(parse_form_data("--B\r\n\r\n--B--\r\n", "B", 8), MultipartError);
}
