#include "talkserve/llm/tokenizer.hpp"

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include "llm/tokenizer/tokenizer_factories.hpp"

namespace talkserve::llm {

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos,
                                       bool parse_special) const {
  std::vector<int32_t> out;
  if (add_bos && bos_id_ >= 0) out.push_back(bos_id_);
  if (!parse_special || special_texts_.empty()) {
    encode_plain(text, out);
    return out;
  }
  // Split on special-token text, leftmost then longest (special_texts_ is sorted longest
  // first), and tokenize the plain stretches between them.
  size_t plain_start = 0;
  size_t i = 0;
  while (i < text.size()) {
    const std::pair<std::string, int32_t>* hit = nullptr;
    for (const auto& st : special_texts_) {
      if (text.compare(i, st.first.size(), st.first) == 0) {
        hit = &st;
        break;
      }
    }
    if (hit == nullptr) {
      ++i;
      continue;
    }
    if (i > plain_start) encode_plain(text.substr(plain_start, i - plain_start), out);
    out.push_back(hit->second);
    i += hit->first.size();
    plain_start = i;
  }
  if (plain_start < text.size()) encode_plain(text.substr(plain_start), out);
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, int32_t prev_id) const {
  std::string out;
  for (int32_t id : ids) {
    out += decode_piece(id, prev_id);
    prev_id = id;
  }
  return out;
}

int32_t Tokenizer::special_id(std::string_view text) const {
  for (const auto& st : special_texts_) {
    if (st.first == text) return st.second;
  }
  return -1;
}

void Tokenizer::add_special(std::string text, int32_t id) {
  special_ids_[id] = text;
  if (text.empty()) return;
  auto pos = std::find_if(special_texts_.begin(), special_texts_.end(),
                          [&](const auto& st) { return st.first.size() < text.size(); });
  special_texts_.insert(pos, {std::move(text), id});
}

void Tokenizer::add_stop(int32_t id) {
  if (id >= 0 && std::find(stop_ids_.begin(), stop_ids_.end(), id) == stop_ids_.end()) {
    stop_ids_.push_back(id);
  }
}

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const TokenizerConfig& config) {
  namespace fs = std::filesystem;
  std::string path = config.path;
  std::string format = config.format;
  std::error_code ec;
  if (path.empty()) throw std::runtime_error("tokenizer: no path given");
  if (!fs::exists(path, ec)) throw std::runtime_error("tokenizer file not found: " + path);
  if (fs::is_directory(path, ec)) {
    if (fs::exists(fs::path(path) / "tokenizer.json", ec)) {
      path = (fs::path(path) / "tokenizer.json").string();
    } else if (fs::exists(fs::path(path) / "tokenizer.model", ec)) {
      path = (fs::path(path) / "tokenizer.model").string();
    } else {
      throw std::runtime_error("tokenizer: directory " + path +
                               " has neither tokenizer.json nor tokenizer.model");
    }
  }
  if (format == "auto") {
    if (ends_with(path, ".json")) {
      format = "hf_json";
    } else if (ends_with(path, ".model")) {
      format = "sentencepiece";
    } else if (ends_with(path, ".bin")) {
      format = "llama2c";
    } else {
      throw std::runtime_error("tokenizer: cannot tell the format of " + path +
                               " (expected .bin, .model or .json; set format)");
    }
  }
  if (format == "llama2c") return detail::make_llama2c_tokenizer(path, config.vocab_size);
  if (format == "sentencepiece") return detail::make_sentencepiece_tokenizer(path);
  if (format == "hf_json") return detail::make_byte_level_bpe_tokenizer(path);
  throw std::runtime_error("tokenizer: unknown format '" + format +
                           "' (expected auto, llama2c, sentencepiece or hf_json)");
}

}  // namespace talkserve::llm
