#include "talkserve/cache/clip_key.hpp"

#include <array>
#include <charconv>
#include <cstdint>
#include <stdexcept>
#include <system_error>

#include "cache/sha256.hpp"

namespace talkserve::cache {

bool is_clip_id(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

struct ClipKeyBuilder::Impl {
  detail::Sha256 hash;
  bool finished = false;

  void length(std::uint64_t n) {
    std::array<unsigned char, 8> le{};
    for (std::size_t i = 0; i < le.size(); ++i) le[i] = static_cast<unsigned char>(n >> (8 * i));
    hash.update(le.data(), le.size());
  }
  void put(std::string_view name, const void* data, std::size_t size) {
    if (finished) throw std::logic_error("ClipKeyBuilder used after finish()");
    length(name.size());
    hash.update(name);
    length(size);
    hash.update(data, size);
  }
};

ClipKeyBuilder::ClipKeyBuilder() : impl_(std::make_unique<Impl>()) {
  field("schema", kClipKeySchema);
}
ClipKeyBuilder::~ClipKeyBuilder() = default;
ClipKeyBuilder::ClipKeyBuilder(ClipKeyBuilder&&) noexcept = default;
ClipKeyBuilder& ClipKeyBuilder::operator=(ClipKeyBuilder&&) noexcept = default;

ClipKeyBuilder& ClipKeyBuilder::field(std::string_view name, std::string_view value) {
  if (!impl_) throw std::logic_error("ClipKeyBuilder used after move");
  impl_->put(name, value.data(), value.size());
  return *this;
}

ClipKeyBuilder& ClipKeyBuilder::field(std::string_view name, std::span<const std::byte> value) {
  if (!impl_) throw std::logic_error("ClipKeyBuilder used after move");
  impl_->put(name, value.data(), value.size());
  return *this;
}

ClipKeyBuilder& ClipKeyBuilder::tts(std::string_view text, std::string_view voice) {
  field("tts.text", text);
  return field("tts.voice", voice);
}

ClipKeyBuilder& ClipKeyBuilder::renderer(std::string_view name, std::string_view version) {
  field("renderer.name", name);
  return field("renderer.version", version);
}

ClipKeyBuilder& ClipKeyBuilder::model(std::string_view name, std::string_view version) {
  // Both parts are fields of their own, so ("a.b","c") and ("a","b.c") stay apart.
  field("model.name", name);
  return field("model.version", version);
}

ClipKeyBuilder& ClipKeyBuilder::param(std::string_view name, std::string_view value) {
  return typed_param(name, 's', value);
}

ClipKeyBuilder& ClipKeyBuilder::typed_param(std::string_view name, char type,
                                            std::string_view value) {
  field("param.name", name);
  field("param.type", std::string_view(&type, 1));
  return field("param.value", value);
}

ClipKeyBuilder& ClipKeyBuilder::param_int(std::string_view name, long long value) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, value);
  return typed_param(name, 'i', std::string_view(buf, static_cast<std::size_t>(r.ptr - buf)));
}

ClipKeyBuilder& ClipKeyBuilder::param_uint(std::string_view name, unsigned long long value) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, value);
  // Same type tag as signed integers: param("n", 3) and param("n", 3u) mean the same.
  return typed_param(name, 'i', std::string_view(buf, static_cast<std::size_t>(r.ptr - buf)));
}

ClipKeyBuilder& ClipKeyBuilder::param_double(std::string_view name, double value) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, value);
  if (r.ec != std::errc{}) throw std::runtime_error("cannot format a double render parameter");
  return typed_param(name, 'f', std::string_view(buf, static_cast<std::size_t>(r.ptr - buf)));
}

std::string ClipKeyBuilder::finish() {
  if (!impl_ || impl_->finished) throw std::logic_error("ClipKeyBuilder::finish called twice");
  impl_->finished = true;
  return impl_->hash.finish_hex();
}

}  // namespace talkserve::cache
