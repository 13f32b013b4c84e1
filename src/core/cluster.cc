#include "core/cluster.h"

#include <algorithm>
#include <cctype>

namespace allot {

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kSite: return "site";
    case Level::kPod: return "pod";
    case Level::kLeaf: return "leaf";
    case Level::kNvlink: return "nvlink";
  }
  return "?";
}

StatusOr<Level> ParseLevel(std::string_view name) {
  for (int i = 0; i < kLevelCount; ++i) {
    if (LevelName(static_cast<Level>(i)) == name) return static_cast<Level>(i);
  }
  return InvalidArgumentError("unknown topology level '{}'; use nvlink, leaf, pod or site", name);
}

bool SameGpuModel(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view NodeStateName(NodeState state) {
  switch (state) {
    case NodeState::kUp: return "up";
    case NodeState::kDraining: return "draining";
    case NodeState::kDown: return "down";
  }
  return "?";
}

StatusOr<NodeState> ParseNodeState(std::string_view name) {
  if (name == "up") return NodeState::kUp;
  if (name == "draining" || name == "drain") return NodeState::kDraining;
  if (name == "down") return NodeState::kDown;
  return InvalidArgumentError("unknown node state '{}'; use up, draining or down", name);
}

StatusOr<PoolIndex> Cluster::AddPool(const PoolOptions& options) {
  if (finalized_) return FailedPreconditionError("the cluster is finalized; pools cannot be added");
  if (options.name.empty()) return InvalidArgumentError("a pool needs a name");
  if (pool_by_name_.count(options.name)) {
    return AlreadyExistsError("pool '{}' is defined twice", options.name);
  }
  PoolIndex index = static_cast<PoolIndex>(pools_.size());
  Pool pool;
  pool.name = options.name;
  pool.site = options.site.empty() ? options.name : options.site;
  pool.gpu_model = options.gpu_model;
  pools_.push_back(std::move(pool));
  pool_by_name_.emplace(options.name, index);
  Domain root;
  root.level = Level::kSite;
  root.pool = index;
  pools_[index].root = static_cast<DomainIndex>(domains_.size());
  domains_.push_back(std::move(root));
  return index;
}

DomainIndex Cluster::FindOrAddDomain(PoolIndex pool, DomainIndex parent, Level level,
                                     std::string_view local_name) {
  const std::string& parent_name = domains_[parent].name;
  std::string name = parent_name.empty() ? std::string(local_name)
                                         : fmt::format("{}/{}", parent_name, local_name);
  std::string key = fmt::format("{}|{}|{}", pool, static_cast<int>(level), name);
  auto found = domain_by_key_.find(key);
  if (found != domain_by_key_.end()) return found->second;
  DomainIndex index = static_cast<DomainIndex>(domains_.size());
  Domain domain;
  domain.name = std::move(name);
  domain.level = level;
  domain.pool = pool;
  domain.parent = parent;
  domains_.push_back(std::move(domain));
  domains_[parent].children.push_back(index);
  domain_by_key_.emplace(std::move(key), index);
  return index;
}

StatusOr<NodeIndex> Cluster::AddNode(const NodeOptions& options) {
  if (finalized_) return FailedPreconditionError("the cluster is finalized; nodes cannot be added");
  if (options.name.empty()) return InvalidArgumentError("a node needs a name");
  // Node lists are written in Slurm's hostlist form ("gpu[01-04],login"), where a bracket, a
  // comma or a blank would read back as other names; and a node's name is a path segment of its
  // agent's URLs (/v1/agents/{node}/sync), where a slash or a '?' would end it.
  size_t bad = options.name.find_first_of("[],/?#% ");
  if (bad == std::string::npos) {
    auto control = std::find_if(options.name.begin(), options.name.end(),
                                [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
    if (control != options.name.end()) bad = static_cast<size_t>(control - options.name.begin());
  }
  if (bad != std::string::npos) {
    return InvalidArgumentError("node '{}': a node name cannot contain '{}' (node lists and agents' URLs could "
                                "not hold it)", options.name, options.name[bad]);
  }
  if (options.pool >= pools_.size()) return NotFoundError("node '{}': no such pool", options.name);
  if (node_by_name_.count(options.name)) {
    return AlreadyExistsError("node '{}' is defined twice", options.name);
  }
  if (options.gpus < 1 || options.gpus > kMaxGpusPerNode) {
    return InvalidArgumentError("node '{}': gpus must be between 1 and {}, got {}", options.name,
                                kMaxGpusPerNode, options.gpus);
  }
  if (options.cpus < 0 || options.memory_bytes < 0) {
    return InvalidArgumentError("node '{}': cpus and memory must not be negative", options.name);
  }
  NodeIndex index = static_cast<NodeIndex>(nodes_.size());
  PoolIndex pool = options.pool;
  DomainIndex pod = FindOrAddDomain(pool, pools_[pool].root, Level::kPod,
                                    options.pod.empty() ? "pod" : options.pod);
  DomainIndex leaf =
      FindOrAddDomain(pool, pod, Level::kLeaf, options.leaf.empty() ? "leaf" : options.leaf);
  DomainIndex nvlink = FindOrAddDomain(pool, leaf, Level::kNvlink,
                                       options.nvlink.empty() ? options.name : options.nvlink);
  domains_[nvlink].nodes.push_back(index);
  Node node;
  node.name = options.name;
  node.pool = pool;
  node.nvlink = nvlink;
  node.gpus = options.gpus;
  node.cpus = options.cpus;
  node.memory_bytes = options.memory_bytes;
  node.state = options.state;
  nodes_.push_back(std::move(node));
  node_by_name_.emplace(options.name, index);
  nodes_[index].pool_position = static_cast<uint32_t>(pools_[pool].nodes.size());
  pools_[pool].nodes.push_back(index);
  return index;
}

Status Cluster::Finalize() {
  if (finalized_) return OkStatus();
  for (Pool& pool : pools_) {
    if (pool.nodes.empty()) return InvalidArgumentError("pool '{}' has no nodes", pool.name);
  }
  // Children are created before their parents are complete, so sum GPUs bottom-up: domains are
  // appended parent-first, so a reverse walk sees every child before its parent.
  for (const Node& node : nodes_) {
    domains_[node.nvlink].total_gpus += node.gpus;
    Pool& pool = pools_[node.pool];
    pool.total_gpus += node.gpus;
    pool.max_gpus_per_node = std::max(pool.max_gpus_per_node, node.gpus);
    total_gpus_ += node.gpus;
  }
  for (size_t i = domains_.size(); i-- > 0;) {
    Domain& domain = domains_[i];
    if (domain.parent != kNoDomain) domains_[domain.parent].total_gpus += domain.total_gpus;
    pools_[domain.pool].domains_by_level[static_cast<int>(domain.level)].push_back(
        static_cast<DomainIndex>(i));
  }
  for (Pool& pool : pools_) {
    for (auto& list : pool.domains_by_level) std::sort(list.begin(), list.end());
  }
  finalized_ = true;
  return OkStatus();
}

StatusOr<PoolIndex> Cluster::FindPool(std::string_view name) const {
  auto found = pool_by_name_.find(std::string(name));
  if (found == pool_by_name_.end()) {
    std::string known;
    for (const Pool& pool : pools_) known += (known.empty() ? "" : ", ") + pool.name;
    return NotFoundError("unknown pool '{}' (pools: {})", name, known);
  }
  return found->second;
}

StatusOr<NodeIndex> Cluster::FindNode(std::string_view name) const {
  auto found = node_by_name_.find(std::string(name));
  if (found == node_by_name_.end()) return NotFoundError("unknown node '{}'", name);
  return found->second;
}

DomainIndex Cluster::AncestorAt(NodeIndex node, Level level) const {
  DomainIndex domain = nodes_[node].nvlink;
  while (domains_[domain].level != level) domain = domains_[domain].parent;
  return domain;
}

std::string Cluster::DomainPath(DomainIndex index) const {
  const Domain& domain = domains_[index];
  const Pool& pool = pools_[domain.pool];
  return domain.name.empty() ? pool.name : fmt::format("{}:{}", pool.name, domain.name);
}

}  // namespace allot
