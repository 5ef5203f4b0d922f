// The disk tier: round trip, LRU under the byte cap, the index rebuilt from the directory,
// damaged clips dropped and counted, oversize puts refused, and concurrent use.

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "clip_bytes.hpp"
#include "support/temp_dir.hpp"
#include "talkserve/cache/clip_cache.hpp"
#include "talkserve/cache/clip_key.hpp"
#include "talkserve/obs/metrics.hpp"

namespace fs = std::filesystem;
using talkserve::cache::ClipCache;
using talkserve::cache::ClipCacheConfig;
using talkserve::cache::ClipKeyBuilder;
using talkserve::cache::PutStatus;
using talkserve::obs::MetricsRegistry;
using talkserve::test::TempDir;

using talkserve::cache::test::bytes_of;

namespace {

std::string id_of(std::string_view name) {
  return ClipKeyBuilder().field("test", name).finish();
}

ClipCacheConfig config_for(const TempDir& dir, std::uint64_t max_bytes) {
  ClipCacheConfig c;
  c.dir = dir.path() / "clips";
  c.max_bytes = max_bytes;
  return c;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::set<std::string> files_in(const fs::path& dir) {
  std::set<std::string> out;
  for (auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

double counter(MetricsRegistry& m, std::string_view name) {
  return m.counter(name, "").value();
}
double gauge(MetricsRegistry& m, std::string_view name) {
  return m.gauge(name, "").value();
}

}  // namespace

TEST_CASE("clip cache: put then get round trip", "[cache]") {
  TempDir dir;
  MetricsRegistry metrics;
  ClipCache cache(config_for(dir, 1 << 20), &metrics);
  auto id = id_of("a");
  auto bytes = bytes_of("a", 1000);

  CHECK(cache.put(id, bytes) == PutStatus::stored);
  CHECK(cache.contains(id));
  auto clip = cache.get(id);
  REQUIRE(clip);
  CHECK(clip->id == id);
  CHECK(clip->size == 1000);
  CHECK(clip->etag == "\"" + id + "\"");
  CHECK(clip->path == cache.clip_path(id));
  CHECK(slurp(clip->path) == bytes);  // the file holds exactly the clip
  CHECK(cache.read(*clip, 0, 1000) == bytes);
  CHECK(cache.read(*clip, 10, 20) == bytes.substr(10, 20));
  CHECK(cache.read(*clip, 990, 100) == bytes.substr(990));  // clamped
  CHECK(cache.read(*clip, 5000, 1) == std::string());

  // Content-addressed: a second put of the id writes nothing.
  CHECK(cache.put(id, bytes) == PutStatus::exists);
  CHECK(cache.stats().entries == 1);
  CHECK(cache.stats().bytes == 1000);

  CHECK_FALSE(cache.get(id_of("unknown")));
  auto s = cache.stats();
  CHECK(s.hits == 1);
  CHECK(s.misses == 1);
  CHECK(counter(metrics, "talkserve_clip_cache_hits_total") == 1);
  CHECK(counter(metrics, "talkserve_clip_cache_misses_total") == 1);
  CHECK(gauge(metrics, "talkserve_clip_cache_bytes") == 1000);
  CHECK(gauge(metrics, "talkserve_clip_cache_entries") == 1);

  CHECK(cache.erase(id));
  CHECK_FALSE(cache.erase(id));
  CHECK_FALSE(cache.get(id));
  CHECK_FALSE(fs::exists(cache.clip_path(id)));
  CHECK_FALSE(fs::exists(cache.sidecar_path(id)));
  CHECK(gauge(metrics, "talkserve_clip_cache_entries") == 0);
}

TEST_CASE("clip cache: an empty clip is a clip", "[cache]") {
  TempDir dir;
  ClipCache cache(config_for(dir, 100));
  auto id = id_of("empty");
  CHECK(cache.put(id, "") == PutStatus::stored);
  auto clip = cache.get(id);
  REQUIRE(clip);
  CHECK(clip->size == 0);
  CHECK(cache.read(*clip, 0, 10) == std::string());
}

TEST_CASE("clip cache: invalid ids touch nothing", "[cache]") {
  TempDir dir;
  ClipCache cache(config_for(dir, 1000));
  for (std::string bad : {std::string("../etc/passwd"), std::string(64, 'A'), std::string(63, 'a'),
                          std::string("x")}) {
    INFO(bad);
    CHECK(cache.put(bad, "data") == PutStatus::invalid_id);
    CHECK_FALSE(cache.get(bad));
  }
  CHECK(files_in(cache.config().dir) == std::set<std::string>{".lock"});
}

TEST_CASE("clip cache: LRU eviction under the byte cap, access refreshes", "[cache]") {
  TempDir dir;
  MetricsRegistry metrics;
  ClipCache cache(config_for(dir, 300), &metrics);
  auto a = id_of("a"), b = id_of("b"), c = id_of("c"), d = id_of("d"), e = id_of("e");
  REQUIRE(cache.put(a, bytes_of("a", 100)) == PutStatus::stored);
  REQUIRE(cache.put(b, bytes_of("b", 100)) == PutStatus::stored);
  REQUIRE(cache.put(c, bytes_of("c", 100)) == PutStatus::stored);
  CHECK(cache.stats().bytes == 300);  // exactly at the cap: nothing evicted

  REQUIRE(cache.get(a));  // a is now the most recent; b the least
  REQUIRE(cache.put(d, bytes_of("d", 100)) == PutStatus::stored);
  CHECK(cache.contains(a));
  CHECK_FALSE(cache.contains(b));
  CHECK(cache.contains(c));
  CHECK(cache.contains(d));
  CHECK_FALSE(fs::exists(cache.clip_path(b)));
  CHECK_FALSE(fs::exists(cache.sidecar_path(b)));

  // A put of a present id refreshes it too.
  REQUIRE(cache.put(c, bytes_of("c", 100)) == PutStatus::exists);
  // One bigger clip evicts as many as needed, oldest first: a, then d.
  REQUIRE(cache.put(e, bytes_of("e", 200)) == PutStatus::stored);
  CHECK_FALSE(cache.contains(a));
  CHECK_FALSE(cache.contains(d));
  CHECK(cache.contains(c));
  CHECK(cache.contains(e));
  auto s = cache.stats();
  CHECK(s.bytes == 300);
  CHECK(s.entries == 2);
  CHECK(s.evictions == 3);
  CHECK(counter(metrics, "talkserve_clip_cache_evictions_total") == 3);
  CHECK(gauge(metrics, "talkserve_clip_cache_bytes") == 300);
  CHECK(gauge(metrics, "talkserve_clip_cache_entries") == 2);
}

TEST_CASE("clip cache: oversize put refused", "[cache]") {
  TempDir dir;
  ClipCache cache(config_for(dir, 100));
  auto small = id_of("small");
  REQUIRE(cache.put(small, bytes_of("small", 60)) == PutStatus::stored);
  CHECK(cache.put(id_of("big"), bytes_of("big", 101)) == PutStatus::too_large);
  CHECK_FALSE(cache.contains(id_of("big")));
  CHECK(cache.contains(small));  // nothing evicted for a refused put
  CHECK(cache.stats().evictions == 0);
  // Exactly the cap is allowed (and evicts the rest).
  CHECK(cache.put(id_of("full"), bytes_of("full", 100)) == PutStatus::stored);
  CHECK_FALSE(cache.contains(small));
  // No temp files are left behind either way.
  auto files = files_in(cache.config().dir);
  CHECK(files.size() == 3);  // .lock, <full>.clip, <full>.sha256
}

TEST_CASE("clip cache: index rebuilt after reopening", "[cache]") {
  TempDir dir;
  auto a = id_of("a"), b = id_of("b"), c = id_of("c"), d = id_of("d");
  {
    ClipCache cache(config_for(dir, 300));
    REQUIRE(cache.put(a, bytes_of("a", 100)) == PutStatus::stored);
    REQUIRE(cache.put(b, bytes_of("b", 100)) == PutStatus::stored);
    REQUIRE(cache.put(c, bytes_of("c", 100)) == PutStatus::stored);
    REQUIRE(cache.get(a));  // order, oldest first: b, c, a
    // Another cache on the same directory is refused while this one lives.
    CHECK_THROWS_AS(ClipCache(config_for(dir, 300)), std::system_error);
  }
  auto clips = dir.path() / "clips";
  // What a crash can leave: a temp file, and a sidecar whose clip was never renamed in.
  std::ofstream(clips / (".tmp-" + d + "-1-1.clip")) << "partial";
  std::ofstream(clips / (d + ".sha256")) << std::string(64, '0') << " 7\n";
  // Foreign things are left alone.
  fs::create_directories(clips / "avatars");
  std::ofstream(clips / "README") << "not a clip";

  MetricsRegistry metrics;
  ClipCache cache(config_for(dir, 300), &metrics);
  CHECK(files_in(clips) == std::set<std::string>{".lock", "avatars", "README", a + ".clip",
                                                 a + ".sha256", b + ".clip", b + ".sha256",
                                                 c + ".clip", c + ".sha256"});
  auto s = cache.stats();
  CHECK(s.entries == 3);
  CHECK(s.bytes == 300);
  CHECK(s.corrupt == 0);
  CHECK(gauge(metrics, "talkserve_clip_cache_entries") == 3);
  CHECK(gauge(metrics, "talkserve_clip_cache_bytes") == 300);

  // Entries survive, verified on their first hit.
  auto clip = cache.get(c);
  REQUIRE(clip);
  CHECK(cache.read(*clip, 0, 100) == bytes_of("c", 100));

  // Recency survived (b oldest), and the hit on c just now made a the oldest after b.
  REQUIRE(cache.put(d, bytes_of("d", 100)) == PutStatus::stored);
  CHECK_FALSE(cache.contains(b));
  REQUIRE(cache.put(id_of("e"), bytes_of("e", 100)) == PutStatus::stored);
  CHECK_FALSE(cache.contains(a));
  CHECK(cache.contains(c));
  CHECK(cache.contains(d));
}

TEST_CASE("clip cache: reopening with a smaller cap evicts the oldest", "[cache]") {
  TempDir dir;
  auto a = id_of("a"), b = id_of("b"), c = id_of("c");
  {
    ClipCache cache(config_for(dir, 300));
    REQUIRE(cache.put(a, bytes_of("a", 100)) == PutStatus::stored);
    REQUIRE(cache.put(b, bytes_of("b", 100)) == PutStatus::stored);
    REQUIRE(cache.put(c, bytes_of("c", 100)) == PutStatus::stored);
    REQUIRE(cache.get(a));
  }
  ClipCache cache(config_for(dir, 150));
  CHECK(cache.stats().entries == 1);
  CHECK(cache.contains(a));
  CHECK(cache.stats().evictions == 2);
}

TEST_CASE("clip cache: corrupted and truncated clips are dropped and counted", "[cache]") {
  TempDir dir;
  MetricsRegistry metrics;
  ClipCache cache(config_for(dir, 1 << 20), &metrics);
  auto a = id_of("a"), b = id_of("b");
  REQUIRE(cache.put(a, bytes_of("a", 1000)) == PutStatus::stored);
  REQUIRE(cache.put(b, bytes_of("b", 1000)) == PutStatus::stored);
  REQUIRE(cache.get(a));
  REQUIRE(cache.get(b));

  SECTION("one byte flipped, same size") {
    {
      std::fstream f(cache.clip_path(a), std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(500);
      char flipped = static_cast<char>(bytes_of("a", 1000)[500] ^ 0x01);
      f.write(&flipped, 1);
    }
    CHECK_FALSE(cache.get(a));
  }
  SECTION("truncated") {
    fs::resize_file(cache.clip_path(a), 600);
    CHECK_FALSE(cache.get(a));
  }
  SECTION("deleted behind the cache's back") {
    fs::remove(cache.clip_path(a));
    CHECK_FALSE(cache.get(a));
  }
  CHECK_FALSE(cache.contains(a));
  CHECK_FALSE(fs::exists(cache.clip_path(a)));
  CHECK_FALSE(fs::exists(cache.sidecar_path(a)));
  CHECK(cache.stats().corrupt == 1);
  CHECK(counter(metrics, "talkserve_clip_cache_corrupt_total") == 1);
  CHECK(gauge(metrics, "talkserve_clip_cache_entries") == 1);
  CHECK(gauge(metrics, "talkserve_clip_cache_bytes") == 1000);
  // The other clip is untouched, and the id can be stored again.
  CHECK(cache.get(b));
  CHECK(cache.put(a, bytes_of("a", 1000)) == PutStatus::stored);
  CHECK(cache.get(a));
}

TEST_CASE("clip cache: damage done while closed is found at start or on first hit", "[cache]") {
  TempDir dir;
  auto a = id_of("a"), b = id_of("b"), c = id_of("c"), d = id_of("d");
  std::filesystem::path clips;
  {
    ClipCache cache(config_for(dir, 1 << 20));
    for (auto& id : {a, b, c, d}) REQUIRE(cache.put(id, bytes_of(id, 1000)) == PutStatus::stored);
    clips = cache.config().dir;
  }
  // a: same size, different bytes (found by the hash on the first hit).
  {
    std::fstream f(clips / (a + ".clip"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(0);
    f.write("XXXX", 4);
  }
  // b: truncated (found at start: size differs from the sidecar).
  fs::resize_file(clips / (b + ".clip"), 10);
  // c: sidecar lost (found at start).
  fs::remove(clips / (c + ".sha256"));

  MetricsRegistry metrics;
  ClipCache cache(config_for(dir, 1 << 20), &metrics);
  CHECK(cache.stats().corrupt == 2);
  CHECK(cache.stats().entries == 2);
  CHECK_FALSE(fs::exists(clips / (b + ".clip")));
  CHECK_FALSE(fs::exists(clips / (c + ".clip")));
  CHECK_FALSE(cache.get(a));
  CHECK(cache.stats().corrupt == 3);
  CHECK(counter(metrics, "talkserve_clip_cache_corrupt_total") == 3);
  auto clip = cache.get(d);
  REQUIRE(clip);
  CHECK(cache.read(*clip, 0, 1000) == bytes_of(d, 1000));
  CHECK(cache.stats().entries == 1);
}

TEST_CASE("clip cache: config is validated", "[cache]") {
  TempDir dir;
  ClipCacheConfig no_dir;
  CHECK_THROWS_WITH(ClipCache(no_dir), Catch::Contains("cache.dir"));
  CHECK_THROWS_WITH(ClipCache(config_for(dir, 0)), Catch::Contains("cache.max_bytes"));
}

TEST_CASE("clip cache: concurrent puts and gets from 4 threads", "[cache]") {
  TempDir dir;
  MetricsRegistry metrics;
  // 24 clips of 1..4 KB under a 32 KB cap: evictions happen all the time.
  constexpr std::uint64_t kCap = 32 * 1024;
  ClipCache cache(config_for(dir, kCap), &metrics);
  std::vector<std::string> ids;
  std::vector<std::string> contents;
  for (int i = 0; i < 24; ++i) {
    ids.push_back(id_of("clip" + std::to_string(i)));
    contents.push_back(bytes_of(ids.back(), 1024 * (1 + i % 4)));
  }

  SECTION("many ids") {
    std::atomic<int> wrong{0};
    std::atomic<int> stored{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int round = 0; round < 150; ++round) {
          std::size_t i = static_cast<std::size_t>((round * 7 + t * 5) % 24);
          if ((round + t) % 3 == 0) {
            if (cache.put(ids[i], contents[i]) == PutStatus::stored) ++stored;
          } else if (auto clip = cache.get(ids[i])) {
            // Evicted between get() and read() is fine; wrong bytes never are.
            auto body = cache.read(*clip, 0, clip->size);
            if (body && *body != contents[i]) ++wrong;
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    CHECK(wrong == 0);
    CHECK(stored > 0);
    auto s = cache.stats();
    CHECK(s.bytes <= kCap);
    CHECK(s.corrupt == 0);
    // The index matches the directory.
    std::uint64_t on_disk = 0;
    std::size_t clip_files = 0;
    for (auto& e : fs::directory_iterator(cache.config().dir)) {
      auto name = e.path().filename().string();
      CHECK_FALSE(name.starts_with(".tmp-"));
      if (name.ends_with(".clip")) {
        ++clip_files;
        on_disk += fs::file_size(e.path());
      }
    }
    CHECK(clip_files == s.entries);
    CHECK(on_disk == s.bytes);
    CHECK(gauge(metrics, "talkserve_clip_cache_bytes") == static_cast<double>(s.bytes));
    CHECK(gauge(metrics, "talkserve_clip_cache_entries") == static_cast<double>(s.entries));
  }

  SECTION("one id from every thread at once") {
    std::atomic<int> stored{0}, exists{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        while (!go.load()) std::this_thread::yield();
        auto r = cache.put(ids[0], contents[0]);
        if (r == PutStatus::stored) ++stored;
        if (r == PutStatus::exists) ++exists;
      });
    }
    go = true;
    for (auto& th : threads) th.join();
    CHECK(stored == 1);
    CHECK(exists == 3);
    auto clip = cache.get(ids[0]);
    REQUIRE(clip);
    CHECK(cache.read(*clip, 0, clip->size) == contents[0]);
    CHECK(files_in(cache.config().dir).size() == 3);
  }
}
