#include "generation_stream.hpp"

#include "talkserve/net/exchange.hpp"

namespace talkserve::llm::api {

std::string LogprobTexts::piece(int32_t id) const {
  // A model's vocabulary can be padded past the tokenizer's: such ids have no text.
  if (id < 0 || id >= tok_.vocab_size()) return {};
  return tok_.decode_piece(id, prev_);
}

void LogprobTexts::append(const TokenEvent& ev, std::vector<TokenLogprobInfo>& out) {
  for (std::size_t i = 0; i < ev.token_ids.size(); ++i) {
    const int32_t id = ev.token_ids[i];
    TokenLogprobInfo info;
    info.token = piece(id);
    if (i < ev.logprobs.size()) {
      info.logprob = ev.logprobs[i].logprob;
      for (const auto& alt : ev.logprobs[i].top) info.top.emplace_back(piece(alt.token), alt.logprob);
    }
    prev_ = id;
    out.push_back(std::move(info));
  }
}

ResultCollector::ResultCollector(const Tokenizer& tokenizer, bool want_logprobs, int32_t prev_id)
    : want_logprobs_(want_logprobs), texts_(tokenizer, prev_id) {}

void ResultCollector::on_event(GenerationEvent&& ev) {
  if (auto* tok = std::get_if<TokenEvent>(&ev)) {
    out_->result.text += tok->text;
    if (want_logprobs_) texts_.append(*tok, out_->result.logprobs);
    return;
  }
  auto& fin = std::get<FinishedEvent>(ev);
  out_->result.reason = fin.reason;
  out_->result.message = fin.message;
  out_->result.usage = fin.usage;
  Done done;
  {
    std::lock_guard lock(mutex_);
    finished_ = true;
    done = std::move(done_);
  }
  if (done) done(out_);
}

void ResultCollector::set_done(Done done) {
  {
    std::lock_guard lock(mutex_);
    if (!finished_) {
      done_ = std::move(done);
      return;
    }
  }
  done(out_);
}

GenerationStream::GenerationStream(std::shared_ptr<net::StreamWriter> writer, ParsedRequest req,
                                   ResponseMeta meta, const Tokenizer& tokenizer, int32_t prev_id,
                                   std::shared_ptr<void> hold)
    : writer_(std::move(writer)),
      req_(std::move(req)),
      meta_(std::move(meta)),
      texts_(tokenizer, prev_id),
      hold_(std::move(hold)) {}

void GenerationStream::start() {
  std::lock_guard lock(mutex_);
  if (req_.endpoint == Endpoint::completions) {
    opened_ = true;  // completions have no role chunk
    if (req_.echo && req_.prompt_text) pending_text_ = *req_.prompt_text;
  }
  flush_locked();
}

void GenerationStream::on_event(GenerationEvent&& ev) {
  std::lock_guard lock(mutex_);
  if (auto* tok = std::get_if<TokenEvent>(&ev)) {
    pending_text_ += tok->text;
    if (req_.want_logprobs) texts_.append(*tok, pending_logprobs_);
  } else {
    finish_locked(std::get<FinishedEvent>(ev));
  }
  flush_locked();
}

void GenerationStream::fail(const ApiError& error) {
  std::lock_guard lock(mutex_);
  finished_ = true;
  hold_.reset();
  outbox_.push_back(net::sse_event(error_json(error)));
  outbox_.push_back(net::sse_event("[DONE]"));
  closing_ = true;
  flush_locked();
}

void GenerationStream::flush() {
  std::lock_guard lock(mutex_);
  flush_locked();
}

bool GenerationStream::finished() const {
  std::lock_guard lock(mutex_);
  return finished_;
}

void GenerationStream::finish_locked(const FinishedEvent& ev) {
  finished_ = true;
  hold_.reset();
  // Text still pending goes out in a chunk of its own, before the finish chunk.
  if (!opened_ || !pending_text_.empty() || !pending_logprobs_.empty()) {
    outbox_.push_back(net::sse_event(dump_json(
        stream_chunk(req_, meta_, pending_text_, pending_logprobs_, std::nullopt, !opened_))));
    opened_ = true;
    pending_text_.clear();
    pending_logprobs_.clear();
  }
  if (ev.reason == FinishReason::stop || ev.reason == FinishReason::length) {
    outbox_.push_back(net::sse_event(dump_json(stream_chunk(req_, meta_, {}, {}, ev.reason, false))));
    if (req_.include_usage)
      outbox_.push_back(net::sse_event(dump_json(stream_usage_chunk(req_, meta_, ev.usage))));
  } else {
    const int status = ev.reason == FinishReason::error ? 500 : 503;
    outbox_.push_back(net::sse_event(error_json(ApiError(
        status, std::string("generation ") + to_string(ev.reason) + ": " + ev.message))));
  }
  outbox_.push_back(net::sse_event("[DONE]"));
  closing_ = true;
}

void GenerationStream::flush_locked() {
  for (;;) {
    // Pending text is formatted only when nothing older waits: so it coalesces while the
    // client is slow, and events keep their order.
    if (outbox_.empty() && !closing_ &&
        (!opened_ || !pending_text_.empty() || !pending_logprobs_.empty())) {
      outbox_.push_back(net::sse_event(dump_json(
          stream_chunk(req_, meta_, pending_text_, pending_logprobs_, std::nullopt, !opened_))));
      opened_ = true;
      pending_text_.clear();
      pending_logprobs_.clear();
    }
    if (outbox_.empty()) break;
    net::PushResult r = writer_->push(outbox_.front());
    if (r == net::PushResult::full) return;  // on_drain calls flush() again
    if (r == net::PushResult::closed) {      // the client went away; on_disconnect cancels
      outbox_.clear();
      pending_text_.clear();
      pending_logprobs_.clear();
      return;
    }
    outbox_.pop_front();
  }
  if (closing_) writer_->close();
}

}  // namespace talkserve::llm::api
