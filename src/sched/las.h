// Least attained service (Tiresias' discretised LAS, Gu et al., NSDI 2019): a job's queue is the
// number of thresholds its attained GPU-time has passed. Queue 0 goes first; within a queue, the
// earliest submitted. A pending job preempts running jobs of its class (or a lower one) that sit
// in a later queue, so new and short jobs overtake long ones without anyone estimating run
// times; a preempted job resumes from its checkpoint, keeping what it attained.
// Promotion (Tiresias' PromoteKnob) keeps long jobs from starving: a requeued job that has waited
// `promote` times as long as it has run goes back to queue 0. Its run starts there: the service it
// had is forgiven for that run, so the next newcomer does not preempt it again at once; but not
// forgotten, so each promotion needs a longer wait than the last. A wide gang still passes the
// first threshold within seconds of a promotion: in a saturated pool of wide gangs it is
// promoted and preempted over and over (docs/simulation.md, Lublin); set las_promote to 0 there.
//
//   LasLevels levels(policy.las_thresholds, policy.las_promote);  // GPU-hours, ascending
//   int queue = levels.Of(job, now);                              // 0 .. thresholds
#pragma once

#include <algorithm>
#include <vector>

#include "core/job.h"
#include "core/units.h"

namespace allot {

class LasLevels {
 public:
  LasLevels(const std::vector<double>& thresholds_gpu_hours, double promote) : promote_(promote) {
    for (double hours : thresholds_gpu_hours) thresholds_.push_back(hours * 3600.0);
  }

  // GPU-seconds over all of the job's runs, the current one up to `now` included.
  static double Attained(const Job& job, Time now) {
    double attained = job.attained_gpu_seconds;
    if (job.state == JobState::kRunning && now > job.start_time) {
      attained += static_cast<double>(job.gpus()) * static_cast<double>(now - job.start_time);
    }
    return attained;
  }

  int OfService(double gpu_seconds) const {
    return static_cast<int>(std::upper_bound(thresholds_.begin(), thresholds_.end(), gpu_seconds) -
                            thresholds_.begin());
  }
  // A pending job that is promoted is in queue 0; a running one counts from its promotion.
  int Of(const Job& job, Time now) const {
    if (Promoted(job, now)) return 0;
    return OfService(Attained(job, now) - job.forgiven_gpu_seconds);
  }

  // Whether a pending job that ran before has waited long enough to go back to queue 0.
  bool Promoted(const Job& job, Time now) const {
    if (promote_ <= 0 || job.state != JobState::kPending || job.attained_gpu_seconds <= 0) return false;
    double ran_seconds = job.attained_gpu_seconds / static_cast<double>(std::max<int64_t>(job.gpus(), 1));
    return static_cast<double>(now - job.requeue_time) >= promote_ * ran_seconds;
  }

 private:
  std::vector<double> thresholds_;  // GPU-seconds
  double promote_ = 0;              // 0: no promotion
};

}  // namespace allot
