#pragma once
// Tokenizers behind one interface: llama2.c tokenizer.bin, SentencePiece .model and
// Hugging Face tokenizer.json (byte-level BPE, Qwen2 / Llama 3 / GPT-2 style).
// Thread-safety: all const methods may be called concurrently from any thread.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace talkserve::llm {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Text -> ids. With add_bos a BOS id is prepended (if the tokenizer has one). With
  // parse_special, the text of special tokens (e.g. "<|im_start|>", "<s>") becomes their id;
  // without it that text is tokenized as ordinary characters (safe for user content).
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special = false) const;

  // The raw bytes that token `id` contributes when it follows `prev_id` (-1: none). Bytes, not
  // necessarily whole UTF-8 characters (byte-fallback tokens); use StreamingDetokenizer for
  // streaming text. Control/special tokens (BOS, EOS, <|im_end|>...) give "". Throws
  // std::out_of_range for an id outside [0, vocab_size()).
  virtual std::string decode_piece(int32_t id, int32_t prev_id) const = 0;

  // Concatenated pieces (each with its predecessor as prev_id); may end mid-character.
  std::string decode(const std::vector<int32_t>& ids, int32_t prev_id = -1) const;

  virtual int vocab_size() const = 0;
  virtual std::string_view kind() const = 0;  // "llama2c" | "sentencepiece" | "hf_bpe"
  int bos_id() const { return bos_id_; }      // -1 when the tokenizer has none (Qwen2)
  int eos_id() const { return eos_id_; }
  // Ids that end a generation: EOS plus e.g. <|im_end|>, <|eot_id|>, <|eom_id|>.
  const std::vector<int32_t>& stop_ids() const { return stop_ids_; }
  bool is_special(int32_t id) const { return special_ids_.count(id) != 0; }
  // Looks a special token up by its text; -1 if absent.
  int32_t special_id(std::string_view text) const;

 protected:
  virtual void encode_plain(std::string_view text, std::vector<int32_t>& out) const = 0;
  void add_special(std::string text, int32_t id);
  void add_stop(int32_t id);

  int bos_id_ = -1;
  int eos_id_ = -1;
  std::vector<int32_t> stop_ids_;
  std::unordered_map<int32_t, std::string> special_ids_;
  std::vector<std::pair<std::string, int32_t>> special_texts_;  // longest first
};

struct TokenizerConfig {
  // A llama2.c tokenizer .bin, a SentencePiece .model, a tokenizer.json, or a directory
  // holding tokenizer.json (preferred) or tokenizer.model.
  std::string path;
  std::string format = "auto";  // auto | llama2c | sentencepiece | hf_json
  int vocab_size = 0;           // llama2c: the model's vocab size (0 = read to end of file)
};

// Throws std::runtime_error naming the file and the problem on a missing or malformed file.
std::unique_ptr<Tokenizer> load_tokenizer(const TokenizerConfig& config);

}  // namespace talkserve::llm
