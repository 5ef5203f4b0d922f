// encode_mp4_clip() and FragmentedMp4Writer with real libx264/AAC: outputs are checked by
// ffprobe and ffmpeg (an independent reader) and by walking the MP4 box structure.

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "support/temp_dir.hpp"
#include "talkserve/media/video.hpp"
#include "unit/media/media_test_support.hpp"

using namespace talkserve::media;
namespace mt = talkserve::media::test;

namespace {

constexpr double kPi = 3.14159265358979323846;

// A diagonal gradient that scrolls with time and a white box that moves across it.
RgbFrame synthetic_frame(int width, int height, int index) {
  RgbFrame frame{width, height,
                 std::vector<std::uint8_t>(static_cast<std::size_t>(width) * height * 3)};
  const int box = width / 8;
  const int box_x = (index * 4) % (width - box);
  const int box_y = height / 2 - box / 2;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      std::uint8_t* p = &frame.data[(static_cast<std::size_t>(y) * width + x) * 3];
      const bool in_box = x >= box_x && x < box_x + box && y >= box_y && y < box_y + box;
      p[0] = in_box ? 255 : static_cast<std::uint8_t>((x + index * 3) & 0xff);
      p[1] = in_box ? 255 : static_cast<std::uint8_t>((y + index * 2) & 0xff);
      p[2] = in_box ? 255 : static_cast<std::uint8_t>(((x + y) / 2) & 0xff);
    }
  }
  return frame;
}

std::vector<float> tone(double seconds, int rate, double hz = 440.0) {
  std::vector<float> samples(static_cast<std::size_t>(std::llround(seconds * rate)));
  for (std::size_t i = 0; i < samples.size(); ++i) {
    samples[i] = 0.5f * static_cast<float>(std::sin(2 * kPi * hz * i / rate));
  }
  return samples;
}

VideoParams params_for(int width, int height) {
  VideoParams params;
  params.width = width;
  params.height = height;
  return params;
}

// --- MP4 boxes ---------------------------------------------------------------------------

struct Box {
  std::string type;
  std::size_t offset = 0;
  std::size_t header = 8;
  std::size_t size = 0;
};

std::vector<Box> boxes_in(const std::string& bytes, std::size_t begin, std::size_t end) {
  std::vector<Box> boxes;
  std::size_t at = begin;
  while (at + 8 <= end) {
    auto byte = [&](std::size_t i) {
      return static_cast<std::uint64_t>(static_cast<std::uint8_t>(bytes[i]));
    };
    Box box;
    box.offset = at;
    box.size = (byte(at) << 24) | (byte(at + 1) << 16) | (byte(at + 2) << 8) | byte(at + 3);
    box.type = bytes.substr(at + 4, 4);
    if (box.size == 1) {
      box.header = 16;
      box.size = 0;
      for (int i = 0; i < 8; ++i) box.size = (box.size << 8) | byte(at + 8 + i);
    } else if (box.size == 0) {
      box.size = end - at;
    }
    REQUIRE(box.size >= box.header);
    REQUIRE(at + box.size <= end);
    boxes.push_back(box);
    at += box.size;
  }
  REQUIRE(at == end);
  return boxes;
}

std::vector<std::string> types_of(const std::vector<Box>& boxes) {
  std::vector<std::string> types;
  for (const Box& box : boxes) types.push_back(box.type);
  return types;
}

std::vector<Box> children(const std::string& bytes, const Box& parent) {
  return boxes_in(bytes, parent.offset + parent.header, parent.offset + parent.size);
}

const Box* find_box(const std::vector<Box>& boxes, const std::string& type) {
  for (const Box& box : boxes) {
    if (box.type == type) return &box;
  }
  return nullptr;
}

std::ptrdiff_t index_of(const std::vector<std::string>& types, const std::string& type) {
  const auto it = std::find(types.begin(), types.end(), type);
  return it == types.end() ? -1 : it - types.begin();
}

// --- ffprobe / ffmpeg ------------------------------------------------------------------

using StreamInfo = std::map<std::string, std::string>;

// One map per stream, in file order: codec_type, codec_name, duration, nb_read_frames, ...
std::vector<StreamInfo> probe_streams(const std::string& path) {
  const std::string out = mt::run_command(
      "ffprobe -v error -count_frames -show_entries "
      "stream=codec_type,codec_name,profile,duration,nb_read_frames,sample_rate,pix_fmt "
      "-of compact=p=0 " +
      mt::shell_quote(path));
  std::vector<StreamInfo> streams;
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    StreamInfo info;
    std::istringstream fields(line);
    std::string field;
    while (std::getline(fields, field, '|')) {
      const auto eq = field.find('=');
      if (eq != std::string::npos) info[field.substr(0, eq)] = field.substr(eq + 1);
    }
    streams.push_back(info);
  }
  return streams;
}

const StreamInfo& stream_of_type(const std::vector<StreamInfo>& streams, const std::string& type) {
  for (const StreamInfo& s : streams) {
    if (s.at("codec_type") == type) return s;
  }
  FAIL("no " << type << " stream");
  throw std::logic_error("unreachable");
}

// ffmpeg decodes every stream to the null muxer; returns what it printed at level "error".
std::string decode_errors(const std::string& path) {
  return mt::run_command("ffmpeg -nostdin -hide_banner -v error -i " + mt::shell_quote(path) +
                         " -f null -");
}

void check_av_file(const std::string& path, int frames, int fps) {
  INFO(path);
  CHECK(decode_errors(path).empty());
  const std::vector<StreamInfo> streams = probe_streams(path);
  REQUIRE(streams.size() == 2);
  const StreamInfo& video = stream_of_type(streams, "video");
  const StreamInfo& audio = stream_of_type(streams, "audio");
  CHECK(video.at("codec_name") == "h264");
  CHECK(video.at("pix_fmt") == "yuv420p");
  CHECK(audio.at("codec_name") == "aac");
  CHECK(std::stoi(video.at("nb_read_frames")) == frames);
  const double video_seconds = std::stod(video.at("duration"));
  const double audio_seconds = std::stod(audio.at("duration"));
  CAPTURE(video_seconds, audio_seconds);
  CHECK(std::abs(video_seconds - static_cast<double>(frames) / fps) < 1e-3);
  CHECK(std::abs(audio_seconds - video_seconds) <= 1.0 / fps + 1e-6);
}

}  // namespace

TEST_CASE("encode_mp4_clip writes a fast-start H.264 + AAC MP4", "[media][video]") {
  const int size = GENERATE(256, 512);
  INFO("size " << size);
  const VideoParams params = params_for(size, size);
  const double seconds = 3.0;
  const int frame_count = static_cast<int>(std::lround(seconds * params.fps));
  std::vector<RgbFrame> frames;
  for (int i = 0; i < frame_count; ++i) frames.push_back(synthetic_frame(size, size, i));
  const std::vector<float> audio = tone(seconds, params.audio_sample_rate);

  const std::string mp4 = encode_mp4_clip(frames, audio, params);

  const std::vector<std::string> top = types_of(boxes_in(mp4, 0, mp4.size()));
  CAPTURE(top);
  REQUIRE(!top.empty());
  CHECK(top.front() == "ftyp");
  REQUIRE(index_of(top, "moov") >= 0);
  REQUIRE(index_of(top, "mdat") >= 0);
  CHECK(index_of(top, "moov") < index_of(top, "mdat"));

  talkserve::test::TempDir dir;
  check_av_file(dir.write("clip.mp4", mp4), frame_count, params.fps);
}

TEST_CASE("encode_mp4_clip accepts 48 kHz audio", "[media][video]") {
  VideoParams params = params_for(128, 96);
  params.audio_sample_rate = 48000;
  std::vector<RgbFrame> frames;
  for (int i = 0; i < 25; ++i) frames.push_back(synthetic_frame(128, 96, i));
  const std::string mp4 = encode_mp4_clip(frames, tone(1.0, 48000), params);
  talkserve::test::TempDir dir;
  const std::string path = dir.write("clip48.mp4", mp4);
  check_av_file(path, 25, params.fps);
  CHECK(stream_of_type(probe_streams(path), "audio").at("sample_rate") == "48000");
}

TEST_CASE("FragmentedMp4Writer streams MSE segments", "[media][video]") {
  const double segment_seconds = GENERATE(0.5, 1.0);
  INFO("segment_seconds " << segment_seconds);
  VideoParams params = params_for(256, 256);
  params.segment_seconds = segment_seconds;
  const int frame_count = 75;  // 3 s
  const int keyint = static_cast<int>(std::lround(params.fps * segment_seconds));
  const std::vector<float> audio = tone(3.0, params.audio_sample_rate);
  const std::size_t samples_per_frame =
      static_cast<std::size_t>(params.audio_sample_rate / params.fps);

  FragmentedMp4Writer writer(params);
  const std::string init = writer.init_segment();

  // Init segment: ftyp, then a moov announcing fragments (mvex).
  const std::vector<Box> init_boxes = boxes_in(init, 0, init.size());
  CAPTURE(types_of(init_boxes));
  REQUIRE(init_boxes.size() >= 2);
  CHECK(init_boxes.front().type == "ftyp");
  const Box* moov = find_box(init_boxes, "moov");
  REQUIRE(moov);
  CHECK(find_box(children(init, *moov), "mvex"));
  CHECK(!find_box(init_boxes, "mdat"));

  // Push as a live source does: each frame's audio, then the frame.
  std::vector<std::string> segments;
  int first_segment_after_frames = -1;
  for (int i = 0; i < frame_count; ++i) {
    writer.push_audio(
        std::span<const float>(audio.data() + i * samples_per_frame, samples_per_frame));
    writer.push_frame(synthetic_frame(256, 256, i));
    for (std::string& segment : writer.take_segments()) {
      if (first_segment_after_frames < 0) first_segment_after_frames = i + 1;
      segments.push_back(std::move(segment));
    }
  }
  const std::size_t before_finish = segments.size();
  for (std::string& segment : writer.finish()) segments.push_back(std::move(segment));
  CHECK(writer.finish().empty());

  // The first segment comes out as soon as its frames are in, not at finish().
  CHECK(first_segment_after_frames == keyint);
  CHECK(before_finish >= segments.size() - 1);
  // The AAC tail still in the encoder when the last video segment was cut may follow in a
  // short audio-only segment.
  const int video_segments = (frame_count + keyint - 1) / keyint;
  CHECK(static_cast<int>(segments.size()) >= video_segments);
  CHECK(static_cast<int>(segments.size()) <= video_segments + 1);
  CHECK(std::abs(static_cast<double>(segments.size()) - 3.0 / segment_seconds) <= 1.0);

  talkserve::test::TempDir dir;
  std::string whole = init;
  for (std::size_t k = 0; k < segments.size(); ++k) {
    INFO("segment " << k);
    const std::string& segment = segments[k];
    const std::vector<std::string> types = types_of(boxes_in(segment, 0, segment.size()));
    CAPTURE(types);
    REQUIRE(!types.empty());
    CHECK((types.front() == "moof" || (types.front() == "styp" && types.at(1) == "moof")));
    CHECK(index_of(types, "mdat") > index_of(types, "moof"));
    // Each segment starts with a key frame: init + that segment alone decodes cleanly, and
    // its first video frame is a key frame.
    const std::string alone = dir.write("alone" + std::to_string(k) + ".mp4", init + segment);
    const std::string key_flags = mt::run_command(
        "ffprobe -v error -select_streams v -show_entries frame=key_frame -of csv=p=0 " +
        mt::shell_quote(alone));
    if (static_cast<int>(k) < video_segments) {
      CHECK(key_flags.substr(0, 1) == "1");
      CHECK(decode_errors(alone).empty());
    } else {
      CHECK(key_flags.empty());  // the audio tail
    }
    whole += segment;
  }
  check_av_file(dir.write("stream.mp4", whole), frame_count, params.fps);
}

TEST_CASE("FragmentedMp4Writer mime_type names the codecs", "[media][video]") {
  FragmentedMp4Writer writer(params_for(512, 512));
  const std::string mime = writer.mime_type();
  CAPTURE(mime);
  CHECK(
      std::regex_match(mime, std::regex(R"(video/mp4; codecs="avc1\.[0-9A-F]{6}, mp4a\.40\.2")")));
  // Main profile (0x4D).
  CHECK(mime.find("avc1.4D") != std::string::npos);
}

TEST_CASE("a FragmentedMp4Writer dropped before finish releases everything", "[media][video]") {
  FragmentedMp4Writer writer(params_for(64, 64));
  writer.push_audio(tone(0.2, 24000));
  for (int i = 0; i < 5; ++i) writer.push_frame(synthetic_frame(64, 64, i));
}

TEST_CASE("bad video parameters and frames are rejected clearly", "[media][video]") {
  auto message_of = [](auto&& call) -> std::string {
    try {
      call();
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "no std::invalid_argument";
  };
  using Catch::Matchers::Contains;

  VideoParams odd = params_for(255, 256);
  CHECK_THAT(message_of([&] { odd.validate(); }), Contains("VideoParams.width") && Contains("255"));
  VideoParams no_fps = params_for(256, 256);
  no_fps.fps = 0;
  CHECK_THAT(message_of([&] { FragmentedMp4Writer w(no_fps); }), Contains("VideoParams.fps"));
  CHECK_THAT(message_of([&] { (void)encode_mp4_clip({}, {}, no_fps); }),
             Contains("VideoParams.fps"));
  VideoParams preset = params_for(256, 256);
  preset.preset = "warp";
  CHECK_THAT(message_of([&] { preset.validate(); }), Contains("VideoParams.preset"));
  VideoParams segment = params_for(256, 256);
  segment.segment_seconds = 0;
  CHECK_THAT(message_of([&] { segment.validate(); }), Contains("VideoParams.segment_seconds"));
  CHECK_NOTHROW(params_for(256, 256).validate());

  const VideoParams params = params_for(64, 64);
  const std::vector<RgbFrame> wrong_size = {synthetic_frame(64, 64, 0), synthetic_frame(32, 64, 1)};
  CHECK_THAT(message_of([&] { (void)encode_mp4_clip(wrong_size, tone(0.1, 24000), params); }),
             Contains("frame 1") && Contains("32x64"));

  FragmentedMp4Writer writer(params);
  CHECK_THAT(message_of([&] { writer.push_frame(synthetic_frame(64, 62, 0)); }), Contains("64x62"));
  RgbFrame short_data = synthetic_frame(64, 64, 0);
  short_data.data.resize(100);
  CHECK_THAT(message_of([&] { writer.push_frame(short_data); }), Contains("bytes"));
  // The writer is still usable after a rejected frame.
  writer.push_audio(tone(0.2, 24000));
  for (int i = 0; i < 5; ++i) writer.push_frame(synthetic_frame(64, 64, i));
  CHECK(!writer.finish().empty());
}
