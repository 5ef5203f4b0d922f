#pragma once
// POST /v1/talk: one conversational turn through every stage, and GET /v1/clips/{id}.mp4 for
// the rendered results.
//
//   audio (multipart `file`, or JSON `audio` base64) -> ASR -> transcript
//   text (or the transcript) + session history -> LLM -> reply (deltas as they come)
//   reply sentences -> TTS (each sentence queued as soon as the LLM completes it)
//   speech audio + phoneme timeline -> lip-sync renderer -> H.264/AAC MP4 -> clip cache
//
// The answer carries session_id, transcript, reply, audio_url, video_url, per-stage timings
// and the trace id; with "stream": true the same arrive as server-sent events as each stage
// produces them. Identical turns (same avatar, reply text, voice, renderer and parameters)
// reuse the cached clip instead of rendering it again.

#include <memory>
#include <vector>

#include "talkserve/app/config.hpp"
#include "talkserve/app/service.hpp"

namespace talkserve::obs {
class MetricsRegistry;
}
namespace talkserve::cache {
class RedisClient;
}

namespace talkserve::pipeline {

// `others` are the services this one drives (the LLM and speech services); they must outlive
// it and be started before it. `redis`: the server's client of config.redis.url, shared with
// the other Redis users (quotas); null makes one when the url is set.
std::unique_ptr<app::Service> make_talk_service(const app::AppConfig& config,
                                                obs::MetricsRegistry& metrics,
                                                std::vector<app::Service*> others,
                                                std::shared_ptr<cache::RedisClient> redis = nullptr);

}  // namespace talkserve::pipeline
