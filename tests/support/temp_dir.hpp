#pragma once
// A fresh directory under the system temp dir (mkdtemp), removed with its contents on
// destruction. Each instance is unique, so tests may run in parallel processes.

#include <filesystem>
#include <string>

namespace talkserve::test {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // Writes `text` to path()/name and returns the full path.
  std::string write(const std::string& name, const std::string& text) const;

 private:
  std::filesystem::path path_;
};

}  // namespace talkserve::test
