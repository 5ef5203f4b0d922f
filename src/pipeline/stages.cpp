#include "stages.hpp"

namespace talkserve::pipeline {

std::vector<llm::ChatMessage> conversation_for(const Stages& s,
                                               const std::vector<llm::ChatMessage>& history,
                                               const std::string& user) {
  std::vector<llm::ChatMessage> messages;
  const bool system = !s.cfg.system_prompt.empty();
  if (system) messages.push_back({"system", s.cfg.system_prompt});
  messages.insert(messages.end(), history.begin(), history.end());
  messages.push_back({"user", user});
  const std::size_t first_turn = system ? 1 : 0;
  // Drop the oldest user/assistant pair while the reply would not fit; the newest user
  // message always stays (a prompt that still does not fit is refused by the backend).
  while (messages.size() > first_turn + 2 &&
         s.chat->count_prompt_tokens(messages) + s.cfg.max_tokens > s.chat->context_length()) {
    messages.erase(messages.begin() + static_cast<std::ptrdiff_t>(first_turn),
                   messages.begin() + static_cast<std::ptrdiff_t>(first_turn + 2));
  }
  return messages;
}

net::ApiError asr_stage_error(const sched::ExecError& e) {
  const char* code = e.code == sched::ExecErrc::overloaded   ? "overloaded"
                     : e.code == sched::ExecErrc::queue_full ? "queue_full"
                                                             : "";
  return net::ApiError(503, "speech recognition: " + e.message, {}, code);
}

llm::ChatOptions reply_options(const Stages& s, int priority) {
  llm::ChatOptions opts;
  opts.max_tokens = s.cfg.max_tokens;
  opts.temperature = static_cast<float>(s.cfg.temperature);
  opts.priority = priority;
  if (opts.temperature == 0.0f) opts.seed = 0;
  return opts;
}

}  // namespace talkserve::pipeline
