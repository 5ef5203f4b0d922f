#include <catch2/catch.hpp>

#include "talkserve/llm/chat_template.hpp"
#include "test_paths.hpp"

namespace talkserve::llm::test {
namespace {

const std::vector<ChatMessage> kChat = {
    {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Tell a story."}};

}  // namespace

TEST_CASE("ChatML rendering", "[llm][chat]") {
  const ChatTemplate t = ChatTemplate::from_name("chatml");
  CHECK(t.render(kChat, true) ==
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nTell a story.<|im_end|>\n"
        "<|im_start|>assistant\n");
  CHECK(!t.includes_bos());
  CHECK(t.stop_strings() == std::vector<std::string>{"<|im_end|>"});
}

TEST_CASE("Llama 3 rendering", "[llm][chat]") {
  const ChatTemplate t = ChatTemplate::from_name("llama3");
  CHECK(t.render({{"user", " Hi "}}, true) ==
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n");
  CHECK(t.render({{"user", "Hi"}}, false) ==
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
  CHECK(t.includes_bos());
}

TEST_CASE("Llama 2 rendering folds the system prompt into the first turn", "[llm][chat]") {
  const ChatTemplate t = ChatTemplate::from_name("llama2");
  CHECK(t.render(kChat, true) ==
        "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Tell a story. [/INST]");
}

TEST_CASE("plain rendering and name errors", "[llm][chat]") {
  const ChatTemplate t;
  CHECK(t.name() == "plain");
  CHECK(t.render({{"user", "Hi"}}, true) == "User: Hi\nAssistant:");
  CHECK_THROWS_AS(ChatTemplate::from_name("jinja"), std::invalid_argument);
}

TEST_CASE("templates are recognised from tokenizer_config.json", "[llm][chat]") {
  CHECK(ChatTemplate::detect("{% for m in messages %}{{'<|im_start|>' + m['role']}}").kind() ==
        ChatTemplateKind::kChatML);
  CHECK(ChatTemplate::detect("{{ '<|start_header_id|>' + message['role'] }}").kind() ==
        ChatTemplateKind::kLlama3);
  CHECK(ChatTemplate::detect("{{ bos_token + '[INST] ' + content }}").kind() == ChatTemplateKind::kLlama2);
  CHECK(ChatTemplate::detect("{{ messages }}").kind() == ChatTemplateKind::kPlain);

  TempDir dir;
  write_file(dir.file("a.json"), R"({"chat_template": "{{'<|im_start|>'}}"})");
  CHECK(ChatTemplate::from_tokenizer_config(dir.file("a.json")).kind() == ChatTemplateKind::kChatML);
  write_file(dir.file("b.json"),
             R"({"chat_template": [{"name": "tool_use", "template": "[INST]"},
                                   {"name": "default", "template": "<|start_header_id|>"}]})");
  CHECK(ChatTemplate::from_tokenizer_config(dir.file("b.json")).kind() == ChatTemplateKind::kLlama3);
  CHECK(ChatTemplate::from_tokenizer_config(dir.file("none.json")).kind() == ChatTemplateKind::kPlain);
  write_file(dir.file("bad.json"), "{not json");
  CHECK_THROWS_WITH(ChatTemplate::from_tokenizer_config(dir.file("bad.json")), Catch::Contains("bad.json"));
}

}  // namespace talkserve::llm::test
