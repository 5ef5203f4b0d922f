// The resource monitor ([gpu]) in the real binary: process memory in /metrics, a memory limit
// turning /readyz into 503 with the reason, and the [gpu] keys validated at start.

#include <dlfcn.h>

#include <catch2/catch.hpp>
#include <chrono>

#include "support/talkserve.hpp"

using namespace talkserve::itest;
using namespace std::chrono_literals;

namespace {

RunResult check_config(std::vector<std::string> sets) {
  auto args = base_args();
  for (auto& s : sets) args.insert(args.end(), {"--set", s});
  args.push_back("--check-config");
  return run_to_exit(talkserve_binary(), args, 20s);
}

// The server's services are not what these tests are about: only the LLM (the smallest
// model) loads, so the server is ready in well under a second.
Talkserve::Options light(std::vector<std::string> extra, bool wait_ready) {
  Talkserve::Options o;
  o.args = {"--set", "asr.enabled=false", "--set", "tts.enabled=false",
            "--set", "talk.enabled=false"};
  o.args.insert(o.args.end(), extra.begin(), extra.end());
  o.wait_ready = wait_ready;
  return o;
}

bool nvml_present() {
  void* h = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (h) dlclose(h);
  return h != nullptr;
}

}  // namespace

TEST_CASE("gpu monitor: /metrics reports the process's resident memory", "[integration][gpu]") {
  Talkserve server(light({}, true));
  const auto m = server.metrics();
  const auto rss = m.value("talkserve_process_resident_memory_bytes");
  INFO(server.diagnostics());
  REQUIRE(rss);
  // A running talkserve with libtorch and a model holds tens of MiB at least; below 4 GiB.
  CHECK(*rss > 16.0 * (1 << 20));
  CHECK(*rss < 4.0 * (1u << 30));
  CHECK(m.families.at("talkserve_process_resident_memory_bytes").type == "gauge");
  CHECK(m.value("talkserve_resource_limit_exceeded", {{"resource", "process_memory"}}) == 0.0);
  if (!nvml_present()) {
    // Without NVML there are no GPU series, and the log says why once.
    CHECK(m.find("talkserve_gpu_memory_used_bytes").empty());
    CHECK_THAT(server.process().stderr_text(), Catch::Contains("NVML not available"));
  }
}

#if TALKSERVE_ITEST_MODELS  // needs the LLM
TEST_CASE("gpu monitor: a process memory limit below the RSS makes /readyz 503 with the reason",
          "[integration][gpu]") {
  Talkserve server(
      light({"--set", "gpu.max_rss_mb=1", "--set", "gpu.sample_interval_ms=100"}, false));
  auto client = server.client();
  HttpResponse last;
  // Loading first ("loading"), then, with the model in, the limit ("resource_limit").
  const bool limited = poll_until(
      [&] {
        last = client.get("/readyz");
        return last.status == 503 && last.json()["status"] == "resource_limit";
      },
      30s, 20ms);
  INFO(last.status << " " << last.body << "\n" << server.diagnostics());
  REQUIRE(limited);
  CHECK_THAT(last.json()["reason"].get<std::string>(),
             Catch::Contains("process resident memory") && Catch::Contains("gpu.max_rss_mb 1"));
  CHECK(last.header("Retry-After").has_value());
  // Liveness is unaffected (a full box is not a dead one), and so are the requests it serves.
  CHECK(client.get("/healthz").status == 200);
  CHECK(client.get("/v1/models").status == 200);
  const auto m = server.metrics();
  CHECK(m.value("talkserve_resource_limit_exceeded", {{"resource", "process_memory"}}) == 1.0);
  CHECK(m.value("talkserve_resource_alerts_total", {{"resource", "process_memory"}}) == 1.0);
  CHECK_THAT(server.process().stderr_text(), Catch::Contains("resource limit exceeded"));
}
#endif

TEST_CASE("gpu monitor: bad [gpu] values exit 2 naming the key", "[integration][gpu][config]") {
  const std::vector<std::pair<std::string, std::string>> cases{
      {"gpu.max_memory_fraction=1.5", "gpu.max_memory_fraction"},
      {"gpu.max_memory_fraction=\"high\"", "gpu.max_memory_fraction"},
      {"gpu.max_temperature_c=-3", "gpu.max_temperature_c"},
      {"gpu.max_rss_mb=-1", "gpu.max_rss_mb"},
      {"gpu.sample_interval_ms=5", "gpu.sample_interval_ms"},
      {"gpu.mode=cuda", "gpu.mode"},
      {"gpu.temperature_hysteresis_c=99", "gpu.temperature_hysteresis_c"},
      {"gpu.max_watts=300", "gpu.max_watts: unknown key"},
  };
  for (const auto& [set, key] : cases) {
    auto r = check_config({set});
    INFO(set << "\nstdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.exit_status == 2);
    CHECK_THAT(r.err, Catch::Contains(key));
  }
  auto ok = check_config({"gpu.max_memory_fraction=0.97", "gpu.max_temperature_c=87",
                          "gpu.max_rss_mb=8000", "gpu.mode=off"});
  INFO(ok.err);
  CHECK(ok.exit_status == 0);
}

TEST_CASE("gpu monitor: gpu.mode = nvml refuses to start without NVML", "[integration][gpu]") {
  if (nvml_present()) {
    SUCCEED("NVML is installed here; the refusal cannot be shown");
    return;
  }
  auto args = base_args();
  args.insert(args.end(), {"--set", "gpu.mode=nvml"});
  auto r = run_to_exit(talkserve_binary(), args, 20s);
  INFO("stderr: " << r.err);
  CHECK(r.exit_status == 1);
  CHECK_THAT(r.err, Catch::Contains("gpu.mode is \"nvml\" but NVML is unavailable"));
  CHECK_THAT(r.err, Catch::Contains("libnvidia-ml.so.1"));
}
