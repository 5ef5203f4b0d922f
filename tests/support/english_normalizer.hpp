#pragma once
// A small English text normaliser for word error rates, so that a recogniser's written style
// ("Go forward 10 meters.", "Mr. Dashwood", "ill-disposed") and a corpus' spoken-style
// reference ("GO FORWARD TEN METERS", "MISTER DASHWOOD") compare word for word. It is a
// documented subset of the English normaliser Whisper's authors use for their WER figures
// (whisper/normalizers/english.py), in the same direction (spelled numbers become digits):
//
//  1. lower case (ASCII); curly apostrophes become "'", Unicode hyphens and dashes spaces;
//  2. text in [brackets] or (parentheses) is dropped (non-speech annotations);
//  3. words are split at whitespace and at punctuation other than an apostrophe inside a word
//     and a "." or "," between digits ("3.5", "1,000"); hyphens split words ("ill-disposed"
//     -> "ill disposed"); thousands separators are removed ("1,000" -> "1000");
//  4. fillers are dropped: hmm, mm, mhm, mmm, uh, um;
//  5. contractions are expanded: won't -> will not, can't -> can not, let's -> let us,
//     ain't -> is not, other n't -> " not", 're -> are, 've -> have, 'll -> will, 'm -> am
//     ('s and 'd are ambiguous and stay);
//  6. titles are spelled out: mr -> mister, mrs -> missus, dr -> doctor;
//  7. cardinal numbers in words become digits: "ten" -> 10, "twenty one" -> 21,
//     "one hundred and five" -> 105, "two thousand twenty" -> 2020; a ones word after a ones
//     word starts a new number ("five five" -> "5 5"); "percent"/"%" and currency are left
//     alone, ordinals ("first") and years read in pairs ("nineteen sixty") are not converted.
//
// Not done (unlike Whisper's): British -> American spellings, ordinals, currencies, decimals
// read out ("three point five"), diacritics.

#include <string>
#include <string_view>
#include <vector>

namespace talkserve::test {

// The normalised words of `text`.
std::vector<std::string> english_words(std::string_view text);
// The same words joined by single spaces.
std::string normalize_english(std::string_view text);

}  // namespace talkserve::test
