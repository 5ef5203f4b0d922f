#pragma once
// Checks a model directory against models/manifest.toml before the server loads it, so a
// missing, truncated or corrupt file stops the start with a message naming the file and the
// size and SHA-256 it should have (exit status 2), instead of a load error deep in a model
// loader, or weights that load but are wrong.

#include <stdexcept>
#include <string>

namespace talkserve::app {

// A model file that is missing or does not match the manifest.
class ModelFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Verifies every file the manifest (<models_dir>/manifest.toml) lists for the model stored in
// `model_dir` (a path under models_dir). Returns the number of files checked: 0 when there is
// no manifest or it does not list that directory (a user's own checkpoint). Throws
// ModelFileError naming the first bad file, with its expected size and sha256.
int verify_model_files(const std::string& models_dir, const std::string& model_dir);

}  // namespace talkserve::app
