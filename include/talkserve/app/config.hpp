#pragma once
// The whole server configuration, composed of each module's config struct. Loaded once at
// start from a TOML file plus `--set section.key=value` overrides; validated before anything
// starts. Unknown keys are errors (a typo must not silently fall back to a default).

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "talkserve/gateway/gateway_config.hpp"
#include "talkserve/net/http_config.hpp"
#include "talkserve/obs/gpu_monitor.hpp"
#include "talkserve/obs/log.hpp"

namespace talkserve::app {

struct ServerConfig {
  std::chrono::milliseconds drain_grace{10'000};  // SIGTERM: time in-flight work may take
  std::string models_dir = "models";              // where fetch-models.sh puts models
  // glibc heap tuning, applied at start-up (see docs/deploy.md, "Memory"); 0 = glibc default.
  int malloc_arena_max = 2;            // heaps shared by all threads (glibc: 8 per core)
  int malloc_mmap_threshold_kb = 256;  // larger blocks are mmap'd and returned on free
  void validate() const;
};

// [llm.remote]: the talk pipeline's LLM on an OpenAI-compatible server (llm.backend = "remote").
struct LlmRemoteSection {
  std::string url;                      // http[s]://host[:port][/base]; {base}/v1/chat/completions
  std::string api_key;                  // Bearer token sent upstream (prefer api_key_env)
  std::string api_key_env;              // environment variable holding the key
  std::string model;                    // the upstream's model id
  int context_length = 4096;            // the upstream model's context, in tokens
  int connect_timeout_ms = 5000;        // TCP connect + TLS handshake, per attempt
  int timeout_ms = 30000;               // request sent -> response head and first event
  int idle_timeout_ms = 30000;          // between two chunks of the stream
  int max_retries = 2;                  // retries before any text arrived
  int backoff_ms = 200;                 // first retry's delay; doubles, with jitter
  int max_backoff_ms = 5000;            // cap, and the longest Retry-After honoured
  std::string ca_file;                  // PEM CAs to trust for https ("" = the system store)
  int keepalive_ms = 4000;              // reuse an idle connection this long; 0 = one per reply
  int max_idle_connections = 16;        // idle connections kept for reuse
  bool probe = false;                   // start-up: GET {base}/v1/models must list `model`
  void validate() const;
};

struct LlmSection {
  bool enabled = true;
  std::string backend = "local";                      // local (in-process engine) | remote
  LlmRemoteSection remote;                            // [llm.remote], for backend = "remote"
  std::string model = "stories260K/stories260K.bin";  // relative to server.models_dir
  std::string tokenizer = "stories260K/tok512.bin";
  std::string name = "stories260K";                   // served model id
  std::string chat_template = "auto";                 // auto|chatml|llama3|llama2|plain
  std::string device = "cpu";
  int threads = 0;                                     // 0 = all cores
  int block_size = 16;
  int num_blocks = 0;                                  // 0 = derive from kv_cache_mb
  int kv_cache_mb = 64;
  int max_num_seqs = 64;
  int max_num_batched_tokens = 2048;
  int max_prefill_chunk = 512;
  bool prefix_caching = true;
  int max_queue = 1024;                                // waiting requests before 503
  int max_queue_delay_ms = 5000;  // shed new requests while one waited this long to start; 0 = off
  int default_max_tokens = 256;
  void validate() const;
};

// Speech recognition: /v1/audio/transcriptions and the live stream's ASR stage.
struct AsrSection {
  bool enabled = true;
  std::string backend = "whisper";        // whisper | pocketsphinx | wav2vec2
  int decoders = 2;                       // pocketsphinx: resident decoders
  std::string pocketsphinx_hmm = "/usr/share/pocketsphinx/model/en-us/en-us";
  std::string pocketsphinx_lm = "/usr/share/pocketsphinx/model/en-us/en-us.lm.bin";
  std::string pocketsphinx_dict = "/usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict";
  std::string wav2vec2_model = "wav2vec2-base-960h";  // directory, relative to server.models_dir
  std::string whisper_model = "whisper-tiny-en";      // HF directory, relative to server.models_dir
  int whisper_beam_size = 1;              // 1 = greedy
  std::string whisper_encoder_dtype = "auto";  // auto | float32 | bfloat16 (encoder matmuls)
  bool whisper_word_timestamps = true;    // word times by cross-attention alignment
  int whisper_max_active = 32;            // segments in the shared decode loop at once
  std::string device = "cpu";
  int threads = 0;                        // wav2vec2 torch intra-op threads; 0 = leave the default
  bool vad = true;                        // Silero VAD trims silence and segments uploads
  std::string vad_model = "silero_vad/silero_vad.jit";
  double vad_threshold = 0.5;
  int vad_min_silence_ms = 500;
  int vad_min_speech_ms = 250;
  int vad_speech_pad_ms = 200;
  int vad_merge_gap_ms = 2000;            // speech separated by less is one segment
  double max_segment_seconds = 30;        // longer speech regions are cut for the model
  int max_batch = 8;                      // segments per executor batch
  int max_wait_ms = 20;                   // batch window upper bound
  double max_batch_seconds = 0;           // > 0: seconds of audio per batch at most (0 = off)
  int workers = 4;                        // executor threads forming batches (batches in flight)
  int max_queue = 256;                    // waiting segments before 503
  int max_queue_delay_ms = 5000;          // shed new work while the queue's oldest waited this long; 0 = off
  double max_audio_seconds = 600;         // longer uploads are refused (413)
  int max_upload_mb = 25;                 // request body limit of the route
  void validate() const;
};

// Speech synthesis: /v1/audio/speech and the reply voice of a turn.
struct TtsSection {
  bool enabled = true;
  std::string backend = "espeak-ng";      // espeak-ng | flite
  std::string default_voice;              // when a request names none; "" = the backend's
  int workers = 2;                        // flite only (espeak-ng always runs on one thread)
  int max_input_chars = 4096;             // longer `input` is a 400
  int max_queue = 256;                    // waiting sentences before 503
  int output_sample_rate = 24000;         // audio sent to clients (pcm is 24 kHz in OpenAI's API)
  void validate() const;
};

// The whole turn: POST /v1/talk (audio or text in; transcript, reply, speech and lip-synced
// video out), sessions, the avatar and the clip cache.
struct TalkSection {
  bool enabled = true;
  std::string avatar = "avatar-default/portrait.png";  // image or avatar dir, under server.models_dir
  std::string voice;                     // "" = tts.default_voice
  std::string system_prompt;             // prepended to every conversation ("" = none)
  int max_tokens = 96;                   // reply length
  double temperature = 0.0;              // 0 = greedy: identical turns give identical clips
  int session_ttl_s = 1800;
  int max_sessions = 10000;
  int max_history_turns = 8;
  int fps = 25;
  int video_crf = 26;
  std::string cache_dir = "cache/clips"; // rendered clips (relative to the working directory)
  int cache_max_mb = 2048;
  double max_audio_seconds = 60;         // spoken input longer than this is refused (413)
  int max_queue_delay_ms = 5000;         // shed new turns while render work waited this long; 0 = off
  std::string renderer = "viseme";       // "viseme" (CPU default) or "wav2lip"
  std::string wav2lip_weights = "wav2lip/wav2lip.safetensors";  // under server.models_dir
  std::string wav2lip_device = "cpu";    // "cpu", "cuda", "cuda:N"
  int stream_size = 384;                 // live stream: longer side of the video (0 = as the portrait)
  std::string stream_preset = "veryfast";  // live stream: x264 preset
  void validate() const;
};

// The shared Redis tier of the clip cache: replicas pointing at one Redis reuse each other's
// rendered clips. Needs a build with hiredis (TALKSERVE_HAVE_REDIS); without it url must be "".
struct RedisSection {
  std::string url;                        // "redis://[[user]:password@]host[:port][/db]"; "" = off
  int clip_ttl_s = 86400;                 // clips expire from Redis this long after their last store
  int max_clip_mb = 64;                   // larger clips are not shared (each replica renders them)
  int timeout_ms = 250;                   // connect and each read/write; slower Redis = local only
  std::string key_prefix = "talkserve:clip:";
  bool sessions = true;                   // share conversation sessions too (when url is set)
  int session_lock_s = 120;               // a turn lock outliving its replica expires after this
  std::string session_key_prefix = "talkserve:session:";
  bool quotas = true;                     // count API-key quotas across replicas (when url is set)
  int quota_sync_ms = 1000;               // how often a replica exchanges its quota counts
  std::string quota_key_prefix = "talkserve:quota:";
  void validate() const;
};

struct AppConfig {
  ServerConfig server;
  net::HttpConfig http;
  gateway::GatewayConfig gateway;
  obs::ObsConfig log;
  LlmSection llm;
  AsrSection asr;
  TtsSection tts;
  TalkSection talk;
  RedisSection redis;
  obs::GpuMonitorConfig gpu;  // [gpu]: resource monitor and readiness limits
  void validate() const;
};

// A configuration problem: `what()` names the key and why ("http.port: must be ...").
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads `path` ("" = defaults only), applies overrides ("section.key=value", the value parsed
// as a TOML value when it is one, else taken as a string), and validates.
AppConfig load_config(const std::string& path, const std::vector<std::string>& overrides);

}  // namespace talkserve::app
