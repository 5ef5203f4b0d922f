#pragma once
// GET /v1/stream: one WebSocket, one live conversation (docs/protocol.md). The handler reads
// client frames (JSON control messages, PCM16 audio), runs the VAD over the audio, sends each
// utterance to the ASR stage, and runs one response at a time: LLM reply deltas, sentence-level
// TTS sent as audio frames, and the lip-synced video as fragmented MP4 segments from a
// FramePipeline. New speech or input while a response runs cancels it (barge-in).
//
// Thread-safety: the handler's state lives on its own strand of `control`; heavy work (VAD
// per frame excepted) runs on the stages' executors and on `render`.

#include <boost/asio/thread_pool.hpp>

#include <memory>

#include "talkserve/net/exchange.hpp"
#include "stages.hpp"

namespace talkserve::pipeline {

// `stages` and the pools must outlive every session (the talk service joins its pools on stop).
std::shared_ptr<net::WebSocketHandler> make_live_session(Stages& stages,
                                                         boost::asio::thread_pool& control,
                                                         boost::asio::thread_pool& render,
                                                         const net::RequestContext& context);

}  // namespace talkserve::pipeline
