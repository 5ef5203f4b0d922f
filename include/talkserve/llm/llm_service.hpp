#pragma once
// The LLM stage as a server service: one resident model, one Engine (continuous batching over
// the paged KV cache) and the OpenAI-compatible routes in front of it:
//   GET  /v1/models, /v1/models/{id}
//   POST /v1/completions, /v1/chat/completions   (JSON or server-sent-event streams)
// Every request is a GenerationRequest on the shared engine; a client that disconnects has its
// sequence cancelled and its KV blocks freed at the next step.

#include <memory>

#include "talkserve/app/config.hpp"
#include "talkserve/app/service.hpp"

namespace talkserve::obs {
class MetricsRegistry;
}

namespace talkserve::llm {

// `metrics` must outlive the service. Loading happens in Service::start().
std::unique_ptr<app::Service> make_llm_service(const app::AppConfig& config,
                                               obs::MetricsRegistry& metrics);

// The in-process chat interface of a service made by make_llm_service (nullptr for others).
class ChatBackend;
ChatBackend* chat_backend_of(app::Service& service);

}  // namespace talkserve::llm
