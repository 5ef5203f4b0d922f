#include "talkserve/net/multipart.hpp"

#include "talkserve/net/api_error.hpp"

#include <algorithm>
#include <cctype>

namespace talkserve::net {

bool is_valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    // Lead byte: the sequence length and the range its second byte must fall in, which
    // rules out overlong forms, UTF-16 surrogates (ED A0..BF) and code points past U+10FFFF.
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (static_cast<std::size_t>(end - p) < len) return false;
    if (p[1] < lo || p[1] > hi) return false;
    for (std::size_t i = 2; i < len; ++i) {
      if (p[i] < 0x80 || p[i] > 0xBF) return false;
    }
    p += len;
  }
  return true;
}

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Value of parameter `key` in a header value like `form-data; name="file"; filename="a.wav"`.
std::optional<std::string> header_param(std::string_view value, std::string_view key) {
  std::size_t pos = value.find(';');
  while (pos != std::string_view::npos) {
    std::string_view rest = trim(value.substr(pos + 1));
    const std::size_t eq = rest.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    const std::string name = lower(trim(rest.substr(0, eq)));
    std::string_view v = rest.substr(eq + 1);
    std::string out;
    std::size_t consumed = 0;
    if (!v.empty() && v.front() == '"') {
      std::size_t i = 1;
      for (; i < v.size() && v[i] != '"'; ++i) {
        if (v[i] == '\\' && i + 1 < v.size()) ++i;
        out.push_back(v[i]);
      }
      if (i >= v.size()) throw MultipartError("unterminated quoted parameter in '" +
                                              std::string(value) + "'");
      consumed = i + 1;
    } else {
      consumed = std::min(v.find(';'), v.size());
      out = std::string(trim(v.substr(0, consumed)));
    }
    if (name == key) return out;
    const std::size_t next = v.find(';', consumed);
    if (next == std::string_view::npos) return std::nullopt;
    pos = static_cast<std::size_t>(v.data() + next - value.data());
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> form_data_boundary(std::string_view content_type) {
  const std::string type = lower(trim(content_type.substr(0, content_type.find(';'))));
  if (type != "multipart/form-data") return std::nullopt;
  auto b = header_param(content_type, "boundary");
  if (!b || b->empty() || b->size() > 70) {
    throw MultipartError("multipart/form-data needs a boundary parameter of 1 to 70 characters");
  }
  return b;
}

std::vector<FormPart> parse_form_data(std::string_view body, std::string_view boundary,
                                      std::size_t max_parts) {
  const std::string delim = "--" + std::string(boundary);
  std::vector<FormPart> parts;
  // The first delimiter may be preceded by a preamble; each later one follows a CRLF.
  std::size_t pos = body.find(delim);
  if (pos == std::string_view::npos) throw MultipartError("body has no multipart boundary");
  if (pos != 0 && (pos < 2 || body.substr(pos - 2, 2) != "\r\n")) {
    throw MultipartError("multipart boundary is not at the start of a line");
  }
  const std::string next_delim = "\r\n" + delim;
  while (true) {
    pos += delim.size();
    if (body.substr(pos, 2) == "--") return parts;  // closing delimiter
    // Transport padding, then CRLF.
    while (pos < body.size() && (body[pos] == ' ' || body[pos] == '\t')) ++pos;
    if (body.substr(pos, 2) != "\r\n") throw MultipartError("malformed multipart delimiter line");
    pos += 2;
    const std::size_t headers_end = body.find("\r\n\r\n", pos);
    const std::size_t part_end = body.find(next_delim, pos);
    if (part_end == std::string_view::npos) {
      throw MultipartError("multipart body is truncated (no closing boundary)");
    }
    if (parts.size() == max_parts) {
      throw MultipartError("too many multipart parts (at most " + std::to_string(max_parts) + ")");
    }
    FormPart part;
    std::string_view headers;
    if (headers_end != std::string_view::npos && headers_end <= part_end) {
      headers = body.substr(pos, headers_end - pos);
      // "...\r\n\r\n--boundary": the delimiter's CRLF is also the second half of the
      // headers' end, and the part is empty (its data must not run past the delimiter).
      part.data = headers_end + 4 <= part_end ? body.substr(headers_end + 4, part_end - headers_end - 4)
                                              : body.substr(part_end, 0);
    } else if (body.substr(pos, 2) == "\r\n") {
      // A part without headers (empty when the delimiter follows at once).
      part.data = part_end >= pos + 2 ? body.substr(pos + 2, part_end - pos - 2) : body.substr(part_end, 0);
    } else {
      throw MultipartError("multipart part headers are not terminated");
    }
    bool have_disposition = false;
    while (!headers.empty()) {
      const std::size_t eol = headers.find("\r\n");
      const std::string_view line = headers.substr(0, eol);
      headers = eol == std::string_view::npos ? std::string_view{} : headers.substr(eol + 2);
      const std::size_t colon = line.find(':');
      if (colon == std::string_view::npos) throw MultipartError("malformed multipart part header");
      const std::string hname = lower(trim(line.substr(0, colon)));
      const std::string_view hvalue = trim(line.substr(colon + 1));
      if (hname == "content-disposition") {
        if (lower(trim(hvalue.substr(0, hvalue.find(';')))) != "form-data") {
          throw MultipartError("multipart part is not form-data");
        }
        auto name = header_param(hvalue, "name");
        if (!name) throw MultipartError("multipart part has no name");
        part.name = std::move(*name);
        part.filename = header_param(hvalue, "filename");
        have_disposition = true;
      } else if (hname == "content-type") {
        part.content_type = std::string(hvalue);
      }
    }
    if (!have_disposition) throw MultipartError("multipart part has no Content-Disposition");
    parts.push_back(std::move(part));
    pos = part_end + 2;  // at the delimiter
  }
}

std::optional<std::vector<FormPart>> form_data_of(const Request& req) {
  std::optional<std::string> boundary;
  try {
    boundary = form_data_boundary(req[http::field::content_type]);
  } catch (const MultipartError& e) {
    throw ApiError(400, e.what());
  }
  if (!boundary) return std::nullopt;
  std::vector<FormPart> parts;
  try {
    parts = parse_form_data(req.body(), *boundary);
  } catch (const MultipartError& e) {
    throw ApiError(400, std::string("malformed multipart body: ") + e.what());
  }
  // Text fields (no filename) end up in JSON answers, logs and prompts: invalid UTF-8 is
  // refused here, once, instead of failing later as a 500 when a response is serialised.
  for (const auto& part : parts) {
    if (!part.filename && !is_valid_utf8(part.data)) {
      throw ApiError(400, "form field '" + part.name + "' is not valid UTF-8", part.name,
                     "invalid_utf8");
    }
  }
  return parts;
}

}  // namespace talkserve::net
