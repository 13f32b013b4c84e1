#include "core/config.h"

#include "core/input_limits.h"

#include "core/yaml_reader.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <sstream>

namespace allot {
namespace {


struct NodeDefaults {
  int gpus = 8;
  int cpus = 0;
  int64_t memory = 0;
};

Status ReadPools(const YamlReader& reader, const YAML::Node& list, Cluster& cluster) {
  if (!list.IsSequence()) return reader.Error(list, "pools", "expected a list of pools");
  for (size_t i = 0; i < list.size(); ++i) {
    const YAML::Node& entry = list[i];
    std::string field = Item("pools", i);
    ALLOT_RETURN_IF_ERROR(reader.CheckMap(entry, field, {"name", "site", "gpu_model", "shape"}));
    PoolOptions options;
    if (!entry["name"]) return reader.Error(entry, field, "a pool needs a name");
    ALLOT_ASSIGN_OR_RETURN(options.name, reader.String(entry["name"], Field(field, "name")));
    if (entry["site"]) {
      ALLOT_ASSIGN_OR_RETURN(options.site, reader.String(entry["site"], Field(field, "site")));
    }
    if (entry["gpu_model"]) {
      ALLOT_ASSIGN_OR_RETURN(options.gpu_model,
                             reader.String(entry["gpu_model"], Field(field, "gpu_model")));
    }
    StatusOr<PoolIndex> pool = cluster.AddPool(options);
    if (!pool.ok()) return reader.Error(entry["name"], Field(field, "name"), "{}", pool.status().message());
    if (!entry["shape"]) continue;

    // A generated pool: pods x leaves x NVLink domains x nodes, named <pool>-<n>.
    const YAML::Node& shape = entry["shape"];
    std::string shape_field = Field(field, "shape");
    ALLOT_RETURN_IF_ERROR(reader.CheckMap(
        shape, shape_field,
        {"pods", "leaves_per_pod", "nvlink_per_leaf", "nodes_per_nvlink", "gpus_per_node",
         "cpus_per_node", "memory_per_node"}));
    auto count = [&](std::string_view key, int64_t fallback, int64_t max) -> StatusOr<int64_t> {
      YAML::Node value = shape[std::string(key)];
      if (!value) return fallback;
      return reader.Integer(value, Field(shape_field, key), 1, max);
    };
    ALLOT_ASSIGN_OR_RETURN(int64_t pods, count("pods", 1, 100000));
    ALLOT_ASSIGN_OR_RETURN(int64_t leaves, count("leaves_per_pod", 1, 100000));
    ALLOT_ASSIGN_OR_RETURN(int64_t nvlinks, count("nvlink_per_leaf", 1, 100000));
    ALLOT_ASSIGN_OR_RETURN(int64_t nodes_per_nvlink, count("nodes_per_nvlink", 1, 100000));
    ALLOT_ASSIGN_OR_RETURN(int64_t gpus, count("gpus_per_node", 8, kMaxGpusPerNode));
    if (pods * leaves * nvlinks * nodes_per_nvlink > 1000000) {
      return reader.Error(shape, shape_field, "more than 1,000,000 nodes in one pool");
    }
    NodeOptions node;
    node.pool = *pool;
    node.gpus = static_cast<int>(gpus);
    if (shape["cpus_per_node"]) {
      ALLOT_ASSIGN_OR_RETURN(int64_t cpus, reader.Integer(shape["cpus_per_node"],
                                                          Field(shape_field, "cpus_per_node"), 0, 1 << 20));
      node.cpus = static_cast<int>(cpus);
    }
    if (shape["memory_per_node"]) {
      ALLOT_ASSIGN_OR_RETURN(node.memory_bytes, reader.Memory(shape["memory_per_node"],
                                                              Field(shape_field, "memory_per_node")));
    }
    int64_t number = 0;
    for (int64_t p = 1; p <= pods; ++p) {
      node.pod = fmt::format("pod{}", p);
      for (int64_t l = 1; l <= leaves; ++l) {
        node.leaf = fmt::format("leaf{}", l);
        for (int64_t v = 1; v <= nvlinks; ++v) {
          std::string nvlink = fmt::format("nvl{}", v);
          for (int64_t n = 0; n < nodes_per_nvlink; ++n) {
            node.name = fmt::format("{}-{}", options.name, ++number);
            node.nvlink = nodes_per_nvlink == 1 ? "" : nvlink;
            StatusOr<NodeIndex> added = cluster.AddNode(node);
            if (!added.ok()) return reader.Error(shape, shape_field, "{}", added.status().message());
          }
        }
      }
    }
  }
  return OkStatus();
}

Status ReadNodes(const YamlReader& reader, const YAML::Node& list, Cluster& cluster) {
  if (!list.IsSequence()) return reader.Error(list, "nodes", "expected a list of nodes");
  for (size_t i = 0; i < list.size(); ++i) {
    const YAML::Node& entry = list[i];
    std::string field = Item("nodes", i);
    ALLOT_RETURN_IF_ERROR(reader.CheckMap(entry, field,
                                          {"name", "count", "pool", "pod", "leaf", "nvlink",
                                           "gpus", "cpus", "memory", "state"}));
    NodeOptions node;
    if (!entry["name"]) return reader.Error(entry, field, "a node needs a name");
    ALLOT_ASSIGN_OR_RETURN(std::string name, reader.String(entry["name"], Field(field, "name")));
    if (!entry["pool"]) return reader.Error(entry, field, "a node needs a pool");
    ALLOT_ASSIGN_OR_RETURN(std::string pool_name, reader.String(entry["pool"], Field(field, "pool")));
    StatusOr<PoolIndex> pool = cluster.FindPool(pool_name);
    if (!pool.ok()) return reader.Error(entry["pool"], Field(field, "pool"), "{}", pool.status().message());
    node.pool = *pool;
    for (auto [key, target] : {std::pair<const char*, std::string*>{"pod", &node.pod},
                               {"leaf", &node.leaf}, {"nvlink", &node.nvlink}}) {
      if (entry[key]) {
        ALLOT_ASSIGN_OR_RETURN(*target, reader.String(entry[key], Field(field, key)));
      }
    }
    if (entry["gpus"]) {
      ALLOT_ASSIGN_OR_RETURN(int64_t gpus,
                             reader.Integer(entry["gpus"], Field(field, "gpus"), 1, kMaxGpusPerNode));
      node.gpus = static_cast<int>(gpus);
    }
    if (entry["cpus"]) {
      ALLOT_ASSIGN_OR_RETURN(int64_t cpus, reader.Integer(entry["cpus"], Field(field, "cpus"), 0, 1 << 20));
      node.cpus = static_cast<int>(cpus);
    }
    if (entry["memory"]) {
      ALLOT_ASSIGN_OR_RETURN(node.memory_bytes, reader.Memory(entry["memory"], Field(field, "memory")));
    }
    if (entry["state"]) {
      ALLOT_ASSIGN_OR_RETURN(std::string state, reader.String(entry["state"], Field(field, "state")));
      StatusOr<NodeState> parsed = ParseNodeState(state);
      if (!parsed.ok()) return reader.Error(entry["state"], Field(field, "state"), "{}", parsed.status().message());
      node.state = *parsed;
    }
    int64_t count = 1;
    if (entry["count"]) {
      ALLOT_ASSIGN_OR_RETURN(count, reader.Integer(entry["count"], Field(field, "count"), 1, 1000000));
    }
    for (int64_t n = 1; n <= count; ++n) {
      // With a count, `name` is a prefix: count 3 of "gpu" gives gpu1, gpu2, gpu3.
      node.name = entry["count"] ? fmt::format("{}{}", name, n) : name;
      StatusOr<NodeIndex> added = cluster.AddNode(node);
      if (!added.ok()) return reader.Error(entry["name"], Field(field, "name"), "{}", added.status().message());
    }
  }
  return OkStatus();
}

Status ReadQuota(const YamlReader& reader, const YAML::Node& map, std::string_view field,
                 const Cluster& cluster, Account& account) {
  if (!map.IsMap()) return reader.Error(map, field, "expected a mapping of pool name to quota");
  for (const auto& entry : map) {
    std::string pool_name = entry.first.Scalar();
    std::string pool_field = Field(field, pool_name);
    StatusOr<PoolIndex> pool = cluster.FindPool(pool_name);
    if (!pool.ok()) return reader.Error(entry.first, pool_field, "{}", pool.status().message());
    PoolQuota& quota = account.quota[*pool];
    const YAML::Node& value = entry.second;
    if (value.IsScalar()) {  // shorthand: the nominal alone
      ALLOT_ASSIGN_OR_RETURN(quota.nominal, reader.Integer(value, pool_field, 0, kUnlimited));
      quota.nominal_set = true;
      continue;
    }
    ALLOT_RETURN_IF_ERROR(reader.CheckMap(value, pool_field, {"nominal", "borrow_limit", "lend_limit"}));
    if (value["nominal"]) {
      ALLOT_ASSIGN_OR_RETURN(quota.nominal, reader.Integer(value["nominal"], Field(pool_field, "nominal"), 0, kUnlimited));
      quota.nominal_set = true;
    }
    if (value["borrow_limit"]) {
      ALLOT_ASSIGN_OR_RETURN(quota.borrow_limit, reader.Integer(value["borrow_limit"], Field(pool_field, "borrow_limit"), 0, kUnlimited));
    }
    if (value["lend_limit"]) {
      ALLOT_ASSIGN_OR_RETURN(quota.lend_limit, reader.Integer(value["lend_limit"], Field(pool_field, "lend_limit"), 0, kUnlimited));
    }
  }
  return OkStatus();
}

Status ReadGrants(const YamlReader& reader, const YAML::Node& list, std::string_view field,
                  Account& account) {
  if (!list.IsSequence()) return reader.Error(list, field, "expected a list of grants");
  for (size_t i = 0; i < list.size(); ++i) {
    const YAML::Node& entry = list[i];
    std::string grant_field = Item(field, i);
    ALLOT_RETURN_IF_ERROR(reader.CheckMap(entry, grant_field, {"name", "gpu_hours", "start", "end"}));
    Grant grant;
    grant.name = fmt::format("{}#{}", account.name, i + 1);
    if (entry["name"]) {
      ALLOT_ASSIGN_OR_RETURN(grant.name, reader.String(entry["name"], Field(grant_field, "name")));
    }
    if (!entry["gpu_hours"]) return reader.Error(entry, grant_field, "a grant needs gpu_hours");
    ALLOT_ASSIGN_OR_RETURN(grant.gpu_hours, reader.Number(entry["gpu_hours"], Field(grant_field, "gpu_hours")));
    if (grant.gpu_hours < 0) return reader.Error(entry["gpu_hours"], Field(grant_field, "gpu_hours"), "must not be negative");
    if (entry["start"]) {
      ALLOT_ASSIGN_OR_RETURN(grant.start, reader.TimeValue(entry["start"], Field(grant_field, "start")));
    }
    if (entry["end"]) {
      ALLOT_ASSIGN_OR_RETURN(grant.end, reader.TimeValue(entry["end"], Field(grant_field, "end")));
    }
    if (grant.end <= grant.start) {
      return reader.Error(entry, grant_field, "end must come after start");
    }
    account.grants.push_back(std::move(grant));
  }
  return OkStatus();
}

Status ReadAccounts(const YamlReader& reader, const YAML::Node& list, std::string_view field,
                    AccountIndex parent, const Cluster& cluster, AccountTree& tree) {
  if (!list.IsSequence()) return reader.Error(list, field, "expected a list of accounts");
  for (size_t i = 0; i < list.size(); ++i) {
    const YAML::Node& entry = list[i];
    std::string account_field = Item(field, i);
    ALLOT_RETURN_IF_ERROR(reader.CheckMap(entry, account_field,
                                          {"name", "weight", "quota", "grants", "children"}));
    if (!entry["name"]) return reader.Error(entry, account_field, "an account needs a name");
    ALLOT_ASSIGN_OR_RETURN(std::string name, reader.String(entry["name"], Field(account_field, "name")));
    double weight = 1.0;
    if (entry["weight"]) {
      ALLOT_ASSIGN_OR_RETURN(weight, reader.Number(entry["weight"], Field(account_field, "weight")));
    }
    StatusOr<AccountIndex> added = tree.Add(parent, name, weight);
    if (!added.ok()) return reader.Error(entry["name"], Field(account_field, "name"), "{}", added.status().message());
    Account& account = tree.mutable_account(*added);
    if (entry["quota"]) {
      ALLOT_RETURN_IF_ERROR(ReadQuota(reader, entry["quota"], Field(account_field, "quota"), cluster, account));
    }
    if (entry["grants"]) {
      ALLOT_RETURN_IF_ERROR(ReadGrants(reader, entry["grants"], Field(account_field, "grants"), account));
    }
    if (entry["children"]) {
      ALLOT_RETURN_IF_ERROR(ReadAccounts(reader, entry["children"], Field(account_field, "children"),
                                         *added, cluster, tree));
    }
  }
  return OkStatus();
}

Status ReadPolicy(const YamlReader& reader, const YAML::Node& map, PolicyConfig& policy) {
  ALLOT_RETURN_IF_ERROR(reader.CheckMap(map, "policy",
                                        {"queue_order", "backfill", "reservation_depth",
                                         "fair_share_half_life", "starvation_after", "preemption",
                                         "pass_interval", "default_time_limit",
                                         "max_time_limit", "default_priority_class",
                                         "priority_classes", "las_thresholds", "las_promote"}));
  auto one_of = [&](const char* key, const std::vector<std::string_view>& names,
                    std::string& target) -> Status {
    if (!map[key]) return OkStatus();
    ALLOT_ASSIGN_OR_RETURN(target, reader.String(map[key], Field("policy", key)));
    if (std::find(names.begin(), names.end(), target) == names.end()) {
      return reader.Error(map[key], Field("policy", key), "unknown value '{}'; expected one of: {}",
                          target, fmt::join(names, ", "));
    }
    return OkStatus();
  };
  ALLOT_RETURN_IF_ERROR(one_of("queue_order", PolicyConfig::QueueOrders(), policy.queue_order));
  ALLOT_RETURN_IF_ERROR(one_of("backfill", PolicyConfig::BackfillModes(), policy.backfill));
  if (map["reservation_depth"]) {
    ALLOT_ASSIGN_OR_RETURN(int64_t depth, reader.Integer(map["reservation_depth"], "policy.reservation_depth", 1, 10000));
    policy.reservation_depth = static_cast<int>(depth);
  }
  if (map["fair_share_half_life"]) {
    ALLOT_ASSIGN_OR_RETURN(policy.fair_share_half_life, reader.DurationValue(map["fair_share_half_life"], "policy.fair_share_half_life"));
  }
  if (map["starvation_after"]) {
    ALLOT_ASSIGN_OR_RETURN(policy.starvation_after, reader.DurationValue(map["starvation_after"], "policy.starvation_after"));
  }
  if (map["pass_interval"]) {
    ALLOT_ASSIGN_OR_RETURN(policy.pass_interval, reader.DurationValue(map["pass_interval"], "policy.pass_interval"));
  }
  if (map["default_time_limit"]) {
    ALLOT_ASSIGN_OR_RETURN(policy.default_time_limit, reader.DurationValue(map["default_time_limit"], "policy.default_time_limit"));
    if (policy.default_time_limit <= 0) return reader.Error(map["default_time_limit"], "policy.default_time_limit", "must be positive");
  }
  if (map["max_time_limit"]) {
    ALLOT_ASSIGN_OR_RETURN(policy.max_time_limit, reader.DurationValue(map["max_time_limit"], "policy.max_time_limit"));
  }
  if (map["las_thresholds"]) {
    const YAML::Node& list = map["las_thresholds"];
    if (!list.IsSequence() || list.size() == 0 || list.size() > 16) {
      return reader.Error(list, "policy.las_thresholds",
                          "expected a list of 1-16 GPU-hour thresholds, ascending, e.g. [1, 16]");
    }
    policy.las_thresholds.clear();
    for (size_t i = 0; i < list.size(); ++i) {
      std::string field = Item("policy.las_thresholds", i);
      ALLOT_ASSIGN_OR_RETURN(double gpu_hours, reader.Number(list[i], field));
      if (!(gpu_hours > 0) || gpu_hours > 1e9) {
        return reader.Error(list[i], field, "a threshold is a number of GPU-hours above 0 and at most 1e9");
      }
      if (!policy.las_thresholds.empty() && gpu_hours <= policy.las_thresholds.back()) {
        return reader.Error(list[i], field, "thresholds must ascend: {} follows {}", gpu_hours,
                            policy.las_thresholds.back());
      }
      policy.las_thresholds.push_back(gpu_hours);
    }
  }
  if (map["las_promote"]) {
    ALLOT_ASSIGN_OR_RETURN(policy.las_promote, reader.Number(map["las_promote"], "policy.las_promote"));
    if (policy.las_promote < 0 || policy.las_promote > 1e6) {
      return reader.Error(map["las_promote"], "policy.las_promote",
                          "expected a factor from 0 (never promote) to 1e6, e.g. 1");
    }
  }
  if (map["preemption"]) {
    const YAML::Node& preemption = map["preemption"];
    ALLOT_RETURN_IF_ERROR(reader.CheckMap(preemption, "policy.preemption", {"reclaim", "priority"}));
    if (preemption["reclaim"]) {
      ALLOT_ASSIGN_OR_RETURN(policy.reclaim, reader.Bool(preemption["reclaim"], "policy.preemption.reclaim"));
    }
    if (preemption["priority"]) {
      ALLOT_ASSIGN_OR_RETURN(policy.priority_preemption, reader.Bool(preemption["priority"], "policy.preemption.priority"));
    }
  }
  if (map["priority_classes"]) {
    const YAML::Node& list = map["priority_classes"];
    if (!list.IsSequence() || list.size() == 0) {
      return reader.Error(list, "policy.priority_classes", "expected a non-empty list of classes");
    }
    policy.priority_classes.clear();
    for (size_t i = 0; i < list.size(); ++i) {
      std::string field = Item("policy.priority_classes", i);
      ALLOT_RETURN_IF_ERROR(reader.CheckMap(list[i], field, {"name", "value", "preempts_lower"}));
      PriorityClass priority_class;
      if (!list[i]["name"] || !list[i]["value"]) {
        return reader.Error(list[i], field, "a priority class needs a name and a value");
      }
      ALLOT_ASSIGN_OR_RETURN(priority_class.name, reader.String(list[i]["name"], Field(field, "name")));
      ALLOT_ASSIGN_OR_RETURN(int64_t value, reader.Integer(list[i]["value"], Field(field, "value"), -1000000, 1000000));
      priority_class.value = static_cast<int>(value);
      if (list[i]["preempts_lower"]) {
        ALLOT_ASSIGN_OR_RETURN(priority_class.preempts_lower, reader.Bool(list[i]["preempts_lower"], Field(field, "preempts_lower")));
      }
      for (const PriorityClass& seen : policy.priority_classes) {
        if (seen.name == priority_class.name) {
          return reader.Error(list[i]["name"], Field(field, "name"), "class '{}' is defined twice", seen.name);
        }
      }
      policy.priority_classes.push_back(std::move(priority_class));
    }
  }
  if (map["default_priority_class"]) {
    ALLOT_ASSIGN_OR_RETURN(policy.default_priority_class, reader.String(map["default_priority_class"], "policy.default_priority_class"));
  }
  bool known = std::any_of(policy.priority_classes.begin(), policy.priority_classes.end(),
                           [&](const PriorityClass& c) { return c.name == policy.default_priority_class; });
  if (!known) {
    return reader.Error(map, "policy.default_priority_class", "'{}' is not one of the priority classes",
                        policy.default_priority_class);
  }
  return OkStatus();
}

StatusOr<Config> ParseRoot(const YamlReader& reader, const YAML::Node& root) {
  ALLOT_RETURN_IF_ERROR(reader.CheckMap(root, "(top level)",
                                        {"pools", "nodes", "accounts", "policy", "workload"}));
  Config config;
  if (!root["pools"]) return reader.Error(root, "pools", "the config needs at least one pool");
  ALLOT_RETURN_IF_ERROR(ReadPools(reader, root["pools"], config.cluster));
  if (root["nodes"]) ALLOT_RETURN_IF_ERROR(ReadNodes(reader, root["nodes"], config.cluster));
  Status finalized = config.cluster.Finalize();
  if (!finalized.ok()) return reader.Error(root["pools"], "pools", "{}", finalized.message());

  config.accounts = AccountTree(config.cluster.pools().size());
  if (root["accounts"]) {
    ALLOT_RETURN_IF_ERROR(ReadAccounts(reader, root["accounts"], "accounts", config.accounts.root(),
                                       config.cluster, config.accounts));
  }
  Status accounts_ok = config.accounts.Finalize();
  if (!accounts_ok.ok()) return reader.Error(root["accounts"], "accounts", "{}", accounts_ok.message());
  if (root["policy"]) ALLOT_RETURN_IF_ERROR(ReadPolicy(reader, root["policy"], config.policy));
  return config;
}

}  // namespace

// yaml-cpp reports syntax errors by exception; turn them into a Status at this edge.
namespace {

// Counts the values of a YAML tree as a reader will see them: an alias counts every time it is
// met, so `[*a, *a, ...]` over a large anchor counts its expanded size. Stops at the budget.
bool WithinYamlBudget(const YAML::Node& node, size_t& budget, int depth, bool& utf8) {
  if (budget == 0 || depth > kMaxNestingDepth) return false;
  --budget;
  // yaml-cpp writes some escapes (\N, \_ ...) as raw Latin-1 bytes: what comes out of it must
  // be UTF-8 again, or writing it as JSON later would fail.
  if (node.IsScalar() && !CheckUtf8(node.Scalar(), "").ok()) utf8 = false;
  if (node.IsSequence()) {
    for (const YAML::Node& item : node) {
      if (!WithinYamlBudget(item, budget, depth + 1, utf8)) return false;
    }
  } else if (node.IsMap()) {
    for (const auto& entry : node) {
      if (!WithinYamlBudget(entry.first, budget, depth + 1, utf8) ||
          !WithinYamlBudget(entry.second, budget, depth + 1, utf8)) {
        return false;
      }
    }
  }
  return true;
}

}  // namespace

StatusOr<YAML::Node> ParseYaml(std::string_view yaml, std::string_view source, size_t max_values) {
  // Checked before the parser sees the text: yaml-cpp takes any bytes, and recurses per level.
  ALLOT_RETURN_IF_ERROR(CheckUtf8(yaml, source));
  ALLOT_RETURN_IF_ERROR(CheckNesting(yaml, kMaxNestingDepth, source));
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& error) {
    return InvalidArgumentError("{}:{}:{}: not valid YAML: {}", source, error.mark.line + 1,
                                error.mark.column + 1, error.msg);
  }
  size_t budget = max_values;
  bool utf8 = true;
  if (!WithinYamlBudget(root, budget, 0, utf8)) {
    return InvalidArgumentError("{}: the document expands to more than {} values or {} levels (YAML aliases "
                                "repeat what they name); write it out without aliases", source, max_values,
                                kMaxNestingDepth);
  }
  if (!utf8) {
    return InvalidArgumentError("{}: an escape sequence makes a value that is not UTF-8 (write the character itself)",
                                source);
  }
  return root;
}

const std::vector<std::string_view>& PolicyConfig::QueueOrders() {
  static const std::vector<std::string_view> names = {"fair_share", "fifo", "sjf", "predicted", "las"};
  return names;
}

const std::vector<std::string_view>& PolicyConfig::BackfillModes() {
  static const std::vector<std::string_view> names = {"easy", "conservative", "none", "first_fit"};
  return names;
}

StatusOr<Time> ParseTimePoint(std::string_view text) {
  if (text.size() == 10 && text[4] == '-' && text[7] == '-') {
    std::tm date{};
    std::istringstream stream{std::string(text)};
    stream >> std::get_time(&date, "%Y-%m-%d");
    std::tm normalized = date;
    Time seconds = static_cast<Time>(timegm(&normalized));
    // timegm rolls impossible days over ("2026-02-30" becomes March 2); reject them instead.
    if (stream.fail() || normalized.tm_mday != date.tm_mday || normalized.tm_mon != date.tm_mon) {
      return InvalidArgumentError("'{}' is not a date; write YYYY-MM-DD", text);
    }
    return seconds;
  }
  StatusOr<Duration> offset = ParseDuration(text);
  if (!offset.ok()) {
    return InvalidArgumentError("'{}' is not a time; write seconds, a duration from 0 (90d) or a "
                                "date (2026-01-01)", text);
  }
  return *offset;
}

StatusOr<Config> ParseConfig(std::string_view yaml, std::string_view source) {
  ALLOT_ASSIGN_OR_RETURN(YAML::Node root, ParseYaml(yaml, source));
  return ParseConfigNode(root, source);
}

StatusOr<Config> ParseConfigNode(const YAML::Node& root, std::string_view source) {
  YamlReader reader(source);
  try {
    return ParseRoot(reader, root);
  } catch (const YAML::Exception& error) {
    return InvalidArgumentError("{}:{}:{}: {}", source, error.mark.line + 1, error.mark.column + 1,
                                error.msg);
  }
}

StatusOr<Config> LoadConfigFile(const std::string& path) {
  std::ifstream file(path);
  if (!file) return NotFoundError("cannot read config file '{}'", path);
  std::stringstream text;
  text << file.rdbuf();
  return ParseConfig(text.str(), path);
}

StatusOr<TopologyConstraint> ParseTopologyNode(const YAML::Node& topology, std::string_view source,
                                               std::string_view topology_field) {
  YamlReader reader(source);
  TopologyConstraint constraint;
  std::string level_name;
  std::string mode_name = "required";
  if (topology.IsScalar()) {
    level_name = topology.Scalar();  // shorthand: "leaf" means required within one leaf
  } else {
    ALLOT_RETURN_IF_ERROR(reader.CheckMap(topology, topology_field, {"level", "mode"}));
    if (!topology["level"]) return reader.Error(topology, topology_field, "needs a level");
    ALLOT_ASSIGN_OR_RETURN(level_name, reader.String(topology["level"], Field(topology_field, "level")));
    if (topology["mode"]) {
      ALLOT_ASSIGN_OR_RETURN(mode_name, reader.String(topology["mode"], Field(topology_field, "mode")));
    }
  }
  StatusOr<Level> level = ParseLevel(level_name);
  if (!level.ok()) return reader.Error(topology, topology_field, "{}", level.status().message());
  constraint.level = *level;
  if (mode_name == "required") {
    constraint.mode = TopologyMode::kRequired;
  } else if (mode_name == "preferred") {
    constraint.mode = TopologyMode::kPreferred;
  } else if (mode_name == "none") {
    constraint.mode = TopologyMode::kNone;
  } else {
    return reader.Error(topology, Field(topology_field, "mode"),
                        "unknown mode '{}'; use required, preferred or none", mode_name);
  }
  return constraint;
}

StatusOr<JobSpec> ParseJobSpec(const YAML::Node& node, std::string_view source,
                               std::string_view field,
                               const std::vector<std::string_view>& also_allowed) {
  YamlReader reader(source);
  std::vector<std::string_view> allowed = {"name", "account", "user", "tasks", "gpus_per_task",
                                           "gpus", "cpus_per_task", "memory_per_task", "gpu_model",
                                           "pools", "topology", "time_limit", "priority",
                                           "preemptible", "requeue", "kind", "command",
                                           "one_task_per_node"};
  allowed.insert(allowed.end(), also_allowed.begin(), also_allowed.end());
  ALLOT_RETURN_IF_ERROR(reader.CheckMap(node, field, allowed));
  JobSpec spec;
  auto text = [&](const char* key, std::string& target) -> Status {
    if (!node[key]) return OkStatus();
    ALLOT_ASSIGN_OR_RETURN(target, reader.String(node[key], Field(field, key)));
    return OkStatus();
  };
  ALLOT_RETURN_IF_ERROR(text("name", spec.name));
  ALLOT_RETURN_IF_ERROR(text("account", spec.account));
  ALLOT_RETURN_IF_ERROR(text("user", spec.user));
  ALLOT_RETURN_IF_ERROR(text("gpu_model", spec.gpu_model));
  ALLOT_RETURN_IF_ERROR(text("priority", spec.priority_class));
  if (node["tasks"]) {
    ALLOT_ASSIGN_OR_RETURN(int64_t tasks, reader.Integer(node["tasks"], Field(field, "tasks"), 1, 1000000));
    spec.tasks = static_cast<int>(tasks);
  }
  if (node["gpus_per_task"] && node["gpus"]) {
    return reader.Error(node["gpus"], Field(field, "gpus"), "give gpus_per_task or gpus, not both");
  }
  for (const char* key : {"gpus_per_task", "gpus"}) {
    if (!node[key]) continue;
    ALLOT_ASSIGN_OR_RETURN(int64_t gpus, reader.Integer(node[key], Field(field, key), 1, kMaxGpusPerNode));
    spec.gpus_per_task = static_cast<int>(gpus);
  }
  if (node["cpus_per_task"]) {
    ALLOT_ASSIGN_OR_RETURN(int64_t cpus, reader.Integer(node["cpus_per_task"], Field(field, "cpus_per_task"), 0, 1 << 20));
    spec.cpus_per_task = static_cast<int>(cpus);
  }
  if (node["memory_per_task"]) {
    ALLOT_ASSIGN_OR_RETURN(spec.memory_per_task, reader.Memory(node["memory_per_task"], Field(field, "memory_per_task")));
  }
  if (node["pools"]) {
    const YAML::Node& pools = node["pools"];
    if (pools.IsScalar()) {
      spec.pools.push_back(pools.Scalar());
    } else if (pools.IsSequence()) {
      for (size_t i = 0; i < pools.size(); ++i) {
        ALLOT_ASSIGN_OR_RETURN(std::string pool, reader.String(pools[i], Item(Field(field, "pools"), i)));
        spec.pools.push_back(std::move(pool));
      }
    } else {
      return reader.Error(pools, Field(field, "pools"), "expected a pool name or a list of them");
    }
  }
  if (node["topology"]) {
    ALLOT_ASSIGN_OR_RETURN(spec.topology, ParseTopologyNode(node["topology"], reader.source(), Field(field, "topology")));
  }
  if (node["time_limit"]) {
    ALLOT_ASSIGN_OR_RETURN(spec.time_limit, reader.DurationValue(node["time_limit"], Field(field, "time_limit")));
    if (spec.time_limit <= 0) return reader.Error(node["time_limit"], Field(field, "time_limit"), "must be positive");
  }
  if (node["preemptible"]) {
    ALLOT_ASSIGN_OR_RETURN(spec.preemptible, reader.Bool(node["preemptible"], Field(field, "preemptible")));
  }
  if (node["one_task_per_node"]) {
    ALLOT_ASSIGN_OR_RETURN(spec.one_task_per_node,
                           reader.Bool(node["one_task_per_node"], Field(field, "one_task_per_node")));
  }
  if (node["requeue"]) {
    ALLOT_ASSIGN_OR_RETURN(spec.requeue, reader.Bool(node["requeue"], Field(field, "requeue")));
  }
  if (node["kind"]) {
    ALLOT_ASSIGN_OR_RETURN(std::string kind, reader.String(node["kind"], Field(field, "kind")));
    StatusOr<JobKind> parsed = ParseJobKind(kind);
    if (!parsed.ok()) return reader.Error(node["kind"], Field(field, "kind"), "{}", parsed.status().message());
    spec.kind = *parsed;
  }
  if (node["command"]) {
    const YAML::Node& command = node["command"];
    if (!command.IsSequence() || command.size() == 0) {
      return reader.Error(command, Field(field, "command"),
                          "expected a non-empty list of arguments (argv; no shell is involved)");
    }
    for (size_t i = 0; i < command.size(); ++i) {
      ALLOT_ASSIGN_OR_RETURN(std::string argument, reader.String(command[i], Item(Field(field, "command"), i)));
      spec.command.push_back(std::move(argument));
    }
  }
  return spec;
}

StatusOr<JobSpec> ParseJobSpecText(std::string_view yaml, std::string_view source) {
  ALLOT_ASSIGN_OR_RETURN(YAML::Node root, ParseYaml(yaml, source));
  try {
    return ParseJobSpec(root, source, "job");
  } catch (const YAML::Exception& error) {
    return InvalidArgumentError("{}:{}:{}: {}", source, error.mark.line + 1, error.mark.column + 1,
                                error.msg);
  }
}

}  // namespace allot
