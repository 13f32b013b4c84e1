#include "sched/reservations.h"

#include <algorithm>

namespace allot {

int ReservationBook::Prepare(FreeCapacity& free, PoolIndex pool, Time job_end) {
  PoolBook& book = pools_[pool];
  int level = 0;
  while (level < static_cast<int>(book.reservations.size()) &&
         book.reservations[level].start < job_end) {
    ++level;
  }
  if (level == book.applied_level && !book.dirty) return level;
  Clear(free, pool);
  if (level == 0) return 0;
  // The GPUs a long job may use on a reserved node: the least slack among the reservations it
  // would overlap, and never more than is free now.
  std::unordered_map<NodeIndex, int> usable;
  for (int i = 0; i < level; ++i) {
    const Reservation& reservation = book.reservations[i];
    for (size_t k = 0; k < reservation.gpus.size(); ++k) {
      NodeIndex node = reservation.gpus[k].first;
      auto [it, inserted] = usable.emplace(node, reservation.slack[k]);
      if (!inserted) it->second = std::min(it->second, reservation.slack[k]);
    }
  }
  for (auto [node, slack] : usable) {
    int hold = free.VisibleGpus(node) - std::max(0, slack);
    if (hold > 0) {
      free.Hold(node, hold);
      book.applied.emplace_back(node, hold);
    }
  }
  // Keep the order of applied holds deterministic for replay (the map's order is not).
  std::sort(book.applied.begin(), book.applied.end());
  book.applied_level = level;
  return level;
}

void ReservationBook::Clear(FreeCapacity& free, PoolIndex pool) {
  PoolBook& book = pools_[pool];
  for (auto [node, gpus] : book.applied) free.Unhold(node, gpus);
  book.applied.clear();
  book.applied_level = 0;
  book.dirty = false;
}

void ReservationBook::ClearAll(FreeCapacity& free) {
  for (PoolIndex pool = 0; pool < pools_.size(); ++pool) Clear(free, pool);
}

void ReservationBook::Started(PoolIndex pool, const std::vector<TaskAllocation>& tasks,
                              int gpus_per_task, Time job_end) {
  PoolBook& book = pools_[pool];
  for (Reservation& reservation : book.reservations) {
    for (size_t k = 0; k < reservation.gpus.size(); ++k) {
      for (const TaskAllocation& task : tasks) {
        if (task.node != reservation.gpus[k].first) continue;
        book.dirty = true;
        if (reservation.start < job_end) reservation.slack[k] -= gpus_per_task;
      }
    }
  }
}

void ReservationBook::HoldOverlapping(FreeCapacity& scratch, PoolIndex pool, Time from, Time to,
                                      std::vector<std::pair<NodeIndex, int>>& held) const {
  for (const Reservation& reservation : pools_[pool].reservations) {
    if (reservation.start >= to || reservation.end <= from) continue;
    for (auto [node, gpus] : reservation.gpus) {
      int hold = std::min(gpus, scratch.VisibleGpus(node));
      if (hold > 0) {
        scratch.Hold(node, hold);
        held.emplace_back(node, hold);
      }
    }
  }
}

std::optional<Reservation> ReservationBook::Plan(Model& model, PoolIndex pool,
                                                 const PlacementRequest& request, Duration limit,
                                                 Time now) {
  // The scratch copy must see every free GPU, so lift the live holds first.
  FreeCapacity& live = model.mutable_free();
  Clear(live, pool);
  FreeCapacity scratch = live;
  int64_t needed = static_cast<int64_t>(request.tasks) * request.gpus_per_task;
  const auto& running = model.running_by_end(pool);
  // Moments when GPUs come free: running jobs reach their limits, earlier reservations end.
  std::vector<Time> moments;
  for (const auto& [end, id] : running) moments.push_back(std::max(end, now));
  for (const Reservation& other : pools_[pool].reservations) moments.push_back(other.end);
  std::sort(moments.begin(), moments.end());
  moments.erase(std::unique(moments.begin(), moments.end()), moments.end());
  std::vector<std::pair<NodeIndex, int>> held;
  auto next_release = running.begin();
  for (Time at : moments) {
    while (next_release != running.end() && std::max(next_release->first, now) <= at) {
      const Job& job = *model.FindJob(next_release->second);
      for (const TaskAllocation& task : job.tasks) {
        scratch.GiveCount(task.node, job.spec.gpus_per_task, task.cpus, task.memory_bytes);
      }
      ++next_release;
    }
    if (scratch.PoolGpus(pool) < needed) continue;
    held.clear();
    HoldOverlapping(scratch, pool, at, at + limit, held);
    std::optional<Placement> placement = FindPlacement(scratch, pool, request);
    if (placement) {
      Reservation reservation;
      reservation.job = 0;
      reservation.pool = pool;
      reservation.start = at;
      reservation.end = at + limit;
      for (const TaskAllocation& task : placement->tasks) {
        if (!reservation.gpus.empty() && reservation.gpus.back().first == task.node) {
          reservation.gpus.back().second += request.gpus_per_task;
        } else {
          reservation.gpus.emplace_back(task.node, request.gpus_per_task);
        }
      }
      std::sort(reservation.gpus.begin(), reservation.gpus.end());
      for (auto [node, gpus] : reservation.gpus) {
        reservation.slack.push_back(scratch.VisibleGpus(node) - gpus);
      }
      return reservation;
    }
    for (auto [node, gpus] : held) scratch.Unhold(node, gpus);
  }
  return std::nullopt;
}

void ReservationBook::Add(Reservation reservation) {
  PoolBook& book = pools_[reservation.pool];
  // Earlier reservations that start while this one runs lose its GPUs from their slack.
  for (Reservation& other : book.reservations) {
    if (other.start < reservation.start || other.start >= reservation.end) continue;
    for (size_t k = 0; k < other.gpus.size(); ++k) {
      for (auto [node, gpus] : reservation.gpus) {
        if (node == other.gpus[k].first) other.slack[k] = std::max(0, other.slack[k] - gpus);
      }
    }
  }
  auto position = std::upper_bound(
      book.reservations.begin(), book.reservations.end(), reservation.start,
      [](Time start, const Reservation& r) { return start < r.start; });
  book.reservations.insert(position, std::move(reservation));
  book.dirty = true;
}

}  // namespace allot
