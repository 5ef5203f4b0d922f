#pragma once
// flite's clustergen vocoder (cst_mlsa.c) draws the sign of its noise excitation from libc
// rand(): one process-wide sequence, so the same text gives different samples depending on
// what else called rand() before, and concurrent syntheses perturb each other. This file
// defines rand() for the process: inside a FliteRandScope it returns a per-thread sequence
// restarted from a fixed seed (so a synthesis is reproducible and threads are independent);
// everywhere else it forwards to libc's rand() unchanged.

namespace talkserve::speech::detail {

class FliteRandScope {
 public:
  FliteRandScope() noexcept;
  ~FliteRandScope();
  FliteRandScope(const FliteRandScope&) = delete;
  FliteRandScope& operator=(const FliteRandScope&) = delete;
};

}  // namespace talkserve::speech::detail
