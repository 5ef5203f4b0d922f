#pragma once
// The LLM service for llm.backend = "remote": no model is loaded in this process; the talk
// pipeline's chat stage (POST /v1/talk, GET /v1/stream) streams from the OpenAI-compatible
// server at llm.remote.url through a RemoteChatBackend (llm::chat_backend_of finds it).
//
// This server's own OpenAI routes do not proxy: POST /v1/chat/completions and
// /v1/completions answer 404 (code "llm_is_remote") saying the LLM lives upstream, and
// GET /v1/models lists no model. Clients wanting the raw LLM call the upstream themselves.
//
// Ready as soon as started: with llm.remote.probe = true, start() first checks that
// GET {base}/v1/models answers and lists llm.remote.model (else the server fails to start).

#include <memory>

#include "talkserve/app/config.hpp"
#include "talkserve/app/service.hpp"

namespace talkserve::obs {
class MetricsRegistry;
}

namespace talkserve::llm {

// Reads the key from llm.remote.api_key_env when set. Throws std::invalid_argument for a bad
// url or ca_file. `metrics` must outlive the service.
std::unique_ptr<app::Service> make_remote_llm_service(const app::AppConfig& config,
                                                      obs::MetricsRegistry& metrics);

}  // namespace talkserve::llm
