#include "support/data_paths.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace talkserve::test {
namespace {

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string(v) : std::string();
}

std::string source_dir() {
  std::string s = env_or_empty("TALKSERVE_SOURCE_DIR");
  if (s.empty()) throw std::runtime_error("test: TALKSERVE_SOURCE_DIR is not set (run via ctest)");
  return s;
}

}  // namespace

std::string shared_dir() {
  if (std::string s = env_or_empty("TALKSERVE_SHARED_DIR"); !s.empty()) return s;
  return source_dir() + "/../shared";
}

std::string models_dir() {
  if (std::string s = env_or_empty("TALKSERVE_MODELS_DIR"); !s.empty()) return s;
  return source_dir() + "/models";
}

std::string speech_data_dir() { return shared_dir() + "/testdata/speech"; }

std::string read_binary_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("test: cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace talkserve::test
