#include "talkserve/gateway/request_quota.hpp"

#include <stdexcept>

namespace talkserve::gateway {

RequestQuota::RequestQuota(std::uint64_t limit, duration window, time_point origin)
    : limit_(limit), window_(window), origin_(origin) {
  if (limit == 0) throw std::invalid_argument("request quota: limit must be >= 1");
  if (window.count() <= 0) throw std::invalid_argument("request quota: window must be > 0");
}

std::int64_t RequestQuota::window_index(time_point now) const {
  if (now < origin_) return 0;
  return (now - origin_) / window_;
}

void RequestQuota::roll_locked(std::int64_t index) {
  if (index <= index_) return;
  index_ = index;
  used_ = 0;
  synced_ = 0;
  others_ = 0;
}

std::optional<RequestQuota::duration> RequestQuota::try_take(time_point now) {
  const auto index = window_index(now);
  std::lock_guard lock(mutex_);
  roll_locked(index);
  if (used_ + others_ < limit_) {
    ++used_;
    return std::nullopt;
  }
  const time_point end = origin_ + window_ * (index_ + 1);
  return end - now;
}

void RequestQuota::give_back(time_point now) {
  const auto index = window_index(now);
  std::lock_guard lock(mutex_);
  if (index == index_ && used_ > 0) --used_;
}

std::uint64_t RequestQuota::used(time_point now) const {
  const auto index = window_index(now);
  std::lock_guard lock(mutex_);
  return index == index_ ? used_ : 0;
}

std::uint64_t RequestQuota::used_shared(time_point now) const {
  const auto index = window_index(now);
  std::lock_guard lock(mutex_);
  return index == index_ ? used_ + others_ : 0;
}

RequestQuota::Unsynced RequestQuota::take_unsynced(time_point now) {
  const auto index = window_index(now);
  std::lock_guard lock(mutex_);
  roll_locked(index);
  Unsynced u{index_, static_cast<std::int64_t>(used_) - synced_};
  synced_ = static_cast<std::int64_t>(used_);
  return u;
}

void RequestQuota::apply_shared(std::int64_t window, std::int64_t total) {
  std::lock_guard lock(mutex_);
  if (window != index_) return;
  const std::int64_t others = total - synced_;
  others_ = others > 0 ? static_cast<std::uint64_t>(others) : 0;
}

void RequestQuota::restore_unsynced(const Unsynced& u) {
  std::lock_guard lock(mutex_);
  if (u.window == index_) synced_ -= u.count;
}

}  // namespace talkserve::gateway
