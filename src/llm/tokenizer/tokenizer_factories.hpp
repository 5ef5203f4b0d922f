#pragma once
// Constructors of the concrete tokenizers, used by load_tokenizer (tokenizer.cpp).

#include <memory>
#include <string>

#include "talkserve/llm/tokenizer.hpp"

namespace talkserve::llm::detail {

std::unique_ptr<Tokenizer> make_llama2c_tokenizer(const std::string& path, int vocab_size);
std::unique_ptr<Tokenizer> make_sentencepiece_tokenizer(const std::string& path);
// tokenizer_config.json beside the tokenizer.json, when present, names BOS/EOS.
std::unique_ptr<Tokenizer> make_byte_level_bpe_tokenizer(const std::string& path);

}  // namespace talkserve::llm::detail
