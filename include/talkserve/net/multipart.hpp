#pragma once
// multipart/form-data request bodies (RFC 7578), as OpenAI's file-upload endpoints take them.
// The parts are views into the body, which must outlive the result.
//
// Thread-safety: pure functions.

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "talkserve/net/exchange.hpp"

namespace talkserve::net {

struct FormPart {
  std::string name;                    // Content-Disposition name
  std::optional<std::string> filename; // set for file fields
  std::string content_type;            // the part's Content-Type ("" if absent)
  std::string_view data;
};

// A malformed body or Content-Type; what() says what is wrong (for a 400).
class MultipartError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The boundary parameter of a multipart/form-data Content-Type, or nullopt when the type is
// something else. Throws MultipartError if it is multipart/form-data without a valid boundary.
std::optional<std::string> form_data_boundary(std::string_view content_type);

// Splits `body` into its parts. Throws MultipartError on a missing closing delimiter, a part
// without headers or without a Content-Disposition name, or more than `max_parts` parts.
std::vector<FormPart> parse_form_data(std::string_view body, std::string_view boundary,
                                      std::size_t max_parts = 64);

// True when `s` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
// past U+10FFFF).
bool is_valid_utf8(std::string_view s);

// The parts of a request whose body is multipart/form-data (views into req.body()), or
// nullopt for any other Content-Type. Throws ApiError(400) for a bad boundary or body, and
// for a text field (a part without a filename) that is not valid UTF-8.
std::optional<std::vector<FormPart>> form_data_of(const Request& req);

}  // namespace talkserve::net
