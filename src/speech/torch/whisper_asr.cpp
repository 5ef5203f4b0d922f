// WhisperAsr: the AsrBackend over the Whisper network (whisper_model.cpp), its decoding rules
// (whisper_decoding.cpp) and the shared decode loop (whisper_decode_loop.cpp).

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <ATen/core/ivalue.h>  // first: clang (C++20) needs c10::IValue complete in libtorch 1.13's torch.h
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>
#include <string_view>

#include "llm/model/cpu_caching_allocator.hpp"
#include "speech/torch/torch_device.hpp"
#include "speech/torch/whisper_decode_loop.hpp"
#include "speech/torch/whisper_decoding.hpp"
#include "speech/torch/whisper_model.hpp"
#include "talkserve/llm/tokenizer.hpp"
#include "talkserve/speech/whisper.hpp"

// Debian's libtorch runs its GEMMs through OpenBLAS, whose pool ignores at::set_num_threads
// (see llm/model/model_loader.cpp). Weak: the build does not depend on the BLAS.
extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace talkserve::speech {

using detail::WhisperSpecialTokens;

namespace {

constexpr double kWindowSeconds = 30.0;
constexpr int kAudioFramesPerSecond = 50;  // encoder positions per second
constexpr int kMaxPromptTokens = 223;      // the reference keeps the last n_text_ctx/2 - 1
// Windows per encoder forward. On a CPU the encoder is compute-bound at one window (the 30 s
// window is 1500 positions) and larger batches only add cache misses; a GPU gains from more.
constexpr std::size_t kEncodeChunkCpu = 1;
constexpr std::size_t kEncodeChunkGpu = 8;
// A window that ends before its audio does is followed by one for the rest, unless less
// than this is left (the VAD's padding after the last word).
constexpr std::size_t kMinTailSamples = kAsrSampleRate / 2;

nlohmann::json read_json_if_present(const std::filesystem::path& p) {
  std::ifstream in(p);
  if (!in) return nlohmann::json::object();
  try {
    return nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw AsrError("whisper: " + p.string() + ": malformed JSON: " + e.what());
  }
}

std::vector<int> int_list(const nlohmann::json& j, const char* key) {
  std::vector<int> out;
  if (j.contains(key) && j[key].is_array()) {
    for (const auto& v : j[key]) {
      if (v.is_number_integer()) out.push_back(v.get<int>());
    }
  }
  return out;
}

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\n");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\n");
  return s.substr(b, e - b + 1);
}

// The reference's median filter (width 7, reflect padding) along the last dimension.
torch::Tensor median_filter(const torch::Tensor& x, int width) {
  const int pad = width / 2;
  if (x.size(-1) <= pad) return x;
  const auto shape = x.sizes().vec();
  torch::Tensor flat = x.reshape({-1, 1, x.size(-1)});
  flat = torch::nn::functional::pad(flat, torch::nn::functional::PadFuncOptions({pad, pad}).mode(torch::kReflect));
  return std::get<0>(flat.unfold(-1, width, 1).median(-1)).reshape(shape);
}

bool cpu_has_bf16() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  return __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

bool encoder_bf16(const std::string& dtype) {
  if (dtype == "bfloat16") return true;
  if (dtype == "float32") return false;
  return cpu_has_bf16();
}

}  // namespace

struct WhisperAsr::Impl {
  WhisperOptions options;
  torch::Device device = torch::kCPU;
  std::unique_ptr<detail::WhisperModel> model;
  std::unique_ptr<llm::Tokenizer> tokenizer;
  WhisperSpecialTokens special;
  bool multilingual = false;
  std::map<std::string, int> language_tokens;  // "en" -> <|en|>
  std::vector<std::pair<int, int>> alignment_heads;
  std::unique_ptr<detail::WhisperDecodeLoop> loop;
  std::mutex encoder_mutex;  // one encoder forward at a time: it already uses every core
  std::atomic<std::uint64_t> encoder_ns{0};

  std::string text_of(const std::vector<int>& tokens) const {
    std::string out;
    int prev = -1;
    for (int t : tokens) {
      if (t >= special.eot) continue;
      out += tokenizer->decode_piece(t, prev);
      prev = t;
    }
    return out;
  }

  std::vector<std::int64_t> sot_sequence(const std::string& language) const {
    std::vector<std::int64_t> s{special.sot};
    if (multilingual) {
      const auto it = language_tokens.find(language.empty() ? "en" : language);
      s.push_back(it != language_tokens.end() ? it->second : language_tokens.at("en"));
      s.push_back(special.transcribe);
    }
    return s;
  }

  // The most likely language of a window (multilingual checkpoints): the language token the
  // decoder predicts after <|startoftranscript|>.
  std::string detect_language(const std::vector<std::pair<torch::Tensor, torch::Tensor>>& cross) const {
    detail::WhisperDecoderState scratch(*model, 1);
    scratch.add_request(cross);
    const torch::Tensor logits = model->prefill(scratch, 0, 0, {special.sot})[0];
    std::string best = "en";
    float best_logit = -INFINITY;
    for (const auto& [code, id] : language_tokens) {
      const float v = logits[id].item<float>();
      if (v > best_logit) best_logit = v, best = code;
    }
    return best;
  }

  std::vector<AsrWord> align_words(const std::vector<std::pair<torch::Tensor, torch::Tensor>>& cross,
                                   const std::vector<std::int64_t>& sot_seq, const std::vector<int>& text_tokens,
                                   std::size_t samples) const;

  std::vector<WhisperWindow> finish_window(const detail::WhisperOutcome& o, const std::string& language,
                                           const std::vector<std::pair<torch::Tensor, torch::Tensor>>& cross,
                                           const std::vector<std::int64_t>& sot_seq, std::size_t samples,
                                           double offset) const;
};

std::vector<AsrWord> WhisperAsr::Impl::align_words(
    const std::vector<std::pair<torch::Tensor, torch::Tensor>>& cross, const std::vector<std::int64_t>& sot_seq,
    const std::vector<int>& text_tokens, std::size_t samples) const {
  if (text_tokens.empty() || alignment_heads.empty()) return {};
  std::vector<std::int64_t> tokens = sot_seq;
  tokens.push_back(special.no_timestamps);
  for (int t : text_tokens) tokens.push_back(t);
  tokens.push_back(special.eot);
  if (static_cast<int>(tokens.size()) > model->config().max_target_positions) return {};
  detail::WhisperDecoderState scratch(*model, 1);
  scratch.add_request(cross);
  torch::Tensor scores;
  model->prefill(scratch, 0, 0, tokens, alignment_heads, &scores);  // [A, n, 1500]
  c10::InferenceMode guard;
  const std::int64_t frames = std::clamp<std::int64_t>(
      static_cast<std::int64_t>(samples / detail::kWhisperHop / 2), 1, model->config().max_source_positions);
  torch::Tensor w = torch::softmax(scores.narrow(2, 0, frames), -1);
  const auto std_mean = torch::std_mean(w, {-2}, /*unbiased=*/false, /*keepdim=*/true);
  w = (w - std::get<1>(std_mean)) / std::get<0>(std_mean).clamp_min(1e-10);
  w = median_filter(w, 7).mean(0);  // [n, frames]
  const auto first = static_cast<std::int64_t>(sot_seq.size());
  const torch::Tensor matrix = (-w.narrow(0, first, static_cast<std::int64_t>(text_tokens.size()) + 1)).contiguous();
  const auto path = detail::dtw_path(std::span<const float>(matrix.data_ptr<float>(), static_cast<std::size_t>(matrix.numel())),
                                     static_cast<int>(matrix.size(0)), static_cast<int>(matrix.size(1)));
  // The time at which the path first enters each token's row.
  std::vector<double> jump(static_cast<std::size_t>(matrix.size(0)), 0.0);
  int last_row = -1;
  for (const auto& [row, col] : path) {
    if (row != last_row) {
      jump[static_cast<std::size_t>(row)] = static_cast<double>(col) / kAudioFramesPerSecond;
      last_row = row;
    }
  }
  // Words: a token whose text starts with a space begins a new one.
  std::vector<AsrWord> words;
  int prev = -1;
  for (std::size_t i = 0; i < text_tokens.size(); ++i) {
    const std::string piece = tokenizer->decode_piece(text_tokens[i], prev);
    prev = text_tokens[i];
    const bool starts = words.empty() || (!piece.empty() && piece.front() == ' ');
    if (starts) words.push_back(AsrWord{"", jump[i], jump[i]});
    words.back().word += piece;
    words.back().end = jump[i + 1];
  }
  std::vector<AsrWord> out;
  for (AsrWord& w2 : words) {
    w2.word = trim(std::move(w2.word));
    if (w2.word.empty()) continue;
    if (!out.empty() && w2.start < out.back().end) w2.start = out.back().end;
    w2.end = std::max(w2.end, w2.start);
    out.push_back(std::move(w2));
  }
  return out;
}

std::vector<WhisperWindow> WhisperAsr::Impl::finish_window(
    const detail::WhisperOutcome& o, const std::string& language,
    const std::vector<std::pair<torch::Tensor, torch::Tensor>>& cross, const std::vector<std::int64_t>& sot_seq,
    std::size_t samples, double offset) const {
  WhisperWindow w;
  w.tokens = o.best.tokens;
  w.language = language;
  w.temperature = o.temperature;
  w.avg_logprob = o.avg_logprob;
  w.compression_ratio = o.compression_ratio;
  w.no_speech_prob = o.no_speech_prob;
  w.skipped = o.no_speech_prob > options.no_speech_threshold && o.avg_logprob < options.logprob_threshold;
  if (o.cancelled || w.skipped) return {std::move(w)};
  const double seconds = std::min(kWindowSeconds, static_cast<double>(samples) / kAsrSampleRate);
  std::vector<int> text_tokens;
  for (const detail::WhisperSegment& s : detail::split_segments(w.tokens, special.timestamp_begin, seconds)) {
    AsrSegment seg;
    seg.start = offset + std::min(s.start, seconds);
    seg.end = offset + std::min(s.end, seconds);
    seg.text = trim(text_of(s.tokens));
    seg.tokens = s.tokens;
    seg.temperature = o.temperature;
    seg.avg_logprob = o.avg_logprob;
    seg.compression_ratio = o.compression_ratio;
    seg.no_speech_prob = o.no_speech_prob;
    if (seg.text.empty()) continue;
    text_tokens.insert(text_tokens.end(), s.tokens.begin(), s.tokens.end());
    if (!w.result.text.empty()) w.result.text += ' ';
    w.result.text += seg.text;
    w.result.segments.push_back(std::move(seg));
  }
  w.text = w.result.text;
  if (options.word_timestamps) {
    w.result.words = align_words(cross, sot_seq, text_tokens, samples);
    for (AsrWord& word : w.result.words) {
      word.start = offset + std::min(word.start, seconds);
      word.end = offset + std::min(word.end, seconds);
    }
    // The alignment can put a word's edge a little outside the timestamp tokens' span: the
    // segments grow to cover their words (as the reference transcriber moves segment edges to
    // word times), so captions built from either agree.
    if (!w.result.words.empty() && !w.result.segments.empty()) {
      w.result.segments.front().start = std::min(w.result.segments.front().start, w.result.words.front().start);
      w.result.segments.back().end = std::max(w.result.segments.back().end, w.result.words.back().end);
    }
  }
  return {std::move(w)};
}

void WhisperOptions::validate() const {
  if (path.empty()) throw std::invalid_argument("whisper.path is empty");
  if (name.empty()) throw std::invalid_argument("whisper.name is empty");
  if (threads < 0 || threads > 1024) throw std::invalid_argument("whisper.threads must be in [0, 1024]");
  if (beam_size < 1 || beam_size > 16) throw std::invalid_argument("whisper.beam_size must be in [1, 16]");
  if (temperatures.empty()) throw std::invalid_argument("whisper.temperatures must not be empty");
  for (double t : temperatures) {
    if (!(t >= 0 && t <= 2)) throw std::invalid_argument("whisper.temperatures must be in [0, 2]");
  }
  if (!(compression_ratio_threshold >= 0)) throw std::invalid_argument("whisper.compression_ratio_threshold must be >= 0");
  if (!(no_speech_threshold >= 0 && no_speech_threshold <= 1)) {
    throw std::invalid_argument("whisper.no_speech_threshold must be in [0, 1]");
  }
  if (encoder_dtype != "auto" && encoder_dtype != "float32" && encoder_dtype != "bfloat16") {
    throw std::invalid_argument("whisper.encoder_dtype must be auto, float32 or bfloat16, got \"" + encoder_dtype + "\"");
  }
  if (max_active < 1 || max_active > 1024) throw std::invalid_argument("whisper.max_active must be in [1, 1024]");
  if (max_new_tokens < 1 || max_new_tokens > 448) throw std::invalid_argument("whisper.max_new_tokens must be in [1, 448]");
  if (!detail::valid_device_name(device)) throw std::invalid_argument("whisper.device must be cpu, cuda or cuda:N, got \"" + device + "\"");
}

WhisperAsr::WhisperAsr(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

WhisperAsr::~WhisperAsr() {
  if (impl_) impl_->loop.reset();
}

std::unique_ptr<WhisperAsr> WhisperAsr::load(const WhisperOptions& options) {
  try {
    options.validate();
  } catch (const std::invalid_argument& e) {
    throw AsrError(e.what());
  }
  namespace fs = std::filesystem;
  const fs::path dir(options.path);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json"}) {
    if (!fs::exists(dir / f)) throw AsrError("whisper: " + (dir / f).string() + " is missing");
  }
  llm::detail::install_cpu_caching_allocator();
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->device = detail::parse_device(options.device, "whisper");
  // Every thread that runs torch work takes this team size (an unset count lets each of them
  // start teams of all cores, several at once).
  at::set_num_threads(options.threads > 0 ? options.threads
                                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  // The BLAS stays single-threaded (its workers spin between calls); the encoder spreads its
  // work over torch's threads instead (llm/model/parallel_matmul.hpp).
  if (openblas_set_num_threads) openblas_set_num_threads(1);
  try {
    impl->model = std::make_unique<detail::WhisperModel>(options.path, impl->device,
                                                         encoder_bf16(options.encoder_dtype));
    llm::TokenizerConfig tc;
    tc.path = (dir / "tokenizer.json").string();
    tc.format = "hf_json";
    impl->tokenizer = llm::load_tokenizer(tc);
  } catch (const AsrError&) {
    throw;
  } catch (const std::exception& e) {
    throw AsrError(e.what());
  }
  const llm::Tokenizer& tok = *impl->tokenizer;
  WhisperSpecialTokens& s = impl->special;
  const auto id = [&](const char* text) { return tok.special_id(text); };
  s.eot = id("<|endoftext|>");
  s.sot = id("<|startoftranscript|>");
  s.sot_prev = id("<|startofprev|>");
  s.sot_lm = id("<|startoflm|>");
  s.no_speech = id("<|nospeech|>") >= 0 ? id("<|nospeech|>") : id("<|nocaptions|>");
  s.no_timestamps = id("<|notimestamps|>");
  s.transcribe = id("<|transcribe|>");
  s.translate = id("<|translate|>");
  if (s.eot < 0 || s.sot < 0 || s.no_timestamps < 0) {
    throw AsrError("whisper: " + (dir / "tokenizer.json").string() +
                   " lacks <|endoftext|>, <|startoftranscript|> or <|notimestamps|>");
  }
  s.timestamp_begin = s.no_timestamps + 1;
  const int vocab = impl->model->config().vocab_size;
  if (s.timestamp_begin + 1501 > vocab) {
    throw AsrError("whisper: the vocabulary has no timestamp tokens after <|notimestamps|>");
  }
  impl->multilingual = vocab >= 51865;
  // Language tokens of multilingual vocabularies: <|xx|>, in the reference's order.
  static const char* kCodes[] = {
      "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it", "id",
      "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur", "hr", "bg",
      "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn", "et", "mk", "br",
      "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si", "km", "sn", "yo", "so",
      "af", "oc", "ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo", "ht", "ps", "tk", "nn", "mt",
      "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln", "ha", "ba", "jw", "su", "yue"};
  if (impl->multilingual) {
    for (const char* code : kCodes) {
      const int t = id(("<|" + std::string(code) + "|>").c_str());
      if (t >= 0) impl->language_tokens.emplace(code, t);
    }
    if (!impl->language_tokens.count("en")) throw AsrError("whisper: a multilingual vocabulary without <|en|>");
  }
  const nlohmann::json gen = read_json_if_present(dir / "generation_config.json");
  const nlohmann::json cfg = read_json_if_present(dir / "config.json");
  s.suppress = int_list(gen, "suppress_tokens");
  if (s.suppress.empty()) s.suppress = int_list(cfg, "suppress_tokens");
  s.begin_suppress = int_list(gen, "begin_suppress_tokens");
  if (s.begin_suppress.empty()) s.begin_suppress = int_list(cfg, "begin_suppress_tokens");
  if (s.begin_suppress.empty()) {
    for (int t : tok.encode(" ", false)) s.begin_suppress.push_back(t);
    s.begin_suppress.push_back(s.eot);
  }
  std::erase_if(s.suppress, [&](int t) { return t < 0 || t >= vocab; });
  std::erase_if(s.begin_suppress, [&](int t) { return t < 0 || t >= vocab; });
  const auto& c = impl->model->config();
  if (gen.contains("alignment_heads") && gen["alignment_heads"].is_array()) {
    for (const auto& p : gen["alignment_heads"]) {
      if (p.is_array() && p.size() == 2 && p[0].is_number_integer() && p[1].is_number_integer()) {
        const int l = p[0].get<int>(), h = p[1].get<int>();
        if (l >= 0 && l < c.decoder_layers && h >= 0 && h < c.decoder_attention_heads) {
          impl->alignment_heads.emplace_back(l, h);
        }
      }
    }
  }
  if (impl->alignment_heads.empty()) {  // the reference's default: every head of the upper half
    for (int l = c.decoder_layers / 2; l < c.decoder_layers; ++l) {
      for (int h = 0; h < c.decoder_attention_heads; ++h) impl->alignment_heads.emplace_back(l, h);
    }
  }
  detail::WhisperLoopOptions lo;
  lo.beams = options.beam_size;
  lo.temperatures = options.temperatures;
  lo.compression_ratio_threshold = options.compression_ratio_threshold;
  lo.logprob_threshold = options.logprob_threshold;
  lo.no_speech_threshold = options.no_speech_threshold;
  lo.max_active = options.max_active;
  lo.max_new_tokens = options.max_new_tokens;
  if (gen.contains("max_initial_timestamp_index") && gen["max_initial_timestamp_index"].is_number_integer()) {
    lo.max_initial_timestamp_index = gen["max_initial_timestamp_index"].get<int>();
  }
  Impl* raw = impl.get();
  impl->loop = std::make_unique<detail::WhisperDecodeLoop>(
      *impl->model, impl->special, [raw](const std::vector<int>& t) { return raw->text_of(t); }, lo);
  auto asr = std::make_unique<WhisperAsr>(std::move(impl));
  // One window of silence through the whole path: the first request does not pay for the
  // one-time setup (oneDNN kernel generation, the decode loop's buffers, allocator caches).
  std::vector<AsrInput> warm(1);
  warm[0].samples.assign(kAsrSampleRate, 0.0f);
  asr->transcribe_windows(warm);
  // The warm-up's buffers and the loader's temporaries are not kept resident.
  llm::detail::cpu_caching_allocator_trim();
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
  return asr;
}

std::string WhisperAsr::name() const { return impl_->options.name; }

std::vector<std::string> WhisperAsr::languages() const {
  if (!impl_->multilingual) return {"en"};
  std::vector<std::string> out{"en"};
  for (const auto& [code, id] : impl_->language_tokens) {
    if (code != "en") out.push_back(code);
  }
  return out;
}

int WhisperAsr::mel_bins() const { return impl_->model->config().num_mel_bins; }
int WhisperAsr::vocab_size() const { return impl_->model->config().vocab_size; }
bool WhisperAsr::multilingual() const { return impl_->multilingual; }

std::vector<float> WhisperAsr::log_mel(const std::vector<float>& samples) const {
  const torch::Tensor m = detail::whisper_log_mel(samples, impl_->model->mel_filters().to(torch::kCPU));
  return std::vector<float>(m.data_ptr<float>(), m.data_ptr<float>() + m.numel());
}

std::vector<float> WhisperAsr::first_logits(const std::vector<float>& samples, bool timestamps) const {
  const Impl& m = *impl_;
  const torch::Tensor mel = detail::whisper_log_mel(samples, m.model->mel_filters().to(torch::kCPU)).unsqueeze(0);
  torch::Tensor enc;
  {
    std::lock_guard lock(impl_->encoder_mutex);
    enc = m.model->encode(mel);
  }
  const auto cross = m.model->cross_kv(enc[0]);
  std::vector<std::int64_t> prefix = m.sot_sequence("en");
  if (!timestamps) prefix.push_back(m.special.no_timestamps);
  detail::WhisperDecoderState scratch(*m.model, 1);
  scratch.add_request(cross);
  const torch::Tensor logits = m.model->prefill(scratch, 0, 0, prefix);
  const torch::Tensor last = logits[logits.size(0) - 1].contiguous();
  return std::vector<float>(last.data_ptr<float>(), last.data_ptr<float>() + last.numel());
}

WhisperAsr::Stats WhisperAsr::stats() const {
  Stats s;
  s.steps = impl_->loop->steps();
  s.tokens = impl_->loop->tokens();
  s.max_rows = impl_->loop->max_rows();
  s.encoder_seconds = impl_->encoder_ns.load() / 1e9;
  s.decoder_seconds = impl_->loop->decoder_seconds();
  return s;
}

std::vector<std::vector<WhisperWindow>> WhisperAsr::transcribe_windows(std::vector<AsrInput>& batch) {
  Impl& m = *impl_;
  struct Window {
    std::size_t input;
    std::size_t begin, end;  // samples
    std::vector<std::pair<torch::Tensor, torch::Tensor>> cross;
    std::vector<std::int64_t> sot_seq;
    std::string language;
    std::future<detail::WhisperOutcome> outcome;
  };
  const auto window_len = static_cast<std::size_t>(detail::kWhisperWindowSamples);
  std::vector<std::vector<WhisperWindow>> out(batch.size());
  // Each input starts with a window of up to 30 s; a window whose tokens end in a closed
  // timestamp pair is followed by one starting at that timestamp (plan_seek), as the
  // reference transcriber seeks, so speech the model put off is not lost.
  std::vector<Window> pending;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const std::size_t n = batch[i].samples.size();
    if (!batch[i].is_cancelled() && n > 0) pending.push_back({i, 0, std::min(n, window_len), {}, {}, {}, {}});
  }
  const std::size_t chunk = m.device.is_cpu() ? kEncodeChunkCpu : kEncodeChunkGpu;
  while (!pending.empty()) {
    // The windows of a round join the decode loop together, after all are encoded: on a CPU
    // encoding and decoding compete for the same cores, and a burst of windows makes fuller
    // decoder steps than windows trickling in one encode apart.
    std::vector<std::pair<Window*, detail::WhisperJob>> jobs;
    try {
      for (std::size_t first = 0; first < pending.size(); first += chunk) {
        const std::size_t last = std::min(pending.size(), first + chunk);
        std::vector<torch::Tensor> mels;
        const torch::Tensor filters = m.model->mel_filters().to(torch::kCPU);
        for (std::size_t w = first; w < last; ++w) {
          const auto& s = batch[pending[w].input].samples;
          mels.push_back(detail::whisper_log_mel(
              std::span<const float>(s.data() + pending[w].begin, pending[w].end - pending[w].begin), filters));
        }
        torch::Tensor enc;
        {
          std::lock_guard lock(m.encoder_mutex);
          const auto t0 = std::chrono::steady_clock::now();
          c10::InferenceMode guard;
          enc = m.model->encode(torch::stack(mels));
          m.encoder_ns += static_cast<std::uint64_t>(
              std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
        }
        for (std::size_t w = first; w < last; ++w) {
          Window& win = pending[w];
          const AsrInput& in = batch[win.input];
          win.cross = m.model->cross_kv(enc[static_cast<std::int64_t>(w - first)]);
          win.language = in.language;
          if (m.multilingual && win.language.empty()) win.language = m.detect_language(win.cross);
          if (win.language.empty()) win.language = "en";
          win.sot_seq = m.sot_sequence(win.language);
          detail::WhisperJob job;
          if (!trim(in.prompt).empty() && m.special.sot_prev >= 0) {
            std::vector<int32_t> p = m.tokenizer->encode(" " + trim(in.prompt), false);
            if (p.size() > static_cast<std::size_t>(kMaxPromptTokens)) {
              p.erase(p.begin(), p.end() - kMaxPromptTokens);
            }
            job.prefix.push_back(m.special.sot_prev);
            job.prefix.insert(job.prefix.end(), p.begin(), p.end());
          }
          job.sot_index = static_cast<int>(job.prefix.size());
          job.prefix.insert(job.prefix.end(), win.sot_seq.begin(), win.sot_seq.end());
          job.timestamps = m.options.timestamps;
          if (!job.timestamps) job.prefix.push_back(m.special.no_timestamps);
          job.cross = win.cross;
          // Sampling (fallback temperatures) depends on the audio only: the same window gives
          // the same text alone, in any batch, and at any point of the server's life.
          const auto& s = in.samples;
          job.seed = m.options.seed ^ std::hash<std::string_view>{}(std::string_view(
                                          reinterpret_cast<const char*>(s.data() + win.begin),
                                          (win.end - win.begin) * sizeof(float)));
          job.cancelled = in.cancelled;
          jobs.emplace_back(&win, std::move(job));
        }
      }
      for (auto& [win, job] : jobs) win->outcome = m.loop->submit(std::move(job));
    } catch (const AsrError&) {
      throw;
    } catch (const std::exception& e) {
      throw AsrError(std::string("whisper: ") + e.what());
    }
    std::vector<Window> next;
    for (Window& win : pending) {
      try {
        detail::WhisperOutcome o = win.outcome.get();
        const std::size_t samples = win.end - win.begin;
        const double seconds = static_cast<double>(samples) / kAsrSampleRate;
        const detail::WhisperSeek seek = detail::plan_seek(o.best.tokens, m.special.timestamp_begin, seconds);
        o.best.tokens.resize(seek.keep);
        auto done = m.finish_window(o, win.language, win.cross, win.sot_seq, samples,
                                    static_cast<double>(win.begin) / kAsrSampleRate);
        const bool whole = o.cancelled || done.front().skipped;
        for (auto& w : done) out[win.input].push_back(std::move(w));
        if (o.cancelled) continue;
        const std::size_t n = batch[win.input].samples.size();
        const std::size_t next_begin =
            whole ? win.end : win.begin + static_cast<std::size_t>(seek.consumed * kAsrSampleRate);
        if (next_begin < n && n - next_begin >= kMinTailSamples) {
          next.push_back({win.input, next_begin, std::min(n, next_begin + window_len), {}, {}, {}, {}});
        }
      } catch (const std::exception& e) {
        throw AsrError(std::string("whisper: ") + e.what());
      }
    }
    pending = std::move(next);
  }
  return out;
}

std::vector<AsrResult> WhisperAsr::transcribe_batch(std::vector<AsrInput>& batch) {
  auto windows = transcribe_windows(batch);
  std::vector<AsrResult> out(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    for (WhisperWindow& w : windows[i]) {
      if (w.result.text.empty()) continue;
      if (!out[i].text.empty()) out[i].text += ' ';
      out[i].text += w.result.text;
      for (auto& word : w.result.words) out[i].words.push_back(std::move(word));
      for (auto& seg : w.result.segments) out[i].segments.push_back(std::move(seg));
    }
  }
  return out;
}

}  // namespace talkserve::speech
