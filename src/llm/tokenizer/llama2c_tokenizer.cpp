// llama2.c tokenizer.bin: int32 max_token_length, then per token float32 score, int32 byte
// length, bytes. Encoding follows llama2.c's run.c: a dummy-prefix " " token, then
// score-ordered BPE (score_bpe.hpp). Ids 0, 1, 2 are <unk>, <s>, </s> as run.c assumes.

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "llm/tokenizer/read_file.hpp"
#include "llm/tokenizer/score_bpe.hpp"
#include "llm/tokenizer/tokenizer_factories.hpp"

namespace talkserve::llm::detail {
namespace {

constexpr int32_t kUnkId = 0;
constexpr int32_t kBosId = 1;
constexpr int32_t kEosId = 2;

class Llama2cTokenizer final : public Tokenizer {
 public:
  Llama2cTokenizer(const std::string& path, int expected_vocab) {
    const std::string data = read_whole_file(path, 256u << 20, "llama2.c tokenizer");
    const auto fail = [&](const std::string& what) {
      throw std::runtime_error("llama2.c tokenizer " + path + ": " + what);
    };
    size_t off = 0;
    auto read_raw = [&](void* dst, size_t n, const char* field) {
      if (data.size() - off < n) {
        fail("truncated while reading " + std::string(field) + " of token " +
             std::to_string(v_.pieces.size()) + " at byte " + std::to_string(off));
      }
      std::memcpy(dst, data.data() + off, n);
      off += n;
    };
    int32_t max_len = 0;
    read_raw(&max_len, 4, "max_token_length");
    if (max_len <= 0 || max_len > (1 << 16)) fail("bad max_token_length " + std::to_string(max_len));
    while (expected_vocab > 0 ? static_cast<int>(v_.pieces.size()) < expected_vocab : off < data.size()) {
      float score = 0;
      int32_t len = 0;
      read_raw(&score, 4, "score");
      read_raw(&len, 4, "length");
      if (len < 0 || len > max_len) {
        fail("token " + std::to_string(v_.pieces.size()) + " has length " + std::to_string(len) +
             " outside [0, max_token_length=" + std::to_string(max_len) + "]");
      }
      std::string piece(static_cast<size_t>(len), '\0');
      read_raw(piece.data(), static_cast<size_t>(len), "bytes");
      v_.scores.push_back(score);
      v_.pieces.push_back(std::move(piece));
    }
    if (v_.pieces.size() < 3) fail("fewer than 3 tokens (<unk>, <s>, </s> are required)");
    byte_of_.resize(v_.pieces.size());
    for (size_t i = 0; i < v_.pieces.size(); ++i) {
      const auto id = static_cast<int32_t>(i);
      v_.mergeable.emplace(v_.pieces[i], id);  // run.c looks every piece up
      byte_of_[i] = parse_byte_piece(v_.pieces[i]);
      if (byte_of_[i] >= 0 && v_.byte_token[byte_of_[i]] < 0) v_.byte_token[byte_of_[i]] = id;
    }
    v_.unk_id = kUnkId;
    bos_id_ = kBosId;
    eos_id_ = kEosId;
    add_stop(kEosId);
    add_special("<s>", kBosId);
    add_special("</s>", kEosId);
    special_ids_[kUnkId] = "<unk>";
  }

  std::string decode_piece(int32_t id, int32_t prev_id) const override {
    if (id < 0 || id >= vocab_size()) throw std::out_of_range("token id " + std::to_string(id));
    if (id <= kEosId) return {};  // <unk>, <s>, </s>
    const std::string& piece = v_.pieces[static_cast<size_t>(id)];
    const int byte = byte_of_[static_cast<size_t>(id)];
    if (byte >= 0) return std::string(1, static_cast<char>(byte));
    // After BOS the SentencePiece decoder drops the dummy-prefix space (as run.c does).
    if (prev_id == kBosId && !piece.empty() && piece[0] == ' ') return piece.substr(1);
    return piece;
  }

  int vocab_size() const override { return static_cast<int>(v_.pieces.size()); }
  std::string_view kind() const override { return "llama2c"; }

 protected:
  void encode_plain(std::string_view text, std::vector<int32_t>& out) const override {
    if (text.empty()) return;
    // run.c pushes the " " token first; encoding " " + text is the same whenever " " is a
    // piece, and falls back to the byte token otherwise instead of run.c's invalid id.
    std::string prefixed;
    prefixed.reserve(text.size() + 1);
    prefixed += ' ';
    prefixed += text;
    score_bpe_encode(v_, prefixed, out);
  }

 private:
  ScoreBpeVocab v_;
  std::vector<int> byte_of_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_llama2c_tokenizer(const std::string& path, int vocab_size) {
  return std::make_unique<Llama2cTokenizer>(path, vocab_size);
}

}  // namespace talkserve::llm::detail
