#include "openai_protocol.hpp"

#include <cmath>
#include <limits>
#include <random>

namespace talkserve::llm::api {

using nlohmann::json;

namespace {

constexpr std::size_t kMaxStopStrings = 16;
constexpr std::size_t kMaxStopBytes = 1024;
// Below this a temperature only overflows the logits; it means greedy.
constexpr float kGreedyBelow = 1e-5f;

[[noreturn]] void bad(const std::string& param, const std::string& why) {
  throw ApiError(400, param + " " + why, param);
}

const json* find(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

bool get_bool(const json& body, const char* key, bool def) {
  const json* v = find(body, key);
  if (!v) return def;
  if (!v->is_boolean()) bad(key, "must be a boolean");
  return v->get<bool>();
}

double get_number(const json& body, const char* key, double def) {
  const json* v = find(body, key);
  if (!v) return def;
  if (!v->is_number()) bad(key, "must be a number");
  double d = v->get<double>();
  if (!std::isfinite(d)) bad(key, "must be finite");
  return d;
}

std::optional<std::int64_t> get_int(const json& body, const char* key) {
  const json* v = find(body, key);
  if (!v) return std::nullopt;
  if (v->is_number_unsigned()) {
    if (v->get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      bad(key, "is out of range");
    return static_cast<std::int64_t>(v->get<std::uint64_t>());
  }
  if (v->is_number_integer()) return v->get<std::int64_t>();
  if (v->is_number_float()) {
    double d = v->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15)
      return static_cast<std::int64_t>(d);
  }
  bad(key, "must be an integer");
}

std::string get_string(const json& body, const char* key, const std::string& def) {
  const json* v = find(body, key);
  if (!v) return def;
  if (!v->is_string()) bad(key, "must be a string");
  return v->get<std::string>();
}

void parse_stop(const json& body, SamplingParams& p) {
  const json* v = find(body, "stop");
  if (!v) return;
  if (v->is_string()) {
    p.stop.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    if (v->size() > kMaxStopStrings) bad("stop", "may hold at most 16 strings");
    for (const auto& s : *v) {
      if (!s.is_string()) bad("stop", "must be a string or an array of strings");
      p.stop.push_back(s.get<std::string>());
    }
  } else {
    bad("stop", "must be a string or an array of strings");
  }
  for (const auto& s : p.stop) {
    if (s.empty()) bad("stop", "strings must not be empty");
    if (s.size() > kMaxStopBytes) bad("stop", "strings must be at most 1024 bytes");
  }
}

// Message content: a string, or an array of {"type":"text","text":...} parts.
std::string message_content(const json& msg, std::size_t index) {
  const std::string where = "messages[" + std::to_string(index) + "].content";
  auto it = msg.find("content");
  if (it == msg.end() || it->is_null()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (!it->is_array()) bad(where, "must be a string or an array of content parts");
  std::string text;
  for (const auto& part : *it) {
    if (!part.is_object()) bad(where, "parts must be objects");
    auto type = part.find("type");
    if (type == part.end() || !type->is_string()) bad(where, "parts need a \"type\"");
    if (*type != "text") {
      throw ApiError(400, where + " part type \"" + type->get<std::string>() +
                              "\" is not supported by this model (text only)",
                     where);
    }
    auto t = part.find("text");
    if (t == part.end() || !t->is_string()) bad(where, "text parts need a string \"text\"");
    text += t->get<std::string>();
  }
  return text;
}

void parse_messages(const json& body, ParsedRequest& r) {
  const json* v = find(body, "messages");
  if (!v) throw ApiError(400, "messages is required", "messages");
  if (!v->is_array() || v->empty()) bad("messages", "must be a non-empty array");
  static const char* const kRoles[] = {"system", "developer", "user", "assistant", "tool"};
  for (std::size_t i = 0; i < v->size(); ++i) {
    const json& m = (*v)[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) bad(where, "must be an object");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) bad(where + ".role", "is required (a string)");
    std::string rs = role->get<std::string>();
    bool known = false;
    for (const char* k : kRoles) known = known || rs == k;
    if (!known) bad(where + ".role", "must be system, developer, user, assistant or tool");
    if (rs == "developer") rs = "system";
    r.messages.push_back({rs, message_content(m, i)});
  }
}

void parse_prompt(const json& body, ParsedRequest& r) {
  const json* v = find(body, "prompt");
  if (!v) throw ApiError(400, "prompt is required", "prompt");
  auto as_ids = [&](const json& arr) {
    std::vector<int32_t> ids;
    for (const auto& t : arr) {
      if (!t.is_number_integer()) return false;
      auto x = t.get<std::int64_t>();
      if (x < 0 || x > std::numeric_limits<int32_t>::max())
        bad("prompt", "token ids must be in [0, 2^31)");
      ids.push_back(static_cast<int32_t>(x));
    }
    r.prompt_ids = std::move(ids);
    return true;
  };
  if (v->is_string()) {
    r.prompt_text = v->get<std::string>();
  } else if (v->is_array()) {
    if (v->empty()) bad("prompt", "must not be empty");
    if (as_ids(*v)) {
      // an array of token ids
    } else if (v->size() == 1 && (*v)[0].is_string()) {
      r.prompt_text = (*v)[0].get<std::string>();
    } else if (v->size() == 1 && (*v)[0].is_array() && as_ids((*v)[0])) {
      // one prompt given as [[ids...]]
    } else if (v->size() > 1) {
      throw ApiError(400, "prompt: only one prompt per request is supported; send one request each",
                     "prompt");
    } else {
      bad("prompt", "must be a string, an array of token ids, or a one-element array of them");
    }
    if (!r.prompt_text && r.prompt_ids.empty()) bad("prompt", "must not be empty");
  } else {
    bad("prompt", "must be a string or an array of token ids");
  }
}

}  // namespace


namespace {
ParsedRequest parse_fields(Endpoint endpoint, const json& body, int default_max_tokens);
}  // namespace

ParsedRequest parse_request(Endpoint endpoint, const std::string& body_text,
                            int default_max_tokens) {
  json body;
  try {
    body = json::parse(body_text);
  } catch (const json::exception& e) {  // syntax errors, numbers out of range
    throw ApiError(400, std::string("request body is not valid JSON: ") + e.what());
  }
  try {
    return parse_fields(endpoint, body, default_max_tokens);
  } catch (const json::exception& e) {  // a field of an unexpected type deeper down
    throw ApiError(400, std::string("malformed request: ") + e.what());
  }
}

namespace {
ParsedRequest parse_fields(Endpoint endpoint, const json& body, int default_max_tokens) {
  if (!body.is_object()) throw ApiError(400, "request body must be a JSON object");

  ParsedRequest r;
  r.endpoint = endpoint;
  r.model = get_string(body, "model", "");
  if (endpoint == Endpoint::chat) {
    parse_messages(body, r);
  } else {
    parse_prompt(body, r);
  }

  SamplingParams& p = r.params;
  p.temperature = static_cast<float>(get_number(body, "temperature", 1.0));
  if (p.temperature < 0.0f || p.temperature > 2.0f) bad("temperature", "must be in [0, 2]");
  if (p.temperature < kGreedyBelow) p.temperature = 0.0f;
  p.top_p = static_cast<float>(get_number(body, "top_p", 1.0));
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) bad("top_p", "must be in (0, 1]");
  if (auto k = get_int(body, "top_k")) {
    if (*k < -1 || *k > 1'000'000) bad("top_k", "must be -1, 0 (disabled) or a positive count");
    p.top_k = static_cast<int>(*k);
  }
  p.presence_penalty = static_cast<float>(get_number(body, "presence_penalty", 0.0));
  if (p.presence_penalty < -2.0f || p.presence_penalty > 2.0f)
    bad("presence_penalty", "must be in [-2, 2]");
  p.frequency_penalty = static_cast<float>(get_number(body, "frequency_penalty", 0.0));
  if (p.frequency_penalty < -2.0f || p.frequency_penalty > 2.0f)
    bad("frequency_penalty", "must be in [-2, 2]");
  p.repetition_penalty = static_cast<float>(get_number(body, "repetition_penalty", 1.0));
  if (!(p.repetition_penalty > 0.0f)) bad("repetition_penalty", "must be > 0");
  if (auto s = get_int(body, "seed")) p.seed = static_cast<std::uint64_t>(*s);
  p.ignore_eos = get_bool(body, "ignore_eos", false);
  parse_stop(body, p);

  std::optional<std::int64_t> max_tokens = get_int(body, "max_tokens");
  if (endpoint == Endpoint::chat) {
    if (auto m = get_int(body, "max_completion_tokens")) max_tokens = m;
  }
  if (max_tokens) {
    if (*max_tokens < 1) bad(endpoint == Endpoint::chat ? "max_completion_tokens" : "max_tokens",
                             "must be >= 1");
    if (*max_tokens > 1'000'000) bad("max_tokens", "is too large");
    p.max_tokens = static_cast<int>(*max_tokens);
    r.max_tokens_given = true;
  } else {
    p.max_tokens = default_max_tokens;
  }

  if (auto n = get_int(body, "n"); n && *n != 1)
    throw ApiError(400, "n: only n=1 is supported", "n");
  if (auto b = get_int(body, "best_of"); b && *b != 1)
    throw ApiError(400, "best_of: only best_of=1 is supported", "best_of");
  if (find(body, "tools") || find(body, "functions"))
    throw ApiError(400, "tools: tool calling is not supported by this server", "tools");
  if (const json* rf = find(body, "response_format")) {
    const json* type = rf->is_object() ? find(*rf, "type") : nullptr;
    if (!type || !type->is_string() || type->get<std::string>() != "text")
      throw ApiError(400, "response_format: only {\"type\":\"text\"} is supported",
                     "response_format");
  }

  r.stream = get_bool(body, "stream", false);
  if (const json* so = find(body, "stream_options")) {
    if (!so->is_object()) bad("stream_options", "must be an object");
    if (!r.stream) bad("stream_options", "is only allowed with stream: true");
    r.include_usage = get_bool(*so, "include_usage", false);
  }

  if (endpoint == Endpoint::completions) {
    r.echo = get_bool(body, "echo", false);
    if (auto lp = get_int(body, "logprobs")) {
      if (*lp < 0 || *lp > 20) bad("logprobs", "must be in [0, 20]");
      r.want_logprobs = true;
      r.top_logprobs = static_cast<int>(*lp);
    }
    if (find(body, "suffix")) throw ApiError(400, "suffix is not supported", "suffix");
  } else {
    r.want_logprobs = get_bool(body, "logprobs", false);
    if (auto t = get_int(body, "top_logprobs")) {
      if (*t < 0 || *t > 20) bad("top_logprobs", "must be in [0, 20]");
      if (!r.want_logprobs) bad("top_logprobs", "requires logprobs: true");
      r.top_logprobs = static_cast<int>(*t);
    }
  }
  if (r.want_logprobs) p.logprobs = r.top_logprobs;
  r.user = get_string(body, "user", "");

  if (std::string why = p.validate(); !why.empty()) throw ApiError(400, why);
  return r;
}
}  // namespace

const char* finish_reason_name(FinishReason reason) { return to_string(reason); }

std::string dump_json(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

json usage_json(const Usage& usage) {
  json u = {{"prompt_tokens", usage.prompt_tokens},
            {"completion_tokens", usage.completion_tokens},
            {"total_tokens", usage.prompt_tokens + usage.completion_tokens}};
  u["prompt_tokens_details"] = {{"cached_tokens", usage.cached_prompt_tokens}};
  return u;
}

json completion_logprobs_json(const std::vector<TokenLogprobInfo>& lp,
                              std::size_t text_offset_base) {
  json tokens = json::array(), token_logprobs = json::array(), top = json::array(),
       offsets = json::array();
  std::size_t offset = text_offset_base;
  for (const auto& t : lp) {
    tokens.push_back(t.token);
    token_logprobs.push_back(t.logprob);
    json alt = json::object();
    for (const auto& [text, l] : t.top) alt[text] = l;
    top.push_back(std::move(alt));
    offsets.push_back(offset);
    offset += t.token.size();
  }
  return {{"tokens", tokens},
          {"token_logprobs", token_logprobs},
          {"top_logprobs", top},
          {"text_offset", offsets}};
}

namespace {
json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}
}  // namespace

json chat_logprobs_json(const std::vector<TokenLogprobInfo>& lp) {
  json content = json::array();
  for (const auto& t : lp) {
    json top = json::array();
    for (const auto& [text, l] : t.top)
      top.push_back({{"token", text}, {"logprob", l}, {"bytes", bytes_of(text)}});
    content.push_back({{"token", t.token},
                       {"logprob", t.logprob},
                       {"bytes", bytes_of(t.token)},
                       {"top_logprobs", top}});
  }
  return {{"content", content}};
}

json completion_response(const ParsedRequest& req, const ResponseMeta& meta,
                         const CompletionResult& result) {
  json choice = {{"index", 0}, {"finish_reason", finish_reason_name(result.reason)}};
  json logprobs = nullptr;
  if (req.endpoint == Endpoint::chat) {
    choice["message"] = {{"role", "assistant"}, {"content", result.text}};
    if (req.want_logprobs) logprobs = chat_logprobs_json(result.logprobs);
    choice["logprobs"] = logprobs;
  } else {
    std::string text = result.text;
    std::size_t base = 0;
    if (req.echo && req.prompt_text) {
      text = *req.prompt_text + text;
      base = req.prompt_text->size();
    }
    choice["text"] = std::move(text);
    if (req.want_logprobs) logprobs = completion_logprobs_json(result.logprobs, base);
    choice["logprobs"] = logprobs;
  }
  return {{"id", meta.id},
          {"object", req.endpoint == Endpoint::chat ? "chat.completion" : "text_completion"},
          {"created", meta.created},
          {"model", meta.model},
          {"choices", json::array({choice})},
          {"usage", usage_json(result.usage)}};
}

json stream_chunk(const ParsedRequest& req, const ResponseMeta& meta, const std::string& delta_text,
                  const std::vector<TokenLogprobInfo>& logprobs, std::optional<FinishReason> finish,
                  bool first) {
  json choice = {{"index", 0},
                 {"finish_reason", finish ? json(finish_reason_name(*finish)) : json(nullptr)}};
  if (req.endpoint == Endpoint::chat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!delta_text.empty() || (first && !finish)) delta["content"] = delta_text;
    choice["delta"] = std::move(delta);
    choice["logprobs"] = req.want_logprobs && !logprobs.empty() ? chat_logprobs_json(logprobs)
                                                                : json(nullptr);
  } else {
    choice["text"] = delta_text;
    choice["logprobs"] = req.want_logprobs && !logprobs.empty()
                             ? completion_logprobs_json(logprobs, 0)
                             : json(nullptr);
  }
  json chunk = {{"id", meta.id},
                {"object", req.endpoint == Endpoint::chat ? "chat.completion.chunk"
                                                          : "text_completion"},
                {"created", meta.created},
                {"model", meta.model},
                {"choices", json::array({choice})}};
  if (req.include_usage) chunk["usage"] = nullptr;
  return chunk;
}

json stream_usage_chunk(const ParsedRequest& req, const ResponseMeta& meta, const Usage& usage) {
  return {{"id", meta.id},
          {"object", req.endpoint == Endpoint::chat ? "chat.completion.chunk" : "text_completion"},
          {"created", meta.created},
          {"model", meta.model},
          {"choices", json::array()},
          {"usage", usage_json(usage)}};
}

std::string make_response_id(Endpoint endpoint) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char kHex[] = "0123456789abcdef";
  std::string id = endpoint == Endpoint::chat ? "chatcmpl-" : "cmpl-";
  for (int i = 0; i < 24; ++i) id += kHex[rng() & 15];
  return id;
}

}  // namespace talkserve::llm::api
