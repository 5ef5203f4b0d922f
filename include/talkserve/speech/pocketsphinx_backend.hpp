#pragma once
// The pocketsphinx ASR backend (Debian's pocketsphinx 0.8 + the en-us model): the embedded
// CPU default. A pocketsphinx decoder is not thread-safe, so the backend holds `decoders`
// resident decoders, each owned by its own worker thread, and spreads a batch across them
// (one clip per decoder at a time). Acoustic model, language model and dictionary are loaded
// once per decoder at construction.
//
// Thread-safety: transcribe_batch() may be called from several threads at once (calls queue
// for the decoders); everything else is immutable.

#include <memory>
#include <string>
#include <vector>

#include "talkserve/speech/asr.hpp"

namespace talkserve::speech {

struct PocketsphinxConfig {
  std::string hmm = "/usr/share/pocketsphinx/model/en-us/en-us";        // acoustic model dir
  std::string lm = "/usr/share/pocketsphinx/model/en-us/en-us.lm.bin";  // n-gram LM
  std::string dict = "/usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict";
  int decoders = 2;  // resident decoders = clips recognised at once
  void validate() const;  // throws std::invalid_argument naming the field
};

// Throws AsrError naming the file when a model file is missing or fails to load.
std::unique_ptr<AsrBackend> make_pocketsphinx_backend(const PocketsphinxConfig& config);

}  // namespace talkserve::speech
