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
// Jobs passed as `first` (the scheduler's starving jobs) go ahead of the others of their class,
// in the order given, so a big gang that has waited too long gets the backfill reservation.
//
//   std::unique_ptr<QueueOrder> order = MakeQueueOrder("fair_share", half_life);
//   order->Begin(model, pending_ids, /*first=*/{});
//   while (std::optional<JobId> id = order->Next()) { ...; if (started) order->Started(job); }
//
// Each pending job is handed out exactly once per Begin (a sweep of the queue; a pass may sweep
// more than once). Not thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "core/model.h"
#include "sched/runtime_predictor.h"

namespace allot {

class QueueOrder {
 public:
  virtual ~QueueOrder() = default;
  // `first` is a subset of `pending`.
  virtual void Begin(const Model& model, std::vector<JobId> pending, std::vector<JobId> first) = 0;
  virtual std::optional<JobId> Next() = 0;
  virtual void Started(const Job& job) = 0;
};

// `name` is one of PolicyConfig::QueueOrders(); the config loader has checked it. `predictor`
// (for "predicted") must outlive the order.
std::unique_ptr<QueueOrder> MakeQueueOrder(std::string_view name, Duration half_life,
                                           const RuntimePredictor* predictor = nullptr);

}  // namespace allot
