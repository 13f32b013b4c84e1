// RuntimePredictor: how long a job will run, learnt from how long its user's and its account's
// recent jobs ran. Users ask for generous time limits (the Lublin trace's run a fifth of their
// limit on average), so ordering by the limit ranks jobs by how careful their users are rather
// than by how short they are. The history of a user is a far better guide (Tsafrir, Etsion and
// Feitelson, "Backfilling using system-generated predictions rather than user runtime
// estimates", 2007).
//
// The prediction of a job is the median of the last kHistory run times of its user's jobs that
// ended (exited, failed or reached their limit; not cancelled or preempted), or of its account's
// when its user has none, capped by its time limit (it cannot run longer). With no history at
// all it is the time limit. It is updated after every job that ends (`Observe`), so it follows a
// user whose jobs change.
//
//   RuntimePredictor predictor;
//   predictor.Observe(job, /*ran=*/1800);
//   Duration expected = predictor.Predict(other_job);
//
// Not thread-safe; the scheduler owns one.
#pragma once

#include <array>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/model.h"

namespace allot {

class RuntimePredictor {
 public:
  static constexpr int kHistory = 5;

  // A job ran `ran` seconds and ended (it exited, or was killed at its limit).
  void Observe(const Job& job, Duration ran);
  // Expected run time of a job, in [1, its time limit].
  Duration Predict(const Job& job) const;

 private:
  // The last kHistory run times, oldest overwritten first.
  struct Recent {
    std::array<Duration, kHistory> ran{};
    int count = 0;  // how many are filled, up to kHistory
    int next = 0;   // where the next one goes
    void Add(Duration value);
    Duration Median() const;
  };

  std::unordered_map<std::string, Recent> by_user_;
  std::vector<Recent> by_account_;  // indexed by AccountIndex
};

}  // namespace allot
