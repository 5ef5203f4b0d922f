#include "talkserve/sched/expected.hpp"

namespace talkserve::sched {

std::string_view to_string(ExecErrc code) noexcept {
  switch (code) {
    case ExecErrc::cancelled:
      return "cancelled";
    case ExecErrc::deadline_exceeded:
      return "deadline_exceeded";
    case ExecErrc::queue_full:
      return "queue_full";
    case ExecErrc::overloaded:
      return "overloaded";
    case ExecErrc::stopped:
      return "stopped";
    case ExecErrc::failed:
      return "failed";
  }
  return "unknown";
}

}  // namespace talkserve::sched
