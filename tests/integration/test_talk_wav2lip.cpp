// talk.renderer = "wav2lip" through the real binary: the server loads converted weights (here
// random ones of the published network's shapes, written by the test), renders a turn with
// the network and serves the clip; bad weights stop the server with a clear message.

#include <catch2/catch.hpp>

#include <fstream>

#include "support/checks.hpp"
#include "support/talkserve.hpp"
#include "talkserve/avatar/wav2lip.hpp"

using namespace talkserve::itest;
using namespace std::chrono_literals;
using nlohmann::json;

TEST_CASE("talk: the wav2lip renderer renders a turn from converted weights", "[talk][wav2lip]") {
  TempDir dir;
  const auto weights = (dir.path() / "wav2lip.safetensors").string();
  talkserve::avatar::write_random_wav2lip(weights, 7, "F16");
  Talkserve::Options o;
  o.startup_timeout = 120s;
  o.args = {"--set", "talk.renderer=\"wav2lip\"", "--set", "talk.wav2lip_weights=\"" + weights + "\"",
            "--set", "talk.max_tokens=12"};
  Talkserve server(o);
  auto client = server.client(300s);
  auto avatar = client.get("/v1/avatar").json();
  CHECK(avatar["renderer"].get<std::string>().rfind("wav2lip wav2lip-", 0) == 0);
  auto res = client.post_json("/v1/talk", json{{"text", "Tell me about a cat."}});
  INFO(res.body);
  REQUIRE(res.status == 200);
  const json j = res.json();
  CHECK(j["cached"] == false);
  auto clip = client.get(j["video_url"].get<std::string>());
  REQUIRE(clip.status == 200);
  TempDir out;
  const auto path = out.path() / "clip.mp4";
  std::ofstream(path, std::ios::binary) << clip.body;
  const std::string probe = run_command("ffprobe -v error -show_entries stream=codec_name -of csv=p=0 '" +
                                        path.string() + "'");
  CHECK(probe.find("h264") != std::string::npos);
  CHECK(probe.find("aac") != std::string::npos);
}

TEST_CASE("talk: missing wav2lip weights stop the server naming the file", "[talk][wav2lip]") {
  auto args = base_args();
  args.insert(args.end(), {"--set", "talk.renderer=\"wav2lip\"", "--set",
                           "talk.wav2lip_weights=\"/nonexistent/w2l.safetensors\""});
  auto r = run_to_exit(talkserve_binary(), args, 120s);
  INFO("stderr: " << r.err);
  CHECK(r.exit_status == 1);
  CHECK_THAT(r.err, Catch::Contains("/nonexistent/w2l.safetensors"));
}
