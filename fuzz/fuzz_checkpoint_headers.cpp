// Checkpoint headers (src/llm/model/checkpoint_headers.cpp), the torch-free part of the model
// loaders that decides every later allocation and read. The first input byte picks the
// format; the rest is the file:
//   even: a .safetensors file (u64 header length, JSON header, data);
//   odd:  a llama2.c legacy checkpoint: the 7-int32 header, with the file size taken from the
//         next 8 bytes (a real checkpoint is megabytes; only its header is read here).
// Fails on a sanitizer report, an exception other than std::runtime_error, or an accepted
// header that breaks what the loaders rely on: every safetensors entry lies inside the file's
// data section and its byte size is exactly shape x dtype size (no overflow), and a llama2.c
// header's expected size equals the file size.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "llm/model/checkpoint_headers.hpp"

namespace {

using namespace talkserve::llm::detail;

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "fuzz_checkpoint_headers: %s\n", why.c_str());
  std::abort();
}

void safetensors(const std::uint8_t* data, std::size_t size) {
  // Bounds-checked like BinaryFile::read_at, over the input instead of a file.
  const ReadAt read_at = [&](std::uint64_t offset, void* dst, std::uint64_t n, std::string_view what) {
    if (offset > size || n > size - offset) {
      throw std::runtime_error("truncated: " + std::string(what));
    }
    std::memcpy(dst, data + offset, n);
  };
  try {
    const auto entries = parse_safetensors_header(size, read_at, "fuzz.safetensors");
    for (const auto& [name, e] : entries) {
      if (e.begin > e.end || e.end > size) fail("tensor " + name + " lies outside the file");
      const unsigned esize = e.dtype == "F32" ? 4 : (e.dtype == "F16" || e.dtype == "BF16") ? 2 : 0;
      if (esize == 0) fail("tensor " + name + " has dtype " + e.dtype);
      unsigned __int128 bytes = esize;
      for (int64_t d : e.shape) {
        if (d < 0) fail("tensor " + name + " has a negative dimension");
        bytes *= static_cast<unsigned __int128>(d);
        if (bytes > (static_cast<unsigned __int128>(1) << 64)) break;
      }
      if (bytes != e.end - e.begin) {
        fail("tensor " + name + ": shape x dtype size does not equal its data_offsets range");
      }
    }
  } catch (const std::runtime_error&) {
  }
}

void llama2c(const std::uint8_t* data, std::size_t size) {
  std::int32_t header[7] = {};
  std::uint64_t file_size = 0;
  if (size < sizeof(header) + sizeof(file_size)) return;
  std::memcpy(header, data, sizeof(header));
  std::memcpy(&file_size, data + sizeof(header), sizeof(file_size));
  try {
    const Llama2cLayout layout = parse_llama2c_header(header, file_size, "fuzz.bin");
    if (layout.expected_bytes != file_size) fail("accepted a file whose size the header does not imply");
    const auto& hp = layout.hp;
    if (hp.dim <= 0 || hp.n_heads <= 0 || hp.dim % hp.n_heads != 0 || hp.head_dim * hp.n_heads != hp.dim) {
      fail("accepted inconsistent dimensions");
    }
  } catch (const std::runtime_error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  if ((data[0] & 1) == 0) {
    safetensors(data + 1, size - 1);
  } else {
    llama2c(data + 1, size - 1);
  }
  return 0;
}
