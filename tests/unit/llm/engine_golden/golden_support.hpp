#pragma once
// The real stories260K model behind the continuous-batching engine, checked against the
// llama2.c reference output (golden_greedy.stdout):
//
//   ./run stories260K.bin -z tok512.bin -t 0 -n 64 -i "Once upon a time"
//
// run.c runs the forward pass at positions 0..63 and prints the token chosen at each, so the
// whole sequence (BOS + prompt + generated) has 65 tokens, and stdout is the prompt text
// followed by the generated text and one newline.
//
// The helpers drive EngineCore by hand with a ManualClock (every scheduling decision is then
// deterministic) and record every request's event stream.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "talkserve/llm/engine_core.hpp"
#include "talkserve/llm/model_runner.hpp"
#include "talkserve/llm/tokenizer.hpp"

namespace talkserve::llm::golden {

inline constexpr int kRunCPositions = 64;  // run.c -n 64
inline constexpr const char* kGoldenPrompt = "Once upon a time";

// tok512.bin, loaded once per process (Tokenizer is immutable and thread-safe).
const Tokenizer& tokenizer();

// A fresh stories260K runner with its own KV pool (the pool belongs to the runner, so the
// block size and block count are fixed here). One intra-op thread: the tests run in parallel.
std::unique_ptr<ModelRunner> load_stories(int num_blocks = 256, int block_size = 16);

// The reference: golden_greedy.stdout, byte for byte.
const std::string& golden_stdout();

// The golden request: BOS + "Once upon a time", greedy, max_tokens so that the sequence ends
// at 65 tokens as in run.c.
std::vector<int32_t> golden_prompt();
int golden_max_tokens();

// What the golden file should equal for a prompt and the text the engine streamed for it:
// the prompt's text as run.c prints it (pieces after BOS) + the generated text + "\n".
std::string runc_text(const std::vector<int32_t>& prompt, const std::string& generated);

// Everything one request emitted.
struct Stream {
  std::vector<int32_t> tokens;
  std::string text;
  int token_events = 0;
  int events_after_finish = 0;
  std::optional<FinishedEvent> finished;
};

// Records events per request id. Thread-safe, so a threaded Engine can feed it too.
class EventRecorder {
 public:
  GenerationCallback callback();
  Stream get(RequestId id) const;
  std::size_t num_finished() const;
  // Blocks until `n` requests have finished or `timeout_s` passed (a hang becomes a failure).
  bool wait_finished(std::size_t n, int timeout_s = 120) const;

 private:
  struct State;
  std::shared_ptr<State> state_ = make_state();
  static std::shared_ptr<State> make_state();
};

// A request as the tests describe it; turned into a GenerationRequest by make_request().
struct RequestSpec {
  std::vector<int32_t> prompt;
  int max_tokens = 16;
  float temperature = 0.0f;
  std::optional<std::uint64_t> seed;
  int priority = 1;
  bool ignore_eos = false;
};

GenerationRequest make_request(const RequestSpec& spec, EventRecorder& rec);

RequestSpec golden_spec();

// 32 requests that are not the golden one: prompts of different lengths (2..~150 tokens),
// different max_tokens, greedy and seeded-sampled, all priorities.
std::vector<RequestSpec> other_specs();

EngineConfig engine_config(int max_prefill_chunk = 512, bool prefix_caching = true,
                           int max_num_seqs = 64, int max_num_batched_tokens = 128);

// Adds `specs` (ids 1..n in order) to a fresh EngineCore on `runner` and steps it with a
// ManualClock until idle. Optionally checks after each step (e.g. to cancel something).
struct CoreRun {
  std::map<RequestId, Stream> streams;
  EngineStats stats;
  int steps = 0;
  int max_running = 0;
  int free_blocks_after = 0;
  int total_blocks = 0;
};
CoreRun run_core(ModelRunner& runner, const EngineConfig& config,
                 const std::vector<RequestSpec>& specs);

// The streams of each spec run alone, in a fresh engine with a fresh cache.
std::vector<Stream> run_each_alone(ModelRunner& runner, const std::vector<RequestSpec>& specs,
                                   const EngineConfig& config);

}  // namespace talkserve::llm::golden
