#include "static_files.hpp"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <system_error>

namespace talkserve::net {

namespace fs = std::filesystem;

std::string_view mime_type_for(std::string_view path) {
  auto dot = path.rfind('.');
  if (dot == std::string_view::npos) return "application/octet-stream";
  std::string ext(path.substr(dot + 1));
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  struct Entry {
    const char* ext;
    const char* type;
  };
  static constexpr Entry kTypes[] = {
      {"html", "text/html; charset=utf-8"},  {"htm", "text/html; charset=utf-8"},
      {"css", "text/css; charset=utf-8"},    {"js", "text/javascript; charset=utf-8"},
      {"mjs", "text/javascript; charset=utf-8"}, {"json", "application/json"},
      {"txt", "text/plain; charset=utf-8"},  {"md", "text/markdown; charset=utf-8"},
      {"svg", "image/svg+xml"},              {"png", "image/png"},
      {"jpg", "image/jpeg"},                 {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},                  {"webp", "image/webp"},
      {"ico", "image/vnd.microsoft.icon"},   {"wasm", "application/wasm"},
      {"mp4", "video/mp4"},                  {"webm", "video/webm"},
      {"wav", "audio/wav"},                  {"mp3", "audio/mpeg"},
      {"ogg", "audio/ogg"},                  {"woff2", "font/woff2"},
      {"map", "application/json"},
  };
  for (const auto& e : kTypes) {
    if (ext == e.ext) return e.type;
  }
  return "application/octet-stream";
}

std::optional<std::string> url_decode_path(std::string_view path) {
  std::string out;
  out.reserve(path.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == '%') {
      if (i + 2 >= path.size()) return std::nullopt;
      int hi = hex(path[i + 1]);
      int lo = hex(path[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0') return std::nullopt;
    out.push_back(c);
  }
  return out;
}

std::optional<Response> serve_static(const std::string& root, const Request& req) {
  std::string_view target = req.target();
  auto q = target.find('?');
  if (q != std::string_view::npos) target = target.substr(0, q);
  auto decoded = url_decode_path(target);
  if (!decoded || decoded->empty() || decoded->front() != '/') return std::nullopt;
  // Reject any ".." segment outright, then also check the resolved path stays in the root.
  std::string rel = decoded->substr(1);
  if (rel.empty() || rel.back() == '/') rel += "index.html";
  for (std::size_t start = 0; start <= rel.size();) {
    auto end = rel.find('/', start);
    if (end == std::string::npos) end = rel.size();
    auto seg = std::string_view(rel).substr(start, end - start);
    if (seg == ".." || seg == "." || seg.find('\\') != std::string_view::npos) return std::nullopt;
    start = end + 1;
  }
  std::error_code ec;
  fs::path base = fs::weakly_canonical(fs::path(root), ec);
  if (ec) return std::nullopt;
  fs::path file = fs::weakly_canonical(base / rel, ec);
  if (ec) return std::nullopt;
  auto base_str = base.string();
  auto file_str = file.string();
  if (file_str.compare(0, base_str.size(), base_str) != 0 ||
      (file_str.size() > base_str.size() && file_str[base_str.size()] != '/')) {
    return std::nullopt;
  }
  if (!fs::is_regular_file(file, ec)) return std::nullopt;
  auto size = fs::file_size(file, ec);
  if (ec) return std::nullopt;
  auto mtime = fs::last_write_time(file, ec).time_since_epoch().count();
  std::ostringstream etag;
  etag << "\"" << std::hex << size << "-" << mtime << "\"";

  Response res{http::status::ok, req.version()};
  res.set(http::field::content_type, std::string(mime_type_for(file_str)));
  res.set(http::field::etag, etag.str());
  res.set(http::field::cache_control, "no-cache");
  if (req[http::field::if_none_match] == etag.str()) {
    res.result(http::status::not_modified);
    res.content_length(0);
    return res;
  }
  if (req.method() == http::verb::head) {
    res.content_length(size);
    return res;
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::nullopt;
  res.body().assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  res.prepare_payload();
  return res;
}

}  // namespace talkserve::net
