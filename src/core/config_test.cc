#include "core/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace allot {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

Config MustParse(const std::string& yaml) {
  StatusOr<Config> config = ParseConfig(yaml, "test.yaml");
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  if (!config.ok()) return Config{};
  return std::move(config).value();
}

// The error message of a config that must not parse.
std::string ConfigError(const std::string& yaml) {
  StatusOr<Config> config = ParseConfig(yaml, "test.yaml");
  EXPECT_FALSE(config.ok()) << "parsed:\n" << yaml;
  if (config.ok()) return "";
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument) << config.status().ToString();
  return config.status().message();
}

std::string JobError(const std::string& yaml) {
  StatusOr<JobSpec> spec = ParseJobSpecText(yaml, "job.yaml");
  EXPECT_FALSE(spec.ok()) << "parsed:\n" << yaml;
  if (spec.ok()) return "";
  EXPECT_EQ(spec.status().code(), StatusCode::kInvalidArgument) << spec.status().ToString();
  return spec.status().message();
}

constexpr char kOnePool[] = R"(
pools:
  - name: p
    shape: {pods: 1, leaves_per_pod: 1, nvlink_per_leaf: 1, nodes_per_nvlink: 2}
)";

// ---- pools and nodes ----------------------------------------------------------------------------

TEST(ConfigPoolsTest, ShapeGeneratesNamedNodesInTheirDomains) {
  Config config = MustParse(R"(
pools:
  - name: nacc-b200
    site: daejeon
    gpu_model: B200
    shape:
      pods: 2
      leaves_per_pod: 2
      nvlink_per_leaf: 3
      nodes_per_nvlink: 4
      gpus_per_node: 4
      cpus_per_node: 96
      memory_per_node: 2TiB
)");
  const Cluster& cluster = config.cluster;
  ASSERT_EQ(cluster.pools().size(), 1u);
  const Pool& pool = cluster.pool(0);
  EXPECT_EQ(pool.name, "nacc-b200");
  EXPECT_EQ(pool.site, "daejeon");
  EXPECT_EQ(pool.gpu_model, "B200");
  EXPECT_EQ(cluster.nodes().size(), 2u * 2 * 3 * 4);
  EXPECT_EQ(cluster.total_gpus(), 48 * 4);
  EXPECT_EQ(pool.domains_by_level[static_cast<int>(Level::kPod)].size(), 2u);
  EXPECT_EQ(pool.domains_by_level[static_cast<int>(Level::kLeaf)].size(), 4u);
  EXPECT_EQ(pool.domains_by_level[static_cast<int>(Level::kNvlink)].size(), 12u);

  EXPECT_EQ(cluster.node(0).name, "nacc-b200-1");
  EXPECT_EQ(cluster.nodes().back().name, "nacc-b200-48");
  NodeIndex first = cluster.FindNode("nacc-b200-1").value();
  NodeIndex fourth = cluster.FindNode("nacc-b200-4").value();
  NodeIndex fifth = cluster.FindNode("nacc-b200-5").value();
  EXPECT_EQ(cluster.node(first).gpus, 4);
  EXPECT_EQ(cluster.node(first).cpus, 96);
  EXPECT_EQ(cluster.node(first).memory_bytes, int64_t{2} << 40);
  // Four consecutive nodes share a rack; the fifth starts the next one.
  EXPECT_EQ(cluster.node(first).nvlink, cluster.node(fourth).nvlink);
  EXPECT_NE(cluster.node(first).nvlink, cluster.node(fifth).nvlink);
  EXPECT_EQ(cluster.domain(cluster.node(first).nvlink).name, "pod1/leaf1/nvl1");
  EXPECT_EQ(cluster.domain(cluster.node(fifth).nvlink).name, "pod1/leaf1/nvl2");
  NodeIndex last = cluster.FindNode("nacc-b200-48").value();
  EXPECT_EQ(cluster.domain(cluster.node(last).nvlink).name, "pod2/leaf2/nvl3");
  EXPECT_EQ(cluster.domain(cluster.node(last).nvlink).nodes.size(), 4u);
}

TEST(ConfigPoolsTest, ShapeDefaultsToOne8GpuNodeAndOneNodeRacksAreIslands) {
  Config config = MustParse(R"(
pools:
  - name: small
    shape: {}
  - name: plain
    shape: {nvlink_per_leaf: 3}
)");
  const Cluster& cluster = config.cluster;
  ASSERT_EQ(cluster.nodes().size(), 4u);
  EXPECT_EQ(cluster.node(0).name, "small-1");
  EXPECT_EQ(cluster.node(0).gpus, 8);
  EXPECT_EQ(cluster.pool(0).site, "small");
  // One node per NVLink domain: each node is its own island, named after itself.
  NodeIndex plain2 = cluster.FindNode("plain-2").value();
  EXPECT_EQ(cluster.domain(cluster.node(plain2).nvlink).name, "pod1/leaf1/plain-2");
  EXPECT_EQ(cluster.pool(1).domains_by_level[static_cast<int>(Level::kNvlink)].size(), 3u);
}

TEST(ConfigPoolsTest, ExplicitNodesWithCountUseTheNameAsPrefix) {
  Config config = MustParse(R"(
pools:
  - name: edge
    gpu_model: L40S
nodes:
  - name: gpu
    count: 3
    pool: edge
    pod: podA
    leaf: sw1
    nvlink: rack1
    gpus: 4
    cpus: 32
    memory: 512Gi
  - name: solo
    pool: edge
    gpus: 2
    state: draining
)");
  const Cluster& cluster = config.cluster;
  ASSERT_EQ(cluster.nodes().size(), 4u);
  std::vector<std::string> names;
  for (const Node& node : cluster.nodes()) names.push_back(node.name);
  EXPECT_THAT(names, ElementsAre("gpu1", "gpu2", "gpu3", "solo"));
  EXPECT_EQ(cluster.node(0).gpus, 4);
  EXPECT_EQ(cluster.node(0).cpus, 32);
  EXPECT_EQ(cluster.node(0).memory_bytes, int64_t{512} << 30);
  EXPECT_EQ(cluster.node(0).nvlink, cluster.node(2).nvlink);
  EXPECT_EQ(cluster.domain(cluster.node(0).nvlink).name, "podA/sw1/rack1");
  EXPECT_EQ(cluster.node(3).state, NodeState::kDraining);
  EXPECT_EQ(cluster.total_gpus(), 14);
}

TEST(ConfigPoolsTest, PoolWithoutNodesIsAnError) {
  std::string error = ConfigError("pools:\n  - name: lonely\n");
  EXPECT_THAT(error, HasSubstr("pool 'lonely' has no nodes"));
}

TEST(ConfigPoolsTest, MissingPoolsIsAnError) {
  EXPECT_THAT(ConfigError("accounts: []\n"), HasSubstr("the config needs at least one pool"));
}

TEST(ConfigPoolsTest, DuplicatePoolIsAnError) {
  std::string error = ConfigError(R"(
pools:
  - name: p
    shape: {}
  - name: p
    shape: {}
)");
  EXPECT_THAT(error, HasSubstr("pools[1].name"));
  EXPECT_THAT(error, HasSubstr("pool 'p' is defined twice"));
}

TEST(ConfigPoolsTest, NodeInUnknownPoolListsKnownPools) {
  std::string error = ConfigError(R"(
pools:
  - name: a
    shape: {}
nodes:
  - name: x
    pool: b
)");
  EXPECT_THAT(error, StartsWith("test.yaml:7:11: nodes[0].pool: "));
  EXPECT_THAT(error, HasSubstr("unknown pool 'b' (pools: a)"));
}

TEST(ConfigPoolsTest, DuplicateNodeNamesAreAnError) {
  std::string error = ConfigError(R"(
pools:
  - name: p
nodes:
  - {name: n, count: 2, pool: p}
  - {name: n2, pool: p}
)");
  EXPECT_THAT(error, HasSubstr("nodes[1].name"));
  EXPECT_THAT(error, HasSubstr("node 'n2' is defined twice"));
}

TEST(ConfigPoolsTest, GpusOutOfRangeIsAnError) {
  EXPECT_THAT(ConfigError(R"(
pools:
  - name: p
    shape: {gpus_per_node: 17}
)"),
              HasSubstr("pools[0].shape.gpus_per_node: must be between 1 and 16, got 17"));
  EXPECT_THAT(ConfigError(R"(
pools:
  - name: p
nodes:
  - {name: n, pool: p, gpus: 0}
)"),
              HasSubstr("nodes[0].gpus: must be between 1 and 16, got 0"));
}

TEST(ConfigPoolsTest, BadNodeStateIsAnError) {
  std::string error = ConfigError(R"(
pools:
  - name: p
nodes:
  - {name: n, pool: p, state: sleepy}
)");
  EXPECT_THAT(error, HasSubstr("nodes[0].state"));
  EXPECT_THAT(error, HasSubstr("unknown node state 'sleepy'"));
}

// ---- unknown fields, locations and syntax ----------------------------------------------------

TEST(ConfigErrorsTest, UnknownFieldNamesThePathAndTheAllowedFields) {
  std::string error = ConfigError(R"(
pools:
  - name: p
    shape:
      pods: 1
      gpus_per_nod: 8
)");
  EXPECT_THAT(error, StartsWith("test.yaml:6:7: pools[0].shape: unknown field 'gpus_per_nod'"));
  EXPECT_THAT(error, HasSubstr("expected one of: pods, leaves_per_pod, nvlink_per_leaf, "
                               "nodes_per_nvlink, gpus_per_node, cpus_per_node, "
                               "memory_per_node"));
}

TEST(ConfigErrorsTest, UnknownTopLevelField) {
  std::string error = ConfigError(std::string(kOnePool) + "polcy: {}\n");
  EXPECT_THAT(error, HasSubstr("(top level): unknown field 'polcy'"));
  EXPECT_THAT(error, HasSubstr("pools, nodes, accounts, policy, workload"));
}

TEST(ConfigErrorsTest, UnknownAccountFieldInNestedChildren) {
  std::string error = ConfigError(std::string(kOnePool) + R"(
accounts:
  - name: public
    children:
      - name: lab
        quota: {p: 4}
        wieght: 2
)");
  EXPECT_THAT(error, HasSubstr("accounts[0].children[0]: unknown field 'wieght'"));
  EXPECT_THAT(error, HasSubstr("name, weight, quota, grants, children"));
}

TEST(ConfigErrorsTest, GarbageNumberNamesFileLineColumnAndField) {
  std::string error = ConfigError(std::string(kOnePool) + R"(accounts:
  - name: public
    children:
      - name: lab
        quota:
          p:
            nominal: lots
)");
  EXPECT_EQ(error,
            "test.yaml:11:22: accounts[0].children[0].quota.p.nominal: expected an integer, got "
            "'lots'");
}

TEST(ConfigErrorsTest, NegativeAndFractionalNumbersAreRejected) {
  EXPECT_THAT(ConfigError(std::string(kOnePool) + "accounts: [{name: a, quota: {p: -3}}]\n"),
              HasSubstr("accounts[0].quota.p: must be between 0 and"));
  EXPECT_THAT(ConfigError(std::string(kOnePool) + "accounts: [{name: a, quota: {p: 2.5}}]\n"),
              HasSubstr("accounts[0].quota.p: expected an integer, got '2.5'"));
  EXPECT_THAT(ConfigError(R"(
pools:
  - name: p
    shape: {pods: -1}
)"),
              HasSubstr("pools[0].shape.pods: must be between 1 and"));
  EXPECT_THAT(ConfigError(std::string(kOnePool) + "accounts: [{name: a, weight: heavy}]\n"),
              HasSubstr("accounts[0].weight: expected a number, got 'heavy'"));
  EXPECT_THAT(ConfigError(std::string(kOnePool) + "accounts: [{name: a, weight: -1}]\n"),
              HasSubstr("weight must be a positive number"));
}

TEST(ConfigErrorsTest, InvalidYamlSyntaxHasALocation) {
  std::string error = ConfigError("pools:\n  - name: [p\n");
  EXPECT_THAT(error, StartsWith("test.yaml:"));
  EXPECT_THAT(error, HasSubstr("not valid YAML"));
}

TEST(ConfigErrorsTest, TopLevelMustBeAMapping) {
  EXPECT_THAT(ConfigError("- just\n- a list\n"), HasSubstr("expected a mapping of fields"));
  EXPECT_THAT(ConfigError(""), HasSubstr("expected a mapping of fields"));
}

TEST(ConfigErrorsTest, LoadConfigFileOnAMissingFileIsNotFound) {
  StatusOr<Config> config = LoadConfigFile("/nonexistent/allot/config.yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(config.status().message(), HasSubstr("/nonexistent/allot/config.yaml"));
}

// ---- accounts, quotas and grants ---------------------------------------------------------------

constexpr char kTwoPools[] = R"(
pools:
  - name: b200
    shape: {nodes_per_nvlink: 4}
  - name: h100
    shape: {}
)";

TEST(ConfigAccountsTest, QuotaShorthandAndFullForm) {
  Config config = MustParse(std::string(kTwoPools) + R"(
accounts:
  - name: public
    weight: 2
    children:
      - name: lab-a
        quota: {b200: 8, h100: 2}
      - name: lab-b
        weight: 0.5
        quota:
          b200: {nominal: 16, borrow_limit: 4, lend_limit: 8}
          h100: {borrow_limit: 0}
  - name: industry
    quota: {b200: 100}
)");
  const AccountTree& tree = config.accounts;
  ASSERT_EQ(tree.pool_count(), 2u);
  AccountIndex public_account = tree.Find("public").value();
  AccountIndex lab_a = tree.Find("lab-a").value();
  AccountIndex lab_b = tree.Find("lab-b").value();
  AccountIndex industry = tree.Find("industry").value();
  PoolIndex b200 = config.cluster.FindPool("b200").value();
  PoolIndex h100 = config.cluster.FindPool("h100").value();

  EXPECT_EQ(tree.account(lab_a).path, "public/lab-a");
  EXPECT_EQ(tree.account(public_account).weight, 2);
  EXPECT_EQ(tree.account(lab_a).weight, 1);
  EXPECT_EQ(tree.account(lab_b).weight, 0.5);

  EXPECT_EQ(tree.account(lab_a).quota[b200].nominal, 8);
  EXPECT_EQ(tree.account(lab_a).quota[b200].borrow_limit, kUnlimited);
  EXPECT_EQ(tree.account(lab_a).quota[h100].nominal, 2);
  EXPECT_EQ(tree.account(lab_b).quota[b200].nominal, 16);
  EXPECT_EQ(tree.account(lab_b).quota[b200].borrow_limit, 4);
  EXPECT_EQ(tree.account(lab_b).quota[b200].lend_limit, 8);
  EXPECT_EQ(tree.account(lab_b).quota[h100].nominal, 0);
  EXPECT_EQ(tree.account(lab_b).quota[h100].borrow_limit, 0);
  // Finalize ran: internal nominals are the sums of their children's.
  EXPECT_EQ(tree.account(public_account).quota[b200].nominal, 24);
  EXPECT_EQ(tree.account(public_account).quota[h100].nominal, 2);
  EXPECT_EQ(tree.account(industry).quota[b200].nominal, 100);
  EXPECT_EQ(tree.account(tree.root()).quota[b200].nominal, 124);
  // lab-b keeps 16 - 8 of its idle nominal.
  EXPECT_EQ(tree.account(public_account).children_protected[b200], 8);
}

TEST(ConfigAccountsTest, NoAccountsGivesARootOnly) {
  Config config = MustParse(kOnePool);
  EXPECT_EQ(config.accounts.accounts().size(), 1u);
  EXPECT_EQ(config.accounts.pool_count(), 1u);
}

TEST(ConfigAccountsTest, UnknownPoolInAQuota) {
  std::string error = ConfigError(std::string(kTwoPools) + R"(
accounts:
  - name: lab
    quota: {a100: 8}
)");
  EXPECT_THAT(error, StartsWith("test.yaml:10:13: accounts[0].quota.a100: "));
  EXPECT_THAT(error, HasSubstr("unknown pool 'a100' (pools: b200, h100)"));
}

TEST(ConfigAccountsTest, UnknownQuotaField) {
  std::string error =
      ConfigError(std::string(kOnePool) + "accounts: [{name: a, quota: {p: {nominl: 3}}}]\n");
  EXPECT_THAT(error, HasSubstr("accounts[0].quota.p: unknown field 'nominl'"));
  EXPECT_THAT(error, HasSubstr("nominal, borrow_limit, lend_limit"));
}

TEST(ConfigAccountsTest, DuplicateAccountNamesAreAnError) {
  std::string error = ConfigError(std::string(kOnePool) + R"(
accounts:
  - name: public
    children:
      - name: lab
  - name: industry
    children:
      - name: lab
)");
  EXPECT_THAT(error, HasSubstr("accounts[1].children[0].name"));
  EXPECT_THAT(error, HasSubstr("account 'lab' is defined twice"));
}

TEST(ConfigAccountsTest, AccountWithoutNameIsAnError) {
  EXPECT_THAT(ConfigError(std::string(kOnePool) + "accounts: [{weight: 2}]\n"),
              HasSubstr("accounts[0]: an account needs a name"));
}

TEST(ConfigAccountsTest, GrantsWithDurationsAndDates) {
  Config config = MustParse(std::string(kOnePool) + R"(
accounts:
  - name: startups
    children:
      - name: acme
        grants:
          - name: q1
            gpu_hours: 5000
            start: 2026-01-01
            end: 2026-04-01
          - gpu_hours: 12.5
            start: 90d
          - gpu_hours: 7
)");
  const Account& acme = config.accounts.account(config.accounts.Find("acme").value());
  ASSERT_EQ(acme.grants.size(), 3u);
  EXPECT_EQ(acme.grants[0].name, "q1");
  EXPECT_EQ(acme.grants[0].gpu_hours, 5000);
  EXPECT_EQ(acme.grants[0].start, 1767225600);  // 2026-01-01T00:00:00Z
  EXPECT_EQ(acme.grants[0].end, 1767225600 + 90 * 86400);
  EXPECT_EQ(acme.grants[1].name, "acme#2");
  EXPECT_EQ(acme.grants[1].gpu_hours, 12.5);
  EXPECT_EQ(acme.grants[1].start, 90 * 86400);
  EXPECT_EQ(acme.grants[1].end, kForever);
  EXPECT_EQ(acme.grants[2].start, 0);
  EXPECT_EQ(acme.grants[2].used_gpu_seconds, 0);
}

TEST(ConfigAccountsTest, GrantErrors) {
  auto grant = [](const std::string& fields) {
    return ConfigError(std::string(kOnePool) + "accounts: [{name: a, grants: [" + fields + "]}]\n");
  };
  EXPECT_THAT(grant("{start: 10}"), HasSubstr("accounts[0].grants[0]: a grant needs gpu_hours"));
  EXPECT_THAT(grant("{gpu_hours: -1}"),
              HasSubstr("accounts[0].grants[0].gpu_hours: must not be negative"));
  EXPECT_THAT(grant("{gpu_hours: 1, start: 2d, end: 1d}"), HasSubstr("end must come after start"));
  EXPECT_THAT(grant("{gpu_hours: 1, start: soon}"),
              HasSubstr("accounts[0].grants[0].start: 'soon' is not a time"));
  EXPECT_THAT(grant("{gpu_hours: 1, end: 2026-13-45}"),
              HasSubstr("accounts[0].grants[0].end: '2026-13-45' is not a date"));
}

TEST(ParseTimePointTest, SecondsDurationsAndDates) {
  EXPECT_EQ(ParseTimePoint("3600").value(), 3600);
  EXPECT_EQ(ParseTimePoint("90d").value(), 90 * 86400);
  EXPECT_EQ(ParseTimePoint("1970-01-02").value(), 86400);
  EXPECT_EQ(ParseTimePoint("2026-01-01").value(), 1767225600);
  EXPECT_EQ(ParseTimePoint("2024-02-29").value(), 1709164800);  // a leap day
  EXPECT_EQ(ParseTimePoint("later").status().code(), StatusCode::kInvalidArgument);
}

TEST(ParseTimePointTest, ImpossibleDatesAreRejectedNotRolledOver) {
  for (const char* text : {"2026-02-30", "2026-02-29", "2026-04-31", "2026-13-01", "2026-00-10"}) {
    StatusOr<Time> time = ParseTimePoint(text);
    ASSERT_FALSE(time.ok()) << text << " parsed as " << *time;
    EXPECT_EQ(time.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(time.status().message(), HasSubstr("is not a date")) << text;
  }
}

// ---- policy -------------------------------------------------------------------------------------

TEST(ConfigPolicyTest, DefaultsWithoutAPolicySection) {
  Config config = MustParse(kOnePool);
  const PolicyConfig& policy = config.policy;
  EXPECT_EQ(policy.queue_order, "fair_share");
  EXPECT_EQ(policy.backfill, "easy");
  EXPECT_EQ(policy.reservation_depth, 0);
  EXPECT_EQ(policy.fair_share_half_life, 7 * 86400);
  EXPECT_TRUE(policy.reclaim);
  EXPECT_TRUE(policy.priority_preemption);
  EXPECT_EQ(policy.default_time_limit, 86400);
  EXPECT_EQ(policy.max_time_limit, 0);
  EXPECT_EQ(policy.default_priority_class, "normal");
  ASSERT_EQ(policy.priority_classes.size(), 3u);
  EXPECT_EQ(policy.priority_classes[0].name, "critical");
  EXPECT_TRUE(policy.priority_classes[0].preempts_lower);
}

TEST(ConfigPolicyTest, AllFields) {
  Config config = MustParse(std::string(kOnePool) + R"(
policy:
  queue_order: fifo
  backfill: conservative
  reservation_depth: 8
  fair_share_half_life: 3d
  preemption: {reclaim: false, priority: no}
  default_time_limit: 2h
  max_time_limit: 14d
  default_priority_class: batch
  priority_classes:
    - {name: urgent, value: 500, preempts_lower: true}
    - {name: batch, value: 10}
)");
  const PolicyConfig& policy = config.policy;
  EXPECT_EQ(policy.queue_order, "fifo");
  EXPECT_EQ(policy.backfill, "conservative");
  EXPECT_EQ(policy.reservation_depth, 8);
  EXPECT_EQ(policy.fair_share_half_life, 3 * 86400);
  EXPECT_FALSE(policy.reclaim);
  EXPECT_FALSE(policy.priority_preemption);
  EXPECT_EQ(policy.default_time_limit, 7200);
  EXPECT_EQ(policy.max_time_limit, 14 * 86400);
  EXPECT_EQ(policy.default_priority_class, "batch");
  ASSERT_EQ(policy.priority_classes.size(), 2u);
  EXPECT_EQ(policy.priority_classes[0].name, "urgent");
  EXPECT_EQ(policy.priority_classes[0].value, 500);
  EXPECT_TRUE(policy.priority_classes[0].preempts_lower);
  EXPECT_EQ(policy.priority_classes[1].name, "batch");
  EXPECT_FALSE(policy.priority_classes[1].preempts_lower);
}

TEST(ConfigPolicyTest, UnknownValuesListTheChoices) {
  std::string error = ConfigError(std::string(kOnePool) + "policy: {backfill: greedy}\n");
  EXPECT_THAT(error, HasSubstr("policy.backfill: unknown value 'greedy'; expected one of: easy, "
                               "conservative, none"));
  error = ConfigError(std::string(kOnePool) + "policy: {queue_order: lifo}\n");
  EXPECT_THAT(error, HasSubstr("expected one of: fair_share, fifo"));
}

TEST(ConfigPolicyTest, UnknownDefaultPriorityClass) {
  std::string error =
      ConfigError(std::string(kOnePool) + "policy: {default_priority_class: vip}\n");
  EXPECT_THAT(error, HasSubstr("policy.default_priority_class: 'vip' is not one of the priority "
                               "classes"));
}

TEST(ConfigPolicyTest, OtherPolicyErrors) {
  EXPECT_THAT(ConfigError(std::string(kOnePool) + "policy: {default_time_limit: 0}\n"),
              HasSubstr("policy.default_time_limit: must be positive"));
  EXPECT_THAT(ConfigError(std::string(kOnePool) + "policy: {fair_share_half_life: soon}\n"),
              HasSubstr("policy.fair_share_half_life: 'soon' is not a duration"));
  EXPECT_THAT(ConfigError(std::string(kOnePool) + "policy: {preemption: {reclaim: maybe}}\n"),
              HasSubstr("policy.preemption.reclaim: expected true or false"));
  EXPECT_THAT(ConfigError(std::string(kOnePool) + "policy: {reservation_depth: 0}\n"),
              HasSubstr("policy.reservation_depth: must be between 1 and 10000"));
  EXPECT_THAT(ConfigError(std::string(kOnePool) + R"(
policy:
  priority_classes:
    - {name: a, value: 1}
    - {name: a, value: 2}
)"),
              HasSubstr("policy.priority_classes[1].name: class 'a' is defined twice"));
  EXPECT_THAT(ConfigError(std::string(kOnePool) + "policy: {priority_classes: []}\n"),
              HasSubstr("expected a non-empty list of classes"));
}

// ---- job specs ----------------------------------------------------------------------------------

TEST(JobSpecTest, FullSpec) {
  StatusOr<JobSpec> spec = ParseJobSpecText(R"(
name: pretrain
account: sovereign-fm
user: kim
tasks: 16
gpus_per_task: 8
cpus_per_task: 96
memory_per_task: 1TiB
gpu_model: B200
pools: [nacc-b200, corp-b200]
topology: {level: pod, mode: preferred}
time_limit: 14d
priority: critical
preemptible: false
requeue: no
kind: service
command: [python, train.py, --config, "a b.yaml"]
)",
                                            "job.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->name, "pretrain");
  EXPECT_EQ(spec->account, "sovereign-fm");
  EXPECT_EQ(spec->user, "kim");
  EXPECT_EQ(spec->tasks, 16);
  EXPECT_EQ(spec->gpus_per_task, 8);
  EXPECT_EQ(spec->total_gpus(), 128);
  EXPECT_EQ(spec->cpus_per_task, 96);
  EXPECT_EQ(spec->memory_per_task, int64_t{1} << 40);
  EXPECT_EQ(spec->gpu_model, "B200");
  EXPECT_THAT(spec->pools, ElementsAre("nacc-b200", "corp-b200"));
  EXPECT_EQ(spec->topology.level, Level::kPod);
  EXPECT_EQ(spec->topology.mode, TopologyMode::kPreferred);
  EXPECT_EQ(spec->time_limit, 14 * 86400);
  EXPECT_EQ(spec->priority_class, "critical");
  EXPECT_FALSE(spec->preemptible);
  EXPECT_FALSE(spec->requeue);
  EXPECT_EQ(spec->kind, JobKind::kService);
  EXPECT_THAT(spec->command, ElementsAre("python", "train.py", "--config", "a b.yaml"));
}

TEST(JobSpecTest, MinimalSpecHasDefaults) {
  StatusOr<JobSpec> spec = ParseJobSpecText("account: lab\n", "job.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->tasks, 1);
  EXPECT_EQ(spec->gpus_per_task, 1);
  EXPECT_EQ(spec->time_limit, 0);
  EXPECT_TRUE(spec->preemptible);
  EXPECT_TRUE(spec->requeue);
  EXPECT_EQ(spec->kind, JobKind::kBatch);
  EXPECT_EQ(spec->topology.mode, TopologyMode::kNone);
  EXPECT_TRUE(spec->pools.empty());
  EXPECT_TRUE(spec->command.empty());
}

TEST(JobSpecTest, TopologyShorthandIsRequired) {
  StatusOr<JobSpec> spec = ParseJobSpecText("account: lab\ntopology: leaf\n", "job.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->topology.level, Level::kLeaf);
  EXPECT_EQ(spec->topology.mode, TopologyMode::kRequired);

  spec = ParseJobSpecText("account: lab\ntopology: {level: nvlink}\n", "job.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->topology.level, Level::kNvlink);
  EXPECT_EQ(spec->topology.mode, TopologyMode::kRequired);
}

TEST(JobSpecTest, GpusIsAnAliasForGpusPerTask) {
  StatusOr<JobSpec> spec = ParseJobSpecText("account: lab\ngpus: 4\npools: solo\n", "job.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->gpus_per_task, 4);
  EXPECT_THAT(spec->pools, ElementsAre("solo"));
}

TEST(JobSpecTest, GpusAndGpusPerTaskConflict) {
  std::string error = JobError("account: lab\ngpus: 4\ngpus_per_task: 4\n");
  EXPECT_THAT(error, StartsWith("job.yaml:2:7: job.gpus: "));
  EXPECT_THAT(error, HasSubstr("give gpus_per_task or gpus, not both"));
}

TEST(JobSpecTest, CommandMustBeAList) {
  EXPECT_THAT(JobError("account: lab\ncommand: python train.py\n"),
              HasSubstr("job.command: expected a non-empty list of arguments"));
  EXPECT_THAT(JobError("account: lab\ncommand: []\n"),
              HasSubstr("job.command: expected a non-empty list of arguments"));
  EXPECT_THAT(JobError("account: lab\ncommand: [python, {a: b}]\n"),
              HasSubstr("job.command[1]: expected a string"));
}

TEST(JobSpecTest, MissingAccountIsLeftForTheServer) {
  StatusOr<JobSpec> spec = ParseJobSpecText("tasks: 2\n", "job.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  EXPECT_EQ(spec->account, "");
}

TEST(JobSpecTest, OtherErrors) {
  EXPECT_THAT(JobError("account: lab\ngpu: 4\n"), HasSubstr("job: unknown field 'gpu'"));
  EXPECT_THAT(JobError("account: lab\ntopology: rack\n"),
              HasSubstr("job.topology: unknown topology level 'rack'"));
  EXPECT_THAT(JobError("account: lab\ntopology: {level: leaf, mode: strict}\n"),
              HasSubstr("job.topology.mode: unknown mode 'strict'"));
  EXPECT_THAT(JobError("account: lab\ngpus: 17\n"), HasSubstr("job.gpus: must be between 1 and"));
  EXPECT_THAT(JobError("account: lab\ntasks: 0\n"), HasSubstr("job.tasks: must be between 1 and"));
  EXPECT_THAT(JobError("account: lab\ntime_limit: 0\n"),
              HasSubstr("job.time_limit: must be positive"));
  EXPECT_THAT(JobError("account: lab\ntime_limit: 1h30\n"),
              HasSubstr("job.time_limit: '1h30' is not a duration"));
  EXPECT_THAT(JobError("account: lab\nmemory_per_task: 12Q\n"),
              HasSubstr("job.memory_per_task: '12Q' is not a memory size"));
  EXPECT_THAT(JobError("account: lab\nkind: daemon\n"),
              HasSubstr("job.kind: unknown job kind 'daemon'"));
  EXPECT_THAT(JobError("account: [lab]\n"), HasSubstr("job.account: expected a string"));
  EXPECT_THAT(JobError("account: lab\nname: [\n"), HasSubstr("not valid YAML"));
}

}  // namespace
}  // namespace allot
