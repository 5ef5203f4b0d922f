#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "talkserve/speech/sentence_splitter.hpp"

using talkserve::speech::SentenceSplitterConfig;
using talkserve::speech::SentenceStream;
using talkserve::speech::split_sentences;
using Sentences = std::vector<std::string>;

namespace {

struct Case {
  const char* name;
  std::string text;
  Sentences expected;
};

const std::vector<Case>& cases() {
  static const std::vector<Case> table = {
      {"basic terminators", "Hello world. How are you? I'm fine!",
       {"Hello world.", "How are you?", "I'm fine!"}},
      {"titles", "Mr. Smith and Mrs. Jones met Dr. Who on Baker St. today. It rained.",
       {"Mr. Smith and Mrs. Jones met Dr. Who on Baker St. today.", "It rained."}},
      {"latin abbreviations", "Use fruit, e.g. apples, i.e. the red ones, etc. and more. Done.",
       {"Use fruit, e.g. apples, i.e. the red ones, etc. and more.", "Done."}},
      {"dotted abbreviation mid-sentence", "The U.S. economy grew at 3 p.m. today. Really.",
       {"The U.S. economy grew at 3 p.m. today.", "Really."}},
      {"versus", "It was Ali vs. Frazier. Great fight.",
       {"It was Ali vs. Frazier.", "Great fight."}},
      {"initials", "J. K. Rowling wrote it. Yes.", {"J. K. Rowling wrote it.", "Yes."}},
      {"before numbers", "See Fig. 3 for details. No. 5 is next. I said no. Then I left.",
       {"See Fig. 3 for details.", "No. 5 is next.", "I said no.", "Then I left."}},
      {"decimals and domains", "Pi is 3.14 roughly. Visit example.com today. Version 2.0.1 works.",
       {"Pi is 3.14 roughly.", "Visit example.com today.", "Version 2.0.1 works."}},
      {"ellipsis", "Wait... what? Yes... Okay.", {"Wait... what?", "Yes...", "Okay."}},
      {"unicode ellipsis", "Well\u2026 I think so\u2026 maybe. Fine.",
       {"Well\u2026", "I think so\u2026 maybe.", "Fine."}},
      {"repeated terminators", "What?! No way!! Really?", {"What?!", "No way!!", "Really?"}},
      {"closing quote after terminator", "\"Hi!\" he said. \"Bye.\" She left.",
       {"\"Hi!\"", "he said.", "\"Bye.\"", "She left."}},
      {"closing bracket and curly quote", "(This is it.) Next one. \u201cReally?\u201d Yes.",
       {"(This is it.)", "Next one.", "\u201cReally?\u201d", "Yes."}},
      {"chinese punctuation", "你好。今天天气很好！我们走吧？好；走",
       {"你好。", "今天天气很好！", "我们走吧？", "好；", "走"}},
      {"chinese quotes", "「你好。」他说。", {"「你好。」", "他说。"}},
      {"ascii punctuation in chinese", "你好!我是小明.你呢?", {"你好!", "我是小明.", "你呢?"}},
      {"mixed scripts", "我喜欢 Python. It is fun.", {"我喜欢 Python.", "It is fun."}},
      {"newlines", "Line one\nLine two\r\n\nParagraph two. Ends here",
       {"Line one", "Line two", "Paragraph two.", "Ends here"}},
      {"numbered list", "Steps:\n1. Buy milk.\n2. Call mom\n10. Rest",
       {"Steps:", "1. Buy milk.", "2. Call mom", "10. Rest"}},
      {"whitespace and empty pieces", "   \n\n  ...  \n Hello.   \u3000 \n--\n",
       {"Hello."}},
      {"no terminator", "just some words", {"just some words"}},
      {"terminator at end", "The end.", {"The end."}},
      {"empty", "", {}},
  };
  return table;
}

// Cuts text into LLM-like tokens: a leading space sticks to the word after it; punctuation
// and newlines are tokens of their own; CJK goes in pairs of characters.
std::vector<std::string> tokenize(const std::string& text) {
  std::vector<std::string> tokens;
  std::string current;
  auto flush = [&] {
    if (!current.empty()) tokens.push_back(current);
    current.clear();
  };
  for (std::size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    const std::size_t length = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    const std::string ch = text.substr(i, length);
    i += length;
    if (length > 1) {
      current += ch;
      if (current.size() >= 6) flush();
    } else if (ch == " ") {
      flush();
      current.push_back(' ');  // after flush(): current is empty
    } else if (std::string(".,!?;:\"()\n").find(ch) != std::string::npos) {
      flush();
      tokens.push_back(ch);
    } else {
      current += ch;
    }
  }
  flush();
  return tokens;
}

Sentences feed_in_chunks(const std::string& text, std::size_t chunk) {
  SentenceStream stream;
  Sentences out;
  for (std::size_t i = 0; i < text.size(); i += chunk) {
    for (auto& s : stream.push(text.substr(i, chunk))) out.push_back(std::move(s));
  }
  for (auto& s : stream.flush()) out.push_back(std::move(s));
  return out;
}

std::size_t code_points(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

bool valid_utf8(const std::string& s) {
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const std::size_t length = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
                               : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (length == 0 || i + length > s.size()) return false;
    for (std::size_t k = 1; k < length; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += length;
  }
  return true;
}

}  // namespace

TEST_CASE("split_sentences: rules table", "[tts][splitter]") {
  for (const auto& c : cases()) {
    INFO(c.name << ": " << c.text);
    CHECK(split_sentences(c.text) == c.expected);
  }
}

TEST_CASE("SentenceStream: token, byte and chunk feeding equal whole-text splitting",
          "[tts][splitter]") {
  for (const auto& c : cases()) {
    INFO(c.name << ": " << c.text);
    SentenceStream stream;
    Sentences streamed;
    for (const auto& token : tokenize(c.text)) {
      for (auto& s : stream.push(token)) streamed.push_back(std::move(s));
    }
    for (auto& s : stream.flush()) streamed.push_back(std::move(s));
    CHECK(streamed == c.expected);
    for (std::size_t chunk : {1, 2, 3, 5, 7}) {
      INFO("chunk " << chunk);
      CHECK(feed_in_chunks(c.text, chunk) == c.expected);  // also splits inside code points
    }
  }
}

TEST_CASE("SentenceStream: each sentence is emitted as soon as it is certainly complete",
          "[tts][splitter]") {
  struct Expectation {
    std::vector<std::string> tokens;
    // For each sentence: the index of the push that returns it (tokens.size() = flush).
    std::vector<std::pair<std::string, std::size_t>> emitted;
  };
  const std::vector<Expectation> expectations = {
      // "." needs the next visible character ("etc. and" continues); "?" only the next one.
      {{"Hello", " world", ".", " How", " are", " you", "?", " I", "'m", " fine", "."},
       {{"Hello world.", 3}, {"How are you?", 7}, {"I'm fine.", 11}}},
      // The space after "!" decides; a quote could still have followed the "!".
      {{"Wow", "!", " ", "Great", "!", "\"", " Next"},
       {{"Wow!", 2}, {"Great!\"", 6}, {"Next", 7}}},
      // A newline ends the line at once.
      {{"Line", " one", "\n", "Line", " two"}, {{"Line one", 2}, {"Line two", 5}}},
      // Chinese: the character after "。" decides (it could have been a closing quote).
      {{"你好", "。", "今天", "很好", "！"}, {{"你好。", 2}, {"今天很好！", 5}}},
      // An abbreviation is not an end; the sentence waits for its real end.
      {{"Dr", ".", " Smith", " is", " here", ".", " Yes"},
       {{"Dr. Smith is here.", 6}, {"Yes", 7}}},
  };
  for (const auto& e : expectations) {
    SentenceStream stream;
    std::vector<std::pair<std::string, std::size_t>> emitted;
    for (std::size_t i = 0; i < e.tokens.size(); ++i) {
      for (auto& s : stream.push(e.tokens[i])) emitted.emplace_back(std::move(s), i);
    }
    for (auto& s : stream.flush()) emitted.emplace_back(std::move(s), e.tokens.size());
    CHECK(emitted == e.emitted);
  }
}

TEST_CASE("split_sentences: run-on sentences are cut past the maximum length",
          "[tts][splitter]") {
  const SentenceSplitterConfig config;  // 160 code points
  SECTION("at a clause mark") {
    std::string text;
    for (int i = 0; i < 12; ++i) text += "this clause has quite a few words in it, ";
    text += "and it finally ends.";
    const auto pieces = split_sentences(text, config);
    REQUIRE(pieces.size() > 3);
    for (std::size_t i = 0; i + 1 < pieces.size(); ++i) {
      INFO(pieces[i]);
      CHECK(code_points(pieces[i]) <= config.max_chars);
      CHECK(pieces[i].back() == ',');
    }
    CHECK(pieces.back().substr(pieces.back().size() - 5) == "ends.");
  }
  SECTION("at a space when there is no clause mark") {
    std::string text;
    for (int i = 0; i < 60; ++i) text += "word" + std::to_string(i) + " ";
    const auto pieces = split_sentences(text, config);
    REQUIRE(pieces.size() >= 3);
    std::string joined;
    for (const auto& p : pieces) {
      CHECK(code_points(p) <= config.max_chars);
      CHECK(p.find("word") == 0);  // never cut inside a word
      joined += p + " ";
    }
    CHECK(joined == text);
  }
  SECTION("hard cut of unpunctuated CJK, never inside a code point") {
    std::string text;
    for (int i = 0; i < 400; ++i) text += "字";
    const auto pieces = split_sentences(text, config);
    REQUIRE(pieces.size() == 3);
    CHECK(code_points(pieces[0]) == 160);
    CHECK(code_points(pieces[2]) == 80);
    std::string joined;
    for (const auto& p : pieces) {
      CHECK(valid_utf8(p));
      joined += p;
    }
    CHECK(joined == text);
  }
  SECTION("at a Chinese comma") {
    std::string text;
    for (int i = 0; i < 30; ++i) text += "我们今天去公园，";
    const auto pieces = split_sentences(text, config);
    REQUIRE(pieces.size() >= 2);
    for (const auto& p : pieces) {
      CHECK(code_points(p) <= config.max_chars);
      CHECK(p.substr(p.size() - 3) == "，");
    }
  }
  SECTION("streaming cuts equal whole-text cuts") {
    std::string text;
    for (int i = 0; i < 10; ++i) text += "alpha beta gamma, delta epsilon zeta eta theta; ";
    const auto whole = split_sentences(text, config);
    for (std::size_t chunk : {1, 4, 9}) CHECK(feed_in_chunks(text, chunk) == whole);
  }
}

TEST_CASE("SentenceStream: invalid UTF-8 passes through without hanging", "[tts][splitter]") {
  const std::string text = "Bad \xff\xfe bytes. Truncated \xe4\xbd";
  const auto pieces = split_sentences(text);
  REQUIRE(pieces.size() == 2);
  CHECK(pieces[0] == "Bad \xff\xfe bytes.");
  CHECK(feed_in_chunks(text, 1) == pieces);
}
