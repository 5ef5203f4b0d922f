#include "support/temp_dir.hpp"

#include <stdlib.h>

#include <cerrno>
#include <fstream>
#include <stdexcept>
#include <system_error>

namespace talkserve::test {

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "talkserve-test-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) {
    throw std::system_error(errno, std::generic_category(), "mkdtemp " + tmpl);
  }
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::write(const std::string& name, const std::string& text) const {
  auto p = path_ / name;
  std::ofstream out(p, std::ios::binary);
  out << text;
  out.close();
  if (!out) throw std::runtime_error("cannot write " + p.string());
  return p.string();
}

}  // namespace talkserve::test
