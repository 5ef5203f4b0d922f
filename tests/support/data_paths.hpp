#pragma once
// Where tests find their data: the shared test data beside the checkout (../shared, or
// TALKSERVE_SHARED_DIR) and the fetched models (TALKSERVE_MODELS_DIR, set by CTest).

#include <string>

namespace talkserve::test {

std::string shared_dir();         // .../shared
std::string models_dir();         // .../models (fetch-models.sh output)
std::string speech_data_dir();    // shared_dir() + "/testdata/speech"
std::string read_binary_file(const std::string& path);  // throws std::runtime_error

}  // namespace talkserve::test
