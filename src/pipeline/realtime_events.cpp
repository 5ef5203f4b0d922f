#include "realtime_events.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <sstream>

namespace talkserve::pipeline::realtime {

using nlohmann::json;

namespace {

constexpr std::size_t kMaxIdBytes = 64;

// Reads the fields of one client event; every error names the field and the event's id.
class Fields {
 public:
  Fields(const json& obj, std::string event_id, std::string prefix = {})
      : obj_(obj), event_id_(std::move(event_id)), prefix_(std::move(prefix)) {}

  [[noreturn]] void fail(const std::string& field, const std::string& what,
                         const std::string& code = "invalid_value") const {
    const std::string path = prefix_ + field;
    throw EventError(path + ": " + what, code, path, event_id_);
  }
  const json* find(const std::string& key) const {
    auto it = obj_.find(key);
    return it == obj_.end() ? nullptr : &*it;
  }
  bool has(const std::string& key) const { return find(key) != nullptr; }
  // Present and not null.
  const json* value(const std::string& key) const {
    const json* v = find(key);
    return v == nullptr || v->is_null() ? nullptr : v;
  }
  std::optional<std::string> str(const std::string& key,
                                 std::size_t max_bytes = kMaxIdBytes) const {
    const json* v = value(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_string()) fail(key, "must be a string", "invalid_type");
    const auto& s = v->get_ref<const std::string&>();
    if (s.size() > max_bytes)
      fail(key, "longer than " + std::to_string(max_bytes) + " bytes", "string_above_max_length");
    return s;
  }
  std::string required_str(const std::string& key, std::size_t max_bytes = kMaxIdBytes) const {
    auto s = str(key, max_bytes);
    if (!s) fail(key, "is required", "missing_required_parameter");
    return *s;
  }
  std::optional<bool> boolean(const std::string& key) const {
    const json* v = value(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_boolean()) fail(key, "must be true or false", "invalid_type");
    return v->get<bool>();
  }
  std::optional<double> number(const std::string& key, double lo, double hi) const {
    const json* v = value(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_number()) fail(key, "must be a number", "invalid_type");
    const double d = v->get<double>();
    if (!(d >= lo && d <= hi)) {
      std::ostringstream o;
      o << "must be between " << lo << " and " << hi;
      fail(key, o.str(), "decimal_out_of_range");
    }
    return d;
  }
  std::optional<int> integer(const std::string& key, int lo, int hi) const {
    const json* v = value(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_number_integer() &&
        !(v->is_number_float() && std::floor(v->get<double>()) == v->get<double>())) {
      fail(key, "must be an integer", "invalid_type");
    }
    const double d = v->get<double>();
    if (d < lo || d > hi)
      fail(key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi),
           "integer_out_of_range");
    return static_cast<int>(d);
  }
  const json* object(const std::string& key) const {
    const json* v = value(key);
    if (v != nullptr && !v->is_object()) fail(key, "must be an object", "invalid_type");
    return v;
  }
  Fields sub(const json& obj, const std::string& key) const {
    return Fields(obj, event_id_, prefix_ + key + ".");
  }
  // Refuses keys outside `known`: a misspelt setting is an error, not silently ignored.
  void only(std::initializer_list<std::string_view> known) const {
    for (auto it = obj_.begin(); it != obj_.end(); ++it) {
      if (std::find(known.begin(), known.end(), it.key()) == known.end()) {
        fail(it.key(), "unknown parameter", "unknown_parameter");
      }
    }
  }
  const std::string& event_id() const { return event_id_; }
  const std::string& prefix() const { return prefix_; }

 private:
  const json& obj_;
  std::string event_id_;
  std::string prefix_;
};

std::optional<std::optional<int>> max_tokens(const Fields& f, const std::string& key) {
  const json* v = f.find(key);
  if (v == nullptr) return std::nullopt;
  if (v->is_null() || (v->is_string() && v->get_ref<const std::string&>() == "inf"))
    return std::optional<int>{};
  if (v->is_string()) f.fail(key, "must be an integer or \"inf\"", "invalid_value");
  return std::optional<int>{f.integer(key, 1, kMaxOutputTokens)};
}

AudioFormat format_name(const Fields& f, const std::string& key) {
  const std::string name = f.required_str(key);
  auto fmt = parse_format_name(name);
  if (!fmt)
    f.fail(key,
           "'" + name +
               "' is not one of pcm16, g711_ulaw, g711_alaw (audio/pcm, audio/pcmu, audio/pcma)");
  return *fmt;
}

// GA: {"type":"audio/pcm","rate":24000}
AudioFormat ga_format(const Fields& parent, const std::string& key) {
  const json* obj = parent.object(key);
  Fields f = parent.sub(*obj, key);
  f.only({"type", "rate"});
  const AudioFormat fmt = f.has("type") ? format_name(f, "type") : AudioFormat::pcm16;
  if (auto rate = f.integer("rate", 1, 1000000); rate && *rate != sample_rate_of(fmt)) {
    f.fail("rate", "must be " + std::to_string(sample_rate_of(fmt)) + " for " +
                       std::string(ga_format_name(fmt)));
  }
  return fmt;
}

std::optional<TurnDetection> turn_detection(const Fields& parent, const std::string& key) {
  const json* v = parent.value(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_object()) parent.fail(key, "must be an object or null", "invalid_type");
  Fields f = parent.sub(*v, key);
  f.only({"type", "threshold", "prefix_padding_ms", "silence_duration_ms", "create_response",
          "interrupt_response", "idle_timeout_ms", "eagerness"});
  TurnDetection td;
  const std::string type = f.str("type").value_or("server_vad");
  if (type != "server_vad" && type != "semantic_vad")
    f.fail("type", "must be server_vad or semantic_vad");
  if (auto t = f.number("threshold", 0.0, 1.0)) td.threshold = *t;
  if (auto p = f.integer("prefix_padding_ms", 0, 5000)) td.prefix_padding_ms = *p;
  if (auto s = f.integer("silence_duration_ms", 0, 10000)) td.silence_duration_ms = *s;
  if (auto c = f.boolean("create_response")) td.create_response = *c;
  if (auto i = f.boolean("interrupt_response")) td.interrupt_response = *i;
  if (auto e = f.str("eagerness");
      e && *e != "low" && *e != "medium" && *e != "high" && *e != "auto") {
    f.fail("eagerness", "must be low, medium, high or auto");
  }
  (void)f.integer("idle_timeout_ms", 0, 3600000);
  return td;
}

// input_audio_transcription / audio.input.transcription: an object turns the events on, null off.
bool transcription(const Fields& parent, const std::string& key) {
  const json* v = parent.value(key);
  if (v == nullptr) return false;
  if (!v->is_object()) parent.fail(key, "must be an object or null", "invalid_type");
  Fields f = parent.sub(*v, key);
  f.only({"model", "language", "prompt"});
  (void)f.str("model");
  (void)f.str("language");
  (void)f.str("prompt", kMaxInstructionsBytes);
  return true;
}

bool modalities_audio(const Fields& f, const std::string& key) {
  const json* v = f.value(key);
  if (!v->is_array() || v->empty())
    f.fail(key, "must be a non-empty array of \"text\" and \"audio\"", "invalid_type");
  bool audio = false;
  for (const auto& m : *v) {
    if (!m.is_string() || (m != "text" && m != "audio"))
      f.fail(key, "entries must be \"text\" or \"audio\"");
    audio = audio || m == "audio";
  }
  return audio;
}

std::string voice_of(const Fields& f, const std::string& key) {
  const json* v = f.value(key);
  if (v != nullptr && v->is_object()) {  // GA custom voice {"id": ...}
    Fields sub = f.sub(*v, key);
    sub.only({"id"});
    return sub.required_str("id");
  }
  return f.required_str(key);
}

void no_tools(const Fields& f) {
  if (const json* t = f.value("tools"); t != nullptr && (!t->is_array() || !t->empty())) {
    f.fail("tools", "function and MCP tools are not supported by talkserve",
           "unsupported_parameter");
  }
}

SessionUpdate parse_session_update(const Fields& top) {
  const json* s = top.object("session");
  if (s == nullptr) top.fail("session", "is required", "missing_required_parameter");
  Fields f = top.sub(*s, "session");
  SessionUpdate u;
  const bool ga =
      f.has("type") || f.has("audio") || f.has("output_modalities") || f.has("max_output_tokens");
  // A shape-neutral update (instructions only, say) keeps the session's dialect.
  const bool beta = f.has("modalities") || f.has("voice") || f.has("input_audio_format") ||
                    f.has("output_audio_format") || f.has("turn_detection") ||
                    f.has("input_audio_transcription") || f.has("temperature") ||
                    f.has("max_response_output_tokens");
  if (ga) {
    u.dialect = Dialect::ga;
  } else if (beta) {
    u.dialect = Dialect::beta;
  }
  if (auto i = f.str("instructions", kMaxInstructionsBytes)) u.instructions = *i;
  if (auto v = f.boolean("video")) u.video = *v;
  no_tools(f);
  if (const json* tc = f.value("tool_choice");
      tc != nullptr && !(tc->is_string() && (*tc == "auto" || *tc == "none"))) {
    f.fail("tool_choice", "must be \"auto\" or \"none\" (tools are not supported)",
           "unsupported_parameter");
  }
  (void)f.str("model", 256);
  if (ga) {
    f.only({"type", "model", "instructions", "audio", "output_modalities", "max_output_tokens",
            "tools", "tool_choice", "include", "tracing", "truncation", "prompt",
            "parallel_tool_calls", "reasoning", "video"});
    if (auto t = f.str("type"); t && *t != "realtime") {
      f.fail("type", "only \"realtime\" sessions are served (not '" + *t + "')",
             "unsupported_parameter");
    }
    if (f.value("output_modalities")) u.audio_out = modalities_audio(f, "output_modalities");
    if (auto m = max_tokens(f, "max_output_tokens")) u.max_output_tokens = *m;
    if (const json* audio = f.object("audio")) {
      Fields a = f.sub(*audio, "audio");
      a.only({"input", "output"});
      if (const json* in = a.object("input")) {
        Fields i = a.sub(*in, "input");
        i.only({"format", "transcription", "turn_detection", "noise_reduction"});
        if (i.value("format")) u.input_format = ga_format(i, "format");
        if (i.has("turn_detection")) u.turn_detection = turn_detection(i, "turn_detection");
        if (i.has("transcription")) u.transcription = transcription(i, "transcription");
      }
      if (const json* out = a.object("output")) {
        Fields o = a.sub(*out, "output");
        o.only({"format", "voice", "speed"});
        if (o.value("format")) u.output_format = ga_format(o, "format");
        if (o.value("voice")) u.voice = voice_of(o, "voice");
        (void)o.number("speed", 0.25, 1.5);
      }
    }
  } else {
    f.only({"model", "modalities", "instructions", "voice", "input_audio_format",
            "output_audio_format", "input_audio_transcription", "turn_detection", "tools",
            "tool_choice", "temperature", "max_response_output_tokens",
            "input_audio_noise_reduction", "speed", "tracing", "client_secret", "include",
            "video"});
    if (f.value("modalities")) u.audio_out = modalities_audio(f, "modalities");
    if (f.value("voice")) u.voice = voice_of(f, "voice");
    if (f.value("input_audio_format")) u.input_format = format_name(f, "input_audio_format");
    if (f.value("output_audio_format")) u.output_format = format_name(f, "output_audio_format");
    if (f.has("turn_detection")) u.turn_detection = turn_detection(f, "turn_detection");
    if (f.has("input_audio_transcription"))
      u.transcription = transcription(f, "input_audio_transcription");
    if (auto t = f.number("temperature", 0.0, 2.0)) u.temperature = *t;
    if (auto m = max_tokens(f, "max_response_output_tokens")) u.max_output_tokens = *m;
    (void)f.number("speed", 0.25, 1.5);
  }
  return u;
}

ContentPart parse_part(const Fields& f, const std::string& role) {
  f.only({"type", "text", "audio", "transcript", "id", "detail", "image_url"});
  const std::string type = f.required_str("type");
  ContentPart p;
  if (type == "input_text" && role != "assistant") {
    p.type = ContentType::input_text;
    p.text = f.required_str("text", kMaxItemTextBytes);
  } else if (type == "input_audio" && role == "user") {
    p.type = ContentType::input_audio;
    if (auto t = f.str("transcript", kMaxItemTextBytes)) {
      p.transcript = *t;
      p.has_transcript = true;
    }
    if (auto a = f.str("audio", static_cast<std::size_t>(-1))) {
      auto bytes = base64_decode(*a);
      if (!bytes) f.fail("audio", "is not valid base64", "invalid_audio");
      p.audio = std::move(*bytes);
    }
    if (p.audio.empty() && !p.has_transcript)
      f.fail("audio", "input_audio needs audio or a transcript", "missing_required_parameter");
  } else if ((type == "text" || type == "output_text") && role == "assistant") {
    p.type = ContentType::text;
    p.text = f.required_str("text", kMaxItemTextBytes);
  } else if ((type == "audio" || type == "output_audio") && role == "assistant") {
    p.type = ContentType::audio;
    p.transcript = f.required_str("transcript", kMaxItemTextBytes);
    p.has_transcript = true;
  } else {
    f.fail("type", "'" + type + "' is not a content type of a " + role + " message");
  }
  return p;
}

Item parse_item(const Fields& f) {
  f.only({"id", "type", "object", "role", "status", "content"});
  if (auto t = f.str("type"); t && *t != "message") {
    f.fail("type", "only message items are supported (not '" + *t + "')", "unsupported_parameter");
  }
  Item item;
  if (auto id = f.str("id")) {
    if (id->empty()) f.fail("id", "must not be empty");
    item.id = *id;
  }
  item.role = f.required_str("role");
  if (item.role != "user" && item.role != "assistant" && item.role != "system") {
    f.fail("role", "must be user, assistant or system");
  }
  const json* content = f.value("content");
  if (content == nullptr) f.fail("content", "is required", "missing_required_parameter");
  if (!content->is_array() || content->empty())
    f.fail("content", "must be a non-empty array", "invalid_type");
  if (content->size() > 16) f.fail("content", "more than 16 parts");
  for (std::size_t i = 0; i < content->size(); ++i) {
    const json& part = (*content)[i];
    const std::string key = "content[" + std::to_string(i) + "]";
    if (!part.is_object()) f.fail(key, "must be an object", "invalid_type");
    item.content.push_back(parse_part(f.sub(part, key), item.role));
  }
  return item;
}

ResponseCreate parse_response_create(const Fields& top) {
  ResponseCreate rc;
  const json* r = top.object("response");
  if (r == nullptr) return rc;
  Fields f = top.sub(*r, "response");
  f.only({"instructions", "voice", "modalities", "output_modalities", "output_audio_format",
          "audio", "temperature", "max_response_output_tokens", "max_output_tokens", "conversation",
          "input", "metadata", "tools", "tool_choice", "prompt", "parallel_tool_calls",
          "reasoning"});
  ResponseOverrides& o = rc.overrides;
  if (auto i = f.str("instructions", kMaxInstructionsBytes)) o.instructions = *i;
  if (f.value("voice")) o.voice = voice_of(f, "voice");
  if (f.value("modalities")) o.audio_out = modalities_audio(f, "modalities");
  if (f.value("output_modalities")) o.audio_out = modalities_audio(f, "output_modalities");
  if (f.value("output_audio_format")) o.output_format = format_name(f, "output_audio_format");
  if (const json* audio = f.object("audio")) {
    Fields a = f.sub(*audio, "audio");
    a.only({"output"});
    if (const json* out = a.object("output")) {
      Fields of = a.sub(*out, "output");
      of.only({"format", "voice"});
      if (of.value("format")) o.output_format = ga_format(of, "format");
      if (of.value("voice")) o.voice = voice_of(of, "voice");
    }
  }
  if (auto t = f.number("temperature", 0.0, 2.0)) o.temperature = *t;
  if (auto m = max_tokens(f, "max_response_output_tokens")) o.max_output_tokens = *m;
  if (auto m = max_tokens(f, "max_output_tokens")) o.max_output_tokens = *m;
  if (auto c = f.str("conversation")) {
    if (*c != "auto" && *c != "none") f.fail("conversation", "must be \"auto\" or \"none\"");
    o.out_of_band = *c == "none";
  }
  if (const json* input = f.value("input")) {
    if (!input->is_array()) f.fail("input", "must be an array of items", "invalid_type");
    if (input->size() > 256) f.fail("input", "more than 256 items");
    std::vector<Item> items;
    for (std::size_t i = 0; i < input->size(); ++i) {
      const std::string key = "input[" + std::to_string(i) + "]";
      if (!(*input)[i].is_object()) f.fail(key, "must be an object", "invalid_type");
      items.push_back(parse_item(f.sub((*input)[i], key)));
    }
    o.input = std::move(items);
  }
  if (const json* m = f.value("metadata")) {
    if (!m->is_object()) f.fail("metadata", "must be an object", "invalid_type");
    o.metadata = *m;
  }
  no_tools(f);
  return rc;
}

}  // namespace

void apply(SessionSettings& s, const SessionUpdate& u) {
  if (u.instructions) s.instructions = *u.instructions;
  if (u.voice) s.voice = *u.voice;
  if (u.input_format) s.input_format = *u.input_format;
  if (u.output_format) s.output_format = *u.output_format;
  if (u.turn_detection) s.turn_detection = *u.turn_detection;
  if (u.transcription) s.transcription = *u.transcription;
  if (u.audio_out) s.audio_out = *u.audio_out;
  if (u.max_output_tokens) s.max_output_tokens = *u.max_output_tokens;
  if (u.temperature) s.temperature = *u.temperature;
  if (u.video) s.video = *u.video;
}

ParsedEvent parse_client_event(std::string_view frame) {
  json msg;
  try {
    msg = json::parse(frame);
  } catch (const json::exception&) {
    // The parser's message quotes the client's bytes: not echoed back.
    throw EventError("the event is not valid JSON", "invalid_json");
  }
  if (!msg.is_object()) throw EventError("an event must be a JSON object", "invalid_json");
  std::string event_id;
  if (auto it = msg.find("event_id"); it != msg.end() && !it->is_null()) {
    if (!it->is_string() || it->get_ref<const std::string&>().size() > kMaxIdBytes) {
      throw EventError("event_id: must be a string of at most 64 bytes", "invalid_value",
                       "event_id");
    }
    event_id = it->get<std::string>();
  }
  Fields f(msg, event_id);
  const std::string type = f.required_str("type");
  ParsedEvent out{event_id, AudioClear{}};
  if (type == "session.update") {
    f.only({"type", "event_id", "session"});
    out.event = parse_session_update(f);
  } else if (type == "input_audio_buffer.append") {
    f.only({"type", "event_id", "audio"});
    const json* a = f.value("audio");
    if (a == nullptr) f.fail("audio", "is required", "missing_required_parameter");
    if (!a->is_string()) f.fail("audio", "must be a base64 string", "invalid_type");
    auto bytes = base64_decode(a->get_ref<const std::string&>());
    if (!bytes) f.fail("audio", "is not valid base64", "invalid_audio");
    out.event = AudioAppend{std::move(*bytes)};
  } else if (type == "input_audio_buffer.commit") {
    f.only({"type", "event_id"});
    out.event = AudioCommit{};
  } else if (type == "input_audio_buffer.clear") {
    f.only({"type", "event_id"});
    out.event = AudioClear{};
  } else if (type == "output_audio_buffer.clear") {
    f.only({"type", "event_id", "response_id"});
    out.event = OutputAudioClear{};
  } else if (type == "conversation.item.create") {
    f.only({"type", "event_id", "previous_item_id", "item"});
    ItemCreate c;
    c.previous_item_id = f.str("previous_item_id");
    const json* item = f.object("item");
    if (item == nullptr) f.fail("item", "is required", "missing_required_parameter");
    c.item = parse_item(f.sub(*item, "item"));
    out.event = std::move(c);
  } else if (type == "conversation.item.retrieve") {
    f.only({"type", "event_id", "item_id"});
    out.event = ItemRetrieve{f.required_str("item_id")};
  } else if (type == "conversation.item.delete") {
    f.only({"type", "event_id", "item_id"});
    out.event = ItemDelete{f.required_str("item_id")};
  } else if (type == "conversation.item.truncate") {
    f.only({"type", "event_id", "item_id", "content_index", "audio_end_ms"});
    ItemTruncate t;
    t.item_id = f.required_str("item_id");
    auto ci = f.integer("content_index", 0, 15);
    auto end = f.integer("audio_end_ms", 0, 24 * 3600 * 1000);
    if (!ci) f.fail("content_index", "is required", "missing_required_parameter");
    if (!end) f.fail("audio_end_ms", "is required", "missing_required_parameter");
    t.content_index = *ci;
    t.audio_end_ms = *end;
    out.event = t;
  } else if (type == "response.create") {
    f.only({"type", "event_id", "response"});
    out.event = parse_response_create(f);
  } else if (type == "response.cancel") {
    f.only({"type", "event_id", "response_id"});
    out.event = ResponseCancel{f.str("response_id")};
  } else {
    throw EventError("type: unknown client event type '" + type.substr(0, 64) + "'",
                     "unknown_event_type", "type", event_id);
  }
  return out;
}

// ---- server side ----------------------------------------------------------------------------

std::string event_name(Dialect d, std::string_view beta_name) {
  if (d == Dialect::beta) return std::string(beta_name);
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 7> kRenamed{{
      {"response.audio.delta", "response.output_audio.delta"},
      {"response.audio.done", "response.output_audio.done"},
      {"response.audio_transcript.delta", "response.output_audio_transcript.delta"},
      {"response.audio_transcript.done", "response.output_audio_transcript.done"},
      {"response.text.delta", "response.output_text.delta"},
      {"response.text.done", "response.output_text.done"},
      {"conversation.item.created", "conversation.item.added"},
  }};
  for (const auto& [beta, ga] : kRenamed) {
    if (beta == beta_name) return std::string(ga);
  }
  return std::string(beta_name);
}

json error_event(const EventError& e) {
  auto opt = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
  return json{{"type", "error"},
              {"error",
               {{"type", e.type},
                {"code", opt(e.code)},
                {"message", e.what()},
                {"param", opt(e.param)},
                {"event_id", opt(e.event_id)}}}};
}

namespace {

json turn_detection_json(const std::optional<TurnDetection>& td) {
  if (!td) return nullptr;
  return json{{"type", "server_vad"},
              {"threshold", td->threshold},
              {"prefix_padding_ms", td->prefix_padding_ms},
              {"silence_duration_ms", td->silence_duration_ms},
              {"create_response", td->create_response},
              {"interrupt_response", td->interrupt_response}};
}

json ga_format_json(AudioFormat f) {
  json out{{"type", ga_format_name(f)}};
  if (f == AudioFormat::pcm16) out["rate"] = sample_rate_of(f);
  return out;
}

}  // namespace

json session_json(const SessionSettings& s, Dialect d, const std::string& id,
                  const std::string& model) {
  const json transcription =
      s.transcription ? json{{"model", s.transcription_model}} : json(nullptr);
  const json max_tokens = s.max_output_tokens ? json(*s.max_output_tokens) : json("inf");
  const json voice = s.voice.empty() ? json(nullptr) : json(s.voice);
  if (d == Dialect::ga) {
    return json{
        {"type", "realtime"},
        {"object", "realtime.session"},
        {"id", id},
        {"model", model},
        {"output_modalities", s.audio_out ? json::array({"audio"}) : json::array({"text"})},
        {"instructions", s.instructions},
        {"audio",
         {{"input",
           {{"format", ga_format_json(s.input_format)},
            {"transcription", transcription},
            {"noise_reduction", nullptr},
            {"turn_detection", turn_detection_json(s.turn_detection)}}},
          {"output",
           {{"format", ga_format_json(s.output_format)}, {"voice", voice}, {"speed", 1.0}}}}},
        {"max_output_tokens", max_tokens},
        {"tools", json::array()},
        {"tool_choice", "auto"},
        {"video", s.video}};
  }
  return json{{"object", "realtime.session"},
              {"id", id},
              {"model", model},
              {"modalities", s.audio_out ? json::array({"text", "audio"}) : json::array({"text"})},
              {"instructions", s.instructions},
              {"voice", voice},
              {"input_audio_format", beta_format_name(s.input_format)},
              {"output_audio_format", beta_format_name(s.output_format)},
              {"input_audio_transcription", transcription},
              {"turn_detection", turn_detection_json(s.turn_detection)},
              {"temperature", s.temperature ? json(*s.temperature) : json(nullptr)},
              {"max_response_output_tokens", max_tokens},
              {"tools", json::array()},
              {"tool_choice", "auto"},
              {"video", s.video}};
}

json content_json(const ContentPart& p, Dialect d) {
  const bool ga = d == Dialect::ga;
  switch (p.type) {
    case ContentType::input_text:
      return json{{"type", "input_text"}, {"text", p.text}};
    case ContentType::input_audio:
      return json{{"type", "input_audio"},
                  {"transcript", p.has_transcript ? json(p.transcript) : json(nullptr)}};
    case ContentType::text:
      return json{{"type", ga ? "output_text" : "text"}, {"text", p.text}};
    case ContentType::audio:
      return json{{"type", ga ? "output_audio" : "audio"}, {"transcript", p.transcript}};
  }
  return json::object();
}

json item_json(const Item& item, Dialect d) {
  json content = json::array();
  for (const auto& p : item.content) content.push_back(content_json(p, d));
  return json{{"id", item.id},     {"object", "realtime.item"},
              {"type", "message"}, {"status", item.status},
              {"role", item.role}, {"content", std::move(content)}};
}

std::string item_text(const Item& item) {
  std::string out;
  for (const auto& p : item.content) {
    const std::string& t =
        (p.type == ContentType::input_text || p.type == ContentType::text) ? p.text : p.transcript;
    if (t.empty()) continue;
    if (!out.empty()) out += ' ';
    out += t;
  }
  return out;
}

std::string heard_text(const std::vector<std::string>& sentences,
                       const std::vector<double>& sentence_end_ms, double audio_end_ms) {
  std::string out;
  double begin = 0;
  for (std::size_t i = 0; i < sentences.size() && i < sentence_end_ms.size(); ++i) {
    const double end = sentence_end_ms[i];
    std::string part;
    if (audio_end_ms >= end) {
      part = sentences[i];
    } else if (audio_end_ms > begin && end > begin) {
      // Words in proportion to the time heard of this sentence.
      std::istringstream in(sentences[i]);
      std::vector<std::string> words;
      for (std::string w; in >> w;) words.push_back(w);
      const auto keep = static_cast<std::size_t>(
          std::floor(words.size() * (audio_end_ms - begin) / (end - begin)));
      for (std::size_t w = 0; w < keep; ++w) part += (w ? " " : "") + words[w];
    }
    if (!part.empty()) {
      if (!out.empty()) out += ' ';
      out += part;
    }
    if (audio_end_ms < end) break;
    begin = end;
  }
  return out;
}

}  // namespace talkserve::pipeline::realtime
