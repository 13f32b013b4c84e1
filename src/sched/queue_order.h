// Queue order: which pending job the scheduler looks at next.
//
// Every order puts higher priority classes first. Within a class:
//   fifo        submit time, then job id.
//   sjf         shortest time limit first (the users' estimates), then submit time, job id.
//   predicted   shortest predicted run time first (RuntimePredictor: the median of the user's
//               recent run times, capped by the limit), then submit time, job id.
//   fair_share  hierarchical fair share. At every level of the account tree the child with the
//               lowest (recent usage + GPUs held now) / weight goes first, where recent usage is
//               GPU-seconds decayed with the half-life, expressed as average GPUs. Inside an
//               account, submit time. The order is live: when a job starts in the pass, its
//               account's share grows at once, so one pass already splits free GPUs by weight.
//   las         least attained service first (sched/las.h): the queue of the job's attained
//               GPU-time, then submit time, job id.
// Jobs passed as `first` (the scheduler's starving jobs) go ahead of the others of their class,
// in the order given, so a big gang that has waited too long gets the backfill reservation.
//
//   std::unique_ptr<QueueOrder> order = MakeQueueOrder("fair_share", half_life);
//   order->Begin(model, [](const Job& job) { return !job.held; }, /*first=*/{});
//   while (std::optional<JobId> id = order->Next()) { ...; if (started) order->Started(job); }
//
// Each pending job the filter admits is handed out exactly once per Begin (a sweep of the queue;
// a pass may sweep more than once); jobs that become pending after Begin are not. fifo walks the
// model's queue lazily, so a sweep that stops early costs only the jobs it was handed: the
// filter is called while the sweep runs and must give the same answer throughout. The other
// orders sort the admitted jobs at Begin. Not thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "core/model.h"
#include "sched/las.h"
#include "sched/runtime_predictor.h"

namespace allot {

// Which pending jobs a sweep looks at.
using PendingFilter = std::function<bool(const Job&)>;
// What a job may ask for and still be able to start now, as the scheduler sees it between two
// jobs of a sweep: at most `gpus`, and at most `gpus_past` unless its time limit is at most
// `short_limit` (it ends before the first reservation starts). INT64_MAX: no bound.
struct StartableRequests {
  int64_t gpus = INT64_MAX;
  int64_t gpus_past = INT64_MAX;
  Duration short_limit = 0;
  bool Admits(const Job& job) const {
    return job.gpus() <= gpus && (job.gpus() <= gpus_past || job.spec.time_limit <= short_limit);
  }
};
using RequestLimit = std::function<StartableRequests()>;

class QueueOrder {
 public:
  virtual ~QueueOrder() = default;
  // `first` are pending jobs the filter admits.
  virtual void Begin(const Model& model, PendingFilter include, std::vector<JobId> first) = 0;
  // Optional, after Begin: jobs `limit` does not admit may be passed over; they keep their place.
  // fifo passes over jobs asking for too many GPUs without walking them; the sorted orders hand
  // every job out.
  virtual void LimitRequests(RequestLimit limit) { (void)limit; }
  virtual std::optional<JobId> Next() = 0;
  virtual void Started(const Job& job) = 0;
};

// `name` is one of PolicyConfig::QueueOrders(); the config loader has checked it. `predictor`
// (for "predicted") and `las` (for "las") must outlive the order.
std::unique_ptr<QueueOrder> MakeQueueOrder(std::string_view name, Duration half_life,
                                           const RuntimePredictor* predictor = nullptr,
                                           const LasLevels* las = nullptr);

}  // namespace allot
