#include "test_paths.hpp"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

namespace talkserve::llm::test {

std::string shared_dir() {
  if (const char* s = std::getenv("TALKSERVE_SHARED_DIR"); s != nullptr && *s != '\0') return s;
  if (const char* s = std::getenv("TALKSERVE_SOURCE_DIR"); s != nullptr && *s != '\0') {
    return std::string(s) + "/../shared";
  }
  return std::string(TALKSERVE_TEST_SOURCE_DIR) + "/../shared";
}

std::string models_dir() {
  if (const char* s = std::getenv("TALKSERVE_MODELS_DIR"); s != nullptr && *s != '\0') return s;
  if (const char* s = std::getenv("TALKSERVE_SOURCE_DIR"); s != nullptr && *s != '\0') {
    return std::string(s) + "/models";
  }
  return std::string(TALKSERVE_TEST_SOURCE_DIR) + "/models";
}

std::string stories_model() { return models_dir() + "/stories260K/stories260K.bin"; }
std::string stories_tokenizer() { return models_dir() + "/stories260K/tok512.bin"; }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("test: cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("test: cannot write " + path);
}

TempDir::TempDir() {
  namespace fs = std::filesystem;
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    fs::path p = fs::temp_directory_path() /
                 ("talkserve-llm-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    if (fs::create_directory(p)) {
      path_ = p.string();
      return;
    }
  }
  throw std::runtime_error("test: cannot create a temp dir");
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace talkserve::llm::test
