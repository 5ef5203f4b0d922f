#pragma once
// GET /v1/realtime on the server's stages: the RealtimeBackend of the session state machine
// over the live pipeline (Silero VAD streams, the ASR stage, the LLM with the conversation,
// sentence-level TTS, the frame pipeline for the avatar's video), and the WebSocket handler
// that runs one RealtimeSession per connection on its own strand.
//
// Thread-safety: the backend's methods may be called from any thread; the handler follows
// net::WebSocketHandler.

#include <boost/asio/thread_pool.hpp>
#include <memory>

#include "realtime_session.hpp"
#include "stages.hpp"
#include "talkserve/net/exchange.hpp"

namespace talkserve::pipeline {

// `stages` and the pools must outlive the backend and every reply it starts. Reply callbacks
// are serialised on strands of `control`; rendering and encoding run on `render`.
std::unique_ptr<realtime::RealtimeBackend> make_stages_realtime_backend(
    Stages& stages, boost::asio::thread_pool& control, boost::asio::thread_pool& render,
    int priority);

// `stages` and the pools must outlive every session (the talk service joins its pools on stop).
std::shared_ptr<net::WebSocketHandler> make_realtime_session(Stages& stages,
                                                             boost::asio::thread_pool& control,
                                                             boost::asio::thread_pool& render,
                                                             const net::RequestContext& context);

}  // namespace talkserve::pipeline
