#include "golden_support.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>

#include "unit/llm/model/test_paths.hpp"
#include "talkserve/llm/model_loader.hpp"
#include "talkserve/llm/tokenizer_detokenizer.hpp"
#include "talkserve/sched/clock.hpp"

namespace talkserve::llm::golden {

const Tokenizer& tokenizer() {
  static const std::unique_ptr<Tokenizer> tok = [] {
    TokenizerConfig tc;
    tc.path = test::stories_tokenizer();
    tc.vocab_size = 512;
    return load_tokenizer(tc);
  }();
  return *tok;
}

std::unique_ptr<ModelRunner> load_stories(int num_blocks, int block_size) {
  ModelConfig cfg;
  cfg.path = test::stories_model();
  cfg.num_blocks = num_blocks;
  cfg.block_size = block_size;
  cfg.num_threads = 1;
  return load_model(cfg);
}

const std::string& golden_stdout() {
  static const std::string golden =
      test::read_file(test::shared_dir() + "/models/stories260K/golden_greedy.stdout");
  return golden;
}

std::vector<int32_t> golden_prompt() { return tokenizer().encode(kGoldenPrompt, /*add_bos=*/true); }

int golden_max_tokens() {
  return kRunCPositions + 1 - static_cast<int>(golden_prompt().size());
}

std::string runc_text(const std::vector<int32_t>& prompt, const std::string& generated) {
  std::string out;
  for (std::size_t i = 1; i < prompt.size(); ++i)
    out += tokenizer().decode_piece(prompt[i], prompt[i - 1]);
  return out + generated + "\n";
}

struct EventRecorder::State {
  mutable std::mutex mutex;
  mutable std::condition_variable finished_cv;
  std::map<RequestId, Stream> streams;
  std::size_t finished = 0;
};

std::shared_ptr<EventRecorder::State> EventRecorder::make_state() {
  return std::make_shared<State>();
}

GenerationCallback EventRecorder::callback() {
  return [state = state_](GenerationEvent&& ev) {
    std::lock_guard lock(state->mutex);
    if (auto* t = std::get_if<TokenEvent>(&ev)) {
      Stream& s = state->streams[t->id];
      if (s.finished) ++s.events_after_finish;
      s.tokens.insert(s.tokens.end(), t->token_ids.begin(), t->token_ids.end());
      s.text += t->text;
      ++s.token_events;
    } else {
      auto& f = std::get<FinishedEvent>(ev);
      Stream& s = state->streams[f.id];
      if (s.finished) ++s.events_after_finish;
      s.finished = std::move(f);
      ++state->finished;
      state->finished_cv.notify_all();
    }
  };
}

Stream EventRecorder::get(RequestId id) const {
  std::lock_guard lock(state_->mutex);
  auto it = state_->streams.find(id);
  return it == state_->streams.end() ? Stream{} : it->second;
}

std::size_t EventRecorder::num_finished() const {
  std::lock_guard lock(state_->mutex);
  return state_->finished;
}

bool EventRecorder::wait_finished(std::size_t n, int timeout_s) const {
  std::unique_lock lock(state_->mutex);
  return state_->finished_cv.wait_for(lock, std::chrono::seconds(timeout_s),
                                      [&] { return state_->finished >= n; });
}

GenerationRequest make_request(const RequestSpec& spec, EventRecorder& rec) {
  GenerationRequest r;
  r.prompt = spec.prompt;
  r.params.temperature = spec.temperature;
  r.params.seed = spec.seed;
  r.params.max_tokens = spec.max_tokens;
  r.params.ignore_eos = spec.ignore_eos;
  r.priority = spec.priority;
  r.on_event = rec.callback();
  return r;
}

RequestSpec golden_spec() {
  RequestSpec s;
  s.prompt = golden_prompt();
  s.max_tokens = golden_max_tokens();
  s.temperature = 0.0f;
  return s;
}

std::vector<RequestSpec> other_specs() {
  static const std::vector<std::string> texts = {
      "The dog",
      "Tom",
      "Lily and Ben went to the park",
      "One day, a little bird",
      "Sara had a red ball. She liked to throw it high in the sky.",
      "There was a big tree",
      "Mom said",
      "The cat was sad because",
      "Once upon a time, there was a boy named Tim. Tim loved to play with his toy car every day.",
      "A fish",
      "The sun was hot and the children wanted to swim in the lake",
      "Ben saw a big box",
  };
  std::vector<RequestSpec> specs;
  for (int i = 0; i < 32; ++i) {
    const std::string& base = texts[static_cast<std::size_t>(i) % texts.size()];
    std::string text = base;
    // Some long prompts (several KV blocks, several prefill chunks), most short.
    for (int k = 0; k < (i % 5 == 3 ? 3 : 0); ++k) text += " " + base;
    RequestSpec s;
    s.prompt = tokenizer().encode(text, /*add_bos=*/true);
    s.max_tokens = 8 + (i * 37) % 90;
    s.priority = i % 3;
    if (i % 4 == 1) {
      s.temperature = (i % 8 == 1) ? 0.8f : 1.0f;
      s.seed = 1000 + static_cast<std::uint64_t>(i);
    }
    s.ignore_eos = (i % 6 == 0);
    specs.push_back(std::move(s));
  }
  return specs;
}

EngineConfig engine_config(int max_prefill_chunk, bool prefix_caching, int max_num_seqs,
                           int max_num_batched_tokens) {
  EngineConfig c;
  c.scheduler.max_num_seqs = max_num_seqs;
  c.scheduler.max_num_batched_tokens = max_num_batched_tokens;
  c.scheduler.max_prefill_chunk = max_prefill_chunk;
  c.enable_prefix_caching = prefix_caching;
  return c;
}

CoreRun run_core(ModelRunner& runner, const EngineConfig& config,
                 const std::vector<RequestSpec>& specs) {
  sched::ManualClock clock;
  EngineCore core(runner, config, clock, make_detokenizer_factory(tokenizer()));
  EventRecorder rec;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const std::string err = core.add_request(static_cast<RequestId>(i + 1), make_request(specs[i], rec));
    if (!err.empty()) throw std::runtime_error("add_request " + std::to_string(i + 1) + ": " + err);
  }
  CoreRun out;
  while (core.has_work()) {
    core.step();
    clock.advance(std::chrono::milliseconds(1));
    ++out.steps;
    out.max_running = std::max(out.max_running, core.scheduler().num_running());
    if (out.steps > 100000) throw std::runtime_error("run_core: the engine does not finish");
  }
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const auto id = static_cast<RequestId>(i + 1);
    out.streams[id] = rec.get(id);
  }
  out.stats = core.stats();
  out.free_blocks_after = core.blocks().num_free_blocks();
  out.total_blocks = core.blocks().num_total_blocks();
  return out;
}

std::vector<Stream> run_each_alone(ModelRunner& runner, const std::vector<RequestSpec>& specs,
                                   const EngineConfig& config) {
  std::vector<Stream> out;
  for (const RequestSpec& s : specs) out.push_back(run_core(runner, config, {s}).streams.at(1));
  return out;
}

}  // namespace talkserve::llm::golden
