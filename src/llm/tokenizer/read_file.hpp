#pragma once
// Whole-file reads for tokenizer files (small: kilobytes to tens of megabytes).

#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>

namespace talkserve::llm::detail {

// Throws std::runtime_error naming the file when it is missing, unreadable or larger than
// max_bytes (a guard against pointing the tokenizer at a multi-gigabyte checkpoint).
inline std::string read_whole_file(const std::string& path, std::uint64_t max_bytes,
                                   const char* what) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error(std::string(what) + ": cannot open " + path);
  const std::streamoff size = in.tellg();
  if (size < 0) throw std::runtime_error(std::string(what) + ": cannot size " + path);
  if (static_cast<std::uint64_t>(size) > max_bytes) {
    throw std::runtime_error(std::string(what) + ": " + path + " is " + std::to_string(size) +
                             " bytes, more than the " + std::to_string(max_bytes) +
                             " a tokenizer file may have");
  }
  std::string data(static_cast<size_t>(size), '\0');
  in.seekg(0);
  if (size > 0 && !in.read(data.data(), size)) {
    throw std::runtime_error(std::string(what) + ": read error on " + path);
  }
  return data;
}

}  // namespace talkserve::llm::detail
