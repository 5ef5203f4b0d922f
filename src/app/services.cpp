#include "services.hpp"

#ifdef TALKSERVE_HAVE_LLM
#include "talkserve/llm/llm_service.hpp"
#include "talkserve/llm/remote_llm_service.hpp"
#endif
#ifdef TALKSERVE_HAVE_SPEECH
#include "talkserve/speech/speech_service.hpp"
#endif
#ifdef TALKSERVE_HAVE_PIPELINE
#include "talkserve/pipeline/talk_service.hpp"
#endif

namespace talkserve::app {

std::vector<std::unique_ptr<Service>> make_services(const AppConfig& config,
                                                    obs::MetricsRegistry& metrics,
                                                    std::shared_ptr<cache::RedisClient> redis) {
  std::vector<std::unique_ptr<Service>> out;
#ifdef TALKSERVE_HAVE_LLM
  if (config.llm.enabled) {
    // backend = "remote": no model in this process; the talk stages stream from llm.remote.url.
    out.push_back(config.llm.backend == "remote" ? llm::make_remote_llm_service(config, metrics)
                                                 : llm::make_llm_service(config, metrics));
  }
#else
  if (config.llm.enabled) {
    throw ConfigError("llm.enabled: this build has no LLM module (set llm.enabled = false)");
  }
#endif
#ifdef TALKSERVE_HAVE_SPEECH
  if (config.asr.enabled || config.tts.enabled) {
    out.push_back(speech::make_speech_service(config, metrics));
  }
#else
  if (config.asr.enabled || config.tts.enabled) {
    throw ConfigError("asr.enabled / tts.enabled: this build has no speech module "
                      "(set both to false)");
  }
#endif
#ifdef TALKSERVE_HAVE_PIPELINE
  // The talk pipeline drives the services above, so it starts after them (in order).
  if (config.talk.enabled) {
    std::vector<Service*> others;
    for (auto& s : out) others.push_back(s.get());
    out.push_back(pipeline::make_talk_service(config, metrics, std::move(others), std::move(redis)));
  }
#else
  if (config.talk.enabled) {
    throw ConfigError("talk.enabled: this build has no talk pipeline (set talk.enabled = false)");
  }
#endif
  (void)metrics;
  (void)redis;
  return out;
}

}  // namespace talkserve::app
