// The Controller's views and changes for operators and tenants other than jobs: accounts and
// their quotas and grants, nodes and pools, usage, pending reasons, the scheduler's status,
// tokens and the audit log. Kept apart from controller.cc, which holds the job lifecycle.
#include "server/controller.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "server/controller_internal.h"

namespace allot {
namespace {

using nlohmann::json;
using namespace controller_internal;

StatusOr<std::optional<int64_t>> OptionalCount(const json& body, const char* key) {
  if (!body.contains(key) || body[key].is_null()) return std::optional<int64_t>();
  if (!body[key].is_number_integer() || body[key].get<int64_t>() < 0) {
    return InvalidArgumentError("{}: expected a non-negative integer or null", key);
  }
  return std::optional<int64_t>(body[key].get<int64_t>());
}

StatusOr<Time> TimeField(const json& body, const char* key, Time fallback) {
  if (!body.contains(key) || body[key].is_null()) return fallback;
  if (body[key].is_number_integer()) return body[key].get<Time>();
  if (body[key].is_string()) {
    StatusOr<Time> parsed = ParseTimePoint(body[key].get<std::string>());
    if (!parsed.ok()) return InvalidArgumentError("{}: {}", key, parsed.status().message());
    return *parsed;
  }
  return InvalidArgumentError("{}: expected Unix seconds or a date YYYY-MM-DD", key);
}

json Limit(int64_t value) { return value >= kUnlimited ? json(nullptr) : json(value); }

}  // namespace

// ---- Accounts ---------------------------------------------------------------------------------

json Controller::AccountJson(AccountIndex index) const {
  const AccountTree& tree = scheduler_->model().accounts();
  const Cluster& cluster = scheduler_->model().cluster();
  const Account& account = tree.account(index);
  json doc;
  doc["name"] = account.name;
  doc["path"] = account.path;
  doc["parent"] = account.parent == kNoAccount || account.parent == tree.root() ? "" : tree.account(account.parent).name;
  doc["weight"] = account.weight;
  doc["leaf"] = account.is_leaf();
  doc["allocated_gpus"] = account.allocated_total;
  json quotas = json::object();
  for (PoolIndex pool = 0; pool < cluster.pools().size(); ++pool) {
    const PoolQuota& quota = account.quota[pool];
    if (quota.nominal == 0 && account.allocated[pool] == 0 && quota.borrow_limit >= kUnlimited &&
        quota.lend_limit >= kUnlimited) {
      continue;
    }
    // Borrowed: held beyond the nominal quota. Lent: what siblings (the cohort) hold beyond
    // their nominal, shared out among the siblings with idle nominal they may lend, in
    // proportion to it (a lend limit caps what counts), so that the cohort's lent adds up to
    // its borrowed.
    const int64_t borrowed = std::max<int64_t>(0, account.allocated[pool] - quota.nominal);
    auto lendable = [pool](const Account& of) {
      const PoolQuota& q = of.quota[pool];
      return std::min<int64_t>(std::max<int64_t>(0, q.nominal - of.allocated[pool]), q.lend_limit);
    };
    int64_t cohort_borrowed = 0, cohort_lendable = 0;
    if (account.parent != kNoAccount) {
      for (AccountIndex sibling : tree.account(account.parent).children) {
        const Account& other = tree.account(sibling);
        cohort_borrowed += std::max<int64_t>(0, other.allocated[pool] - other.quota[pool].nominal);
        cohort_lendable += lendable(other);
      }
    }
    const int64_t lent = cohort_lendable == 0 ? 0
                         : static_cast<int64_t>(static_cast<double>(std::min(cohort_borrowed, cohort_lendable)) *
                                                static_cast<double>(lendable(account)) /
                                                static_cast<double>(cohort_lendable));
    quotas[cluster.pool(pool).name] = {{"nominal", quota.nominal},
                                       {"borrow_limit", Limit(quota.borrow_limit)},
                                       {"lend_limit", Limit(quota.lend_limit)},
                                       {"allocated", account.allocated[pool]},
                                       {"borrowed", borrowed},
                                       {"lent", lent}};
  }
  doc["quotas"] = quotas;
  // Fair share as Slurm users read it: 2^(-usage share / weight share) among siblings, where
  // usage is recent use (decayed with the half-life, as average GPUs) plus GPUs held now, what
  // the fair_share order ranks by. 1: unused; 0.5: exactly its share; near 0: far over it.
  const Duration half_life = scheduler_->policy().fair_share_half_life;
  auto recent_gpus = [&](const Account& of) {
    return half_life > 0 ? of.decayed_usage * std::log(2.0) / static_cast<double>(half_life)
                         : of.decayed_usage / 86400.0;
  };
  double usage = recent_gpus(account) + static_cast<double>(account.allocated_total);
  double cohort_usage = 0, cohort_weight = 0;
  if (account.parent != kNoAccount) {
    for (AccountIndex sibling : tree.account(account.parent).children) {
      const Account& other = tree.account(sibling);
      cohort_usage += recent_gpus(other) + static_cast<double>(other.allocated_total);
      cohort_weight += other.weight;
    }
  }
  doc["recent_gpus"] = recent_gpus(account);
  double usage_share = cohort_usage > 0 ? usage / cohort_usage : 0;
  double weight_share = cohort_weight > 0 ? account.weight / cohort_weight : 1;
  doc["fair_share_factor"] = weight_share > 0 ? std::exp2(-usage_share / weight_share) : 0.0;
  json grants = json::array();
  for (const Grant& grant : account.grants) {
    grants.push_back({{"name", grant.name}, {"gpu_hours", grant.gpu_hours},
                      {"used_gpu_hours", grant.used_gpu_seconds / 3600.0},
                      {"start", grant.start}, {"end", grant.end >= kForever ? json(nullptr) : json(grant.end)}});
  }
  doc["grants"] = grants;
  return doc;
}

StatusOr<json> Controller::ListAccounts(const Principal& who) {
  if (who.role == Role::kAgent) return Status(StatusCode::kPermissionDenied, "agents cannot read accounts");
  std::lock_guard lock(mutex_);
  const AccountTree& tree = scheduler_->model().accounts();
  json accounts = json::array();
  for (AccountIndex index = 1; index < tree.accounts().size(); ++index) {
    if (Sees(who, index)) accounts.push_back(AccountJson(index));
  }
  return json{{"accounts", accounts}};
}

StatusOr<json> Controller::GetAccount(const Principal& who, std::string_view name) {
  if (who.role == Role::kAgent) return Status(StatusCode::kPermissionDenied, "agents cannot read accounts");
  std::lock_guard lock(mutex_);
  ALLOT_ASSIGN_OR_RETURN(AccountIndex account, VisibleAccount(who, name));
  return AccountJson(account);
}

StatusOr<json> Controller::SetQuota(const Principal& who, std::string_view account_name,
                                    std::string_view pool_name, std::string_view body) {
  if (!who.is_operator()) return Status(StatusCode::kPermissionDenied, "only operators change quotas");
  ALLOT_ASSIGN_OR_RETURN(json request, ParseBody(body, {"nominal", "borrow_limit", "lend_limit"}));
  ALLOT_ASSIGN_OR_RETURN(std::optional<int64_t> nominal, OptionalCount(request, "nominal"));
  ALLOT_ASSIGN_OR_RETURN(std::optional<int64_t> borrow, OptionalCount(request, "borrow_limit"));
  ALLOT_ASSIGN_OR_RETURN(std::optional<int64_t> lend, OptionalCount(request, "lend_limit"));
  Store::Ticket ticket;
  json reply;
  {
    std::lock_guard lock(mutex_);
    ALLOT_ASSIGN_OR_RETURN(AccountIndex account, VisibleAccount(who, account_name));
    StatusOr<PoolIndex> pool = scheduler_->model().cluster().FindPool(pool_name);
    if (!pool.ok()) return NotFoundError("no pool '{}'", pool_name);
    PoolQuota quota = scheduler_->model().accounts().account(account).quota[*pool];
    if (request.contains("nominal")) {
      quota.nominal_set = nominal.has_value();
      quota.nominal = nominal.value_or(0);
    }
    if (request.contains("borrow_limit")) quota.borrow_limit = borrow.value_or(kUnlimited);
    if (request.contains("lend_limit")) quota.lend_limit = lend.value_or(kUnlimited);
    if (Status set = scheduler_->SetQuota(account, *pool, quota); !set.ok()) {
      return InvalidArgumentError("{}", set.message());
    }
    json stored = {{"nominal", quota.nominal_set ? json(quota.nominal) : json(nullptr)},
                   {"borrow_limit", Limit(quota.borrow_limit)}, {"lend_limit", Limit(quota.lend_limit)}};
    WriteBatch batch;
    batch.PutSetting({"quota", fmt::format("{}/{}", account_name, pool_name), stored.dump()});
    Audit(who, "quota.set", fmt::format("{}/{}", account_name, pool_name), request, batch);
    ticket = Queue(std::move(batch));
    reply = AccountJson(account);
  }
  MarkDirty();
  WaitDurable(ticket);
  return reply;
}

StatusOr<json> Controller::SetGrant(const Principal& who, std::string_view account_name,
                                    std::string_view grant_name, std::string_view body) {
  if (!who.is_operator()) return Status(StatusCode::kPermissionDenied, "only operators change grants");
  ALLOT_ASSIGN_OR_RETURN(json request, ParseBody(body, {"gpu_hours", "start", "end"}));
  if (!request.contains("gpu_hours") || !request["gpu_hours"].is_number() || request["gpu_hours"].get<double>() < 0) {
    return InvalidArgumentError("gpu_hours: expected a non-negative number");
  }
  ALLOT_ASSIGN_OR_RETURN(Time start, TimeField(request, "start", 0));
  ALLOT_ASSIGN_OR_RETURN(Time end, TimeField(request, "end", kForever));
  Grant grant{.name = std::string(grant_name), .gpu_hours = request["gpu_hours"].get<double>(), .start = start, .end = end};
  Store::Ticket ticket;
  json reply;
  {
    std::lock_guard lock(mutex_);
    ALLOT_ASSIGN_OR_RETURN(AccountIndex account, VisibleAccount(who, account_name));
    if (Status set = scheduler_->SetGrant(account, grant); !set.ok()) return InvalidArgumentError("{}", set.message());
    WriteBatch batch;
    json stored = {{"gpu_hours", grant.gpu_hours}, {"start", grant.start}, {"end", grant.end}};
    batch.PutSetting({"grant", fmt::format("{}/{}", account_name, grant_name), stored.dump()});
    Audit(who, "grant.set", fmt::format("{}/{}", account_name, grant_name), request, batch);
    ticket = Queue(std::move(batch));
    reply = AccountJson(account);
  }
  MarkDirty();
  WaitDurable(ticket);
  return reply;
}

// ---- Nodes and pools --------------------------------------------------------------------------

StatusOr<NodeIndex> Controller::FindNode(std::string_view name) const {
  StatusOr<NodeIndex> node = scheduler_->model().cluster().FindNode(name);
  if (!node.ok()) return NotFoundError("no node '{}'", name);
  return *node;
}

json Controller::NodeJson(NodeIndex index) const {
  const Model& model = scheduler_->model();
  const Node& node = model.cluster().node(index);
  const Pool& pool = model.cluster().pool(node.pool);
  auto reason = drain_reasons_.find(index);
  return {{"name", node.name}, {"pool", pool.name}, {"gpu_model", pool.gpu_model}, {"gpus", node.gpus},
          {"gpus_allocated", node.gpus - model.free().UnallocatedGpus(index)}, {"cpus", node.cpus},
          {"memory", node.memory_bytes}, {"state", NodeStateName(node.state)},
          {"reason", reason == drain_reasons_.end() ? "" : reason->second}, {"jobs", model.JobsOnNode(index)}};
}

StatusOr<json> Controller::ListNodes(const Principal&, std::string_view pool_name, std::string_view state_name) {
  std::lock_guard lock(mutex_);
  const Cluster& cluster = scheduler_->model().cluster();
  std::optional<PoolIndex> pool;
  if (!pool_name.empty()) {
    StatusOr<PoolIndex> found = cluster.FindPool(pool_name);
    if (!found.ok()) return NotFoundError("no pool '{}'", pool_name);
    pool = *found;
  }
  std::optional<NodeState> state;
  if (!state_name.empty()) {
    StatusOr<NodeState> parsed = ParseNodeState(state_name);
    if (!parsed.ok()) return InvalidArgumentError("unknown node state '{}'; use up, draining or down", state_name);
    state = *parsed;
  }
  json nodes = json::array();
  for (NodeIndex node = 0; node < cluster.nodes().size(); ++node) {
    if (pool && cluster.node(node).pool != *pool) continue;
    if (state && cluster.node(node).state != *state) continue;
    nodes.push_back(NodeJson(node));
  }
  return json{{"nodes", nodes}};
}

StatusOr<json> Controller::DrainNode(const Principal& who, std::string_view name, std::string_view body) {
  if (!who.is_operator()) return Status(StatusCode::kPermissionDenied, "only operators drain nodes");
  ALLOT_ASSIGN_OR_RETURN(json request, ParseBody(body, {"reason"}));
  if (request.contains("reason") && !request["reason"].is_string()) return InvalidArgumentError("reason: expected a string");
  std::string reason = request.value("reason", "drained by " + who.user);
  Store::Ticket ticket;
  json reply;
  {
    std::lock_guard lock(mutex_);
    ALLOT_ASSIGN_OR_RETURN(NodeIndex node, FindNode(name));
    if (scheduler_->model().cluster().node(node).state == NodeState::kDown) {
      return FailedPreconditionError("node '{}' is down; resume it first", name);
    }
    (void)scheduler_->SetNodeState(node, NodeState::kDraining, Now());
    drain_reasons_[node] = reason;
    WriteBatch batch;
    batch.PutSetting({"node", std::string(name), json{{"state", "draining"}, {"reason", reason}}.dump()});
    Audit(who, "node.drain", std::string(name), json{{"reason", reason}}, batch);
    ticket = Queue(std::move(batch));
    reply = NodeJson(node);
  }
  MarkDirty();
  WaitDurable(ticket);
  return reply;
}

StatusOr<json> Controller::ResumeNode(const Principal& who, std::string_view name) {
  if (!who.is_operator()) return Status(StatusCode::kPermissionDenied, "only operators resume nodes");
  Store::Ticket ticket;
  json reply;
  {
    std::lock_guard lock(mutex_);
    ALLOT_ASSIGN_OR_RETURN(NodeIndex node, FindNode(name));
    (void)scheduler_->SetNodeState(node, NodeState::kUp, Now());
    drain_reasons_.erase(node);
    WriteBatch batch;
    batch.DeleteSetting("node", std::string(name));
    Audit(who, "node.resume", std::string(name), json(), batch);
    ticket = Queue(std::move(batch));
    reply = NodeJson(node);
  }
  MarkDirty();
  WaitDurable(ticket);
  return reply;
}

StatusOr<json> Controller::ListPools(const Principal&) {
  std::lock_guard lock(mutex_);
  const Model& model = scheduler_->model();
  const AccountTree& tree = model.accounts();
  const Cluster& cluster = model.cluster();
  json pools = json::array();
  // GPUs of a pool or pod by what they can do now: allocated, down (their node is), and idle on
  // a draining node (they take no new work).
  struct Counts {
    int64_t gpus = 0, allocated = 0, down = 0, draining = 0;
    size_t nodes = 0, up = 0;
    json Json(std::string_view name) const {
      return {{"name", name}, {"nodes", nodes}, {"nodes_up", up}, {"gpus", gpus}, {"gpus_allocated", allocated},
              {"gpus_down", down}, {"gpus_draining", draining}};
    }
  };
  for (PoolIndex index = 0; index < cluster.pools().size(); ++index) {
    const Pool& pool = cluster.pool(index);
    Counts whole;
    std::map<DomainIndex, Counts> pods;
    for (NodeIndex node_index : pool.nodes) {
      const Node& node = cluster.node(node_index);
      const int allocated = node.gpus - model.free().UnallocatedGpus(node_index);
      for (Counts* counts : {&whole, &pods[cluster.AncestorAt(node_index, Level::kPod)]}) {
        counts->nodes++;
        counts->gpus += node.gpus;
        counts->allocated += allocated;
        counts->up += node.state == NodeState::kUp ? 1 : 0;
        if (node.state == NodeState::kDown) counts->down += node.gpus;
        if (node.state == NodeState::kDraining) counts->draining += node.gpus - allocated;
      }
    }
    json pod_list = json::array();
    for (const auto& [pod, counts] : pods) pod_list.push_back(counts.Json(cluster.domain(pod).name));
    json doc = whole.Json(pool.name);
    doc["site"] = pool.site;
    doc["gpu_model"] = pool.gpu_model;
    doc["gpus"] = pool.total_gpus;
    doc["gpus_allocated"] = tree.account(tree.root()).allocated[index];
    doc["pods"] = std::move(pod_list);
    pools.push_back(std::move(doc));
  }
  return json{{"pools", pools}};
}

// ---- Usage, reasons, status -------------------------------------------------------------------

StatusOr<json> Controller::Usage(const Principal& who, const UsageQuery& query) {
  if (who.role == Role::kAgent) return Status(StatusCode::kPermissionDenied, "agents cannot read usage");
  const Time now = Now();
  Time end = DayStart(now) + kDay;
  if (!query.end.empty()) {
    StatusOr<Time> parsed = ParseTimePoint(query.end);
    if (!parsed.ok()) return InvalidArgumentError("end: {}", parsed.status().message());
    end = *parsed;
  }
  Time start = end - 30 * kDay;
  if (!query.start.empty()) {
    StatusOr<Time> parsed = ParseTimePoint(query.start);
    if (!parsed.ok()) return InvalidArgumentError("start: {}", parsed.status().message());
    start = *parsed;
  }
  if (end <= start) return InvalidArgumentError("end must be after start");
  std::string period = query.period.empty() ? "total" : query.period;
  if (period != "day" && period != "week" && period != "month" && period != "total") {
    return InvalidArgumentError("unknown period '{}'; use day, week, month or total", period);
  }
  auto bucket = [&](Time day) -> Time {
    if (period == "total") return start;
    if (period == "day") return day;
    if (period == "week") return day - ((day / kDay + 3) % 7) * kDay;  // 1970-01-01 was a Thursday
    using namespace std::chrono;
    year_month_day date{sys_days{days{day / kDay}}};
    return sys_days{date.year() / date.month() / 1}.time_since_epoch().count() * kDay;
  };

  ALLOT_ASSIGN_OR_RETURN(std::vector<UsageRow> rows, store_->LoadUsage(DayStart(start), end));
  std::lock_guard lock(mutex_);
  const AccountTree& tree = scheduler_->model().accounts();
  AccountIndex scope = who.is_operator() ? tree.root() : who.account_index;
  if (!query.account.empty()) {
    ALLOT_ASSIGN_OR_RETURN(scope, VisibleAccount(who, query.account));
  }
  // Running jobs count up to now, as sreport counts a running job's hours so far.
  for (const auto& [id, job] : scheduler_->model().jobs()) {
    if (job.state != JobState::kRunning) continue;
    std::vector<UsageRow> so_far = RunUsage(job, now);
    rows.insert(rows.end(), so_far.begin(), so_far.end());
  }

  std::map<std::pair<AccountIndex, Time>, double> seconds;  // (account, period start) -> GPU-seconds
  for (const UsageRow& row : rows) {
    if (row.day < DayStart(start) || row.day >= end) continue;
    StatusOr<AccountIndex> account = tree.Find(row.account);
    if (!account.ok()) continue;
    for (AccountIndex at : tree.PathToRoot(*account)) {
      if (at == tree.root() && scope != tree.root()) break;
      if (!tree.IsAncestorOrSelf(scope, at)) break;
      seconds[{at, bucket(row.day)}] += row.gpu_seconds;
    }
  }
  json result = json::array();
  // Accounts in tree order (parents before children), periods in time order.
  for (AccountIndex account = 0; account < tree.accounts().size(); ++account) {
    for (auto it = seconds.lower_bound({account, std::numeric_limits<Time>::min()});
         it != seconds.end() && it->first.first == account; ++it) {
      result.push_back({{"account", account == tree.root() ? "root" : tree.account(account).name},
                        {"path", account == tree.root() ? "" : tree.account(account).path},
                        {"period_start", it->first.second}, {"gpu_hours", it->second / 3600.0}});
    }
  }
  return json{{"start", start}, {"end", end}, {"period", period}, {"rows", result}};
}

StatusOr<json> Controller::PendingReasons(const Principal& who) {
  if (who.role == Role::kAgent) return Status(StatusCode::kPermissionDenied, "agents cannot read jobs");
  std::lock_guard lock(mutex_);
  std::map<std::string, std::pair<size_t, std::string>> reasons;
  for (JobId id : scheduler_->model().pending()) {
    const Job& job = *scheduler_->model().FindJob(id);
    if (!Sees(who, job.account)) continue;
    const JobRecord& record = records_.at(id);
    PendingReason reason = ReasonFor(job, record);
    auto& [count, example] = reasons[ReasonCodeFor(record, reason)];
    if (count++ == 0) example = fmt::format("job {}: {}", id, reason.message);
  }
  json list = json::array();
  for (const auto& [code, entry] : reasons) {
    list.push_back({{"code", code}, {"count", entry.first}, {"example", entry.second}});
  }
  return json{{"reasons", list}};
}

StatusOr<json> Controller::PendingQueue(const Principal& who, const QueueQuery& query) {
  if (who.role == Role::kAgent) return Status(StatusCode::kPermissionDenied, "agents cannot read jobs");
  if (query.limit == 0 || query.limit > 1000) return InvalidArgumentError("limit must be between 1 and 1000");
  std::lock_guard lock(mutex_);
  const Model& model = scheduler_->model();
  const AccountTree& tree = model.accounts();
  AccountIndex scope = who.is_operator() ? tree.root() : who.account_index;
  if (!query.account.empty()) {
    ALLOT_ASSIGN_OR_RETURN(scope, VisibleAccount(who, query.account));
  }
  RefreshQueueOrder();
  auto entry = [&](const Job& job, json place) {
    const JobRecord& record = records_.at(job.id);
    PendingReason reason = ReasonFor(job, record);
    return json{{"position", std::move(place)},
                {"id", job.id},
                {"name", job.spec.name},
                {"account", job.spec.account},
                {"user", job.spec.user},
                {"gpus", job.gpus()},
                {"tasks", job.spec.tasks},
                {"priority_class", job.spec.priority_class.empty() ? scheduler_->policy().default_priority_class
                                                                   : job.spec.priority_class},
                {"submit_time", job.submit_time},
                {"time_limit", job.spec.time_limit},
                {"held", record.user_held},
                {"reason", {{"code", ReasonCodeFor(record, reason)}, {"message", reason.message}}},
                {"expected_start", reason.code == ReasonCode::kReserved ? json(job.reserved_start) : json(nullptr)}};
  };
  auto wanted = [&](const Job& job) {
    return tree.IsAncestorOrSelf(scope, job.account) && (query.user.empty() || job.spec.user == query.user);
  };
  // The page is cut from the visible jobs in queue order, then the held ones; only the page's
  // jobs are written out, so a page of a 100,000-job queue costs a walk, not 100,000 documents.
  json jobs = json::array();
  size_t visible = 0;
  auto take = [&](const Job& job, json place) {
    if (visible >= query.offset && jobs.size() < query.limit) jobs.push_back(entry(job, std::move(place)));
    ++visible;
  };
  for (size_t i = 0; i < queue_order_.size(); ++i) {
    const Job* job = model.FindJob(queue_order_[i]);
    if (job && job->state == JobState::kPending && !job->held && wanted(*job)) take(*job, i + 1);
  }
  std::vector<JobId> held;
  for (JobId id : model.pending()) {
    const Job* job = model.FindJob(id);
    if (job && job->held && wanted(*job)) held.push_back(id);
  }
  std::sort(held.begin(), held.end());
  for (JobId id : held) take(*model.FindJob(id), nullptr);
  return json{{"jobs", jobs}, {"total", visible}, {"offset", query.offset}, {"queue_length", queue_order_.size()},
              {"last_pass_time", last_pass_time_}, {"running", model.running_count()}};
}

StatusOr<json> Controller::SchedulerStatus(const Principal&) {
  std::lock_guard lock(mutex_);
  const Model& model = scheduler_->model();
  size_t held = 0;
  for (JobId id : model.pending()) held += model.FindJob(id)->held ? 1 : 0;
  return json{{"passes", passes_}, {"last_pass_time", last_pass_time_}, {"last_pass_seconds", last_pass_seconds_},
              {"pending", model.pending().size()}, {"running", model.running_count()}, {"held", held},
              {"gpus", model.cluster().total_gpus()},
              {"gpus_allocated", model.accounts().account(model.accounts().root()).allocated_total},
              {"pass_interval", scheduler_->policy().pass_interval}, {"next_job_id", next_id_}};
}

// ---- Tokens -----------------------------------------------------------------------------------

StatusOr<json> Controller::CreateToken(const Principal& who, std::string_view body) {
  if (!who.is_operator()) return Status(StatusCode::kPermissionDenied, "only operators create tokens");
  ALLOT_ASSIGN_OR_RETURN(json request, ParseBody(body, {"role", "account", "user", "node"}));
  if (!request.contains("role") || !request["role"].is_string()) {
    return InvalidArgumentError("role: expected operator, tenant, agent or bootstrap");
  }
  ALLOT_ASSIGN_OR_RETURN(Role role, ParseRole(request["role"].get<std::string>()));
  for (const char* key : {"account", "user", "node"}) {
    if (request.contains(key) && !request[key].is_string()) return InvalidArgumentError("{}: expected a string", key);
  }
  // An agent's token is its node's alone (docs/security.md): a stolen one speaks for one node.
  std::string node = request.value("node", "");
  if (role == Role::kAgent && node.empty()) {
    return InvalidArgumentError("an agent token is bound to one node: give node (allot token create --role agent --node N)");
  }
  if (role != Role::kAgent && !node.empty()) return InvalidArgumentError("node: only agent tokens are bound to a node");
  if (!node.empty() && !scheduler_->model().cluster().FindNode(node).ok()) {
    return InvalidArgumentError("node: no node '{}' in the config", node);
  }
  std::string account = request.value("account", "");
  if (role == Role::kBootstrap && !account.empty()) return InvalidArgumentError("account: a bootstrap token has none");
  if (role == Role::kTenant && account.empty()) {
    return InvalidArgumentError("a tenant token needs an account: the root of the subtree it may use");
  }
  if (!account.empty() && !scheduler_->model().accounts().Find(account).ok()) {
    return InvalidArgumentError("unknown account '{}'", account);
  }
  std::string user = request.value("user", role == Role::kTenant ? account : std::string(RoleName(role)));
  ALLOT_RETURN_IF_ERROR(CheckUserName(user, "user"));
  std::string token = NewToken();
  TokenRow row{.hash = HashToken(token), .user = role == Role::kAgent && !request.contains("user") ? "agent:" + node : user,
               .role = std::string(RoleName(role)), .account = account, .created = Now(), .node = node};
  Store::Ticket ticket;
  {
    std::lock_guard lock(mutex_);
    std::unique_lock tokens_lock(tokens_mutex_);
    row.id = next_token_id_++;
    WriteBatch batch;
    batch.PutToken(row);
    // What the token may do, never the token itself.
    json detail = {{"role", row.role}, {"account", row.account}, {"user", row.user}};
    if (!row.node.empty()) detail["node"] = row.node;
    Audit(who, "token.create", std::to_string(row.id), detail, batch);
    ticket = Queue(std::move(batch));
  }
  WaitDurable(ticket);
  {
    std::unique_lock tokens_lock(tokens_mutex_);
    tokens_by_hash_.emplace(row.hash, row);
  }
  json reply = {{"id", row.id}, {"token", token}, {"role", row.role}, {"account", row.account}, {"user", row.user}};
  if (!row.node.empty()) reply["node"] = row.node;
  return reply;
}

StatusOr<json> Controller::RegisterAgent(const Principal& who, std::string_view node) {
  if (who.role != Role::kBootstrap && !who.is_operator()) {
    return Status(StatusCode::kPermissionDenied, "only bootstrap and operator tokens enrol nodes");
  }
  if (!scheduler_->model().cluster().FindNode(node).ok()) return NotFoundError("no node '{}' in the config", node);
  std::string token = NewToken();
  TokenRow row{.hash = HashToken(token), .user = fmt::format("agent:{}", node), .role = std::string(RoleName(Role::kAgent)),
               .created = Now(), .node = std::string(node)};
  Store::Ticket ticket;
  {
    std::lock_guard lock(mutex_);
    std::unique_lock tokens_lock(tokens_mutex_);
    for (const auto& [hash, live] : tokens_by_hash_) {
      if (live.role == RoleName(Role::kAgent) && live.node == node) {
        return Status(StatusCode::kAlreadyExists,
                      fmt::format("node '{}' is enrolled already (agent token {}); an operator revokes that token "
                                  "(allot token revoke {}) to enrol the node again", node, live.id, live.id));
      }
    }
    row.id = next_token_id_++;
    WriteBatch batch;
    batch.PutToken(row);
    Audit(who, "node.enrol", std::string(node), json{{"token_id", row.id}}, batch);
    ticket = Queue(std::move(batch));
    // Visible at once (under the lock), so a second enrolment of the node racing this one fails.
    tokens_by_hash_.emplace(row.hash, row);
  }
  WaitDurable(ticket);
  return json{{"id", row.id}, {"token", token}, {"role", row.role}, {"user", row.user}, {"node", row.node}};
}

StatusOr<json> Controller::ListTokens(const Principal& who) {
  if (!who.is_operator()) return Status(StatusCode::kPermissionDenied, "only operators list tokens");
  ALLOT_ASSIGN_OR_RETURN(std::vector<TokenRow> rows, store_->LoadTokens());
  json tokens = json::array();
  for (const TokenRow& row : rows) {
    tokens.push_back({{"id", row.id}, {"role", row.role}, {"account", row.account}, {"user", row.user},
                      {"node", row.node}, {"created", row.created}, {"revoked", row.revoked}});
  }
  return json{{"tokens", tokens}};
}

StatusOr<json> Controller::RevokeToken(const Principal& who, int64_t id) {
  if (!who.is_operator()) return Status(StatusCode::kPermissionDenied, "only operators revoke tokens");
  Store::Ticket ticket;
  {
    std::lock_guard lock(mutex_);
    std::unique_lock tokens_lock(tokens_mutex_);
    auto found = std::find_if(tokens_by_hash_.begin(), tokens_by_hash_.end(),
                              [&](const auto& entry) { return entry.second.id == id; });
    if (found == tokens_by_hash_.end()) return NotFoundError("no live token {}", id);
    if (found->second.role == RoleName(Role::kOperator)) {
      size_t operators = std::count_if(tokens_by_hash_.begin(), tokens_by_hash_.end(), [](const auto& entry) {
        return entry.second.role == RoleName(Role::kOperator);
      });
      if (operators == 1) {
        return FailedPreconditionError("token {} is the last operator token; revoking it would lock every operator "
                                       "out: create another with `allot token create --role operator` first", id);
      }
    }
    TokenRow row = found->second;
    row.revoked = true;
    tokens_by_hash_.erase(found);
    WriteBatch batch;
    batch.PutToken(row);
    Audit(who, "token.revoke", std::to_string(id), json{{"role", row.role}, {"account", row.account}, {"user", row.user}}, batch);
    ticket = Queue(std::move(batch));
  }
  WaitDurable(ticket);
  return json{{"id", id}, {"revoked", true}};
}

StatusOr<json> Controller::ListAudit(const Principal& who, const AuditQuery& query) {
  if (!who.is_operator()) return Status(StatusCode::kPermissionDenied, "only operators read the audit log");
  if (query.limit == 0 || query.limit > 100000) return InvalidArgumentError("limit must be between 1 and 100000");
  ALLOT_ASSIGN_OR_RETURN(std::vector<AuditRow> rows, store_->ListAudit(query));
  json entries = json::array();
  for (const AuditRow& row : rows) {
    json detail = row.detail.empty() ? json(nullptr) : json::parse(row.detail, nullptr, false);
    entries.push_back({{"id", row.id}, {"time", row.time}, {"user", row.user}, {"token_id", row.token_id},
                       {"role", row.role}, {"action", row.action}, {"target", row.target},
                       {"detail", detail.is_discarded() ? json(row.detail) : detail}, {"remote", row.remote}});
  }
  return json{{"entries", entries}};
}

}  // namespace allot
