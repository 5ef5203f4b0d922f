#include "model_files.hpp"

#include <openssl/evp.h>
#include <toml++/toml.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

namespace talkserve::app {
namespace {

namespace fs = std::filesystem;

std::string sha256_of(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ModelFileError("cannot read model file " + path.string());
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) throw std::runtime_error("sha256: no context");
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (in.gcount() > 0) EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<std::size_t>(in.gcount()));
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md.data(), &len);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

}  // namespace

int verify_model_files(const std::string& models_dir, const std::string& model_dir) {
  const fs::path manifest_path = fs::path(models_dir) / "manifest.toml";
  std::error_code ec;
  if (!fs::exists(manifest_path, ec)) return 0;
  toml::table manifest;
  try {
    manifest = toml::parse_file(manifest_path.string());
  } catch (const toml::parse_error& e) {
    throw ModelFileError(manifest_path.string() + ": " + std::string(e.description()));
  }
  const fs::path wanted = fs::weakly_canonical(fs::path(model_dir), ec);
  int checked = 0;
  const toml::array* models = manifest["model"].as_array();
  if (models == nullptr) return 0;
  for (const toml::node& m : *models) {
    const toml::table* model = m.as_table();
    if (model == nullptr) continue;
    const auto dir = (*model)["dir"].value<std::string>();
    if (!dir || fs::weakly_canonical(fs::path(models_dir) / *dir, ec) != wanted) continue;
    const toml::array* files = (*model)["file"].as_array();
    if (files == nullptr) continue;
    for (const toml::node& f : *files) {
      const toml::table* file = f.as_table();
      if (file == nullptr) continue;
      const auto name = (*file)["path"].value<std::string>();
      const auto size = (*file)["size"].value<std::int64_t>();
      const auto sha = (*file)["sha256"].value<std::string>();
      if (!name || !size || !sha) continue;
      const fs::path p = fs::path(model_dir) / *name;
      const std::string want = "expected " + std::to_string(*size) + " bytes, sha256 " + *sha +
                               " (scripts/fetch-models.sh fetches and verifies the models)";
      if (!fs::exists(p, ec)) throw ModelFileError("model file " + p.string() + " is missing: " + want);
      const auto actual_size = fs::file_size(p, ec);
      if (ec || static_cast<std::int64_t>(actual_size) != *size) {
        throw ModelFileError("model file " + p.string() + " has " + std::to_string(actual_size) + " bytes: " + want);
      }
      const std::string actual = sha256_of(p);
      if (actual != *sha) throw ModelFileError("model file " + p.string() + " has sha256 " + actual + ": " + want);
      ++checked;
    }
  }
  return checked;
}

}  // namespace talkserve::app
