#include "sched/runtime_predictor.h"

#include <algorithm>
#include <utility>

namespace allot {

void RuntimePredictor::Recent::Add(Duration value) {
  ran[static_cast<size_t>(next)] = value;
  next = (next + 1) % kHistory;
  count = std::min(count + 1, kHistory);
}

Duration RuntimePredictor::Recent::Median() const {
  // Insertion sort of at most kHistory values (std::sort on a std::array this small trips GCC
  // 12's -Warray-bounds).
  std::array<Duration, kHistory> sorted = ran;
  for (int i = 1; i < count; ++i) {
    for (int j = i; j > 0 && sorted[static_cast<size_t>(j - 1)] > sorted[static_cast<size_t>(j)]; --j) {
      std::swap(sorted[static_cast<size_t>(j - 1)], sorted[static_cast<size_t>(j)]);
    }
  }
  // The lower median: with an even count, the shorter of the two middle values.
  return sorted[static_cast<size_t>((count - 1) / 2)];
}

void RuntimePredictor::Observe(const Job& job, Duration ran) {
  ran = std::max<Duration>(ran, 1);
  if (!job.spec.user.empty()) by_user_[job.spec.user].Add(ran);
  if (by_account_.size() <= job.account) by_account_.resize(job.account + 1);
  by_account_[job.account].Add(ran);
}

Duration RuntimePredictor::Predict(const Job& job) const {
  Duration limit = std::max<Duration>(job.spec.time_limit, 1);
  const Recent* history = nullptr;
  if (!job.spec.user.empty()) {
    auto found = by_user_.find(job.spec.user);
    if (found != by_user_.end()) history = &found->second;
  }
  if (!history && job.account < by_account_.size() && by_account_[job.account].count > 0) {
    history = &by_account_[job.account];
  }
  if (!history) return limit;
  return std::min(history->Median(), limit);
}

}  // namespace allot
