#pragma once
// When the avatar blinks: a fixed pseudo-random schedule over stream time, one blink in each
// 4-second slot starting 1.5..2.5 s into it (so 3..5 s apart, the first within 2.5 s). The
// schedule depends only on the time, so any frame can be rendered independently and output is
// reproducible.
//
// Thread-safety: pure function.

namespace talkserve::avatar {

inline constexpr double kBlinkSlotSeconds = 4.0;
inline constexpr double kBlinkCloseSeconds = 0.12;  // lid travels down
inline constexpr double kBlinkHoldSeconds = 0.03;
inline constexpr double kBlinkOpenSeconds = 0.14;   // and back up

// Eyelid closure at stream time t: 0 open .. 1 closed.
float blink_closure(double t);

}  // namespace talkserve::avatar
