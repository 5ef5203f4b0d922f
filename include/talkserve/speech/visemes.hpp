#pragma once
// Phoneme symbol -> viseme, one table per backend phone set (docs/tts.md lists both).
// Pure functions over constant tables: safe to call from any thread.

#include <optional>
#include <string_view>

#include "talkserve/speech/tts.hpp"

namespace talkserve::speech {

// The inverse of to_string(Viseme); nullopt for an unknown name.
std::optional<Viseme> viseme_from_string(std::string_view name) noexcept;

// espeak-ng phoneme mnemonics as its PHONEME events report them ("aI", "tS", "s.", "_:",
// "(en)" ...). Stress and length marks (' , % = : ;) are tolerated. Pauses ("_", "_:", "_|",
// "_!") map to rest. nullopt for events that are not sounds: the language-switch markers
// "(en)", "(cmn)" that espeak emits between words of different languages.
std::optional<Viseme> espeak_phoneme_viseme(std::string_view mnemonic) noexcept;

// flite / CMU (ARPAbet-like, lower case) phones: "aa", "ch", "pau", ... An unknown phone maps
// to dd (a neutral half-open mouth), "pau" and other silences to rest.
Viseme flite_phone_viseme(std::string_view phone) noexcept;

}  // namespace talkserve::speech
