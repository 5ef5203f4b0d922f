#pragma once
// Chat prompt rendering for the template families the server supports. Not a Jinja engine:
// a model's tokenizer_config.json chat_template is recognised by its markers and mapped to
// one of these renderers.
// Thread-safety: immutable after construction; const methods may be called concurrently.

#include <string>
#include <string_view>
#include <vector>

namespace talkserve::llm {

struct ChatMessage {
  std::string role;     // system | user | assistant (others are passed through as-is)
  std::string content;
};

enum class ChatTemplateKind { kPlain, kChatML, kLlama3, kLlama2 };

class ChatTemplate {
 public:
  explicit ChatTemplate(ChatTemplateKind kind = ChatTemplateKind::kPlain) : kind_(kind) {}

  // "plain" | "chatml" | "llama3" | "llama2"; throws std::invalid_argument otherwise.
  static ChatTemplate from_name(std::string_view name);
  // Recognises a Jinja chat_template by markers (<|im_start|>, <|start_header_id|>, [INST]);
  // anything else is kPlain.
  static ChatTemplate detect(std::string_view jinja_source);
  // Reads chat_template from a tokenizer_config.json (string, or list of {name, template}
  // where "default" wins). Missing file or key -> kPlain. Malformed JSON -> std::runtime_error.
  static ChatTemplate from_tokenizer_config(const std::string& path);

  ChatTemplateKind kind() const { return kind_; }
  std::string_view name() const;

  // The prompt text. Special-token text (<|im_start|>, <s>...) is embedded, so encode it with
  // parse_special = true and add_bos = !includes_bos().
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;
  // True when render() already starts with the BOS text (Llama 3, Llama 2).
  bool includes_bos() const;
  // Text markers that end an assistant turn, for tokenizers without a matching stop id.
  std::vector<std::string> stop_strings() const;

 private:
  ChatTemplateKind kind_;
};

}  // namespace talkserve::llm
