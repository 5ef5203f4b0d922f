#pragma once
// Typed outcome of work handed to an executor. Exceptions never cross an executor boundary:
// whatever goes wrong comes back to the caller's callback as an ExecError.
//
// Thread-safety: plain value types; no internal synchronisation.

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace talkserve::sched {

enum class ExecErrc {
  cancelled,          // cancel() removed it before it ran
  deadline_exceeded,  // its deadline passed before it could run
  queue_full,         // the bounded queue was full at enqueue (returned by enqueue, no callback)
  overloaded,         // queued work had waited over max_queue_delay (returned by enqueue, no callback)
  stopped,            // the executor is stopping or stopped
  failed,             // the batch function threw or returned a wrong number of results
};

// Stable lower-case name ("cancelled", "deadline_exceeded", ...), used in logs and metrics.
std::string_view to_string(ExecErrc code) noexcept;

struct ExecError {
  ExecErrc code = ExecErrc::failed;
  std::string message;  // human-readable detail; for `failed`, the model's error text
};

// Thrown only by Expected::value()/error() on the wrong alternative: a programming error in the
// caller, never a run-time failure of the work itself.
class BadExpectedAccess : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// Either a T or an ExecError (a small stand-in for C++23 std::expected).
template <class T>
class Expected {
 public:
  Expected(T value) : v_(std::in_place_index<0>, std::move(value)) {}          // NOLINT
  Expected(ExecError error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & {
    check_value();
    return std::get<0>(v_);
  }
  const T& value() const& {
    check_value();
    return std::get<0>(v_);
  }
  T&& value() && {
    check_value();
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const ExecError& error() const {
    if (has_value()) throw BadExpectedAccess("Expected::error() on a value");
    return std::get<1>(v_);
  }

 private:
  void check_value() const {
    if (!has_value()) {
      throw BadExpectedAccess("Expected::value() on error: " +
                              std::string(to_string(std::get<1>(v_).code)));
    }
  }
  std::variant<T, ExecError> v_;
};

}  // namespace talkserve::sched
