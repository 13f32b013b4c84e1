#include "agent/backoff.h"

#include <gtest/gtest.h>

namespace allot {
namespace {

TEST(BackoffTest, DelaysDoubleUpToTheMaximumWithJitterInTheUpperHalf) {
  Backoff backoff(1, 30, /*seed=*/7);
  double expected = 1;
  for (int attempt = 0; attempt < 10; ++attempt) {
    double wait = backoff.Next();
    EXPECT_GE(wait, expected / 2) << "attempt " << attempt;
    EXPECT_LE(wait, expected) << "attempt " << attempt;
    expected = std::min(30.0, expected * 2);
  }
  // Capped: never more than the maximum, however many failures.
  for (int attempt = 0; attempt < 100; ++attempt) EXPECT_LE(backoff.Next(), 30);
}

TEST(BackoffTest, ASuccessStartsAgainFromTheFirstDelay) {
  Backoff backoff(1, 30, /*seed=*/7);
  for (int attempt = 0; attempt < 6; ++attempt) backoff.Next();
  backoff.Reset();
  EXPECT_LE(backoff.Next(), 1);
}

TEST(BackoffTest, ALowerMaximumBoundsEveryLaterWait) {
  Backoff backoff(1, 30, /*seed=*/7);
  for (int attempt = 0; attempt < 5; ++attempt) backoff.Next();  // the delay is 30 s by now
  backoff.set_max(5);  // the server's heartbeat: a node must retry within it
  for (int attempt = 0; attempt < 20; ++attempt) EXPECT_LE(backoff.Next(), 5);
}

TEST(BackoffTest, AgentsThatFailTogetherDoNotRetryTogether) {
  Backoff first(1, 30, /*seed=*/1);
  Backoff second(1, 30, /*seed=*/2);
  first.Next();
  second.Next();
  EXPECT_NE(first.Next(), second.Next());
}

}  // namespace
}  // namespace allot
