#include "talkserve/cache/clip_cache.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <map>
#include <stdexcept>
#include <system_error>
#include <utility>
#include <vector>

#include "cache/sha256.hpp"
#include "talkserve/cache/clip_key.hpp"

namespace talkserve::cache {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kClipSuffix = ".clip";
constexpr std::string_view kSidecarSuffix = ".sha256";
constexpr std::string_view kTempPrefix = ".tmp-";
constexpr std::string_view kLockName = ".lock";

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  // Closes now and reports close()'s error (write-back errors can surface here).
  int close() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

struct FileStat {
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
};

std::optional<FileStat> stat_file(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return FileStat{
      static_cast<std::uint64_t>(st.st_size),
      static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

bool set_mtime(const fs::path& p, std::int64_t ns) {
  struct timespec times[2];
  times[0].tv_sec = 0;
  times[0].tv_nsec = UTIME_OMIT;
  times[1].tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  times[1].tv_nsec = static_cast<long>(ns % 1'000'000'000);
  return ::utimensat(AT_FDCWD, p.c_str(), times, 0) == 0;
}

// Writes `data` to a new file (O_EXCL) and fsyncs it. Returns 0 or an errno value; on error
// the file is removed.
int write_file_synced(const fs::path& p, std::string_view data) {
  Fd fd(::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd) return errno;
  int err = 0;
  const char* ptr = data.data();
  std::size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(fd.get(), ptr, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    ptr += n;
    left -= static_cast<std::size_t>(n);
  }
  if (!err && ::fsync(fd.get()) != 0) err = errno;
  if (fd.close() != 0 && !err) err = errno;
  if (err) ::unlink(p.c_str());
  return err;
}

void fsync_dir(const fs::path& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd) ::fsync(fd.get());
}

std::optional<std::string> read_small_file(const fs::path& p, std::size_t limit) {
  Fd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  std::string out;
  char buf[256];
  while (out.size() <= limit) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  if (out.size() > limit) return std::nullopt;
  return out;
}

std::optional<std::string> hash_file(const fs::path& p) {
  Fd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  detail::Sha256 h;
  std::vector<char> buf(1 << 20);
  while (true) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::nullopt;
    }
    if (n == 0) break;
    h.update(buf.data(), static_cast<std::size_t>(n));
  }
  return h.finish_hex();
}

std::string sidecar_text(std::string_view sha_hex, std::uint64_t size) {
  std::string s(sha_hex);
  s += ' ';
  s += std::to_string(size);
  s += '\n';
  return s;
}

// "<64 hex> <size>\n" -> (hex, size).
std::optional<std::pair<std::string, std::uint64_t>> parse_sidecar(std::string_view text) {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  auto sp = text.find(' ');
  if (sp == std::string_view::npos) return std::nullopt;
  auto hex = text.substr(0, sp);
  auto num = text.substr(sp + 1);
  if (!is_clip_id(hex) || num.empty()) return std::nullopt;  // same shape as an id
  std::uint64_t size = 0;
  auto r = std::from_chars(num.data(), num.data() + num.size(), size);
  if (r.ec != std::errc{} || r.ptr != num.data() + num.size()) return std::nullopt;
  return std::pair{std::string(hex), size};
}

void remove_quietly(const fs::path& p) {
  if (::unlink(p.c_str()) != 0 && errno != ENOENT) {
    spdlog::warn("clip cache: cannot remove {}: {}", p.string(), std::strerror(errno));
  }
}

}  // namespace

void ClipCacheConfig::validate() const {
  if (dir.empty()) throw std::invalid_argument("cache.dir: must not be empty");
  if (max_bytes == 0) throw std::invalid_argument("cache.max_bytes: must be greater than 0");
}

ClipCache::ClipCache(ClipCacheConfig config, obs::MetricsRegistry* metrics)
    : config_(std::move(config)) {
  config_.validate();
  std::error_code ec;
  fs::create_directories(config_.dir, ec);
  if (ec) {
    throw std::system_error(ec, "clip cache: cannot create directory " + config_.dir.string());
  }
  auto lock_path = config_.dir / kLockName;
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) {
    throw std::system_error(errno, std::generic_category(),
                            "clip cache: cannot open " + lock_path.string());
  }
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(lock_fd_);
    lock_fd_ = -1;
    throw std::system_error(
        err, std::generic_category(),
        "clip cache: directory " + config_.dir.string() + " is in use by another clip cache");
  }
  if (metrics) {
    m_hits_ = &metrics->counter("talkserve_clip_cache_hits_total",
                                "Clip cache lookups that found a clip.");
    m_misses_ = &metrics->counter("talkserve_clip_cache_misses_total",
                                  "Clip cache lookups that found no (intact) clip.");
    m_evictions_ = &metrics->counter("talkserve_clip_cache_evictions_total",
                                     "Clips evicted to stay under the byte cap.");
    m_corrupt_ = &metrics->counter("talkserve_clip_cache_corrupt_total",
                                   "Clips dropped because their bytes failed the integrity check.");
    m_bytes_ = &metrics->gauge("talkserve_clip_cache_bytes", "Bytes of clips in the cache.");
    m_entries_ = &metrics->gauge("talkserve_clip_cache_entries", "Clips in the cache.");
  }
  try {
    rebuild();
  } catch (...) {
    ::close(lock_fd_);
    throw;
  }
}

ClipCache::~ClipCache() {
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

fs::path ClipCache::clip_path(std::string_view id) const {
  return config_.dir / (std::string(id) + std::string(kClipSuffix));
}

fs::path ClipCache::sidecar_path(std::string_view id) const {
  return config_.dir / (std::string(id) + std::string(kSidecarSuffix));
}

void ClipCache::rebuild() {
  struct Found {
    bool clip = false;
    bool sidecar = false;
  };
  std::map<std::string, Found> found;
  std::error_code ec;
  fs::directory_iterator it(config_.dir, ec);
  if (ec) throw std::system_error(ec, "clip cache: cannot list " + config_.dir.string());
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.starts_with(kTempPrefix)) {
      // Left by a put() interrupted by a crash: never renamed into place.
      remove_quietly(it->path());
      continue;
    }
    if (name == kLockName) continue;
    if (name.ends_with(kClipSuffix)) {
      auto id = name.substr(0, name.size() - kClipSuffix.size());
      if (is_clip_id(id)) {
        found[id].clip = true;
        continue;
      }
    } else if (name.ends_with(kSidecarSuffix)) {
      auto id = name.substr(0, name.size() - kSidecarSuffix.size());
      if (is_clip_id(id)) {
        found[id].sidecar = true;
        continue;
      }
    }
    // Left alone: subdirectories (other caches may nest under this one) and foreign files.
    std::error_code type_ec;
    if (!it->is_directory(type_ec)) {
      spdlog::warn("clip cache: ignoring unexpected file {}", it->path().string());
    }
  }
  if (ec) throw std::system_error(ec, "clip cache: cannot list " + config_.dir.string());

  std::vector<std::pair<std::int64_t, std::string>> order;
  std::lock_guard lock(mutex_);
  for (auto& [id, f] : found) {
    if (!f.clip) {
      // The sidecar is renamed first, so a crash between the renames leaves it alone.
      remove_quietly(sidecar_path(id));
      continue;
    }
    auto side = f.sidecar ? read_small_file(sidecar_path(id), 128) : std::nullopt;
    auto parsed = side ? parse_sidecar(*side) : std::nullopt;
    auto st = stat_file(clip_path(id));
    const char* why = !parsed                      ? "missing or malformed checksum sidecar"
                      : !st                        ? "unreadable clip file"
                      : st->size != parsed->second ? "size differs from its sidecar (truncated?)"
                                                   : nullptr;
    if (why) {
      spdlog::warn("clip cache: dropping {} at start: {}", id, why);
      remove_quietly(clip_path(id));
      remove_quietly(sidecar_path(id));
      ++corrupt_;
      if (m_corrupt_) m_corrupt_->inc();
      continue;
    }
    Entry e;
    e.size = st->size;
    e.sha256 = std::move(parsed->first);
    e.stamp_ns = st->mtime_ns;
    e.verified = false;  // hashed lazily, on first hit
    e.generation = next_generation_++;
    bytes_ += e.size;
    last_stamp_ = std::max(last_stamp_, e.stamp_ns);
    order.emplace_back(e.stamp_ns, id);
    index_.emplace(id, std::move(e));
  }
  // Oldest first, each pushed to the front: the newest ends up at the front.
  std::sort(order.begin(), order.end());
  for (auto& [stamp, id] : order) {
    lru_.push_front(id);
    index_.find(id)->second.lru = lru_.begin();
  }
  evict_locked();
  publish_sizes_locked();
  spdlog::info("clip cache: {} clips, {} bytes in {} (cap {} bytes)", index_.size(), bytes_,
               config_.dir.string(), config_.max_bytes);
}

std::int64_t ClipCache::next_stamp_locked() {
  auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  // Strictly increasing even when the wall clock stalls or steps back, so the order survives
  // a restart exactly.
  last_stamp_ = std::max<std::int64_t>(now, last_stamp_ + 1);
  return last_stamp_;
}

void ClipCache::touch_locked(const std::string& id, Entry& e) {
  auto stamp = next_stamp_locked();
  // A failed stamp only costs a re-hash on the next hit (the mtime will not match).
  if (set_mtime(clip_path(id), stamp)) e.stamp_ns = stamp;
  lru_.splice(lru_.begin(), lru_, e.lru);
}

void ClipCache::drop_locked(Index::iterator it, bool corrupt, std::string_view why) {
  const std::string& id = it->first;
  if (corrupt) spdlog::warn("clip cache: dropping {}: {}", id, why);
  remove_quietly(clip_path(id));
  remove_quietly(sidecar_path(id));
  bytes_ -= it->second.size;
  lru_.erase(it->second.lru);
  index_.erase(it);
  if (corrupt) {
    ++corrupt_;
    if (m_corrupt_) m_corrupt_->inc();
  }
  publish_sizes_locked();
}

void ClipCache::evict_locked() {
  while (bytes_ > config_.max_bytes && !lru_.empty()) {
    auto it = index_.find(lru_.back());
    spdlog::debug("clip cache: evicting {} ({} bytes)", it->first, it->second.size);
    drop_locked(it, false, "evicted");
    ++evictions_;
    if (m_evictions_) m_evictions_->inc();
  }
}

void ClipCache::publish_sizes_locked() {
  if (m_bytes_) m_bytes_->set(static_cast<double>(bytes_));
  if (m_entries_) m_entries_->set(static_cast<double>(index_.size()));
}

PutStatus ClipCache::put(std::string_view id, std::string_view bytes) {
  if (!is_clip_id(id)) return PutStatus::invalid_id;
  if (bytes.size() > config_.max_bytes) return PutStatus::too_large;
  {
    std::lock_guard lock(mutex_);
    if (auto it = index_.find(id); it != index_.end()) {
      touch_locked(it->first, it->second);
      return PutStatus::exists;
    }
    if (!storing_.emplace(id).second) return PutStatus::exists;
  }
  std::string key(id);
  auto release = [&] {
    std::lock_guard lock(mutex_);
    storing_.erase(key);
  };

  std::string sha;
  std::string tag = std::to_string(::getpid()) + "-" + std::to_string(temp_counter_++);
  fs::path tmp_clip = config_.dir / (std::string(kTempPrefix) + key + "-" + tag + ".clip");
  fs::path tmp_side = config_.dir / (std::string(kTempPrefix) + key + "-" + tag + ".sha256");
  int err = 0;
  try {
    sha = detail::sha256_hex(bytes);
    err = write_file_synced(tmp_side, sidecar_text(sha, bytes.size()));
    if (!err) err = write_file_synced(tmp_clip, bytes);
  } catch (...) {
    remove_quietly(tmp_side);
    release();
    throw;
  }
  if (err) {
    spdlog::error("clip cache: cannot store {}: {}", key, std::strerror(err));
    remove_quietly(tmp_side);
    remove_quietly(tmp_clip);
    release();
    return PutStatus::io_error;
  }

  {
    std::lock_guard lock(mutex_);
    storing_.erase(key);
    // Sidecar first: a crash between the renames leaves an orphan sidecar (removed at start),
    // never a clip without its checksum.
    if (::rename(tmp_side.c_str(), sidecar_path(key).c_str()) != 0 ||
        ::rename(tmp_clip.c_str(), clip_path(key).c_str()) != 0) {
      spdlog::error("clip cache: cannot store {}: rename: {}", key, std::strerror(errno));
      remove_quietly(tmp_side);
      remove_quietly(tmp_clip);
      remove_quietly(sidecar_path(key));
      remove_quietly(clip_path(key));
      return PutStatus::io_error;
    }
    lru_.push_front(key);
    Entry e;
    e.size = bytes.size();
    e.sha256 = std::move(sha);
    e.verified = true;
    e.generation = next_generation_++;
    e.lru = lru_.begin();
    auto [it, inserted] = index_.emplace(key, std::move(e));
    (void)inserted;  // storing_ kept other puts out and nothing else inserts
    touch_locked(it->first, it->second);
    bytes_ += bytes.size();
    evict_locked();
    publish_sizes_locked();
  }
  fsync_dir(config_.dir);  // durability of the renames; the index is already consistent
  return PutStatus::stored;
}

std::optional<ClipInfo> ClipCache::get(std::string_view id) {
  auto miss = [this]() -> std::optional<ClipInfo> {
    ++misses_;
    if (m_misses_) m_misses_->inc();
    return std::nullopt;
  };
  auto hit = [this](const std::string& key, const Entry& e) -> std::optional<ClipInfo> {
    ++hits_;
    if (m_hits_) m_hits_->inc();
    return ClipInfo{key, e.size, clip_path(key), "\"" + key + "\""};
  };
  if (!is_clip_id(id)) return miss();

  std::string expected;
  std::uint64_t generation = 0;
  fs::path path = clip_path(id);
  {
    std::lock_guard lock(mutex_);
    auto it = index_.find(id);
    if (it == index_.end()) return miss();
    Entry& e = it->second;
    auto st = stat_file(path);
    if (!st) {
      drop_locked(it, true, "clip file missing");
      return miss();
    }
    if (st->size != e.size) {
      drop_locked(it, true, "size differs from its sidecar (truncated?)");
      return miss();
    }
    if (e.verified && st->mtime_ns == e.stamp_ns) {
      touch_locked(it->first, e);
      return hit(it->first, e);
    }
    expected = e.sha256;
    generation = e.generation;
  }

  // First hit since start, or the file was written by someone else: hash it, unlocked.
  auto actual = hash_file(path);

  std::lock_guard lock(mutex_);
  auto it = index_.find(id);
  if (it == index_.end() || it->second.generation != generation) return miss();
  if (!actual || *actual != expected) {
    drop_locked(it, true, actual ? "content does not match its sha256" : "clip file unreadable");
    return miss();
  }
  it->second.verified = true;
  touch_locked(it->first, it->second);
  return hit(it->first, it->second);
}

std::optional<std::string> ClipCache::read(const ClipInfo& clip, std::uint64_t offset,
                                           std::uint64_t length) {
  // Only ever this cache's own files: the path is rebuilt from a checked id, never taken
  // from the caller.
  if (!is_clip_id(clip.id)) return std::nullopt;
  fs::path path = clip_path(clip.id);
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return std::nullopt;
  auto size = static_cast<std::uint64_t>(st.st_size);
  if (offset >= size) return std::string();
  length = std::min(length, size - offset);
  std::string out(length, '\0');
  std::size_t done = 0;
  while (done < length) {
    ssize_t n =
        ::pread(fd.get(), out.data() + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::nullopt;
    }
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  out.resize(done);
  return out;
}

bool ClipCache::erase(std::string_view id) {
  std::lock_guard lock(mutex_);
  auto it = index_.find(id);
  if (it == index_.end()) return false;
  drop_locked(it, false, "erased");
  return true;
}

bool ClipCache::contains(std::string_view id) const {
  std::lock_guard lock(mutex_);
  return index_.find(id) != index_.end();
}

ClipCacheStats ClipCache::stats() const {
  ClipCacheStats s;
  {
    std::lock_guard lock(mutex_);
    s.entries = index_.size();
    s.bytes = bytes_;
  }
  s.hits = hits_.load();
  s.misses = misses_.load();
  s.evictions = evictions_.load();
  s.corrupt = corrupt_.load();
  return s;
}

}  // namespace talkserve::cache
