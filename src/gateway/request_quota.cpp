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

std::optional<RequestQuota::duration> RequestQuota::try_take(time_point now) {
  const auto index = window_index(now);
  std::lock_guard lock(mutex_);
  if (index > index_) {
    index_ = index;
    used_ = 0;
  }
  if (used_ < limit_) {
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

}  // namespace talkserve::gateway
