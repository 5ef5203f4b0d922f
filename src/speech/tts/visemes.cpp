// Phone-set -> viseme tables. espeak-ng mnemonics are an ASCII IPA (Kirshenbaum-like) whose
// first letter mostly decides the mouth shape; the exceptions (affricates, retroflexes,
// r-coloured vowels, ...) are listed explicitly. The inventories were taken from the PHONEME
// events espeak-ng 1.51 actually emits for en, en-us, de, fr, es, it, pt, ru, ja and Mandarin.
#include "talkserve/speech/visemes.hpp"

#include <array>
#include <utility>

namespace talkserve::speech {
namespace {

using Entry = std::pair<std::string_view, Viseme>;

constexpr std::array<std::string_view, kVisemeCount> kVisemeNames = {
    "rest", "mbp", "fv", "th", "dd", "kk", "ch", "rr", "aa", "ee", "oh", "ou"};

// Mnemonics whose first character would give the wrong shape (looked up after stress and
// length marks are stripped).
constexpr auto kEspeakExceptions = std::to_array<Entry>({
    {"tS", Viseme::ch},    {"tS;h", Viseme::ch}, {"dZ", Viseme::ch},  {"ts.", Viseme::ch},
    {"ts.h", Viseme::ch},  {"s.", Viseme::ch},   {"s\\", Viseme::ch}, {"z\\", Viseme::ch},
    {"tc", Viseme::ch},    {"dz\\", Viseme::ch}, {"z.", Viseme::rr},  {"i.", Viseme::rr},
    {"r-", Viseme::rr},    {"@r", Viseme::rr},   {"@r3", Viseme::rr}, {"3", Viseme::rr},
    {"@L", Viseme::dd},    {"@-", Viseme::aa},   {"W", Viseme::oh},   {"W~", Viseme::oh},
    {"Y", Viseme::oh},     {"y", Viseme::ou},    {"ju", Viseme::ou},  {"yE", Viseme::ou},
    {"j", Viseme::ee},     {"**", Viseme::rr},
});

// By first character: consonant place of articulation, or vowel height and rounding.
constexpr Viseme espeak_first_char_viseme(char c) noexcept {
  switch (c) {
    case 'm': case 'b': case 'p': case 'B': case 'P': case 'M':
      return Viseme::mbp;
    case 'f': case 'v': case 'F':
      return Viseme::fv;
    case 'T': case 'D':
      return Viseme::th;
    case 't': case 'd': case 'n': case 'l': case 'L': case 's': case 'z': case 'J':
      return Viseme::dd;
    case 'k': case 'g': case 'N': case 'h': case 'x': case 'X': case 'C': case 'Q': case 'G':
    case 'q': case 'c':
      return Viseme::kk;
    case 'S': case 'Z':
      return Viseme::ch;
    case 'r': case 'R': case '*': case '3':
      return Viseme::rr;
    case 'a': case 'A': case '&': case 'V': case '@':
      return Viseme::aa;
    case 'e': case 'E': case 'i': case 'I': case 'j':
      return Viseme::ee;
    case 'o': case 'O': case '0': case '8': case 'W': case 'Y':
      return Viseme::oh;
    case 'u': case 'U': case 'w': case 'y':
      return Viseme::ou;
    case '?':  // glottal stop
      return Viseme::rest;
    default:
      return Viseme::dd;  // an unlisted consonant: a neutral, half-open mouth
  }
}

constexpr bool is_mark(char c) noexcept {
  return c == '\'' || c == ',' || c == '%' || c == '=' || c == ':' || c == ';' || c == '#';
}

constexpr auto kFlitePhones = std::to_array<Entry>({
    {"aa", Viseme::aa},  {"ae", Viseme::aa},   {"ah", Viseme::aa},   {"ao", Viseme::oh},
    {"aw", Viseme::aa},  {"ax", Viseme::aa},   {"axr", Viseme::rr},  {"ay", Viseme::aa},
    {"b", Viseme::mbp},  {"ch", Viseme::ch},   {"d", Viseme::dd},    {"dh", Viseme::th},
    {"dx", Viseme::dd},  {"eh", Viseme::ee},   {"el", Viseme::dd},   {"em", Viseme::mbp},
    {"en", Viseme::dd},  {"er", Viseme::rr},   {"ey", Viseme::ee},   {"f", Viseme::fv},
    {"g", Viseme::kk},   {"hh", Viseme::kk},   {"hv", Viseme::kk},   {"ih", Viseme::ee},
    {"ix", Viseme::ee},  {"iy", Viseme::ee},   {"jh", Viseme::ch},   {"k", Viseme::kk},
    {"l", Viseme::dd},   {"m", Viseme::mbp},   {"n", Viseme::dd},    {"ng", Viseme::kk},
    {"nx", Viseme::dd},  {"ow", Viseme::oh},   {"oy", Viseme::oh},   {"p", Viseme::mbp},
    {"r", Viseme::rr},   {"s", Viseme::dd},    {"sh", Viseme::ch},   {"t", Viseme::dd},
    {"th", Viseme::th},  {"uh", Viseme::ou},   {"uw", Viseme::ou},   {"ux", Viseme::ou},
    {"v", Viseme::fv},   {"w", Viseme::ou},    {"y", Viseme::ee},    {"z", Viseme::dd},
    {"zh", Viseme::ch},  {"pau", Viseme::rest}, {"h#", Viseme::rest}, {"brth", Viseme::rest},
    {"sil", Viseme::rest}, {"ssil", Viseme::rest},
});

template <std::size_t N>
std::optional<Viseme> lookup(const std::array<Entry, N>& table, std::string_view key) noexcept {
  for (const auto& [name, viseme] : table) {
    if (name == key) return viseme;
  }
  return std::nullopt;
}

}  // namespace

std::string_view to_string(Viseme v) noexcept {
  const auto index = static_cast<std::size_t>(v);
  return index < kVisemeNames.size() ? kVisemeNames[index] : std::string_view("unknown");
}

std::optional<Viseme> viseme_from_string(std::string_view name) noexcept {
  for (std::size_t i = 0; i < kVisemeNames.size(); ++i) {
    if (kVisemeNames[i] == name) return static_cast<Viseme>(i);
  }
  return std::nullopt;
}

std::optional<Viseme> espeak_phoneme_viseme(std::string_view mnemonic) noexcept {
  if (!mnemonic.empty() && mnemonic.front() == '(') return std::nullopt;  // language switch
  if (auto exact = lookup(kEspeakExceptions, mnemonic)) return exact;
  std::string_view core = mnemonic;
  while (!core.empty() && is_mark(core.front())) core.remove_prefix(1);
  if (core.empty()) return Viseme::rest;
  if (core.front() == '_') return Viseme::rest;  // pauses: _ _: _| _!
  if (auto exact = lookup(kEspeakExceptions, core)) return exact;
  std::string_view stripped = core;
  while (stripped.size() > 1 && is_mark(stripped.back())) stripped.remove_suffix(1);
  if (auto exact = lookup(kEspeakExceptions, stripped)) return exact;
  return espeak_first_char_viseme(core.front());
}

Viseme flite_phone_viseme(std::string_view phone) noexcept {
  if (auto exact = lookup(kFlitePhones, phone)) return *exact;
  return phone.empty() ? Viseme::rest : Viseme::dd;
}

}  // namespace talkserve::speech
