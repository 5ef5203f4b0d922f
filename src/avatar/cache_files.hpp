#pragma once
// Small file helpers for the avatar cache: whole-file reads, atomic writes (a temporary file in
// the same directory, then rename, so a concurrent reader sees the old file or the new one,
// never half of one), and SHA-256 hex digests for cache keys and fingerprints.
//
// Thread-safety: reentrant.

#include <optional>
#include <string>
#include <string_view>

namespace talkserve::avatar::detail {

// The file's bytes, or nullopt when it does not exist or cannot be read.
std::optional<std::string> read_whole_file(const std::string& path);

// Writes `bytes` to `path` atomically; returns false (and leaves no temporary file) on failure.
bool write_file_atomic(const std::string& path, std::string_view bytes);

// Lower-case hex SHA-256 of `bytes`.
std::string sha256_hex(std::string_view bytes);

}  // namespace talkserve::avatar::detail
