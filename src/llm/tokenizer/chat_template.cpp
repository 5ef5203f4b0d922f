#include "talkserve/llm/chat_template.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <stdexcept>

#include "llm/tokenizer/read_file.hpp"

namespace talkserve::llm {
namespace {

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  const size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string render_chatml(const std::vector<ChatMessage>& msgs, bool gen) {
  std::string out;
  for (const ChatMessage& m : msgs) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  if (gen) out += "<|im_start|>assistant\n";
  return out;
}

std::string render_llama3(const std::vector<ChatMessage>& msgs, bool gen) {
  std::string out = "<|begin_of_text|>";
  for (const ChatMessage& m : msgs) {
    out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) + "<|eot_id|>";
  }
  if (gen) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

// Meta's Llama 2 chat format: a leading system message is folded into the first user turn;
// each user/assistant exchange is "<s>[INST] user [/INST] assistant </s>". The prompt always
// ends ready for the assistant, so add_generation_prompt changes nothing.
std::string render_llama2(const std::vector<ChatMessage>& msgs) {
  std::string out;
  std::string system;
  size_t i = 0;
  if (!msgs.empty() && msgs[0].role == "system") {
    system = "<<SYS>>\n";
    system += trim(msgs[0].content);
    system += "\n<</SYS>>\n\n";
    i = 1;
  }
  bool first_user = true;
  for (; i < msgs.size(); ++i) {
    const ChatMessage& m = msgs[i];
    if (m.role == "assistant") {
      out += ' ';
      out += trim(m.content);
      out += " </s>";
    } else {
      out += "<s>[INST] ";
      if (first_user) out += system;
      out += trim(m.content);
      out += " [/INST]";
      first_user = false;
    }
  }
  return out;
}

std::string render_plain(const std::vector<ChatMessage>& msgs, bool gen) {
  std::string out;
  for (const ChatMessage& m : msgs) {
    if (m.role == "system") out += m.content + "\n\n";
    else if (m.role == "user") out += "User: " + m.content + "\n";
    else if (m.role == "assistant") out += "Assistant: " + m.content + "\n";
    else out += m.role + ": " + m.content + "\n";
  }
  if (gen) out += "Assistant:";
  return out;
}

}  // namespace

ChatTemplate ChatTemplate::from_name(std::string_view name) {
  if (name == "plain") return ChatTemplate(ChatTemplateKind::kPlain);
  if (name == "chatml") return ChatTemplate(ChatTemplateKind::kChatML);
  if (name == "llama3") return ChatTemplate(ChatTemplateKind::kLlama3);
  if (name == "llama2") return ChatTemplate(ChatTemplateKind::kLlama2);
  throw std::invalid_argument("chat template '" + std::string(name) +
                              "' is not one of plain, chatml, llama3, llama2");
}

ChatTemplate ChatTemplate::detect(std::string_view src) {
  if (src.find("<|im_start|>") != std::string_view::npos) return ChatTemplate(ChatTemplateKind::kChatML);
  if (src.find("<|start_header_id|>") != std::string_view::npos) return ChatTemplate(ChatTemplateKind::kLlama3);
  if (src.find("[INST]") != std::string_view::npos) return ChatTemplate(ChatTemplateKind::kLlama2);
  return ChatTemplate(ChatTemplateKind::kPlain);
}

ChatTemplate ChatTemplate::from_tokenizer_config(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return ChatTemplate(ChatTemplateKind::kPlain);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(detail::read_whole_file(path, 64u << 20, "tokenizer_config.json"));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("tokenizer_config.json " + path + ": bad JSON: " + e.what());
  }
  if (!j.is_object() || !j.contains("chat_template")) return ChatTemplate(ChatTemplateKind::kPlain);
  const nlohmann::json& t = j["chat_template"];
  if (t.is_string()) return detect(t.get<std::string>());
  if (t.is_array()) {
    for (const auto& entry : t) {
      if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
          entry["template"].is_string()) {
        return detect(entry["template"].get<std::string>());
      }
    }
  }
  return ChatTemplate(ChatTemplateKind::kPlain);
}

std::string_view ChatTemplate::name() const {
  switch (kind_) {
    case ChatTemplateKind::kChatML: return "chatml";
    case ChatTemplateKind::kLlama3: return "llama3";
    case ChatTemplateKind::kLlama2: return "llama2";
    case ChatTemplateKind::kPlain: break;
  }
  return "plain";
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  switch (kind_) {
    case ChatTemplateKind::kChatML: return render_chatml(messages, add_generation_prompt);
    case ChatTemplateKind::kLlama3: return render_llama3(messages, add_generation_prompt);
    case ChatTemplateKind::kLlama2: return render_llama2(messages);
    case ChatTemplateKind::kPlain: break;
  }
  return render_plain(messages, add_generation_prompt);
}

bool ChatTemplate::includes_bos() const {
  return kind_ == ChatTemplateKind::kLlama3 || kind_ == ChatTemplateKind::kLlama2;
}

std::vector<std::string> ChatTemplate::stop_strings() const {
  switch (kind_) {
    case ChatTemplateKind::kChatML: return {"<|im_end|>"};
    case ChatTemplateKind::kLlama3: return {"<|eot_id|>"};
    case ChatTemplateKind::kLlama2: return {"</s>"};
    case ChatTemplateKind::kPlain: break;
  }
  return {"\nUser:"};
}

}  // namespace talkserve::llm
