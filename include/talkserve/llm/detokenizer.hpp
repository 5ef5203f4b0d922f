#pragma once
// How the engine turns generated ids into streamed text.
//
// The engine works on token ids and asks a per-request IncrementalDetokenizer for text deltas
// (whole UTF-8 characters), so that stop strings can be matched and withheld on the engine
// thread, and each streamed token event carries its text. Without a factory the engine streams
// ids only (text stays empty) and rejects requests that ask for stop strings.
//
// Thread-safety: a factory may be called from the engine thread only; each detokenizer belongs
// to one request.

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

namespace talkserve::llm {

class IncrementalDetokenizer {
 public:
  virtual ~IncrementalDetokenizer() = default;
  // Text made complete by `token` (possibly empty).
  virtual std::string push(int32_t token) = 0;
  // Whatever is still held back (at the end of the request).
  virtual std::string finish() = 0;
};

// Called once per request with its prompt (the last prompt token matters for tokenizers whose
// piece text depends on the previous token, e.g. SentencePiece's leading-space rule).
using DetokenizerFactory =
    std::function<std::unique_ptr<IncrementalDetokenizer>(std::span<const int32_t> prompt)>;

}  // namespace talkserve::llm
