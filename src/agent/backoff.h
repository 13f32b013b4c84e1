// How long an agent waits before it tries the server again: exponential backoff with jitter.
// After each failure the delay doubles, from `first` up to `max`; each wait is drawn from the
// upper half of the current delay, so that agents that lost the server together (a restart, a
// network blip) do not all come back in the same instant, and none retries at once. A success
// starts again from `first`. Real agents and nodesim's hollow ones use it alike.
//
//   Backoff backoff;                     // 1 s, 2 s, 4 s, ... up to 30 s, jittered
//   while (!Sync()) Sleep(backoff.Next());
//   backoff.Reset();
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>

namespace allot {

class Backoff {
 public:
  explicit Backoff(double first_seconds = 1, double max_seconds = 30, uint64_t seed = std::random_device{}())
      : first_(first_seconds), max_(std::max(first_seconds, max_seconds)), current_(first_seconds), random_(seed) {}

  // The wait before the next attempt, in seconds: in [delay / 2, delay] for the current delay,
  // which then doubles (up to the maximum).
  double Next() {
    const double delay = current_;
    current_ = std::min(max_, current_ * 2);
    return std::uniform_real_distribution<double>(delay / 2, delay)(random_);
  }

  // After a success: the next failure waits the first delay again.
  void Reset() { current_ = first_; }

  // The longest delay from now on (at least the first). An agent keeps it under the time after
  // which the server takes its node for lost, so a retrying node is never marked down.
  void set_max(double max_seconds) {
    max_ = std::max(first_, max_seconds);
    current_ = std::min(current_, max_);
  }
  double max() const { return max_; }

 private:
  double first_;
  double max_;
  double current_;
  std::mt19937_64 random_;
};

}  // namespace allot
