// multipart/form-data (src/net/multipart.cpp). Input: a Content-Type value, a newline, then the
// body. Fails on a sanitizer report, an exception other than MultipartError, or parts that
// break the parser's promises: each part's data is a view inside the body, parts do not
// overlap and come in body order, and at most max_parts come back.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "talkserve/net/multipart.hpp"

namespace {

[[noreturn]] void fail(const char* why) {
  std::fprintf(stderr, "fuzz_multipart: %s\n", why);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t nl = input.find('\n');
  if (nl == std::string_view::npos) return 0;
  const std::string_view content_type = input.substr(0, nl);
  // A copy of exactly the body's bytes, so ASan sees any read past its end.
  const std::string body(input.substr(nl + 1));
  constexpr std::size_t kMaxParts = 8;

  std::optional<std::string> boundary;
  try {
    boundary = talkserve::net::form_data_boundary(content_type);
  } catch (const talkserve::net::MultipartError&) {
    return 0;
  }
  if (!boundary) return 0;
  if (boundary->empty() || boundary->size() > 70) fail("boundary outside 1..70 characters");
  try {
    const auto parts = talkserve::net::parse_form_data(body, *boundary, kMaxParts);
    if (parts.size() > kMaxParts) fail("more parts than max_parts");
    const char* prev_end = body.data();
    for (const auto& p : parts) {
      if (p.data.data() < prev_end || p.data.data() + p.data.size() > body.data() + body.size()) {
        fail("part data outside the body or out of order");
      }
      prev_end = p.data.data() + p.data.size();
    }
  } catch (const talkserve::net::MultipartError&) {
  }
  return 0;
}
