#include "frame_pipeline.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <exception>

namespace talkserve::pipeline {

namespace asio = boost::asio;

FramePipeline::FramePipeline(asio::thread_pool& pool, const avatar::Avatar& avatar,
                             const avatar::LipSyncRenderer& renderer,
                             FramePipelineOptions options, OnSegment on_segment, OnError on_error)
    : pool_(pool),
      avatar_(avatar),
      renderer_(renderer),
      options_(std::move(options)),
      on_segment_(std::move(on_segment)),
      on_error_(std::move(on_error)) {
  if (options_.chunk_frames < 1) options_.chunk_frames = 1;
  if (options_.max_chunks < 1) options_.max_chunks = 1;
  media::VideoParams vp;
  vp.width = avatar_.portrait.width;
  vp.height = avatar_.portrait.height;
  vp.fps = options_.fps;
  vp.crf = options_.crf;
  vp.preset = options_.preset;
  vp.audio_sample_rate = options_.sample_rate;
  vp.segment_seconds = options_.segment_seconds;
  writer_ = std::make_unique<media::FragmentedMp4Writer>(vp);
}

std::string FramePipeline::mime_type() const { return writer_->mime_type(); }

std::size_t FramePipeline::frames_encoded() const {
  std::lock_guard lock(mutex_);
  return frames_encoded_;
}

void FramePipeline::push_speech(std::vector<float> audio,
                                std::vector<speech::PhonemeEvent> phonemes) {
  {
    std::lock_guard lock(mutex_);
    if (input_done_ || stopped_ || audio.empty()) return;
    pieces_.push_back(Piece{std::move(audio), std::move(phonemes), 0});
  }
  kick();
}

void FramePipeline::finish() {
  {
    std::lock_guard lock(mutex_);
    input_done_ = true;
  }
  kick();
}

void FramePipeline::cancel() {
  std::lock_guard lock(mutex_);
  stopped_ = true;
  pieces_.clear();
  chunks_.clear();
}

// Decides, under the lock, which stage tasks may start, then posts them. Called after every
// change: new speech, a rendered chunk, an encoded chunk.
void FramePipeline::kick() {
  std::vector<float> render_audio;
  std::vector<speech::PhonemeEvent> render_phonemes;
  bool start_render = false;
  std::optional<Chunk> encode_chunk;
  bool start_encode = false;
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return;
    // Render: one task at a time, and only while the bounded queue has room.
    if (!rendering_ && !pieces_.empty() && chunks_.size() < options_.max_chunks) {
      Piece& p = pieces_.front();
      // Samples for chunk_frames frames (the renderer's frame accounting absorbs fractions).
      const std::size_t want = static_cast<std::size_t>(options_.chunk_frames) *
                               static_cast<std::size_t>(options_.sample_rate) /
                               static_cast<std::size_t>(options_.fps);
      std::size_t take = std::min(want, p.audio.size() - p.offset);
      // Never leave a sliver behind: it would make a zero-frame chunk.
      if (p.audio.size() - p.offset - take < want / 2) take = p.audio.size() - p.offset;
      const double rate = options_.sample_rate;
      const double t0 = p.offset / rate;
      const double t1 = (p.offset + take) / rate;
      render_audio.assign(p.audio.begin() + static_cast<std::ptrdiff_t>(p.offset),
                          p.audio.begin() + static_cast<std::ptrdiff_t>(p.offset + take));
      for (const auto& ph : p.phonemes) {
        if (ph.start + ph.duration <= t0 || ph.start >= t1) continue;
        auto shifted = ph;
        shifted.start -= t0;
        render_phonemes.push_back(std::move(shifted));
      }
      p.offset += take;
      if (p.offset >= p.audio.size()) pieces_.pop_front();
      rendering_ = true;
      start_render = true;
    }
    // Encode: one task at a time, in order; the final flush once everything is encoded.
    if (!encoding_ && !finished_) {
      if (!chunks_.empty()) {
        encode_chunk = std::move(chunks_.front());
        chunks_.pop_front();
        encoding_ = true;
        start_encode = true;
      } else if (input_done_ && pieces_.empty() && !rendering_ && !start_render) {
        finished_ = true;
        encoding_ = true;
        start_encode = true;
      }
    }
  }
  auto self = shared_from_this();
  if (start_render) {
    asio::post(pool_, [self, a = std::move(render_audio), p = std::move(render_phonemes)]() mutable {
      self->render_task(std::move(a), std::move(p));
    });
  }
  if (start_encode) {
    asio::post(pool_, [self, c = std::move(encode_chunk)]() mutable { self->encode_task(std::move(c)); });
  }
}

void FramePipeline::render_task(std::vector<float> audio, std::vector<speech::PhonemeEvent> phonemes) {
  Chunk chunk;
  try {
    avatar::RenderInput in;
    in.audio = audio;
    in.sample_rate = options_.sample_rate;
    in.phonemes = std::move(phonemes);
    in.fps = options_.fps;
    chunk.frames = renderer_.render(avatar_, in, render_state_);
    chunk.audio = std::move(audio);
  } catch (const std::exception& e) {
    {
      std::lock_guard lock(mutex_);
      rendering_ = false;
    }
    return fail(std::string("rendering failed: ") + e.what());
  }
  {
    std::lock_guard lock(mutex_);
    rendering_ = false;
    if (!stopped_) chunks_.push_back(std::move(chunk));
  }
  kick();
}

void FramePipeline::encode_task(std::optional<Chunk> chunk) {
  std::vector<std::string> segments;
  bool last = !chunk.has_value();
  std::string init;
  try {
    bool send_init = false;
    {
      std::lock_guard lock(mutex_);
      if (stopped_) {
        encoding_ = false;
        return;
      }
      send_init = !init_sent_;
      init_sent_ = true;
    }
    if (send_init) init = writer_->init_segment();
    if (chunk) {
      writer_->push_audio(chunk->audio);
      for (const auto& f : chunk->frames) writer_->push_frame(f);
      segments = writer_->take_segments();
    } else {
      segments = writer_->finish();
    }
  } catch (const std::exception& e) {
    {
      std::lock_guard lock(mutex_);
      encoding_ = false;
    }
    return fail(std::string("encoding failed: ") + e.what());
  }
  {
    std::lock_guard lock(mutex_);
    if (stopped_) {
      encoding_ = false;
      return;
    }
    if (chunk) frames_encoded_ += chunk->frames.size();
  }
  // Callbacks run outside the lock, still inside this (the only) encode task: in order.
  if (!init.empty()) on_segment_(SegmentKind::init, std::move(init), false);
  for (std::size_t i = 0; i < segments.size(); ++i) {
    on_segment_(SegmentKind::media, std::move(segments[i]), last && i + 1 == segments.size());
  }
  if (last && segments.empty()) on_segment_(SegmentKind::media, std::string(), true);
  {
    std::lock_guard lock(mutex_);
    encoding_ = false;
  }
  if (!last) kick();
}

void FramePipeline::fail(const std::string& message) {
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return;
    stopped_ = true;
    pieces_.clear();
    chunks_.clear();
  }
  on_error_(message);
}

}  // namespace talkserve::pipeline
