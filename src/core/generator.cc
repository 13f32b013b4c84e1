#include "core/generator.h"

#include <algorithm>
#include <random>

namespace allot {
namespace {

size_t CountLeaves(const AccountTree& tree, AccountIndex account) {
  const Account& a = tree.account(account);
  if (a.is_leaf()) return 1;
  size_t leaves = 0;
  for (AccountIndex child : a.children) leaves += CountLeaves(tree, child);
  return leaves;
}

// Nominal GPUs a leaf account draws on in a pool: its own where it has any quota at all;
// otherwise an equal part of that of the nearest ancestor with an explicit quota there (a startup
// without its own quota shares its programme's with the other startups).
double EffectiveNominal(const AccountTree& tree, AccountIndex account, PoolIndex pool) {
  const Account& leaf = tree.account(account);
  bool has_own = std::any_of(leaf.quota.begin(), leaf.quota.end(),
                             [](const PoolQuota& quota) { return quota.nominal > 0; });
  if (has_own) return static_cast<double>(leaf.quota[pool].nominal);
  for (AccountIndex at = leaf.parent; at != tree.root(); at = tree.account(at).parent) {
    const PoolQuota& quota = tree.account(at).quota[pool];
    if (quota.nominal_set && quota.nominal > 0) {
      return static_cast<double>(quota.nominal) / static_cast<double>(CountLeaves(tree, at));
    }
  }
  return 0;
}

}  // namespace

std::vector<JobSpec> GenerateJobs(const Cluster& cluster, const AccountTree& tree, size_t count,
                                  const JobMix& mix) {
  std::mt19937_64 random(mix.seed);
  // (leaf, pool) pairs weighted by nominal quota.
  std::vector<std::pair<AccountIndex, PoolIndex>> choices;
  std::vector<double> weights;
  for (AccountIndex account = 0; account < tree.accounts().size(); ++account) {
    if (!tree.account(account).is_leaf()) continue;
    for (PoolIndex pool = 0; pool < cluster.pools().size(); ++pool) {
      double nominal = EffectiveNominal(tree, account, pool);
      if (nominal <= 0) continue;
      choices.emplace_back(account, pool);
      weights.push_back(nominal);
    }
  }
  if (choices.empty()) {  // no quotas at all: every leaf in every pool
    for (AccountIndex account = 0; account < tree.accounts().size(); ++account) {
      if (!tree.account(account).is_leaf()) continue;
      for (PoolIndex pool = 0; pool < cluster.pools().size(); ++pool) {
        choices.emplace_back(account, pool);
        weights.push_back(1.0);
      }
    }
  }
  std::discrete_distribution<size_t> pick(weights.begin(), weights.end());
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::uniform_int_distribution<Duration> limit(mix.min_time_limit / 60, mix.max_time_limit / 60);

  std::vector<JobSpec> jobs;
  jobs.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    auto [account, pool] = choices[pick(random)];
    const Pool& shape = cluster.pool(pool);
    int node_gpus = shape.max_gpus_per_node;
    JobSpec spec;
    spec.account = tree.account(account).name;
    spec.pools = {shape.name};
    spec.time_limit = limit(random) * 60;
    double kind = unit(random);
    if (kind < mix.small_fraction || node_gpus < 4) {
      const int sizes[] = {1, 1, 1, 2, 2, 4, 4, 8};
      spec.gpus_per_task = std::min(node_gpus, sizes[random() % 8]);
    } else {
      int64_t gpus = 0;
      if (kind < mix.small_fraction + mix.gang_fraction) {
        const int sizes[] = {64, 64, 128, 128, 256, 512, 1024};
        gpus = sizes[random() % 7];
      } else {
        const int sizes[] = {2048, 4096, 8192};
        gpus = sizes[random() % 3];
      }
      gpus = std::min<int64_t>(gpus, shape.total_gpus / 2);
      spec.gpus_per_task = node_gpus;
      spec.tasks = static_cast<int>(std::max<int64_t>(1, gpus / node_gpus));
      // Keep the gang inside the smallest level that can hold it.
      int64_t total = static_cast<int64_t>(spec.tasks) * node_gpus;
      for (Level level : {Level::kNvlink, Level::kLeaf, Level::kPod}) {
        DomainIndex first = shape.domains_by_level[static_cast<int>(level)].front();
        if (cluster.domain(first).total_gpus >= total) {
          spec.topology = {level, TopologyMode::kRequired};
          break;
        }
      }
    }
    jobs.push_back(std::move(spec));
  }
  return jobs;
}

}  // namespace allot
