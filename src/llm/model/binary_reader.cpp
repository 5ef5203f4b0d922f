#include "llm/model/binary_reader.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace talkserve::llm::detail {

BinaryFile::BinaryFile(std::string path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) {
    throw std::runtime_error("cannot open checkpoint " + path_ + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd_);
    throw std::runtime_error("checkpoint " + path_ + " is not a regular file");
  }
  size_ = static_cast<std::uint64_t>(st.st_size);
}

BinaryFile::~BinaryFile() {
  if (fd_ >= 0) ::close(fd_);
}

void BinaryFile::read_at(std::uint64_t offset, void* dst, std::uint64_t n,
                         std::string_view what) const {
  if (offset > size_ || n > size_ - offset) {
    throw std::runtime_error(path_ + ": truncated: " + std::string(what) + " needs bytes [" +
                             std::to_string(offset) + ", " + std::to_string(offset + n) +
                             ") but the file has " + std::to_string(size_));
  }
  auto* out = static_cast<char*>(dst);
  while (n > 0) {
    const ssize_t got = ::pread(fd_, out, n, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      throw std::runtime_error(path_ + ": read error in " + std::string(what) + ": " +
                               (got < 0 ? std::strerror(errno) : "unexpected end of file"));
    }
    out += got;
    offset += static_cast<std::uint64_t>(got);
    n -= static_cast<std::uint64_t>(got);
  }
}

}  // namespace talkserve::llm::detail
