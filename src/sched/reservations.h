// Backfill reservations: when blocked jobs will start, and which GPUs must stay idle meanwhile.
//
// A reservation promises a blocked job specific GPUs (counts per node) at a future time, found by
// replaying the ends of running jobs (at their time limits) on a scratch copy of the free index
// until the gang fits. Jobs behind it may start now only if they do not delay it:
//   * a job that ends before the reservation starts may use any free GPU;
//   * a job still running then may use, on each reserved node, only its slack: the GPUs that will
//     be free at the reservation's start beyond what the reservation needs.
// The book turns that rule into holds on the live index for the job being tried, so placement
// itself needs no knowledge of reservations. Several reservations per pool (conservative
// backfill) stack: a job ending at time E sees the holds of every reservation starting before E.
//
// Not thread-safe. The scheduler keeps one book: StartPass forgets the last pass's reservations
// but keeps the plan cache, so a blocked job whose pool did not change since the last pass is not
// planned again.
#pragma once

#include <optional>
#include <unordered_map>
#include <vector>

#include "core/model.h"
#include "sched/placement.h"

namespace allot {

struct Reservation {
  JobId job = 0;
  PoolIndex pool = 0;
  Time start = 0;
  Time end = 0;
  std::vector<std::pair<NodeIndex, int>> gpus;  // GPUs promised per node
  std::vector<int> slack;  // per entry of `gpus`: what a job overlapping `start` may still use
  PlacementRequest request;  // what was planned, for planning it again
  Duration limit = 0;
};

class ReservationBook {
 public:
  explicit ReservationBook(size_t pool_count) : pools_(pool_count), cache_(pool_count) {}

  // Drops every reservation and hold bookkeeping of the last pass (the holds must be cleared).
  void StartPass();

  size_t CountIn(PoolIndex pool) const { return pools_[pool].reservations.size(); }
  // GPUs of the pool held back on the live index now.
  int64_t HeldIn(PoolIndex pool) const { return pools_[pool].applied_gpus; }
  const std::vector<Reservation>& In(PoolIndex pool) const { return pools_[pool].reservations; }

  // How many of the pool's reservations start before `job_end`: the holds such a job must see.
  int LevelFor(PoolIndex pool, Time job_end) const;
  // Whether the holds on the live index now are up to date and cover at least `level`: any
  // placement found under them is also valid at that level.
  bool HoldsAtLeast(PoolIndex pool, int level) const;
  // Whether a job started in the pool since its reservations were planned: Replan may then move
  // them and release GPUs they hold.
  bool MayReplan(PoolIndex pool) const { return pools_[pool].started_since_plan; }
  // Whether the holds on the live index now are up to date and exactly those of `level`.
  bool HoldsExactly(PoolIndex pool, int level) const {
    return !pools_[pool].dirty && pools_[pool].applied_level == level;
  }
  // Sets the holds for trying a job in `pool` that would run until `job_end`. Returns the hold
  // level (how many reservations start before job_end), which keys placement memos.
  int Prepare(FreeCapacity& free, PoolIndex pool, Time job_end);
  // Removes the pool's holds (the live index shows every free GPU again).
  void Clear(FreeCapacity& free, PoolIndex pool);
  void ClearAll(FreeCapacity& free);

  // A job started in `pool` until `job_end` on these tasks: reservations starting before its end
  // lose that slack on the nodes it uses.
  void Started(PoolIndex pool, const std::vector<TaskAllocation>& tasks, int gpus_per_task,
               Time job_end);
  // The pass took such a start back before handing it out: the slack it cost comes back.
  void StartTakenBack(PoolIndex pool, const std::vector<TaskAllocation>& tasks, int gpus_per_task,
                      Time job_end);

  // Plans a reservation for `request` (time limit `limit`) in `pool`; nullopt if it never fits
  // even after every running job ends. Does not add it.
  // Among placements at the earliest start, it prefers GPUs that are busy now (they would idle
  // until the start anyway), so the GPUs idle now stay open to backfill.
  std::optional<Reservation> Plan(Model& model, PoolIndex pool,
                                  const PlacementRequest& request, Duration limit, Time now);
  void Add(Reservation reservation);
  // Plans the pool's reservations again, in start order, if jobs started in it since they were
  // planned: a job that ends before a reservation starts frees its GPUs in time, so the
  // reservation can move onto them and release idle GPUs it held. Returns whether it replanned.
  bool Replan(Model& model, PoolIndex pool, Time now);

 private:
  // Reservations starting before `job_end` gain `gpus_per_task` slack (or lose it, when negative)
  // on each node of `tasks`.
  void AdjustSlack(PoolIndex pool, const std::vector<TaskAllocation>& tasks, int gpus_per_task,
                   Time job_end);
  struct PoolBook {
    std::vector<Reservation> reservations;  // sorted by start
    std::vector<std::pair<NodeIndex, int>> applied;  // holds now on the live index, by node
    std::vector<std::pair<NodeIndex, int>> usable_scratch;  // reused by Prepare
    int64_t applied_gpus = 0;  // sum of `applied`
    int applied_level = 0;
    bool dirty = false;  // a start touched a reserved node since the holds were computed
    bool started_since_plan = false;  // a job started in the pool since the last Add or Replan
  };

  // Holds the GPUs of reservations that overlap [from, to) on a scratch index.
  void HoldOverlapping(FreeCapacity& scratch, PoolIndex pool, Time from, Time to,
                       std::vector<std::pair<NodeIndex, int>>& held) const;

  // The last plan made for a pool's first reservation, and what it depended on.
  struct CachedPlan {
    bool valid = false;
    uint64_t version = 0;
    Time now = 0;
    PlacementRequest request;
    Duration limit = 0;
    std::optional<Reservation> plan;
  };

  std::vector<PoolBook> pools_;
  std::vector<CachedPlan> cache_;
  // When GPUs come free in the pool, in order: running jobs reach their limits (not before
  // `now`), earlier reservations end.
  std::vector<Time> ReleaseMoments(const Model& model, PoolIndex pool, Time now) const;
  // Plan on the live index (undone before returning), for any request.
  std::optional<Reservation> PlanOnIndex(Model& model, PoolIndex pool,
                                         const PlacementRequest& request, Duration limit, Time now);
  // Plan for a request with no topology constraint, CPUs or memory: per-node counts only.
  std::optional<Reservation> PlanByCount(Model& model, PoolIndex pool,
                                         const PlacementRequest& request, Duration limit, Time now);

  std::vector<int> idle_now_;       // Plan: GPUs idle now per node of the pool
  std::vector<int> free_at_;        // PlanByCount: GPUs free at the moment tried, per pool node
  std::vector<int> taken_scratch_;  // Plan: tasks placed per node of the pool
};

}  // namespace allot
