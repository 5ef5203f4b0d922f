#pragma once
// The live frame pipeline of one response: speech (24 kHz audio + phoneme timeline, sentence
// by sentence) in, fragmented MP4 segments out, as soon as each half second is encoded.
//
//   push_speech() -> [pieces] -> render stage -> [rendered chunks, at most max_chunks] ->
//                    encode stage (H.264 + AAC, fragmented MP4) -> on_segment
//
// Render and encode run concurrently on the shared pool (at most one task of each stage per
// pipeline at a time, so a pipeline's renderer state and encoder need no locks). The queue
// between them is bounded: when max_chunks rendered chunks wait for the encoder, rendering
// pauses until the encoder takes one, so a slow encoder holds memory to max_chunks chunks.
//
// Thread-safety: every public method may be called from any thread. Callbacks run on pool
// threads, one at a time per pipeline, in order.

#include <boost/asio/thread_pool.hpp>

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "talkserve/avatar/avatar.hpp"
#include "talkserve/avatar/renderer.hpp"
#include "talkserve/media/video.hpp"
#include "talkserve/speech/tts.hpp"

namespace talkserve::pipeline {

struct FramePipelineOptions {
  int fps = 25;
  int crf = 26;
  std::string preset = "veryfast";
  int sample_rate = 24000;      // of the pushed audio
  int chunk_frames = 6;         // frames rendered per render task
  std::size_t max_chunks = 4;   // rendered chunks waiting for the encoder, at most
  double segment_seconds = 0.5;
};

class FramePipeline : public std::enable_shared_from_this<FramePipeline> {
 public:
  enum class SegmentKind { init, media };
  // `last` is set on the final call, a media segment (its bytes are empty when the stream
  // ended exactly on a segment boundary or had no frames at all).
  using OnSegment = std::function<void(SegmentKind kind, std::string bytes, bool last)>;
  using OnError = std::function<void(const std::string& message)>;

  // The avatar and renderer must outlive the pipeline.
  FramePipeline(boost::asio::thread_pool& pool, const avatar::Avatar& avatar,
                const avatar::LipSyncRenderer& renderer, FramePipelineOptions options,
                OnSegment on_segment, OnError on_error);

  // The MIME type with codecs of the stream (for MediaSource.addSourceBuffer).
  std::string mime_type() const;

  // Queues speech; phoneme times are relative to the start of `audio`. Ignored after
  // finish() or cancel().
  void push_speech(std::vector<float> audio, std::vector<speech::PhonemeEvent> phonemes);
  // No more speech: once everything is encoded the last segments are delivered.
  void finish();
  // Stops at the next task boundary; no callback runs after the running task ends.
  void cancel();

  // Frames rendered and encoded so far (for tests and timings).
  std::size_t frames_encoded() const;

 private:
  struct Piece {
    std::vector<float> audio;
    std::vector<speech::PhonemeEvent> phonemes;
    std::size_t offset = 0;  // samples already rendered
  };
  struct Chunk {
    std::vector<float> audio;
    std::vector<media::RgbFrame> frames;
  };
  void kick();                                // starts whatever stage can run (takes mutex_)
  void render_task(std::vector<float> audio, std::vector<speech::PhonemeEvent> phonemes);
  void encode_task(std::optional<Chunk> chunk);  // nullopt: finish the stream
  void fail(const std::string& message);

  boost::asio::thread_pool& pool_;
  const avatar::Avatar& avatar_;
  const avatar::LipSyncRenderer& renderer_;
  FramePipelineOptions options_;
  OnSegment on_segment_;
  OnError on_error_;
  std::unique_ptr<media::FragmentedMp4Writer> writer_;  // encode stage only
  avatar::RenderState render_state_;                     // render stage only

  mutable std::mutex mutex_;
  std::deque<Piece> pieces_;
  std::deque<Chunk> chunks_;
  bool rendering_ = false;
  bool encoding_ = false;
  bool input_done_ = false;
  bool finished_ = false;  // the final encode task has been started
  bool stopped_ = false;   // cancelled or failed
  bool init_sent_ = false;
  std::size_t frames_encoded_ = 0;
};

}  // namespace talkserve::pipeline
