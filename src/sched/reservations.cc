#include "sched/reservations.h"

#include <algorithm>

namespace allot {
namespace {

// `scratch` shows the pool at a future start; `idle_now[i]` is what node i of the pool has idle
// now. A reservation on GPUs that are busy now costs nothing until its start, while one on idle
// GPUs keeps them from backfill, so both placements below prefer busy GPUs.

// Without a topology constraint: tasks wholly on busy GPUs first, then the rest anywhere.
std::optional<Placement> PlaceAnywhereBusyFirst(const FreeCapacity& scratch,
                                                const std::vector<int>& idle_now, PoolIndex pool,
                                                const PlacementRequest& request,
                                                std::vector<int>& taken) {
  const Pool& shape = scratch.cluster().pool(pool);
  Placement placement;
  placement.domain = shape.root;
  taken.assign(shape.nodes.size(), 0);
  int remaining = request.tasks;
  auto add = [&](NodeIndex node, int tasks) {
    for (int t = 0; t < tasks; ++t) {
      placement.tasks.push_back({node, 0, request.cpus_per_task, request.memory_per_task});
    }
    remaining -= tasks;
  };
  for (size_t i = 0; i < shape.nodes.size() && remaining > 0; ++i) {
    int visible = scratch.VisibleGpus(shape.nodes[i]);
    int busy = visible - std::min(visible, idle_now[i]);
    if (busy < request.gpus_per_task) continue;
    taken[i] = std::min({busy / request.gpus_per_task, TasksOnNode(scratch, shape.nodes[i], request), remaining});
    add(shape.nodes[i], taken[i]);
  }
  for (size_t i = 0; i < shape.nodes.size() && remaining > 0; ++i) {
    int more = std::min(TasksOnNode(scratch, shape.nodes[i], request) - taken[i], remaining);
    if (more > 0) add(shape.nodes[i], more);
  }
  if (remaining > 0) return std::nullopt;
  return placement;
}

// With a topology constraint: all of it on busy GPUs if a domain allows, else anywhere.
std::optional<Placement> PlaceConstrainedBusyFirst(FreeCapacity& scratch,
                                                   const std::vector<int>& idle_now,
                                                   PoolIndex pool, const PlacementRequest& request) {
  const Pool& shape = scratch.cluster().pool(pool);
  std::vector<std::pair<NodeIndex, int>> idle;
  for (size_t i = 0; i < shape.nodes.size(); ++i) {
    int gpus = std::min(idle_now[i], scratch.VisibleGpus(shape.nodes[i]));
    if (gpus > 0) {
      scratch.Hold(shape.nodes[i], gpus);
      idle.emplace_back(shape.nodes[i], gpus);
    }
  }
  std::optional<Placement> busy = idle.empty() ? std::nullopt : FindPlacement(scratch, pool, request);
  for (auto [node, gpus] : idle) scratch.Unhold(node, gpus);
  return busy ? busy : FindPlacement(scratch, pool, request);
}

}  // namespace

void ReservationBook::StartPass() {
  for (PoolBook& book : pools_) {
    book.reservations.clear();
    book.applied.clear();
    book.applied_gpus = 0;
    book.applied_level = 0;
    book.dirty = false;
    book.started_since_plan = false;
  }
}

int ReservationBook::LevelFor(PoolIndex pool, Time job_end) const {
  const PoolBook& book = pools_[pool];
  int level = 0;
  while (level < static_cast<int>(book.reservations.size()) &&
         book.reservations[level].start < job_end) {
    ++level;
  }
  return level;
}

bool ReservationBook::HoldsAtLeast(PoolIndex pool, int level) const {
  const PoolBook& book = pools_[pool];
  return !book.dirty && book.applied_level >= level;
}

int ReservationBook::Prepare(FreeCapacity& free, PoolIndex pool, Time job_end) {
  PoolBook& book = pools_[pool];
  int level = LevelFor(pool, job_end);
  if (level == book.applied_level && !book.dirty) return level;
  Clear(free, pool);
  if (level == 0) return 0;
  // The GPUs a long job may use on a reserved node: the least slack among the reservations it
  // would overlap, and never more than is free now. Entries are sorted by node so the least
  // slack per node is found without a map (this runs for most jobs tried in a busy pass).
  std::vector<std::pair<NodeIndex, int>>& usable = book.usable_scratch;
  usable.clear();
  for (int i = 0; i < level; ++i) {
    const Reservation& reservation = book.reservations[i];
    for (size_t k = 0; k < reservation.gpus.size(); ++k) {
      usable.emplace_back(reservation.gpus[k].first, reservation.slack[k]);
    }
  }
  if (level > 1) std::sort(usable.begin(), usable.end());  // one reservation's list is sorted
  for (size_t i = 0; i < usable.size();) {
    NodeIndex node = usable[i].first;
    int slack = usable[i].second;  // the least, since pairs sort by slack within a node
    while (i < usable.size() && usable[i].first == node) ++i;
    int hold = free.VisibleGpus(node) - std::max(0, slack);
    if (hold > 0) {
      free.Hold(node, hold);
      book.applied.emplace_back(node, hold);
      book.applied_gpus += hold;
    }
  }
  book.applied_level = level;
  return level;
}

void ReservationBook::Clear(FreeCapacity& free, PoolIndex pool) {
  PoolBook& book = pools_[pool];
  for (auto [node, gpus] : book.applied) free.Unhold(node, gpus);
  book.applied.clear();
  book.applied_gpus = 0;
  book.applied_level = 0;
  book.dirty = false;
}

void ReservationBook::ClearAll(FreeCapacity& free) {
  for (PoolIndex pool = 0; pool < pools_.size(); ++pool) Clear(free, pool);
}

void ReservationBook::Started(PoolIndex pool, const std::vector<TaskAllocation>& tasks,
                              int gpus_per_task, Time job_end) {
  pools_[pool].started_since_plan = true;
  AdjustSlack(pool, tasks, -gpus_per_task, job_end);
}

void ReservationBook::StartTakenBack(PoolIndex pool, const std::vector<TaskAllocation>& tasks,
                                     int gpus_per_task, Time job_end) {
  AdjustSlack(pool, tasks, gpus_per_task, job_end);
}

void ReservationBook::AdjustSlack(PoolIndex pool, const std::vector<TaskAllocation>& tasks,
                                  int gpus_per_task, Time job_end) {
  PoolBook& book = pools_[pool];
  if (book.reservations.empty()) return;
  // Both lists sorted by node, then walked together: gangs and reservations both run to
  // thousands of nodes.
  std::vector<NodeIndex> nodes;
  nodes.reserve(tasks.size());
  for (const TaskAllocation& task : tasks) nodes.push_back(task.node);
  std::sort(nodes.begin(), nodes.end());
  for (Reservation& reservation : book.reservations) {
    size_t n = 0;
    for (size_t k = 0; k < reservation.gpus.size() && n < nodes.size(); ++k) {
      NodeIndex node = reservation.gpus[k].first;
      while (n < nodes.size() && nodes[n] < node) ++n;
      for (; n < nodes.size() && nodes[n] == node; ++n) {
        book.dirty = true;
        if (reservation.start < job_end) reservation.slack[k] += gpus_per_task;
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

std::vector<Time> ReservationBook::ReleaseMoments(const Model& model, PoolIndex pool, Time now) const {
  std::vector<Time> moments;
  for (const auto& [end, id] : model.running_by_end(pool)) moments.push_back(std::max(end, now));
  for (const Reservation& other : pools_[pool].reservations) moments.push_back(other.end);
  std::sort(moments.begin(), moments.end());
  moments.erase(std::unique(moments.begin(), moments.end()), moments.end());
  return moments;
}

std::optional<Reservation> ReservationBook::PlanByCount(Model& model, PoolIndex pool,
                                                        const PlacementRequest& request,
                                                        Duration limit, Time now) {
  const FreeCapacity& free = model.free();
  const Cluster& cluster = free.cluster();
  const Pool& shape = cluster.pool(pool);
  const int per_task = request.gpus_per_task;
  // Per node of the pool (by pool position): GPUs idle now, and GPUs free at the moment tried.
  size_t count = shape.nodes.size();
  idle_now_.resize(count);
  free_at_.resize(count);
  int64_t tasks_fit = 0;
  for (size_t i = 0; i < count; ++i) {
    idle_now_[i] = free_at_[i] = free.VisibleGpus(shape.nodes[i]);
    tasks_fit += free_at_[i] / per_task;
  }
  auto add = [&](uint32_t position, int gpus) {
    tasks_fit += (free_at_[position] + gpus) / per_task - free_at_[position] / per_task;
    free_at_[position] += gpus;
  };

  const auto& running = model.running_by_end(pool);
  std::vector<Time> moments = ReleaseMoments(model, pool, now);
  std::vector<std::pair<uint32_t, int>> held;
  auto next_release = running.begin();
  for (Time at : moments) {
    while (next_release != running.end() && std::max(next_release->first, now) <= at) {
      const Job& job = *model.FindJob(next_release->second);
      for (const TaskAllocation& task : job.tasks) {
        if (free.Schedulable(task.node)) add(cluster.node(task.node).pool_position, job.spec.gpus_per_task);
      }
      ++next_release;
    }
    if (tasks_fit < request.tasks) continue;
    // Earlier reservations running at this moment keep their GPUs.
    held.clear();
    for (const Reservation& other : pools_[pool].reservations) {
      if (other.start >= at + limit || other.end <= at) continue;
      for (auto [node, gpus] : other.gpus) {
        uint32_t position = cluster.node(node).pool_position;
        int hold = std::min(gpus, free_at_[position]);
        if (hold <= 0) continue;
        add(position, -hold);
        held.emplace_back(position, hold);
      }
    }
    if (tasks_fit >= request.tasks) {
      // Tasks wholly on GPUs busy now first, then the rest: see PlaceAnywhereBusyFirst.
      Reservation reservation;
      reservation.request = request;
      reservation.limit = limit;
      reservation.pool = pool;
      reservation.start = at;
      reservation.end = at + limit;
      taken_scratch_.assign(count, 0);
      int remaining = request.tasks;
      for (size_t i = 0; i < count && remaining > 0; ++i) {
        int busy = free_at_[i] - std::min(free_at_[i], idle_now_[i]);
        taken_scratch_[i] = std::min(busy / per_task, remaining);
        remaining -= taken_scratch_[i];
      }
      for (size_t i = 0; i < count && remaining > 0; ++i) {
        int more = std::min(free_at_[i] / per_task - taken_scratch_[i], remaining);
        taken_scratch_[i] += more;
        remaining -= more;
      }
      // Pool positions follow node indexes within a pool, so the list comes out sorted.
      for (size_t i = 0; i < count; ++i) {
        if (taken_scratch_[i] == 0) continue;
        int gpus = taken_scratch_[i] * per_task;
        reservation.gpus.emplace_back(shape.nodes[i], gpus);
        reservation.slack.push_back(free_at_[i] - gpus);
      }
      return reservation;
    }
    for (auto [position, hold] : held) add(position, hold);
  }
  return std::nullopt;
}

std::optional<Reservation> ReservationBook::Plan(Model& model, PoolIndex pool,
                                                 const PlacementRequest& request, Duration limit,
                                                 Time now) {
  // Plans must see every free GPU, so the pool's holds are lifted first.
  Clear(model.mutable_free(), pool);
  // The first reservation of a pool depends only on the pool's running jobs and node states
  // (its version) and on when running jobs end (`now` matters only once one overran its limit).
  // Between passes that started or stopped nothing there, the plan stays right.
  CachedPlan& cached = cache_[pool];
  const auto& running = model.running_by_end(pool);
  bool first = pools_[pool].reservations.empty();
  bool now_irrelevant = running.empty() || running.begin()->first >= std::max(now, cached.now);
  if (first && cached.valid && cached.version == model.pool_version(pool) &&
      (cached.now == now || now_irrelevant) && cached.limit == limit &&
      std::tie(cached.request.tasks, cached.request.gpus_per_task, cached.request.cpus_per_task,
               cached.request.memory_per_task) ==
          std::tie(request.tasks, request.gpus_per_task, request.cpus_per_task,
                   request.memory_per_task) &&
      cached.request.topology.level == request.topology.level &&
      cached.request.topology.mode == request.topology.mode &&
      cached.request.one_task_per_node == request.one_task_per_node &&
      (!cached.plan || cached.plan->start >= now)) {
    return cached.plan;
  }
  std::optional<Reservation> plan;
  // Without a topology constraint, CPUs, memory or a node of its own per task, counting whole
  // tasks per node says where the job fits; no index is needed.
  if (request.topology.mode == TopologyMode::kNone && request.cpus_per_task == 0 &&
      request.memory_per_task == 0 && !request.one_task_per_node) {
    plan = PlanByCount(model, pool, request, limit, now);
  } else {
    plan = PlanOnIndex(model, pool, request, limit, now);
  }
  if (first) cached = {true, model.pool_version(pool), now, request, limit, plan};
  return plan;
}

std::optional<Reservation> ReservationBook::PlanOnIndex(Model& model, PoolIndex pool,
                                                        const PlacementRequest& request,
                                                        Duration limit, Time now) {
  // The replay frees running jobs' GPUs on the live index itself and undoes that before
  // returning: copying the index of a national pool for every plan would cost more than the
  // plan.
  FreeCapacity& free = model.mutable_free();
  const Pool& shape = free.cluster().pool(pool);
  idle_now_.resize(shape.nodes.size());
  for (size_t i = 0; i < shape.nodes.size(); ++i) idle_now_[i] = free.VisibleGpus(shape.nodes[i]);
  struct Release {
    NodeIndex node;
    int gpus;
    int cpus;
    int64_t memory_bytes;
  };
  std::vector<Release> released;
  std::vector<std::pair<NodeIndex, int>> held;
  auto undo = [&] {
    for (auto [node, gpus] : held) free.Unhold(node, gpus);
    for (auto it = released.rbegin(); it != released.rend(); ++it) {
      free.TakeCount(it->node, it->gpus, it->cpus, it->memory_bytes);
    }
  };

  int64_t needed = static_cast<int64_t>(request.tasks) * request.gpus_per_task;
  const auto& running = model.running_by_end(pool);
  std::vector<Time> moments = ReleaseMoments(model, pool, now);
  bool anywhere = request.topology.mode == TopologyMode::kNone;
  auto next_release = running.begin();
  for (Time at : moments) {
    while (next_release != running.end() && std::max(next_release->first, now) <= at) {
      const Job& job = *model.FindJob(next_release->second);
      for (const TaskAllocation& task : job.tasks) {
        free.GiveCount(task.node, job.spec.gpus_per_task, task.cpus, task.memory_bytes);
        released.push_back({task.node, job.spec.gpus_per_task, task.cpus, task.memory_bytes});
      }
      ++next_release;
    }
    if (free.PoolGpus(pool) < needed) continue;
    HoldOverlapping(free, pool, at, at + limit, held);
    std::optional<Placement> placement;
    if (anywhere) {
      // Counting whole tasks per node is exact for GPUs; CPUs and memory may still fall short.
      if (free.TasksThatFit(shape.root, request.gpus_per_task, request.tasks, request.PerNodeLimit()) >= request.tasks) {
        placement = PlaceAnywhereBusyFirst(free, idle_now_, pool, request, taken_scratch_);
      }
    } else if (FindPlacement(free, pool, request)) {
      placement = PlaceConstrainedBusyFirst(free, idle_now_, pool, request);
    }
    if (placement) {
      Reservation reservation;
      reservation.request = request;
      reservation.limit = limit;
      reservation.job = 0;
      reservation.pool = pool;
      reservation.start = at;
      reservation.end = at + limit;
      std::vector<NodeIndex> nodes;
      for (const TaskAllocation& task : placement->tasks) nodes.push_back(task.node);
      std::sort(nodes.begin(), nodes.end());
      for (NodeIndex node : nodes) {
        if (!reservation.gpus.empty() && reservation.gpus.back().first == node) {
          reservation.gpus.back().second += request.gpus_per_task;
        } else {
          reservation.gpus.emplace_back(node, request.gpus_per_task);
        }
      }
      for (auto [node, gpus] : reservation.gpus) {
        reservation.slack.push_back(free.VisibleGpus(node) - gpus);
      }
      undo();
      return reservation;
    }
    for (auto [node, gpus] : held) free.Unhold(node, gpus);
    held.clear();
  }
  undo();
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
  book.started_since_plan = false;
}

bool ReservationBook::Replan(Model& model, PoolIndex pool, Time now) {
  PoolBook& book = pools_[pool];
  if (!book.started_since_plan || book.reservations.empty()) return false;
  Clear(model.mutable_free(), pool);
  std::vector<Reservation> previous = std::move(book.reservations);
  book.reservations.clear();
  for (Reservation& old : previous) {
    std::optional<Reservation> planned = Plan(model, pool, old.request, old.limit, now);
    if (planned) {
      planned->job = old.job;
      Add(std::move(*planned));
    } else {
      Add(std::move(old));  // cannot happen while the old plan stays feasible; keep it
    }
  }
  book.started_since_plan = false;
  book.dirty = true;
  return true;
}

}  // namespace allot
