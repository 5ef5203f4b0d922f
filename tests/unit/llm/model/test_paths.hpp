#pragma once
// Locations of the shared test models and a scratch directory for files tests write.

#include <string>

namespace talkserve::llm::test {

// $TALKSERVE_SHARED_DIR, else $TALKSERVE_SOURCE_DIR/../shared, else <compile-time source>/../shared.
std::string shared_dir();
// Fetched models (scripts/fetch-models.sh): $TALKSERVE_MODELS_DIR, else <source>/models.
std::string models_dir();
std::string stories_model();      // .../models/stories260K/stories260K.bin
std::string stories_tokenizer();  // .../models/stories260K/tok512.bin
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& bytes);

// A fresh empty directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace talkserve::llm::test
