#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "wav2lip_test_support.hpp"

using namespace talkserve;
using namespace talkserve::avatar;
using wav2lip_test::face_input;
using wav2lip_test::mel_window;
using wav2lip_test::random_model;

namespace {

// A safetensors file holding one F32 tensor of the given shape (zeros).
std::string write_one_tensor(const std::string& file, const std::string& name, const std::vector<int>& shape) {
  std::size_t n = 1;
  std::string dims;
  for (int d : shape) {
    n *= static_cast<std::size_t>(d);
    if (!dims.empty()) dims += ',';
    dims += std::to_string(d);
  }
  std::string header = "{\"" + name + "\":{\"dtype\":\"F32\",\"shape\":[" + dims + "],\"data_offsets\":[0," +
                       std::to_string(n * 4) + "]}}";
  header.append((8 - header.size() % 8) % 8, ' ');
  const std::string path = (wav2lip_test::temp_dir().path() / file).string();
  std::ofstream out(path, std::ios::binary);
  const std::uint64_t len = header.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out << header;
  const std::vector<char> zeros(n * 4, 0);
  out.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
  return path;
}

std::string load_error(const std::string& path) {
  try {
    Wav2LipModel::load(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(no error)";
}

template <class A, class B>
double max_abs_diff(const A& a, const B& b) {
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i]));
  return worst;
}

}  // namespace

TEST_CASE("wav2lip model: 3 x 96 x 96 output in (0, 1) that depends on the audio", "[wav2lip][model]") {
  const auto model = random_model();
  CHECK(model->fingerprint().size() == 16);
  const std::vector<float> face = face_input(0);
  const std::vector<float> a = model->forward(mel_window(0), face, 1);
  const std::vector<float> b = model->forward(mel_window(1), face, 1);
  REQUIRE(a.size() == 3u * 96 * 96);
  CHECK(std::all_of(a.begin(), a.end(), [](float v) { return v > 0 && v < 1; }));
  const auto [lo, hi] = std::minmax_element(a.begin(), a.end());
  INFO("output range " << *lo << " .. " << *hi);
  CHECK(*hi - *lo > 0.2f);                // random weights, but not a flat image
  CHECK(max_abs_diff(a, b) > 1e-3);       // the audio reaches the output
  CHECK(model->forward({}, {}, 0).empty());
  CHECK_THROWS_AS(model->forward(mel_window(0), face, 2), std::runtime_error);
}

TEST_CASE("wav2lip model: each frame of a batch equals the frame run alone", "[wav2lip][model]") {
  const auto model = random_model();
  std::vector<float> mels, faces;
  for (int i = 0; i < 3; ++i) {
    const auto m = mel_window(i), f = face_input(i);
    mels.insert(mels.end(), m.begin(), m.end());
    faces.insert(faces.end(), f.begin(), f.end());
  }
  const std::vector<float> batched = model->forward(mels, faces, 3);
  REQUIRE(batched.size() == 3u * 3 * 96 * 96);
  const std::size_t per = 3 * 96 * 96;
  for (int i = 0; i < 3; ++i) {
    const std::vector<float> alone = model->forward(mel_window(i), face_input(i), 1);
    const std::vector<float> part(batched.begin() + static_cast<std::ptrdiff_t>(i * per),
                                  batched.begin() + static_cast<std::ptrdiff_t>((i + 1) * per));
    INFO("frame " << i);
    CHECK(max_abs_diff(part, alone) < 1e-4);
  }
}

TEST_CASE("wav2lip model: a missing, truncated or wrong-shaped weights file names the problem", "[wav2lip][model]") {
  using Catch::Matchers::Contains;
  const std::string dir = wav2lip_test::temp_dir().path().string();

  CHECK_THAT(load_error(dir + "/nope.safetensors"), Contains("nope.safetensors") && Contains("does not exist"));

  // Half of a real file: the header promises data past the end.
  const std::string& full = wav2lip_test::random_weights();
  const std::string truncated = dir + "/truncated.safetensors";
  std::filesystem::copy_file(full, truncated, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::resize_file(truncated, std::filesystem::file_size(full) / 2);
  CHECK_THAT(load_error(truncated), Contains("truncated.safetensors") && Contains("truncated"));

  const std::string first = "face_encoder_blocks.0.0.conv_block.0.weight";
  const std::string wrong = write_one_tensor("wrong_shape.safetensors", first, {16, 6, 7, 5});
  CHECK_THAT(load_error(wrong), Contains("wrong_shape.safetensors") && Contains(first) &&
                                    Contains("[16, 6, 7, 5]") && Contains("[16, 6, 7, 7]"));

  const std::string missing = write_one_tensor("missing.safetensors", first, {16, 6, 7, 7});
  CHECK_THAT(load_error(missing), Contains("missing.safetensors") &&
                                      Contains("missing tensor face_encoder_blocks.0.0.conv_block.0.bias"));

  const std::string garbage = dir + "/garbage.safetensors";
  std::ofstream(garbage) << "this is not a safetensors file at all";
  CHECK_THAT(load_error(garbage), Contains("garbage.safetensors"));
}

TEST_CASE("wav2lip model: scripts/convert-wav2lip.py expects exactly the loader's tensors", "[wav2lip][model]") {
  if (std::system("python3 -c 'import json' > /dev/null 2>&1") != 0) {
    WARN("python3 not found: converter table check skipped");
    return;
  }
  const std::string cmd = std::string("python3 '") + WAV2LIP_CHECK_CONVERTER_PY + "' '" + WAV2LIP_CONVERTER_PY +
                          "' '" + wav2lip_test::random_weights() + "'";
  CHECK(std::system(cmd.c_str()) == 0);
}
