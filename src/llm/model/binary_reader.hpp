#pragma once
// Bounds-checked positional reads from a checkpoint file. Every failure names the file.

#include <cstdint>
#include <string>
#include <string_view>

namespace talkserve::llm::detail {

class BinaryFile {
 public:
  explicit BinaryFile(std::string path);  // throws std::runtime_error if it cannot be opened
  ~BinaryFile();
  BinaryFile(const BinaryFile&) = delete;
  BinaryFile& operator=(const BinaryFile&) = delete;

  const std::string& path() const { return path_; }
  std::uint64_t size() const { return size_; }
  // Reads exactly n bytes at offset; throws "<path>: truncated ..." naming `what` when the
  // file is shorter. Thread-safe (pread).
  void read_at(std::uint64_t offset, void* dst, std::uint64_t n, std::string_view what) const;

 private:
  std::string path_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

}  // namespace talkserve::llm::detail
