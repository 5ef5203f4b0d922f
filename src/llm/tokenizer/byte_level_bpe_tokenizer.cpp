// Hugging Face tokenizer.json with a byte-level BPE model (GPT-2, Llama 3, Qwen2 families).
// Encoding: added/special tokens are split off first (Tokenizer::encode), the rest is split
// by the pre-tokenizer pattern (pretokenizer.hpp), each piece's bytes are mapped to the
// GPT-2 byte-to-unicode alphabet, and merges are applied lowest rank first (leftmost on
// ties). Decoding maps the alphabet back to bytes.
// Recognised pre-tokenizers: ByteLevel(use_regex) = GPT-2 pattern; Split with the Llama 3
// or Qwen2 pattern (+ ByteLevel(use_regex=false)). Other regexes are rejected with an error
// rather than silently tokenized differently.

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <filesystem>
#include <limits>
#include <stdexcept>
#include <unordered_map>

#include "llm/tokenizer/pretokenizer.hpp"
#include "llm/tokenizer/read_file.hpp"
#include "llm/tokenizer/tokenizer_factories.hpp"
#include "llm/tokenizer/unicode_class.hpp"

namespace talkserve::llm::detail {
namespace {

using nlohmann::json;

// GPT-2's reversible byte -> code point map: printable Latin-1 bytes map to themselves, the
// rest to U+0100.. in byte order.
std::array<char32_t, 256> byte_to_unicode() {
  std::array<char32_t, 256> map{};
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    map[static_cast<size_t>(b)] = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + extra++);
  }
  return map;
}

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

std::string token_text(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string()) return j["content"].get<std::string>();
  return {};
}

class ByteLevelBpeTokenizer final : public Tokenizer {
 public:
  explicit ByteLevelBpeTokenizer(const std::string& path) {
    const auto fail = [&](const std::string& what) {
      throw std::runtime_error("tokenizer.json " + path + ": " + what);
    };
    json root;
    try {
      root = json::parse(read_whole_file(path, 256u << 20, "tokenizer.json"));
    } catch (const json::exception& e) {
      fail(std::string("bad JSON: ") + e.what());
    }
    try {
      const json& model = root.at("model");
      if (model.value("type", std::string("BPE")) != "BPE") fail("model type is not BPE");
      if (model.value("byte_fallback", false)) {
        fail("byte_fallback BPE (SentencePiece-style tokenizer.json) is not supported; use tokenizer.model");
      }
      ignore_merges_ = model.value("ignore_merges", false);
      int32_t max_id = -1;
      for (const auto& [tok, id] : model.at("vocab").items()) {
        const int32_t i = id.get<int32_t>();
        if (i < 0 || i > (1 << 24)) fail("vocab id out of range for " + tok);
        vocab_.emplace(tok, i);
        max_id = std::max(max_id, i);
      }
      for (const json& at : root.value("added_tokens", json::array())) {
        const int32_t i = at.at("id").get<int32_t>();
        if (i < 0 || i > (1 << 24)) fail("added token id out of range");
        max_id = std::max(max_id, i);
        added_.emplace_back(at.at("content").get<std::string>(), i);
        added_special_.push_back(at.value("special", true));
      }
      id_to_token_.resize(static_cast<size_t>(max_id + 1));
      for (const auto& [tok, id] : vocab_) id_to_token_[static_cast<size_t>(id)] = tok;
      int32_t rank = 0;
      for (const json& m : model.at("merges")) {
        std::string a, b;
        if (m.is_string()) {
          const std::string s = m.get<std::string>();
          const size_t sp = s.find(' ');
          if (sp == std::string::npos) fail("merge '" + s + "' has no space");
          a = s.substr(0, sp);
          b = s.substr(sp + 1);
        } else {
          a = m.at(0).get<std::string>();
          b = m.at(1).get<std::string>();
        }
        auto ia = vocab_.find(a), ib = vocab_.find(b), im = vocab_.find(a + b);
        if (ia == vocab_.end() || ib == vocab_.end() || im == vocab_.end()) {
          fail("merge '" + a + " " + b + "' uses a token that is not in the vocab");
        }
        merges_.emplace(pair_key(ia->second, ib->second), std::make_pair(rank++, im->second));
      }
      configure_pretokenizer(root, fail);
    } catch (const json::exception& e) {
      fail(std::string("unexpected structure: ") + e.what());
    }

    const auto b2u = byte_to_unicode();
    for (int b = 0; b < 256; ++b) {
      std::string s;
      append_utf8(b2u[static_cast<size_t>(b)], s);
      auto it = vocab_.find(s);
      if (it == vocab_.end()) fail("vocab lacks the byte-level token for byte " + std::to_string(b));
      byte_token_[b] = it->second;
      byte_char_[b] = s;
      unicode_to_byte_.emplace(b2u[static_cast<size_t>(b)], static_cast<unsigned char>(b));
    }
    for (size_t k = 0; k < added_.size(); ++k) {
      add_special(added_[k].first, added_[k].second);
      if (!added_special_[k]) special_ids_.erase(added_[k].second);  // decodes as its text
      if (id_to_token_[static_cast<size_t>(added_[k].second)].empty()) {
        id_to_token_[static_cast<size_t>(added_[k].second)] = added_[k].first;
      }
    }
    configure_bos_eos(path);
  }

  std::string decode_piece(int32_t id, int32_t /*prev_id*/) const override {
    if (id < 0 || id >= vocab_size()) throw std::out_of_range("token id " + std::to_string(id));
    if (is_special(id)) return {};
    for (const auto& a : added_) {
      if (a.second == id) return a.first;  // a non-special added token: its literal text
    }
    std::string out;
    for (const CodePoint& c : decode_utf8(id_to_token_[static_cast<size_t>(id)])) {
      auto it = unicode_to_byte_.find(c.cp);
      if (it != unicode_to_byte_.end()) out += static_cast<char>(it->second);
      else append_utf8(c.cp, out);
    }
    return out;
  }

  int vocab_size() const override { return static_cast<int>(id_to_token_.size()); }
  std::string_view kind() const override { return "hf_bpe"; }

 protected:
  void encode_plain(std::string_view text, std::vector<int32_t>& out) const override {
    std::string prefixed;
    if (add_prefix_space_ && !text.empty() && text[0] != ' ') {
      prefixed = " " + std::string(text);
      text = prefixed;
    }
    for (std::string_view word : pretokenize(text, pattern_)) encode_word(word, out);
  }

 private:
  template <class Fail>
  void configure_pretokenizer(const json& root, const Fail& fail) {
    const json& pt = root.contains("pre_tokenizer") ? root["pre_tokenizer"] : json();
    std::vector<json> parts;
    if (pt.is_object() && pt.value("type", "") == "Sequence") {
      for (const json& p : pt.at("pretokenizers")) parts.push_back(p);
    } else if (pt.is_object()) {
      parts.push_back(pt);
    }
    bool have_split = false, byte_level = false;
    for (const json& p : parts) {
      const std::string type = p.value("type", "");
      if (type == "Split") {
        const std::string re = p.at("pattern").value("Regex", p.at("pattern").value("String", ""));
        if (re.find("\\p{N}{1,3}") != std::string::npos) {
          pattern_ = SplitPattern::kLlama3;
        } else if (re.find("[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|") != std::string::npos) {
          pattern_ = SplitPattern::kQwen2;
        } else {
          fail("unsupported pre-tokenizer split regex: " + re);
        }
        have_split = true;
      } else if (type == "ByteLevel") {
        byte_level = true;
        add_prefix_space_ = p.value("add_prefix_space", false);
        if (p.value("use_regex", true)) {
          if (have_split) fail("both a Split regex and ByteLevel(use_regex) are set");
          pattern_ = SplitPattern::kGpt2;
          have_split = true;
        }
      } else if (type == "Digits" || type == "Punctuation" || type == "Metaspace" || type == "Whitespace") {
        fail("unsupported pre-tokenizer " + type);
      }
    }
    if (!byte_level) fail("no ByteLevel pre-tokenizer: not a byte-level BPE tokenizer");
    if (!have_split) pattern_ = SplitPattern::kGpt2;
  }

  void configure_bos_eos(const std::string& path) {
    namespace fs = std::filesystem;
    std::string bos_text, eos_text;
    const fs::path cfg = fs::path(path).parent_path() / "tokenizer_config.json";
    std::error_code ec;
    if (fs::exists(cfg, ec)) {
      try {
        const json c = json::parse(read_whole_file(cfg.string(), 64u << 20, "tokenizer_config.json"));
        if (c.contains("bos_token")) bos_text = token_text(c["bos_token"]);
        if (c.contains("eos_token")) eos_text = token_text(c["eos_token"]);
      } catch (const json::exception& e) {
        throw std::runtime_error("tokenizer_config.json " + cfg.string() + ": bad JSON: " + e.what());
      }
    } else {
      for (const char* t : {"<|begin_of_text|>", "<s>"}) {
        if (special_id(t) >= 0) { bos_text = t; break; }
      }
      for (const char* t : {"<|end_of_text|>", "<|endoftext|>", "</s>"}) {
        if (special_id(t) >= 0) { eos_text = t; break; }
      }
    }
    bos_id_ = bos_text.empty() ? -1 : special_id(bos_text);
    eos_id_ = eos_text.empty() ? -1 : special_id(eos_text);
    add_stop(eos_id_);
    for (const char* t : {"<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|endoftext|>", "<|end_of_text|>"}) {
      add_stop(special_id(t));
    }
  }

  void encode_word(std::string_view word, std::vector<int32_t>& out) const {
    if (ignore_merges_) {
      std::string mapped;
      for (char c : word) mapped += byte_char_[static_cast<unsigned char>(c)];
      auto it = vocab_.find(mapped);
      if (it != vocab_.end()) {
        out.push_back(it->second);
        return;
      }
    }
    std::vector<int32_t> syms;
    syms.reserve(word.size());
    for (char c : word) syms.push_back(byte_token_[static_cast<unsigned char>(c)]);
    while (syms.size() > 1) {
      int32_t best_rank = std::numeric_limits<int32_t>::max();
      size_t best_k = 0;
      int32_t best_id = -1;
      for (size_t k = 0; k + 1 < syms.size(); ++k) {
        auto it = merges_.find(pair_key(syms[k], syms[k + 1]));
        if (it != merges_.end() && it->second.first < best_rank) {
          best_rank = it->second.first;
          best_k = k;
          best_id = it->second.second;
        }
      }
      if (best_id < 0) break;
      syms[best_k] = best_id;
      syms.erase(syms.begin() + static_cast<std::ptrdiff_t>(best_k) + 1);
    }
    out.insert(out.end(), syms.begin(), syms.end());
  }

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // (a,b) -> (rank, merged)
  std::vector<std::pair<std::string, int32_t>> added_;
  std::vector<bool> added_special_;
  int32_t byte_token_[256] = {};
  std::string byte_char_[256];
  std::unordered_map<char32_t, unsigned char> unicode_to_byte_;
  SplitPattern pattern_ = SplitPattern::kGpt2;
  bool add_prefix_space_ = false;
  bool ignore_merges_ = false;
};

}  // namespace

std::unique_ptr<Tokenizer> make_byte_level_bpe_tokenizer(const std::string& path) {
  return std::make_unique<ByteLevelBpeTokenizer>(path);
}

}  // namespace talkserve::llm::detail
