// FragmentedMp4Writer: H.264 + AAC in fragmented MP4 for Media Source Extensions.
// The muxer runs with movflags frag_custom (a fragment is written only when asked), empty_moov
// (the moov goes out with the header, so the init segment exists before any media) and
// default_base_moof (offsets relative to each moof, as MSE wants), skip_trailer (no mfra index
// at the end: it is useless to a SourceBuffer).
//
// Segmenting: libx264 runs with zerolatency, so each pushed frame yields its packet at once,
// and with an IDR forced every keyframe_interval() frames. Segment k holds frames
// [k*N, (k+1)*N) and is cut as soon as its last frame is encoded, with the audio packets
// encoded so far that start before the segment's end; audio still inside the AAC encoder
// (about two 1024-sample frames) goes into the next segment. MSE keeps the tracks apart, so
// that is harmless, and it keeps the first segment out after segment_seconds of input.

extern "C" {
#include <libavutil/opt.h>
}

#include <cstdio>
#include <string>
#include <vector>

#include "media/memory_io.hpp"
#include "media/video_encoder.hpp"
#include "talkserve/media/video.hpp"

namespace talkserve::media {

using detail::PacketHandle;
using Kind = MediaError::Kind;

struct FragmentedMp4Writer::Impl {
  explicit Impl(const VideoParams& p);

  void write_video_packets();
  // Writes the queued audio packets that start before the end of the current segment.
  void write_audio_packets(bool all);
  void write(PacketHandle packet, const AVCodecContext& codec, const AVStream& stream);
  void cut_segment();

  VideoParams params;
  detail::H264AacEncoder encoder;
  // Declared before the muxer, so destroyed after it: the muxer writes through its AVIO.
  detail::StringSink sink{/*seekable=*/false};
  detail::OutputFormatHandle muxer;
  AVStream* video = nullptr;
  AVStream* audio = nullptr;
  std::string init_segment;
  std::vector<std::string> segments;
  std::int64_t segment_end_frame = 0;  // first frame of the next segment
  bool wrote_since_cut = false;
  bool finished = false;
};

namespace {

const VideoParams& validated(const VideoParams& params) {
  params.validate();
  return params;
}

}  // namespace

FragmentedMp4Writer::Impl::Impl(const VideoParams& p)
    : params(validated(p)), encoder(params, detail::H264Use::live) {
  segment_end_frame = encoder.keyframe_interval();
  AVFormatContext* raw = nullptr;
  int rc = avformat_alloc_output_context2(&raw, nullptr, "mp4", nullptr);
  if (rc < 0 || !raw) {
    detail::throw_av_error(Kind::internal, "this FFmpeg build has no mp4 muxer",
                           rc < 0 ? rc : AVERROR_MUXER_NOT_FOUND);
  }
  muxer.reset(raw);
  muxer->pb = sink.context();
  muxer->flags |= AVFMT_FLAG_CUSTOM_IO;
  rc = av_opt_set(muxer->priv_data, "movflags",
                  "frag_custom+empty_moov+default_base_moof+skip_trailer", 0);
  if (rc < 0) detail::throw_av_error(Kind::internal, "setting movflags", rc);
  video = detail::add_stream(*muxer, encoder.video_codec());
  audio = detail::add_stream(*muxer, encoder.audio_codec());
  rc = avformat_write_header(muxer.get(), nullptr);
  if (rc < 0) detail::throw_av_error(Kind::internal, "writing the fragmented MP4 header", rc);
  init_segment = sink.drain();
}

void FragmentedMp4Writer::Impl::write(PacketHandle packet, const AVCodecContext& codec,
                                      const AVStream& stream) {
  detail::prepare_packet(*packet, codec, stream);
  const int rc = av_write_frame(muxer.get(), packet.get());
  if (rc < 0) detail::throw_av_error(Kind::internal, "muxing a media segment", rc);
  wrote_since_cut = true;
}

void FragmentedMp4Writer::Impl::write_video_packets() {
  auto& queue = encoder.video_packets();
  while (!queue.empty()) {
    PacketHandle packet = std::move(queue.front());
    queue.pop_front();
    // No B-frames in live mode: packets arrive in presentation order, one per frame.
    const std::int64_t frame = packet->pts;
    if (frame >= segment_end_frame) cut_segment();  // only if the cut below was missed
    write(std::move(packet), encoder.video_codec(), *video);
    if (frame == segment_end_frame - 1) cut_segment();
  }
}

void FragmentedMp4Writer::Impl::write_audio_packets(bool all) {
  auto& queue = encoder.audio_packets();
  const AVCodecContext& codec = encoder.audio_codec();
  while (!queue.empty()) {
    // Starts before segment_end_frame / fps seconds: pts / rate < end / fps.
    const bool in_segment = queue.front()->pts * params.fps < segment_end_frame * codec.sample_rate;
    if (!all && !in_segment) return;
    PacketHandle packet = std::move(queue.front());
    queue.pop_front();
    write(std::move(packet), codec, *audio);
  }
}

void FragmentedMp4Writer::Impl::cut_segment() {
  write_audio_packets(/*all=*/false);
  if (wrote_since_cut) {
    const int rc = av_write_frame(muxer.get(), nullptr);
    if (rc < 0) detail::throw_av_error(Kind::internal, "flushing a media segment", rc);
    std::string segment = sink.drain();
    if (!segment.empty()) segments.push_back(std::move(segment));
    wrote_since_cut = false;
  }
  segment_end_frame += encoder.keyframe_interval();
  write_audio_packets(/*all=*/false);
}

FragmentedMp4Writer::FragmentedMp4Writer(const VideoParams& params)
    : impl_(std::make_unique<Impl>(params)) {}

FragmentedMp4Writer::~FragmentedMp4Writer() = default;

const std::string& FragmentedMp4Writer::init_segment() const {
  return impl_->init_segment;
}

std::string FragmentedMp4Writer::mime_type() const {
  const detail::AvcProfile avc = impl_->encoder.avc_profile();
  char codecs[64];
  std::snprintf(codecs, sizeof codecs, "avc1.%02X%02X%02X, mp4a.40.2", avc.profile_idc,
                avc.constraint_flags, avc.level_idc);
  return std::string("video/mp4; codecs=\"") + codecs + "\"";
}

void FragmentedMp4Writer::push_audio(std::span<const float> samples) {
  if (impl_->finished) throw MediaError(Kind::internal, "FragmentedMp4Writer: audio after finish");
  impl_->encoder.push_audio(samples);
  impl_->write_audio_packets(/*all=*/false);
}

void FragmentedMp4Writer::push_frame(const RgbFrame& frame) {
  if (impl_->finished) throw MediaError(Kind::internal, "FragmentedMp4Writer: frame after finish");
  impl_->encoder.push_frame(frame);
  impl_->write_video_packets();
}

std::vector<std::string> FragmentedMp4Writer::take_segments() {
  std::vector<std::string> out;
  out.swap(impl_->segments);
  return out;
}

std::vector<std::string> FragmentedMp4Writer::finish() {
  Impl& impl = *impl_;
  if (!impl.finished) {
    impl.finished = true;
    impl.encoder.finish();
    impl.write_video_packets();
    // Audio past the last frame (if the caller gave more) ends the stream in the last segment.
    impl.write_audio_packets(/*all=*/true);
    const int rc = av_write_trailer(impl.muxer.get());
    if (rc < 0) detail::throw_av_error(Kind::internal, "finishing the last media segment", rc);
    std::string last = impl.sink.drain();
    if (!last.empty()) impl.segments.push_back(std::move(last));
  }
  return take_segments();
}

}  // namespace talkserve::media
