#include <catch2/catch.hpp>

#include <string>

#include "talkserve/speech/visemes.hpp"

using talkserve::speech::espeak_phoneme_viseme;
using talkserve::speech::flite_phone_viseme;
using talkserve::speech::kVisemeCount;
using talkserve::speech::Viseme;
using talkserve::speech::viseme_from_string;

TEST_CASE("viseme names round-trip", "[tts][visemes]") {
  for (int i = 0; i < kVisemeCount; ++i) {
    const auto v = static_cast<Viseme>(i);
    const auto name = to_string(v);
    CHECK(name != "unknown");
    CHECK(viseme_from_string(name) == v);
  }
  CHECK(to_string(Viseme::mbp) == "mbp");
  CHECK(to_string(Viseme::rest) == "rest");
  CHECK_FALSE(viseme_from_string("xx"));
}

TEST_CASE("espeak-ng mnemonics map to visemes", "[tts][visemes]") {
  struct Case {
    const char* mnemonic;
    Viseme viseme;
  };
  // Names taken from the PHONEME events espeak-ng 1.51 emits (en, en-us, de, fr, es, cmn...).
  const Case cases[] = {
      {"_", Viseme::rest},   {"_:", Viseme::rest},  {"_|", Viseme::rest},  {"_!", Viseme::rest},
      {"m", Viseme::mbp},    {"b", Viseme::mbp},    {"p", Viseme::mbp},    {"B", Viseme::mbp},
      {"m;", Viseme::mbp},   {"f", Viseme::fv},     {"v", Viseme::fv},     {"T", Viseme::th},
      {"D", Viseme::th},     {"t", Viseme::dd},     {"d", Viseme::dd},     {"n", Viseme::dd},
      {"l", Viseme::dd},     {"s", Viseme::dd},     {"z", Viseme::dd},     {"t#", Viseme::dd},
      {"n^", Viseme::dd},    {"ts", Viseme::dd},    {"tsh", Viseme::dd},   {"th", Viseme::dd},
      {"k", Viseme::kk},     {"g", Viseme::kk},     {"N", Viseme::kk},     {"h", Viseme::kk},
      {"x", Viseme::kk},     {"X", Viseme::kk},     {"C", Viseme::kk},     {"tS", Viseme::ch},
      {"dZ", Viseme::ch},    {"S", Viseme::ch},     {"Z", Viseme::ch},     {"s.", Viseme::ch},
      {"ts.h", Viseme::ch},  {"tS;", Viseme::ch},   {"tS;h", Viseme::ch},  {"S;", Viseme::ch},
      {"r", Viseme::rr},     {"r-", Viseme::rr},    {"R", Viseme::rr},     {"3:", Viseme::rr},
      {"z.", Viseme::rr},    {"@r", Viseme::rr},    {"a", Viseme::aa},     {"A:", Viseme::aa},
      {"a#", Viseme::aa},    {"V", Viseme::aa},     {"@", Viseme::aa},     {"aI", Viseme::aa},
      {"aU", Viseme::aa},    {"A@", Viseme::aa},    {"&", Viseme::aa},     {"e", Viseme::ee},
      {"E", Viseme::ee},     {"i:", Viseme::ee},    {"I", Viseme::ee},     {"eI", Viseme::ee},
      {"e@", Viseme::ee},    {"i@3", Viseme::ee},   {"j", Viseme::ee},     {"iE", Viseme::ee},
      {"0", Viseme::oh},     {"O:", Viseme::oh},    {"oU", Viseme::oh},    {"OI", Viseme::oh},
      {"o@", Viseme::oh},    {"O~", Viseme::oh},    {"u:", Viseme::ou},    {"U", Viseme::ou},
      {"U@", Viseme::ou},    {"w", Viseme::ou},     {"y", Viseme::ou},     {"ju", Viseme::ou},
      // stress marks as in phoneme strings
      {"'a", Viseme::aa},    {",m", Viseme::mbp},   {"%oU", Viseme::oh},
  };
  for (const auto& c : cases) {
    INFO(c.mnemonic);
    const auto v = espeak_phoneme_viseme(c.mnemonic);
    REQUIRE(v);
    CHECK(to_string(*v) == to_string(c.viseme));
  }
  CHECK_FALSE(espeak_phoneme_viseme("(en)"));
  CHECK_FALSE(espeak_phoneme_viseme("(cmn)"));
}

TEST_CASE("flite phones map to visemes", "[tts][visemes]") {
  CHECK(flite_phone_viseme("pau") == Viseme::rest);
  CHECK(flite_phone_viseme("m") == Viseme::mbp);
  CHECK(flite_phone_viseme("b") == Viseme::mbp);
  CHECK(flite_phone_viseme("f") == Viseme::fv);
  CHECK(flite_phone_viseme("dh") == Viseme::th);
  CHECK(flite_phone_viseme("th") == Viseme::th);
  CHECK(flite_phone_viseme("t") == Viseme::dd);
  CHECK(flite_phone_viseme("ng") == Viseme::kk);
  CHECK(flite_phone_viseme("hh") == Viseme::kk);
  CHECK(flite_phone_viseme("sh") == Viseme::ch);
  CHECK(flite_phone_viseme("jh") == Viseme::ch);
  CHECK(flite_phone_viseme("er") == Viseme::rr);
  CHECK(flite_phone_viseme("aa") == Viseme::aa);
  CHECK(flite_phone_viseme("ae") == Viseme::aa);
  CHECK(flite_phone_viseme("iy") == Viseme::ee);
  CHECK(flite_phone_viseme("ow") == Viseme::oh);
  CHECK(flite_phone_viseme("uw") == Viseme::ou);
  CHECK(flite_phone_viseme("w") == Viseme::ou);
  CHECK(flite_phone_viseme("zz_unknown") == Viseme::dd);
}
