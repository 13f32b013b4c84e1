#include "sched/placement.h"

#include <algorithm>

namespace allot {
namespace {

class GangSearch {
 public:
  GangSearch(const FreeCapacity& free, const PlacementRequest& request,
             std::vector<TaskAllocation>& out)
      : free_(free), cluster_(free.cluster()), request_(request), out_(out) {}

  // Places up to `count` tasks inside `domain`, appending them to the output; returns how many.
  int Fill(DomainIndex domain, int count) {
    const Domain& shape = cluster_.domain(domain);
    if (shape.level == Level::kNvlink) return FillNodes(shape.nodes, count);

    int placed = 0;
    std::vector<std::pair<int, DomainIndex>> capacity;  // (tasks that fit, child)
    capacity.reserve(shape.children.size());
    for (DomainIndex child : shape.children) {
      int fits = free_.TasksThatFit(child, request_.gpus_per_task, count, request_.PerNodeLimit());
      if (fits > 0) capacity.emplace_back(fits, child);
    }
    // Most capacity first; among equals, the children's own order.
    std::stable_sort(capacity.begin(), capacity.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    std::vector<bool> used(capacity.size(), false);
    size_t largest = 0;  // the first unused entry: the child holding most
    while (placed < count && largest < capacity.size()) {
      int remaining = count - placed;
      // Best fit: the fullest child that holds all that remains (they lead the list); else the
      // child holding most.
      size_t chosen = capacity.size();
      for (size_t i = largest; i < capacity.size() && capacity[i].first >= remaining; ++i) {
        if (used[i]) continue;
        if (chosen == capacity.size() || Fuller(capacity[i].second, capacity[chosen].second)) {
          chosen = i;
        }
      }
      if (chosen == capacity.size()) chosen = largest;
      used[chosen] = true;
      while (largest < capacity.size() && used[largest]) ++largest;
      DomainIndex child = capacity[chosen].second;
      placed += Fill(child, std::min(remaining, free_.TasksThatFit(child, request_.gpus_per_task,
                                                                   remaining, request_.PerNodeLimit())));
    }
    return placed;
  }

  // Domains with fewer free GPUs come first; ties go to the lower index, for determinism.
  bool Fuller(DomainIndex a, DomainIndex b) const {
    int free_a = free_.DomainGpus(a);
    int free_b = free_.DomainGpus(b);
    return free_a != free_b ? free_a < free_b : a < b;
  }

 private:
  int FillNodes(const std::vector<NodeIndex>& nodes, int count) {
    if (nodes.size() == 1) {  // a node that is its own NVLink domain: nothing to choose
      int take = std::min(count, TasksOnNode(free_, nodes[0], request_));
      for (int i = 0; i < take; ++i) {
        out_.push_back({nodes[0], 0, request_.cpus_per_task, request_.memory_per_task});
      }
      return take;
    }
    // Best fit among nodes: the fullest nodes that fit go first, keeping empty nodes whole.
    std::vector<std::pair<int, NodeIndex>> candidates;
    for (NodeIndex node : nodes) {
      if (TasksOnNode(free_, node, request_) > 0) candidates.emplace_back(free_.VisibleGpus(node), node);
    }
    std::sort(candidates.begin(), candidates.end());
    int placed = 0;
    for (auto [visible, node] : candidates) {
      int take = std::min(count - placed, TasksOnNode(free_, node, request_));
      for (int i = 0; i < take; ++i) {
        out_.push_back({node, 0, request_.cpus_per_task, request_.memory_per_task});
      }
      placed += take;
      if (placed == count) break;
    }
    return placed;
  }

  const FreeCapacity& free_;
  const Cluster& cluster_;
  const PlacementRequest& request_;
  std::vector<TaskAllocation>& out_;
};

// Tries to keep the gang inside one domain of `level`.
std::optional<Placement> PlaceAtLevel(const FreeCapacity& free, PoolIndex pool, Level level,
                                      const PlacementRequest& request) {
  const Pool& shape = free.cluster().pool(pool);
  Placement placement;
  GangSearch search(free, request, placement.tasks);
  std::vector<DomainIndex> candidates;
  for (DomainIndex domain : shape.domains_by_level[static_cast<int>(level)]) {
    if (free.TasksThatFit(domain, request.gpus_per_task, request.tasks, request.PerNodeLimit()) >= request.tasks) {
      candidates.push_back(domain);
    }
  }
  // Usually the fullest candidate works; the rest are tried only when CPUs or memory fall short.
  std::sort(candidates.begin(), candidates.end(),
            [&](DomainIndex a, DomainIndex b) { return search.Fuller(a, b); });
  for (DomainIndex domain : candidates) {
    placement.tasks.clear();
    if (search.Fill(domain, request.tasks) == request.tasks) {
      placement.domain = domain;
      return placement;
    }
  }
  return std::nullopt;
}

}  // namespace

int TasksOnNode(const FreeCapacity& free, NodeIndex node, const PlacementRequest& request) {
  int tasks = free.VisibleGpus(node) / request.gpus_per_task;
  if (tasks == 0) return 0;
  if (request.one_task_per_node) tasks = 1;
  // A node that declares no CPUs or memory does not track them.
  const Node& shape = free.cluster().node(node);
  if (request.cpus_per_task > 0 && shape.cpus > 0) {
    tasks = std::min(tasks, free.FreeCpus(node) / request.cpus_per_task);
  }
  if (request.memory_per_task > 0 && shape.memory_bytes > 0) {
    tasks = std::min<int64_t>(tasks, free.FreeMemory(node) / request.memory_per_task);
  }
  return tasks;
}

std::optional<Placement> FindPlacement(const FreeCapacity& free, PoolIndex pool,
                                       const PlacementRequest& request) {
  int64_t gpus = static_cast<int64_t>(request.tasks) * request.gpus_per_task;
  if (free.PoolGpus(pool) < gpus) return std::nullopt;
  if (request.topology.mode == TopologyMode::kNone) {
    return PlaceAtLevel(free, pool, Level::kSite, request);
  }
  int level = static_cast<int>(request.topology.level);
  int widest = request.topology.mode == TopologyMode::kRequired ? level : 0;
  for (; level >= widest; --level) {
    std::optional<Placement> placement =
        PlaceAtLevel(free, pool, static_cast<Level>(level), request);
    if (placement) return placement;
  }
  return std::nullopt;
}

std::optional<std::string> WhyNeverPlaceable(const Cluster& cluster, PoolIndex pool,
                                             const PlacementRequest& request) {
  const Pool& shape = cluster.pool(pool);
  if (request.gpus_per_task > shape.max_gpus_per_node) {
    return fmt::format("needs {} GPUs per task, but nodes in pool '{}' have at most {}",
                       request.gpus_per_task, shape.name, shape.max_gpus_per_node);
  }
  if (request.whole_nodes && request.gpus_per_task != shape.max_gpus_per_node) {
    return fmt::format("is exclusive, so each task takes a whole node, but it asks for {} GPUs per node and "
                       "nodes in pool '{}' have {}: ask for --gpus-per-node={}",
                       request.gpus_per_task, shape.name, shape.max_gpus_per_node, shape.max_gpus_per_node);
  }
  Level level = request.topology.mode == TopologyMode::kRequired ? request.topology.level
                                                                   : Level::kSite;
  // Tasks each domain of the level could hold if all its nodes were up and idle.
  std::vector<int64_t> tasks_per_domain(cluster.domains().size(), 0);
  for (NodeIndex node : shape.nodes) {
    const Node& n = cluster.node(node);
    int64_t tasks = n.gpus / request.gpus_per_task;
    if (request.one_task_per_node) tasks = std::min<int64_t>(tasks, 1);
    if (request.cpus_per_task > 0 && n.cpus > 0) tasks = std::min<int64_t>(tasks, n.cpus / request.cpus_per_task);
    if (request.memory_per_task > 0 && n.memory_bytes > 0) {
      tasks = std::min<int64_t>(tasks, n.memory_bytes / request.memory_per_task);
    }
    tasks_per_domain[cluster.AncestorAt(node, level)] += tasks;
  }
  int64_t best = 0;
  DomainIndex best_domain = shape.root;
  for (DomainIndex domain : shape.domains_by_level[static_cast<int>(level)]) {
    if (tasks_per_domain[domain] > best) {
      best = tasks_per_domain[domain];
      best_domain = domain;
    }
  }
  if (best >= request.tasks) return std::nullopt;
  std::string resources = request.cpus_per_task > 0 || request.memory_per_task > 0
                              ? " (counting CPUs and memory per task)"
                              : "";
  if (level == Level::kSite) {
    return fmt::format("needs {} tasks x {} GPUs, but pool '{}' holds at most {} such tasks{}",
                       request.tasks, request.gpus_per_task, shape.name, best, resources);
  }
  return fmt::format(
      "needs {} tasks x {} GPUs ({} GPUs) inside one {} domain, but the largest {} domain in "
      "pool '{}' ({}) holds at most {} such tasks ({} GPUs){}",
      request.tasks, request.gpus_per_task, static_cast<int64_t>(request.tasks) * request.gpus_per_task,
      LevelName(level), LevelName(level), shape.name, cluster.DomainPath(best_domain), best,
      best * request.gpus_per_task, resources);
}

std::string DescribeNoFit(const FreeCapacity& free, PoolIndex pool,
                          const PlacementRequest& request, bool* topology_bound) {
  const Pool& shape = free.cluster().pool(pool);
  int64_t gpus = static_cast<int64_t>(request.tasks) * request.gpus_per_task;
  int64_t free_gpus = free.PoolGpus(pool);
  *topology_bound = false;
  if (free_gpus < gpus) {
    return fmt::format("needs {} GPUs, {} free in pool '{}'", gpus, free_gpus, shape.name);
  }
  if (request.topology.mode == TopologyMode::kRequired && request.topology.level != Level::kSite) {
    *topology_bound = true;
    return fmt::format("{} GPUs free in pool '{}', but no free {} domain with {} tasks x {} GPUs",
                       free_gpus, shape.name, LevelName(request.topology.level), request.tasks,
                       request.gpus_per_task);
  }
  return fmt::format("{} GPUs free in pool '{}', but not as {} tasks x {} GPUs on whole nodes",
                     free_gpus, shape.name, request.tasks, request.gpus_per_task);
}

}  // namespace allot
