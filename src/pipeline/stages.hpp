#pragma once
// What a turn needs from the server, shared by POST /v1/talk and the live stream: the stages
// it drives, the avatar and renderer, the clip cache, the sessions and the [talk] settings.
// Fixed after TalkService::start(); the stages themselves are thread-safe.

#include <memory>
#include <string>
#include <vector>

#include "talkserve/app/config.hpp"
#include "talkserve/avatar/avatar.hpp"
#include "talkserve/avatar/renderer.hpp"
#include "talkserve/cache/clip_store.hpp"
#include "talkserve/llm/chat_backend.hpp"
#include "talkserve/net/api_error.hpp"
#include "talkserve/pipeline/session_store.hpp"
#include "talkserve/speech/asr_stage.hpp"
#include "talkserve/speech/tts_stage.hpp"

namespace talkserve::pipeline {

// Speech in clips, audio files and the live stream is resampled to this rate.
inline constexpr int kOutputRate = 24000;

struct Stages {
  llm::ChatBackend* chat = nullptr;
  speech::AsrStage* asr = nullptr;  // null when ASR is disabled
  speech::TtsStage* tts = nullptr;
  std::shared_ptr<const avatar::Avatar> avatar;       // clips (POST /v1/talk)
  std::shared_ptr<const avatar::Avatar> live_avatar;  // the live stream (talk.stream_size)
  std::unique_ptr<avatar::LipSyncRenderer> renderer;
  std::unique_ptr<cache::ClipStore> cache;  // ClipCache, or TieredClipStore with [redis]
  app::TalkSection cfg;
  std::unique_ptr<SessionStore> sessions;
};

// The error a turn reports when the ASR stage refuses or drops its audio: 503, with the code
// `overloaded` (load shedding), `queue_full` (the max_queue bound) or none.
net::ApiError asr_stage_error(const sched::ExecError& e);

// The LLM's view of a turn: system prompt, the session's history and the user's words, with
// the oldest turns dropped until the reply's max_tokens fits the context.
std::vector<llm::ChatMessage> conversation_for(const Stages& s,
                                               const std::vector<llm::ChatMessage>& history,
                                               const std::string& user);

// Sampling for replies: [talk] max_tokens and temperature (greedy is seeded: reproducible).
llm::ChatOptions reply_options(const Stages& s, int priority);

}  // namespace talkserve::pipeline
