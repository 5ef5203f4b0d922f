// wav2vec2 loading errors: each is an AsrError naming the file, key or tensor.

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "support/data_paths.hpp"
#include "support/temp_dir.hpp"
#include "talkserve/speech/wav2vec2.hpp"

using namespace talkserve::speech;
using talkserve::test::TempDir;
namespace fs = std::filesystem;

namespace {

std::string write_tiny(const TempDir& tmp) {
  const std::string dir = (tmp.path() / "model").string();
  write_random_wav2vec2(dir, Wav2Vec2RandomSpec::tiny_group(), 9);
  return dir;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

void check_load_fails(const std::string& dir, const std::vector<std::string>& mentions) {
  Wav2Vec2Options opt;
  opt.path = dir;
  try {
    Wav2Vec2Asr::load(opt);
    FAIL("loaded without error");
  } catch (const AsrError& e) {
    INFO(e.what());
    for (const auto& m : mentions) CHECK_THAT(e.what(), Catch::Contains(m));
  }
}

// Rewrites the JSON header of model.safetensors through `edit`, keeping the data.
template <typename Edit>
void edit_safetensors_header(const std::string& dir, Edit edit) {
  const std::string path = dir + "/model.safetensors";
  const std::string bytes = talkserve::test::read_binary_file(path);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<std::size_t>(i)]);
  nlohmann::json header = nlohmann::json::parse(bytes.substr(8, n));
  edit(header);
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>((h.size() >> (8 * i)) & 0xff);
  write_file(path, out + h + bytes.substr(8 + n));
}

template <typename Edit>
void edit_config(const std::string& dir, Edit edit) {
  nlohmann::json config = nlohmann::json::parse(talkserve::test::read_binary_file(dir + "/config.json"));
  edit(config);
  write_file(dir + "/config.json", config.dump());
}

}  // namespace

TEST_CASE("wav2vec2: missing directory and files", "[speech][wav2vec2][torch]") {
  TempDir tmp;
  check_load_fails((tmp.path() / "nope").string(), {"nope", "does not exist"});
  const std::string dir = write_tiny(tmp);
  for (const char* file : {"config.json", "vocab.json", "model.safetensors"}) {
    TempDir copy;
    fs::copy(dir, copy.path() / "m");
    fs::remove(copy.path() / "m" / file);
    check_load_fails((copy.path() / "m").string(), {file, "missing"});
  }
}

TEST_CASE("wav2vec2: malformed and unsupported config", "[speech][wav2vec2][torch]") {
  TempDir tmp;
  const std::string dir = write_tiny(tmp);
  SECTION("not JSON") {
    write_file(dir + "/config.json", "{\"hidden_size\": 32,");
    check_load_fails(dir, {"config.json", "not valid JSON"});
  }
  SECTION("feat_extract_norm") {
    edit_config(dir, [](auto& c) { c["feat_extract_norm"] = "batch"; });
    check_load_fails(dir, {"config.json", "feat_extract_norm", "batch"});
  }
  SECTION("activation") {
    edit_config(dir, [](auto& c) { c["hidden_act"] = "relu"; });
    check_load_fails(dir, {"config.json", "hidden_act"});
  }
  SECTION("heads do not divide hidden") {
    edit_config(dir, [](auto& c) { c["num_attention_heads"] = 5; });
    check_load_fails(dir, {"config.json", "num_attention_heads"});
  }
  SECTION("wrong type") {
    edit_config(dir, [](auto& c) { c["hidden_size"] = "big"; });
    check_load_fails(dir, {"config.json", "hidden_size"});
  }
  SECTION("conv lists of different lengths") {
    edit_config(dir, [](auto& c) { c["conv_kernel"] = {10, 3}; });
    check_load_fails(dir, {"config.json", "conv_"});
  }
  SECTION("other model type") {
    edit_config(dir, [](auto& c) { c["model_type"] = "hubert"; });
    check_load_fails(dir, {"config.json", "model_type", "hubert"});
  }
  SECTION("config does not match the weights") {
    edit_config(dir, [](auto& c) { c["hidden_size"] = 64; });
    check_load_fails(dir, {"model.safetensors", "expected"});
  }
  SECTION("vocab without an id") {
    write_file(dir + "/vocab.json", "{\"<pad>\": 0, \"|\": 1}");
    check_load_fails(dir, {"vocab.json", "id 2"});
  }
}

TEST_CASE("wav2vec2: broken safetensors", "[speech][wav2vec2][torch]") {
  TempDir tmp;
  const std::string dir = write_tiny(tmp);
  const std::string path = dir + "/model.safetensors";
  SECTION("truncated") {
    const std::string bytes = talkserve::test::read_binary_file(path);
    write_file(path, bytes.substr(0, bytes.size() / 2));
    check_load_fails(dir, {"model.safetensors", "truncated"});
  }
  SECTION("truncated header") {
    write_file(path, std::string("\x10\x00\x00", 3));
    check_load_fails(dir, {"model.safetensors"});
  }
  SECTION("missing tensor") {
    edit_safetensors_header(dir, [](auto& h) { h.erase("wav2vec2.encoder.layers.1.attention.k_proj.weight"); });
    check_load_fails(dir, {"model.safetensors", "missing tensor wav2vec2.encoder.layers.1.attention.k_proj.weight"});
  }
  SECTION("wrong shape") {
    edit_safetensors_header(dir, [](auto& h) { h["lm_head.weight"]["shape"] = {16, 64}; });
    check_load_fails(dir, {"model.safetensors", "lm_head.weight", "[16, 64]", "[32, 32]"});
  }
  SECTION("missing positional conv weight norm") {
    edit_safetensors_header(dir, [](auto& h) { h.erase("wav2vec2.encoder.pos_conv_embed.conv.weight_g"); });
    check_load_fails(dir, {"model.safetensors", "weight_g"});
  }
}

TEST_CASE("wav2vec2: bad options", "[speech][wav2vec2][torch]") {
  TempDir tmp;
  const std::string dir = write_tiny(tmp);
  Wav2Vec2Options opt;
  opt.path = dir;
  opt.device = "tpu";
  CHECK_THROWS_WITH(Wav2Vec2Asr::load(opt), Catch::Contains("wav2vec2.device"));
  opt.device = "cuda:0";
  // Without a CUDA device this is a clear AsrError, not a crash (with one, it loads).
  CHECK_NOTHROW([&] {
    try {
      Wav2Vec2Asr::load(opt);
    } catch (const AsrError&) {
    }
  }());
  opt.device = "cpu";
  opt.threads = -1;
  CHECK_THROWS_WITH(Wav2Vec2Asr::load(opt), Catch::Contains("wav2vec2.threads"));
}
