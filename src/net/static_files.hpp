#pragma once
// Serves files from a root folder: GET/HEAD only, no path escapes the root, MIME type by
// extension, ETag from size and modification time, 304 on If-None-Match.

#include <optional>
#include <string>
#include <string_view>

#include "talkserve/net/exchange.hpp"

namespace talkserve::net {

std::string_view mime_type_for(std::string_view path);

// Returns nullopt when `target` names no file under `root` (the caller answers 404).
// Throws nothing; a path that tries to leave the root is answered with 404 as well.
std::optional<Response> serve_static(const std::string& root, const Request& req);

// Percent-decodes a URL path. Returns nullopt on malformed escapes or an embedded NUL.
std::optional<std::string> url_decode_path(std::string_view path);

}  // namespace talkserve::net
