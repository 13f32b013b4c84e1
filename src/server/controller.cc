#include "server/controller.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unordered_set>

#include "api/agent_protocol.h"
#include "api/submission.h"
#include "core/hostlist.h"
#include "core/input_limits.h"

namespace allot {
namespace {

using nlohmann::json;

constexpr Time kDay = 86400;
const std::vector<std::string> kLiveStates = {"pending", "running"};
const std::vector<std::string> kEndedStates = {"completed", "failed", "cancelled", "timeout",
                                               "node_fail", "preempted"};

Time DayStart(Time t) { return t - ((t % kDay) + kDay) % kDay; }

// A JSON request body: an object whose keys are all in `allowed`.
StatusOr<json> ParseBody(std::string_view body, const std::vector<std::string_view>& allowed) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return json::object();
  // Before the parser: a deep document would be copied recursively below, and text that is not
  // UTF-8 could not be written back out.
  ALLOT_RETURN_IF_ERROR(CheckUtf8(body, "the request body"));
  ALLOT_RETURN_IF_ERROR(CheckNesting(body, kMaxNestingDepth, "the request body"));
  json parsed = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return InvalidArgumentError("the request body is not valid JSON");
  }
  if (!parsed.is_object()) return InvalidArgumentError("the request body must be a JSON object");
  for (const auto& [key, value] : parsed.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return InvalidArgumentError("unknown field '{}'; expected one of: {}", key, fmt::join(allowed, ", "));
    }
  }
  return parsed;
}

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

// Idempotency keys are the submitter's: the job's account and user with the key, so two users
// of one name in different accounts never see each other's replies.
std::string IdempotencyScope(std::string_view account, std::string_view user, std::string_view key) {
  return fmt::format("{}\n{}\n{}", account, user, key);
}

json Limit(int64_t value) { return value >= kUnlimited ? json(nullptr) : json(value); }

bool WriteTokenFile(const std::filesystem::path& path, const std::string& token) {
  std::filesystem::path temporary = path;
  temporary += ".tmp";
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  std::string line = token + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
  ok = (::close(fd) == 0) && ok;
  return ok && ::rename(temporary.c_str(), path.c_str()) == 0;
}

}  // namespace

void Controller::Histogram::Observe(double value) {
  size_t bucket = 0;
  while (bucket < bounds.size() && value > bounds[bucket]) ++bucket;
  counts[bucket]++;
  sum += value;
  count++;
}

Controller::Controller(std::unique_ptr<Scheduler> scheduler, std::unique_ptr<Store> store,
                       ControllerOptions options)
    : options_(std::move(options)), store_(std::move(store)), scheduler_(std::move(scheduler)) {
  pass_seconds_.bounds = {0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  pass_seconds_.counts.assign(pass_seconds_.bounds.size() + 1, 0);
  start_delay_seconds_.bounds = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60};
  start_delay_seconds_.counts.assign(start_delay_seconds_.bounds.size() + 1, 0);
  if (!options_.now) {
    options_.now = [] {
      return std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch()).count();
    };
  }
}

Controller::~Controller() { StopLoop(); }

StatusOr<std::unique_ptr<Controller>> Controller::Open(Config config, ControllerOptions options) {
  std::error_code error;
  std::filesystem::create_directories(options.data_dir, error);
  if (error) {
    return InvalidArgumentError("cannot create the data directory '{}': {}", options.data_dir, error.message());
  }
  ALLOT_ASSIGN_OR_RETURN(std::unique_ptr<Scheduler> scheduler, Scheduler::Create(std::move(config)));
  ALLOT_ASSIGN_OR_RETURN(std::unique_ptr<Store> store,
                         Store::Open((std::filesystem::path(options.data_dir) / "allot.db").string()));
  std::unique_ptr<Controller> controller(
      new Controller(std::move(scheduler), std::move(store), std::move(options)));
  ALLOT_RETURN_IF_ERROR(controller->Recover());
  return controller;
}

// ---- Recovery -------------------------------------------------------------------------------

Status Controller::Recover() {
  std::lock_guard lock(mutex_);
  const Time now = Now();
  const Cluster& cluster = scheduler_->model().cluster();
  const AccountTree& tree = scheduler_->model().accounts();
  ALLOT_ASSIGN_OR_RETURN(std::vector<SettingRow> settings, store_->LoadSettings());

  // The key that signs jobs' own credentials: made once, kept, so credentials outlive restarts.
  for (const SettingRow& setting : settings) {
    if (setting.kind == "secret" && setting.key == "job_key") job_key_ = setting.value;
  }
  if (job_key_.empty()) {
    job_key_ = NewSecretKey();
    WriteBatch batch;
    batch.PutSetting({"secret", "job_key", job_key_});
    ALLOT_RETURN_IF_ERROR(store_->Commit(std::move(batch)));
  }

  // Quotas and grants first: admission of the jobs below depends on them.
  for (const SettingRow& setting : settings) {
    if (setting.kind != "quota" && setting.kind != "grant") continue;
    json value = json::parse(setting.value, nullptr, false);
    size_t slash = setting.key.find('/');
    StatusOr<AccountIndex> account = tree.Find(setting.key.substr(0, slash));
    if (value.is_discarded() || slash == std::string::npos || !account.ok()) {
      spdlog::warn("store: ignoring {} setting '{}': its account is no longer in the config", setting.kind, setting.key);
      continue;
    }
    std::string name = setting.key.substr(slash + 1);
    Status applied;
    try {
    if (setting.kind == "quota") {
      StatusOr<PoolIndex> pool = cluster.FindPool(name);
      if (!pool.ok()) {
        spdlog::warn("store: ignoring quota '{}': no pool '{}' in the config", setting.key, name);
        continue;
      }
      PoolQuota quota = tree.account(*account).quota[*pool];
      quota.nominal_set = !value["nominal"].is_null();
      if (quota.nominal_set) quota.nominal = value["nominal"].get<int64_t>();
      quota.borrow_limit = value["borrow_limit"].is_null() ? kUnlimited : value["borrow_limit"].get<int64_t>();
      quota.lend_limit = value["lend_limit"].is_null() ? kUnlimited : value["lend_limit"].get<int64_t>();
      applied = scheduler_->SetQuota(*account, *pool, quota);
    } else {
      applied = scheduler_->SetGrant(*account, Grant{.name = name, .gpu_hours = value["gpu_hours"].get<double>(),
                                                     .start = value["start"].get<Time>(), .end = value["end"].get<Time>()});
    }
    } catch (const std::exception& error) {
      applied = InternalError("its stored value is damaged: {}", error.what());
    }
    if (!applied.ok()) spdlog::warn("store: ignoring {} '{}': {}", setting.kind, setting.key, applied.message());
  }

  ALLOT_ASSIGN_OR_RETURN(std::vector<JobRow> rows, store_->LoadLiveJobs());
  WriteBatch failed;
  size_t restored = 0;
  // Running jobs first, so that no pending job can be placed on GPUs a running one still holds.
  std::stable_partition(rows.begin(), rows.end(), [](const JobRow& row) { return row.state == "running"; });
  // The elements of an array share one parsed submission, as they did before the restart.
  std::unordered_map<JobId, std::pair<std::shared_ptr<const SubmitRequest>, std::shared_ptr<const json>>> arrays_read;
  for (const JobRow& row : rows) {
    json doc = json::parse(row.doc, nullptr, false);
    Status status = doc.is_discarded() || !doc.is_object() ? InternalError("its record is not valid JSON") : OkStatus();
    JobRecord record;
    // A damaged row (a field of the wrong type, a number out of range) fails its job with the
    // reason; it never stops the server from starting.
    try {
    if (status.ok()) {
      const JobId array_job = doc.value("array_job_id", JobId{0});
      auto cached = array_job > 0 ? arrays_read.find(array_job) : arrays_read.end();
      if (cached != arrays_read.end()) {
        std::tie(record.request, record.spec_doc) = cached->second;
      } else {
        StatusOr<SubmitRequest> request = ParseSubmission(doc["spec"].dump(), fmt::format("job {}", row.id));
        if (request.ok()) {
          record.request = std::make_shared<const SubmitRequest>(std::move(*request));
          if (array_job > 0) {
            record.spec_doc = std::make_shared<const json>(SubmissionToJson(*record.request));
            arrays_read[array_job] = {record.request, record.spec_doc};
          }
        } else {
          status = request.status();
        }
      }
    }
    if (status.ok()) {
      record.array_job_id = doc.value("array_job_id", JobId{0});
      record.array_index = doc["array_index"].is_null() ? -1 : doc["array_index"].get<int>();
      record.array_limit = doc.value("array_limit", 0);
      record.user_held = doc.value("user_held", false);
      record.idempotency_key = doc.value("idempotency_key", "");
      if (row.state == "running" && doc.contains("task_exits")) {
        for (const auto& [task, code] : doc["task_exits"].items()) record.task_exits[std::stoi(task)] = code.get<int>();
      }
      if (row.state == "running" && doc.contains("step_records")) {
        record.next_task_index = doc.value("next_task_index", 0);
        for (const json& step_doc : doc["step_records"]) {
          StatusOr<Step> step = StepFromJson(step_doc);
          if (!step.ok()) {
            status = step.status();
            break;
          }
          record.steps.push_back(std::move(*step));
        }
      }
      if (!status.ok()) {
        // A damaged step record: the job fails below, with the reason.
      } else if (row.state == "running") {
        std::vector<TaskAllocation> tasks;
        StatusOr<PoolIndex> pool = cluster.FindPool(doc.value("pool", ""));
        status = pool.status();
        for (const json& task : doc["allocation"]) {
          if (!status.ok()) break;
          StatusOr<NodeIndex> node = cluster.FindNode(task["node"].get<std::string>());
          if (!node.ok()) {
            status = node.status();
            break;
          }
          TaskAllocation allocation{.node = *node, .cpus = task.value("cpus", 0),
                                    .memory_bytes = task.value("memory", int64_t{0})};
          for (int gpu : task["gpus"]) allocation.gpu_mask |= uint32_t{1} << gpu;
          tasks.push_back(allocation);
        }
        if (status.ok()) {
          status = scheduler_->RestoreRunning(row.id, record.request->spec, row.submit_time, *pool, std::move(tasks),
                                              doc.value("start_time", Time{0}), doc.value("epoch", uint64_t{0}),
                                              doc.value("restarts", 0));
        }
        if (status.ok()) {
          const Job& restored = *scheduler_->model().FindJob(row.id);
          status = CheckSteps(restored, record);
          if (!status.ok()) {
            (void)scheduler_->Cancel(row.id, now);
          } else {
            const std::vector<JobNode> nodes = JobNodes(restored);
            for (Step& step : record.steps) {
              for (StepTask& task : step.tasks) task.host = nodes[static_cast<size_t>(task.node)].node;
            }
          }
        }
      } else {
        status = scheduler_->Submit(row.id, record.request->spec, row.submit_time);
      }
    }
    } catch (const std::exception& error) {
      if (status.ok() && scheduler_->model().FindJob(row.id)) (void)scheduler_->Cancel(row.id, now);
      status = InternalError("its record is damaged: {}", error.what());
    }
    if (!status.ok()) {
      // The config changed under the job (an account or pool is gone): it cannot be put back.
      // It ends as failed with the reason, rather than vanish.
      spdlog::warn("job {} could not be restored and ends as failed: {}", row.id, status.message());
      if (doc.is_discarded() || !doc.is_object()) doc = json::object();
      doc["state"] = "failed";
      doc["end_time"] = now;
      doc["end_reason"] = fmt::format("could not be restored after a restart: {}", status.message());
      doc.erase("step_records");  // callers' environments: kept only while a step may start from them
      JobRow ended = row;
      ended.state = "failed";
      ended.end_time = now;
      ended.doc = doc.dump();
      failed.PutJob(std::move(ended));
      continue;
    }
    ++restored;
    if (row.state == "pending") {
      if (!record.request->dependencies.empty()) {
        record.waiting_dependencies = true;
        record.dependency_note = "dependencies not checked yet";
        waiting_.insert(row.id);
      }
      if (record.array_limit > 0) record.throttled = true;
    }
    if (record.array_limit > 0) arrays_[record.array_job_id].push_back(row.id);
    if (!record.idempotency_key.empty()) {
      std::string key = IdempotencyScope(record.request->spec.account, record.request->spec.user, record.idempotency_key);
      json& earlier = submit_replies_[key];
      if (earlier.is_null()) {
        earlier = {{"ids", json::array()}};
        if (record.array_index >= 0) earlier["array_job_id"] = record.array_job_id;
        submit_reply_ages_.emplace_back(now, key);
      }
      earlier["ids"].push_back(row.id);
    }
    records_.emplace(row.id, std::move(record));
    if (row.state == "pending") SyncHold(row.id);
  }
  if (!failed.empty()) ALLOT_RETURN_IF_ERROR(store_->Commit(std::move(failed)));
  for (auto& [key, reply] : submit_replies_) {
    std::sort(reply["ids"].begin(), reply["ids"].end());
  }

  // Fair share and grants remember what ran before the restart (a running job's current run is
  // charged as it goes on, from now).
  ALLOT_ASSIGN_OR_RETURN(std::vector<UsageRow> history, store_->LoadUsage(std::numeric_limits<Time>::min(), now + kDay));
  for (const UsageRow& row : history) {
    if (StatusOr<AccountIndex> account = tree.Find(row.account); account.ok()) {
      scheduler_->AddHistoricalUsage(*account, row.day, row.gpu_seconds, now);
    }
  }
  ALLOT_ASSIGN_OR_RETURN(JobId max_id, store_->MaxJobId());
  next_id_ = max_id + 1;

  for (const SettingRow& setting : settings) {
    if (setting.kind != "node") continue;
    StatusOr<NodeIndex> node = cluster.FindNode(setting.key);
    json value = json::parse(setting.value, nullptr, false);
    if (!node.ok() || value.is_discarded()) {
      spdlog::warn("store: ignoring the state of node '{}': it is no longer in the config", setting.key);
      continue;
    }
    StatusOr<NodeState> state = ParseNodeState(value.value("state", "up"));
    if (!state.ok()) continue;
    (void)scheduler_->SetNodeState(*node, *state, now);
    drain_reasons_[*node] = value.value("reason", "");
  }
  // Nodes run by agents: each gets a full timeout from now to sync again before it is marked down.
  for (const SettingRow& setting : settings) {
    if (setting.kind != "agent") continue;
    StatusOr<NodeIndex> node = cluster.FindNode(setting.key);
    json value = json::parse(setting.value, nullptr, false);
    if (!node.ok() || value.is_discarded()) continue;
    AgentState& agent = agents_[*node];
    agent.last_seen = now;
    agent.hostname = value.value("hostname", "");
    agent.address = value.value("address", "");
    agent.marked_down = cluster.node(*node).state == NodeState::kDown;
  }
  if (options_.nodes_need_agents) {
    // Nodes whose agent never registered take no jobs until it does (the first sync brings the
    // node up). Not stored: it follows from there being no agent record.
    for (NodeIndex node = 0; node < cluster.nodes().size(); ++node) {
      if (agents_.contains(node) || cluster.node(node).state == NodeState::kDown) continue;
      agents_[node].marked_down = true;
      (void)scheduler_->SetNodeState(node, NodeState::kDown, now);
      drain_reasons_[node] = "unknown: no agent has registered for this node yet";
    }
  }

  ALLOT_ASSIGN_OR_RETURN(std::vector<TokenRow> tokens, store_->LoadTokens());
  {
    std::unique_lock tokens_lock(tokens_mutex_);
    for (TokenRow& token : tokens) {
      next_token_id_ = std::max(next_token_id_, token.id + 1);
      if (!token.revoked) tokens_by_hash_.emplace(token.hash, std::move(token));
    }
  }
  if (tokens.empty()) ALLOT_RETURN_IF_ERROR(BootstrapOperatorToken());
  spdlog::info("restored {} live jobs ({} running) from {}", restored, scheduler_->model().running_count(),
               options_.data_dir);
  return OkStatus();
}

Status Controller::BootstrapOperatorToken() {
  std::string token = NewToken();
  // The file first: if the commit then fails, the next start makes a new token and file, and
  // nobody is locked out by a token on disk that was never handed out.
  std::filesystem::path path = std::filesystem::path(options_.data_dir) / "operator.token";
  if (!WriteTokenFile(path, token)) {
    return Status(StatusCode::kUnavailable, fmt::format("cannot write {}", path.string()));
  }
  TokenRow row{.id = next_token_id_++, .hash = HashToken(token), .user = "operator",
               .role = std::string(RoleName(Role::kOperator)), .account = options_.operator_account,
               .created = Now()};
  WriteBatch batch;
  batch.PutToken(row);
  ALLOT_RETURN_IF_ERROR(store_->Commit(std::move(batch)));
  std::unique_lock tokens_lock(tokens_mutex_);
  tokens_by_hash_.emplace(row.hash, row);
  created_operator_token_ = true;
  return OkStatus();
}

// ---- Durability -----------------------------------------------------------------------------

Store::Ticket Controller::Queue(WriteBatch batch) { return store_->Enqueue(std::move(batch)); }

void Controller::WaitDurable(const Store::Ticket& ticket) {
  Status status = store_->Wait(ticket);
  if (!status.ok()) {
    spdlog::critical("the store failed to commit ({}); exiting so that a restart recovers from disk",
                     status.message());
    std::_Exit(70);
  }
}

void Controller::MarkDirty() {
  std::lock_guard lock(loop_mutex_);
  dirty_ = true;
  loop_wakeup_.notify_one();
}

// ---- Authentication and visibility -----------------------------------------------------------

StatusOr<Principal> Controller::Authenticate(std::string_view token) const {
  if (token.empty()) {
    return Status(StatusCode::kUnauthenticated,
                  "missing bearer token: send the header 'Authorization: Bearer TOKEN'");
  }
  if (token.starts_with(kJobCredentialPrefix)) {
    std::optional<std::pair<uint64_t, uint64_t>> claim = CheckJobCredential(job_key_, token);
    if (!claim) return Status(StatusCode::kUnauthenticated, "this job credential is not valid");
    std::lock_guard lock(mutex_);
    const Job* job = scheduler_->model().FindJob(claim->first);
    if (!job || job->state != JobState::kRunning || job->epoch != claim->second) {
      return Status(StatusCode::kUnauthenticated,
                    fmt::format("job {}'s credential is for an allocation that has ended", claim->first));
    }
    return Principal{.user = job->spec.user, .role = Role::kJob, .account = job->spec.account,
                     .account_index = job->account, .job = claim->first, .job_epoch = claim->second};
  }
  std::string hash = HashToken(token);
  TokenRow row;
  {
    std::shared_lock lock(tokens_mutex_);
    auto found = tokens_by_hash_.find(hash);
    if (found == tokens_by_hash_.end()) {
      return Status(StatusCode::kUnauthenticated, "unknown or revoked token");
    }
    row = found->second;
  }
  StatusOr<Role> role = ParseRole(row.role);
  if (!role.ok()) return Status(StatusCode::kUnauthenticated, "the token has an unknown role");
  Principal principal{.token_id = row.id, .user = row.user, .role = *role, .account = row.account, .node = row.node};
  if (!row.account.empty()) {
    // The tree's shape is fixed at start (only quotas change), so a lookup needs no lock.
    StatusOr<AccountIndex> account = scheduler_->model().accounts().Find(row.account);
    if (!account.ok()) {
      return Status(StatusCode::kUnauthenticated,
                    fmt::format("the token's account '{}' is no longer in the config", row.account));
    }
    principal.account_index = *account;
  }
  return principal;
}

bool Controller::Sees(const Principal& who, AccountIndex account) const {
  if (who.is_operator()) return true;
  // A job's credential sees its own account's jobs only; the HTTP layer lets it name no job but
  // its own.
  if (who.role == Role::kJob) return account == who.account_index;
  if (who.role != Role::kTenant || who.account_index == kNoAccount || account == kNoAccount) return false;
  return scheduler_->model().accounts().IsAncestorOrSelf(who.account_index, account);
}

StatusOr<AccountIndex> Controller::VisibleAccount(const Principal& who, std::string_view name) const {
  StatusOr<AccountIndex> account = scheduler_->model().accounts().Find(name);
  if (!account.ok() || !Sees(who, *account)) return NotFoundError("no account '{}'", name);
  return *account;
}

StatusOr<const Job*> Controller::VisibleLiveJob(const Principal& who, JobId id) const {
  const Job* job = scheduler_->model().FindJob(id);
  if (!job || !Sees(who, job->account)) return NotFoundError("no job {}", id);
  return job;
}

// ---- Job documents ----------------------------------------------------------------------------

PendingReason Controller::ReasonFor(const Job& job, const JobRecord& record) const {
  if (record.user_held) {
    return {ReasonCode::kHeld, fmt::format("held; `allot release {}` lets it run", job.id)};
  }
  if (record.waiting_dependencies) return {ReasonCode::kNone, record.dependency_note};
  if (record.throttled) {
    return {ReasonCode::kHeld, fmt::format("array limit: at most {} elements of array {} run at once",
                                           record.array_limit, record.array_job_id)};
  }
  return scheduler_->ReasonOf(job);
}

std::string Controller::ReasonCodeFor(const JobRecord& record, const PendingReason& reason) {
  if (!record.user_held && record.waiting_dependencies) return "dependency";
  return std::string(ReasonCodeName(reason.code));
}

json Controller::LiveJobJson(const Job& job, const JobRecord& record) const {
  const Cluster& cluster = scheduler_->model().cluster();
  bool running = job.state == JobState::kRunning;
  json doc;
  doc["id"] = job.id;
  doc["name"] = job.spec.name;
  doc["account"] = job.spec.account;
  doc["user"] = job.spec.user;
  doc["state"] = running ? "running" : "pending";
  if (!running) {
    PendingReason reason = ReasonFor(job, record);
    doc["reason"] = {{"code", ReasonCodeFor(record, reason)}, {"message", reason.message}};
  }
  doc["held"] = record.user_held;
  doc["user_held"] = record.user_held;
  doc["submit_time"] = job.submit_time;
  doc["start_time"] = running ? job.start_time : 0;
  doc["end_time"] = 0;
  doc["time_limit"] = job.spec.time_limit;
  doc["tasks"] = job.spec.tasks;
  doc["gpus_per_task"] = job.spec.gpus_per_task;
  doc["gpus"] = job.gpus();
  doc["priority_class"] = job.spec.priority_class.empty() ? scheduler_->policy().default_priority_class
                                                          : job.spec.priority_class;
  doc["pool"] = running ? cluster.pool(job.pool).name : "";
  json nodes = json::array();
  json allocation = json::array();
  if (running) {
    for (const TaskAllocation& task : job.tasks) {
      const std::string& node = cluster.node(task.node).name;
      if (nodes.empty() || nodes.back() != node) nodes.push_back(node);
      json gpus = json::array();
      for (int gpu = 0; gpu < kMaxGpusPerNode; ++gpu) {
        if (task.gpu_mask & (uint32_t{1} << gpu)) gpus.push_back(gpu);
      }
      allocation.push_back({{"node", node}, {"gpus", gpus}, {"cpus", task.cpus}, {"memory", task.memory_bytes}});
    }
  }
  doc["nodes"] = nodes;
  doc["allocation"] = allocation;
  doc["epoch"] = job.epoch;
  doc["restarts"] = job.restarts;
  doc["exit_code"] = nullptr;
  doc["array_job_id"] = record.array_job_id;
  doc["array_index"] = record.array_index < 0 ? json(nullptr) : json(record.array_index);
  doc["array_limit"] = record.array_limit;
  if (!record.idempotency_key.empty()) doc["idempotency_key"] = record.idempotency_key;
  if (!record.task_exits.empty()) {
    json exits = json::object();
    for (const auto& [task, code] : record.task_exits) exits[std::to_string(task)] = code;
    doc["task_exits"] = exits;
  }
  doc["spec"] = record.spec_doc ? *record.spec_doc : SubmissionToJson(*record.request);
  if (!record.steps.empty()) {
    json steps = json::array();
    for (const Step& step : record.steps) steps.push_back(StepJson(job, step));
    doc["steps"] = std::move(steps);
  }
  return doc;
}

json Controller::StoredLiveJobJson(const Job& job, const JobRecord& record) const {
  json doc = LiveJobJson(job, record);
  // Whole steps are stored, not shown: a step keeps its caller's environment, which may hold
  // secrets.
  if (!record.steps.empty()) {
    doc.erase("steps");  // the records below hold all of it
    json steps = json::array();
    for (const Step& step : record.steps) steps.push_back(StepToJson(step));
    doc["step_records"] = std::move(steps);
    doc["next_task_index"] = record.next_task_index;
  }
  return doc;
}

json Controller::EndedJobJson(const Job& job, const JobRecord& record, const EndInfo& end, Time now) const {
  json doc = LiveJobJson(job, record);
  doc.erase("reason");
  doc["state"] = end.state;
  doc["end_time"] = now;
  doc["exit_code"] = end.exit_code < 0 ? json(nullptr) : json(end.exit_code);
  doc["end_reason"] = end.message;
  if (job.state == JobState::kRunning) {
    doc["start_time"] = job.start_time;
  }
  // Steps still running when their job ended were killed with it.
  if (doc.contains("steps")) {
    for (json& step : doc["steps"]) {
      if (step["state"] == "running") step["state"] = "cancelled";
    }
  }
  return doc;
}

JobRow Controller::RowOf(JobId id, const json& doc) const {
  return JobRow{.id = id,
                .state = doc["state"].get<std::string>(),
                .account = doc["account"].get<std::string>(),
                .user = doc["user"].get<std::string>(),
                .submit_time = doc["submit_time"].get<Time>(),
                .end_time = doc["end_time"].get<Time>(),
                .doc = doc.dump(-1, ' ', false, json::error_handler_t::replace)};
}

void Controller::PersistLive(JobId id, WriteBatch& batch) const {
  const Job* job = scheduler_->model().FindJob(id);
  auto record = records_.find(id);
  if (!job || record == records_.end()) return;
  batch.PutJob(RowOf(id, StoredLiveJobJson(*job, record->second)));
}

std::vector<UsageRow> Controller::RunUsage(const Job& job, Time end) const {
  const std::string& pool = scheduler_->model().cluster().pool(job.pool).name;
  std::vector<UsageRow> rows;
  for (Time from = job.start_time; from < end;) {
    Time day = DayStart(from);
    Time to = std::min(end, day + kDay);
    rows.push_back({job.spec.account, pool, day, static_cast<double>(job.gpus()) * static_cast<double>(to - from)});
    from = to;
  }
  return rows;
}

void Controller::ChargeRun(const Job& job, Time end, WriteBatch& batch) const {
  for (UsageRow& row : RunUsage(job, end)) batch.AddUsage(std::move(row));
}

json Controller::RecordEnded(const Job& job, const EndInfo& end, Time now, WriteBatch& batch) {
  auto found = records_.find(job.id);
  if (found == records_.end()) return json();
  if (job.state == JobState::kRunning) ChargeRun(job, now, batch);
  json doc = EndedJobJson(job, found->second, end, now);
  batch.PutJob(RowOf(job.id, doc));
  ended_states_[job.id] = end.state;
  if (job.state == JobState::kRunning) {
    // Its agents ship the last of its output after it ended; remember where its tasks ran.
    std::vector<NodeIndex>& nodes = ended_nodes_[job.id];
    for (const TaskAllocation& task : job.tasks) nodes.push_back(task.node);
    // And where its steps' tasks ran, unless there were so many (a long loop of sruns) that the
    // table would cost more than their last output is worth.
    constexpr int kStepTasksRemembered = 1024;
    if (!found->second.steps.empty() &&
        found->second.next_task_index <= static_cast<int>(job.tasks.size()) + kStepTasksRemembered) {
      const std::vector<JobNode> job_nodes = JobNodes(job);
      nodes.resize(static_cast<size_t>(found->second.next_task_index), std::numeric_limits<NodeIndex>::max());
      for (const Step& step : found->second.steps) {
        for (const StepTask& task : step.tasks) nodes[static_cast<size_t>(task.index)] = job_nodes[static_cast<size_t>(task.node)].node;
      }
    }
    ended_nodes_order_.push_back(job.id);
    while (ended_nodes_order_.size() > kEndedJobsRemembered) {
      ended_nodes_.erase(ended_nodes_order_.front());
      ended_nodes_order_.pop_front();
    }
  }
  finished_by_state_[end.state]++;
  // Its agents kill what still runs of it: wake those waiting for work.
  WakeJob(job.id);
  if (job.state == JobState::kRunning) {
    for (const TaskAllocation& task : job.tasks) WakeNode(task.node);
  }
  waiting_.erase(job.id);
  records_.erase(found);
  return doc;
}

void Controller::Audit(const Principal& who, std::string_view action, std::string target, const json& detail,
                       WriteBatch& batch) const {
  batch.AddAudit({.time = Now(), .user = who.user, .token_id = who.token_id, .role = std::string(RoleName(who.role)),
                  .action = std::string(action), .target = std::move(target),
                  .detail = detail.is_null() ? "" : detail.dump(-1, ' ', false, json::error_handler_t::replace),
                  .remote = who.remote});
}

bool Controller::TaskRanOn(JobId id, int task, NodeIndex node) const {
  if (task < 0) return false;
  const size_t index = static_cast<size_t>(task);
  if (const Job* job = scheduler_->model().FindJob(id)) {
    if (job->state != JobState::kRunning) return false;
    if (index < job->tasks.size()) return job->tasks[index].node == node;
    auto [step, step_task] = FindStepTask(records_.at(id), task);
    return step_task != nullptr && step_task->host == node;
  }
  auto ended = ended_nodes_.find(id);
  return ended != ended_nodes_.end() && index < ended->second.size() && ended->second[index] == node;
}

void Controller::SyncHold(JobId id) {
  const Job* job = scheduler_->model().FindJob(id);
  auto record = records_.find(id);
  if (!job || record == records_.end() || job->state != JobState::kPending) return;
  const JobRecord& r = record->second;
  bool hold = r.user_held || r.waiting_dependencies || r.throttled;
  if (hold && !job->held) (void)scheduler_->Hold(id);
  if (!hold && job->held) (void)scheduler_->Release(id);
}

std::optional<std::string> Controller::EndedState(JobId id) {
  if (auto found = ended_states_.find(id); found != ended_states_.end()) return found->second;
  StatusOr<std::optional<JobRow>> row = store_->LoadJob(id);
  if (!row.ok() || !row->has_value()) return std::nullopt;
  const std::string& state = (*row)->state;
  if (state == "pending" || state == "running") return std::nullopt;
  ended_states_[id] = state;
  return state;
}

// ---- Jobs -----------------------------------------------------------------------------------

Status Controller::TakeSubmitToken(const Principal& who) {
  if (who.is_operator() || options_.submit_rate_per_token <= 0) return OkStatus();
  const double now = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  std::lock_guard lock(rate_mutex_);
  auto [bucket, fresh] = submit_buckets_.try_emplace(who.token_id);
  if (fresh) bucket->second = {.tokens = options_.submit_burst, .refilled_at = now};
  TokenBucket& tokens = bucket->second;
  tokens.tokens = std::min(options_.submit_burst, tokens.tokens + (now - tokens.refilled_at) * options_.submit_rate_per_token);
  tokens.refilled_at = now;
  if (tokens.tokens < 1) {
    return Status(StatusCode::kTooManyRequests,
                  fmt::format("token {} submits more than {} requests a second; wait and retry (an array of jobs "
                              "is one request)", who.token_id, options_.submit_rate_per_token));
  }
  tokens.tokens -= 1;
  return OkStatus();
}

StatusOr<json> Controller::Submit(const Principal& who, std::string_view body, std::string_view idempotency_key) {
  if (who.role == Role::kAgent) return Status(StatusCode::kPermissionDenied, "agents cannot submit jobs");
  ALLOT_RETURN_IF_ERROR(TakeSubmitToken(who));
  if (idempotency_key.size() > 255) return InvalidArgumentError("the Idempotency-Key header is over 255 characters");
  ALLOT_RETURN_IF_ERROR(CheckUtf8(idempotency_key, "the Idempotency-Key header"));
  ALLOT_ASSIGN_OR_RETURN(SubmitRequest parsed, ParseSubmission(body, "request"));
  JobSpec& spec = parsed.spec;
  if (spec.account.empty()) {
    if (who.account.empty()) {
      return InvalidArgumentError("the job names no account: add \"account\" (or --account) to the submission");
    }
    spec.account = who.account;
  }
  if (!who.is_operator() || spec.user.empty()) spec.user = who.user;
  // Whether the caller may submit there at all, before anything (an earlier reply included) is
  // looked up. The tree's shape is fixed at start, so this needs no lock.
  StatusOr<AccountIndex> account = scheduler_->model().accounts().Find(spec.account);
  if (!account.ok()) return InvalidArgumentError("unknown account '{}'", spec.account);
  if (!Sees(who, *account)) {
    return Status(StatusCode::kPermissionDenied,
                  fmt::format("account '{}' is outside your account '{}'", spec.account, who.account));
  }
  const std::string reply_key = idempotency_key.empty() ? "" : IdempotencyScope(spec.account, spec.user, idempotency_key);
  // Everything that can fail is done before the state changes: the job documents are made from
  // these, so a submit either happens whole or not at all.
  auto request = std::make_shared<const SubmitRequest>(std::move(parsed));
  auto spec_doc = std::make_shared<const json>(SubmissionToJson(*request));
  (void)spec_doc->dump();  // throws here, not half-way through the change, if it cannot be written

  Store::Ticket ticket;
  json reply;
  {
    std::lock_guard lock(mutex_);
    const Time now = Now();
    if (!reply_key.empty()) {
      while (!submit_reply_ages_.empty() && submit_reply_ages_.front().first < now - kDay) {
        submit_replies_.erase(submit_reply_ages_.front().second);
        submit_reply_ages_.pop_front();
      }
      if (auto done = submit_replies_.find(reply_key); done != submit_replies_.end()) {
        // Answered before: the first reply's commit is queued ahead of anything queued now.
        ticket = Queue(WriteBatch());
        reply = done->second;
      }
    }
  }
  if (!reply.is_null()) {
    WaitDurable(ticket);
    return reply;
  }
  {
    std::lock_guard lock(mutex_);
    const Time now = Now();
    if (auto done = submit_replies_.find(reply_key); !reply_key.empty() && done != submit_replies_.end()) {
      return done->second;  // a retry raced the first attempt; the first one won
    }
    for (const Dependency& dependency : request->dependencies) {
      if (dependency.type == DependencyType::kSingleton) continue;
      const Job* live = scheduler_->model().FindJob(dependency.job);
      bool known = live ? Sees(who, live->account) : false;
      if (!live) {
        StatusOr<std::optional<JobRow>> row = store_->LoadJob(dependency.job);
        if (row.ok() && row->has_value()) {
          StatusOr<AccountIndex> owner = scheduler_->model().accounts().Find((*row)->account);
          known = owner.ok() && Sees(who, *owner);
        }
      }
      if (!known) return InvalidArgumentError("the dependency names job {}, which does not exist", dependency.job);
    }

    static const std::vector<int> kSingle = {-1};
    const std::vector<int>& indexes = request->array ? request->array->indexes : kSingle;
    const JobId first = next_id_;
    for (size_t i = 0; i < indexes.size(); ++i) {
      Status submitted = scheduler_->Submit(first + i, request->spec, now);
      if (!submitted.ok()) {
        for (size_t j = 0; j < i; ++j) (void)scheduler_->Cancel(first + j, now);
        return InvalidArgumentError("{}", submitted.message());
      }
    }
    WriteBatch batch;
    json ids = json::array();
    int limit = request->array ? request->array->max_concurrent : 0;
    for (size_t i = 0; i < indexes.size(); ++i) {
      JobId id = first + i;
      JobRecord record;
      record.request = request;
      if (request->array) record.spec_doc = spec_doc;  // written once for all elements
      record.user_held = request->hold;
      record.idempotency_key = std::string(idempotency_key);
      if (request->array) {
        record.array_job_id = first;
        record.array_index = indexes[i];
        record.array_limit = limit;
        record.throttled = limit > 0 && i >= static_cast<size_t>(limit);
        if (limit > 0) arrays_[first].push_back(id);
      }
      if (!request->dependencies.empty()) {
        record.waiting_dependencies = true;
        record.dependency_note = "dependencies not checked yet";
        waiting_.insert(id);
      }
      records_.emplace(id, std::move(record));
      SyncHold(id);
      PersistLive(id, batch);
      ids.push_back(id);
    }
    next_id_ = first + indexes.size();
    submits_.fetch_add(indexes.size(), std::memory_order_relaxed);
    ticket = Queue(std::move(batch));
    reply = {{"ids", ids}};
    if (request->array) reply["array_job_id"] = first;
    if (!reply_key.empty()) {
      submit_replies_[reply_key] = reply;
      submit_reply_ages_.emplace_back(now, reply_key);
    }
  }
  MarkDirty();
  WaitDurable(ticket);
  return reply;
}

StatusOr<json> Controller::ListJobs(const Principal& who, const ListJobsQuery& query) {
  std::vector<std::string> states = query.states.empty() ? kLiveStates : query.states;
  bool want_pending = false, want_running = false;
  std::vector<std::string> ended;
  for (const std::string& state : states) {
    if (state == "pending") {
      want_pending = true;
    } else if (state == "running") {
      want_running = true;
    } else if (std::find(kEndedStates.begin(), kEndedStates.end(), state) != kEndedStates.end()) {
      ended.push_back(state);
    } else {
      return InvalidArgumentError("unknown state '{}'; use pending, running, {}", state, fmt::join(kEndedStates, ", "));
    }
  }
  if (query.limit == 0 || query.limit > 100000) return InvalidArgumentError("limit must be between 1 and 100000");

  json jobs = json::array();
  std::vector<std::string> subtree;
  Store::Ticket ticket;
  {
    std::lock_guard lock(mutex_);
    const AccountTree& tree = scheduler_->model().accounts();
    AccountIndex scope = who.is_operator() ? tree.root() : who.account_index;
    if (who.role == Role::kAgent) return Status(StatusCode::kPermissionDenied, "agents cannot list jobs");
    if (!query.account.empty()) {
      ALLOT_ASSIGN_OR_RETURN(scope, VisibleAccount(who, query.account));
    }
    if (scope != tree.root()) {
      for (AccountIndex a = 0; a < tree.accounts().size(); ++a) {
        if (tree.IsAncestorOrSelf(scope, a)) subtree.push_back(tree.account(a).name);
      }
    }
    std::vector<JobId> ids;
    for (const auto& [id, job] : scheduler_->model().jobs()) {
      bool running = job.state == JobState::kRunning;
      if (running ? !want_running : !want_pending) continue;
      if (!query.user.empty() && job.spec.user != query.user) continue;
      if (scope != tree.root() && !tree.IsAncestorOrSelf(scope, job.account)) continue;
      ids.push_back(id);
    }
    std::sort(ids.begin(), ids.end());
    if (ids.size() > query.limit) ids.resize(query.limit);
    for (JobId id : ids) {
      jobs.push_back(LiveJobJson(*scheduler_->model().FindJob(id), records_.at(id)));
      if (!query.with_steps) jobs.back().erase("steps");
    }
    // Jobs that ended before this listing are read from the store once their records are in.
    if (!ended.empty()) ticket = Queue(WriteBatch());
  }
  if (ticket) WaitDurable(ticket);
  if (!ended.empty() && jobs.size() < query.limit) {
    ALLOT_ASSIGN_OR_RETURN(std::vector<JobRow> rows,
                           store_->ListJobs({.states = ended, .accounts = subtree, .user = query.user,
                                             .limit = query.limit - jobs.size()}));
    std::reverse(rows.begin(), rows.end());
    json finished = json::array();
    for (const JobRow& row : rows) {
      finished.push_back(json::parse(row.doc));
      if (!query.with_steps) finished.back().erase("steps");
    }
    finished.insert(finished.end(), jobs.begin(), jobs.end());
    jobs = std::move(finished);
  }
  return json{{"jobs", jobs}};
}

StatusOr<json> Controller::GetJob(const Principal& who, JobId id) {
  if (who.role == Role::kAgent) return Status(StatusCode::kPermissionDenied, "agents cannot read jobs");
  Store::Ticket ticket;
  {
    std::lock_guard lock(mutex_);
    if (const Job* job = scheduler_->model().FindJob(id)) {
      if (!Sees(who, job->account)) return NotFoundError("no job {}", id);
      return LiveJobJson(*job, records_.at(id));
    }
    // A job that has just ended is in neither place until its end record is committed: wait for
    // what is queued, so a job never vanishes between its end and its record.
    ticket = Queue(WriteBatch());
  }
  WaitDurable(ticket);
  ALLOT_ASSIGN_OR_RETURN(std::optional<JobRow> row, store_->LoadJob(id));
  if (!row) return NotFoundError("no job {}", id);
  StatusOr<AccountIndex> account = scheduler_->model().accounts().Find(row->account);
  if (!who.is_operator() && (!account.ok() || !Sees(who, *account))) return NotFoundError("no job {}", id);
  return json::parse(row->doc);
}

StatusOr<json> Controller::ChangeJob(const Principal& who, JobId id, const JobChange& change) {
  Store::Ticket ticket;
  json reply;
  {
    std::lock_guard lock(mutex_);
    const Job* job = scheduler_->model().FindJob(id);
    if (!job) {
      std::optional<std::string> ended = EndedState(id);
      if (ended) {
        StatusOr<std::optional<JobRow>> row = store_->LoadJob(id);
        StatusOr<AccountIndex> account = scheduler_->model().accounts().Find(row.ok() && *row ? (*row)->account : "");
        if (who.is_operator() || (account.ok() && Sees(who, *account))) {
          return FailedPreconditionError("job {} has already ended ({})", id, *ended);
        }
      }
      return NotFoundError("no job {}", id);
    }
    // Agents act on jobs wherever they run; the calls that let them in say which.
    if (who.role != Role::kAgent && !Sees(who, job->account)) return NotFoundError("no job {}", id);
    WriteBatch batch;
    ALLOT_RETURN_IF_ERROR(change(*job, records_.at(id), batch, reply));
    if (const Job* live = scheduler_->model().FindJob(id)) {
      PersistLive(id, batch);
      reply = LiveJobJson(*live, records_.at(id));
    }
    ticket = Queue(std::move(batch));
  }
  MarkDirty();
  WaitDurable(ticket);
  return reply;
}

StatusOr<json> Controller::CancelJob(const Principal& who, JobId id) {
  if (who.role == Role::kAgent) return Status(StatusCode::kPermissionDenied, "agents cannot cancel jobs");
  return ChangeJob(who, id, [&](const Job& job, JobRecord&, WriteBatch& batch, json& ended) -> Status {
    const Time now = Now();
    ALLOT_ASSIGN_OR_RETURN(Job stopped, scheduler_->Cancel(job.id, now));
    ended = RecordEnded(stopped, {"cancelled", -1, fmt::format("cancelled by {}", who.user)}, now, batch);
    // `stopped`, not `job`: the scheduler's record is gone once the job ended.
    if (who.is_operator()) {
      Audit(who, "job.cancel", std::to_string(stopped.id), json{{"user", stopped.spec.user}, {"account", stopped.spec.account}}, batch);
    }
    return OkStatus();
  });
}

StatusOr<json> Controller::HoldJob(const Principal& who, JobId id) {
  if (who.role == Role::kAgent) return Status(StatusCode::kPermissionDenied, "agents cannot hold jobs");
  return ChangeJob(who, id, [&](const Job& job, JobRecord& record, WriteBatch&, json&) -> Status {
    if (job.state != JobState::kPending) return FailedPreconditionError("job {} is running; only pending jobs can be held", job.id);
    if (record.user_held) return FailedPreconditionError("job {} is held already", job.id);
    record.user_held = true;
    SyncHold(job.id);
    return OkStatus();
  });
}

StatusOr<json> Controller::ReleaseJob(const Principal& who, JobId id) {
  if (who.role == Role::kAgent) return Status(StatusCode::kPermissionDenied, "agents cannot release jobs");
  return ChangeJob(who, id, [&](const Job& job, JobRecord& record, WriteBatch&, json&) -> Status {
    if (!record.user_held) return FailedPreconditionError("job {} is not held", job.id);
    record.user_held = false;
    SyncHold(job.id);
    return OkStatus();
  });
}

StatusOr<json> Controller::FinishJob(const Principal& who, JobId id, std::string_view body) {
  if (who.role == Role::kTenant) {
    return Status(StatusCode::kPermissionDenied, "only agents and operators report job ends");
  }
  ALLOT_ASSIGN_OR_RETURN(json report, ParseBody(body, {"exit_code", "epoch", "message"}));
  if (!report.contains("exit_code") || !report["exit_code"].is_number_integer() ||
      report["exit_code"].get<int64_t>() < 0 || report["exit_code"].get<int64_t>() > 255) {
    return InvalidArgumentError("exit_code: expected the job's exit status, an integer from 0 to 255");
  }
  if (report.contains("message") && !report["message"].is_string()) return InvalidArgumentError("message: expected a string");
  int exit_code = report["exit_code"].get<int>();
  std::optional<uint64_t> epoch;
  if (report.contains("epoch")) {
    if (!report["epoch"].is_number_unsigned()) return InvalidArgumentError("epoch: expected a non-negative integer");
    epoch = report["epoch"].get<uint64_t>();
  }
  std::string message = report.value("message", "");
  return ChangeJob(who, id, [&](const Job& job, JobRecord&, WriteBatch& batch, json& ended) -> Status {
    if (job.state != JobState::kRunning) return FailedPreconditionError("job {} is not running", job.id);
    if (who.role == Role::kAgent) {
      StatusOr<NodeIndex> node = scheduler_->model().cluster().FindNode(who.node);
      bool ours = node.ok() && std::any_of(job.tasks.begin(), job.tasks.end(),
                                           [&](const TaskAllocation& task) { return task.node == *node; });
      if (!ours) return Status(StatusCode::kPermissionDenied, fmt::format("job {} runs no task on node '{}'", job.id, who.node));
    }
    // Fencing: a report from an older allocation of this job must not end the current one.
    if (epoch && *epoch != job.epoch) {
      return FailedPreconditionError("job {}: the report is for allocation epoch {}, the job runs in epoch {}",
                                     job.id, *epoch, job.epoch);
    }
    const Time now = Now();
    ALLOT_ASSIGN_OR_RETURN(Job stopped, scheduler_->Complete(job.id, now));
    EndInfo end{exit_code == 0 ? "completed" : "failed", exit_code,
                message.empty() ? fmt::format("exited with status {}", exit_code) : message};
    ended = RecordEnded(stopped, end, now, batch);
    if (who.is_operator()) Audit(who, "job.finish", std::to_string(stopped.id), report, batch);  // `job` is gone
    return OkStatus();
  });
}

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
    quotas[cluster.pool(pool).name] = {{"nominal", quota.nominal},
                                       {"borrow_limit", Limit(quota.borrow_limit)},
                                       {"lend_limit", Limit(quota.lend_limit)},
                                       {"allocated", account.allocated[pool]}};
  }
  doc["quotas"] = quotas;
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
  json pools = json::array();
  for (PoolIndex index = 0; index < model.cluster().pools().size(); ++index) {
    const Pool& pool = model.cluster().pool(index);
    size_t up = 0;
    for (NodeIndex node : pool.nodes) up += model.cluster().node(node).state == NodeState::kUp ? 1 : 0;
    pools.push_back({{"name", pool.name}, {"site", pool.site}, {"gpu_model", pool.gpu_model},
                     {"nodes", pool.nodes.size()}, {"gpus", pool.total_gpus},
                     {"gpus_allocated", tree.account(tree.root()).allocated[index]}, {"nodes_up", up}});
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

// ---- Metrics ----------------------------------------------------------------------------------

StatusOr<std::string> Controller::Metrics(const Principal& who) {
  if (!who.is_operator()) return Status(StatusCode::kPermissionDenied, "only operators read /metrics");
  std::string out;
  auto family = [&](std::string_view name, std::string_view type, std::string_view help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  std::lock_guard lock(mutex_);
  const Model& model = scheduler_->model();
  const Cluster& cluster = model.cluster();
  const AccountTree& tree = model.accounts();
  family("allot_gpus_total", "gauge", "GPUs in the pool.");
  for (const Pool& pool : cluster.pools()) out += fmt::format("allot_gpus_total{{pool=\"{}\"}} {}\n", pool.name, pool.total_gpus);
  family("allot_gpus_allocated", "gauge", "GPUs allocated to running jobs.");
  for (PoolIndex pool = 0; pool < cluster.pools().size(); ++pool) {
    out += fmt::format("allot_gpus_allocated{{pool=\"{}\"}} {}\n", cluster.pool(pool).name,
                       tree.account(tree.root()).allocated[pool]);
  }
  family("allot_jobs", "gauge", "Live jobs by state.");
  out += fmt::format("allot_jobs{{state=\"pending\"}} {}\nallot_jobs{{state=\"running\"}} {}\n",
                     model.pending().size(), model.running_count());
  family("allot_pending_jobs", "gauge", "Pending jobs by the reason they wait.");
  std::map<std::string, size_t> reasons;
  for (JobId id : model.pending()) {
    const JobRecord& record = records_.at(id);
    reasons[ReasonCodeFor(record, ReasonFor(*model.FindJob(id), record))]++;
  }
  for (const auto& [reason, count] : reasons) out += fmt::format("allot_pending_jobs{{reason=\"{}\"}} {}\n", reason, count);
  family("allot_account_gpus_allocated", "gauge", "GPUs an account's subtree holds, per pool.");
  std::string nominal_lines, borrowed_lines;
  for (AccountIndex index = 1; index < tree.accounts().size(); ++index) {
    const Account& account = tree.account(index);
    for (PoolIndex pool = 0; pool < cluster.pools().size(); ++pool) {
      if (account.quota[pool].nominal == 0 && account.allocated[pool] == 0) continue;
      std::string labels = fmt::format("account=\"{}\",pool=\"{}\"", account.name, cluster.pool(pool).name);
      out += fmt::format("allot_account_gpus_allocated{{{}}} {}\n", labels, account.allocated[pool]);
      nominal_lines += fmt::format("allot_account_gpus_nominal{{{}}} {}\n", labels, account.quota[pool].nominal);
      borrowed_lines += fmt::format("allot_account_gpus_borrowed{{{}}} {}\n", labels,
                                    std::max<int64_t>(0, account.allocated[pool] - account.quota[pool].nominal));
    }
  }
  family("allot_account_gpus_nominal", "gauge", "An account's nominal quota, per pool.");
  out += nominal_lines;
  family("allot_account_gpus_borrowed", "gauge", "GPUs an account's subtree holds above its nominal quota.");
  out += borrowed_lines;
  auto histogram = [&](std::string_view name, std::string_view help, const Histogram& values) {
    family(name, "histogram", help);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < values.bounds.size(); ++i) {
      cumulative += values.counts[i];
      out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, values.bounds[i], cumulative);
    }
    out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, values.count, name, values.sum,
                       name, values.count);
  };
  histogram("allot_scheduling_pass_seconds", "Duration of scheduling passes.", pass_seconds_);
  histogram("allot_task_start_delay_seconds",
            "From a job's placement to an agent reporting its first task (running or ended).", start_delay_seconds_);
  family("allot_submits_total", "counter", "Jobs accepted.");
  out += fmt::format("allot_submits_total {}\n", submits_.load());
  family("allot_submit_errors_total", "counter", "Submissions refused.");
  out += fmt::format("allot_submit_errors_total {}\n", submit_errors_.load());
  family("allot_jobs_finished_total", "counter", "Jobs that ended, by final state, since the server started.");
  for (const std::string& state : kEndedStates) {
    auto found = finished_by_state_.find(state);
    out += fmt::format("allot_jobs_finished_total{{state=\"{}\"}} {}\n", state,
                       found == finished_by_state_.end() ? 0 : found->second);
  }
  family("allot_store_commits_total", "counter", "Store transactions (each may carry many requests).");
  out += fmt::format("allot_store_commits_total {}\n", store_->transactions());
  family("allot_agent_long_polls", "gauge", "Agent syncs waiting for work now (each holds a socket, not a thread).");
  out += fmt::format("allot_agent_long_polls {}\n", long_polls_.size());
  return out;
}

// ---- Agents -----------------------------------------------------------------------------------

bool Controller::TaskIsCurrent(JobId id, uint64_t epoch, int index, NodeIndex node) const {
  const Job* job = scheduler_->model().FindJob(id);
  if (!job || job->state != JobState::kRunning || job->epoch != epoch || index < 0) return false;
  if (index < static_cast<int>(job->tasks.size())) return job->tasks[static_cast<size_t>(index)].node == node;
  auto [step, task] = FindStepTask(records_.at(id), index);
  return task != nullptr && !step->cancelled && task->host == node;
}

Status Controller::CheckSteps(const Job& job, const JobRecord& record) {
  const size_t nodes = JobNodes(job).size();
  int next = static_cast<int>(job.tasks.size());
  for (const Step& step : record.steps) {
    bool fits = step.first_index >= next && !step.tasks.empty() && step.nodes >= 1 &&
                static_cast<size_t>(step.nodes) <= nodes;
    for (const StepTask& task : step.tasks) fits &= task.node >= 0 && task.node < step.nodes;
    if (!fits) return InvalidArgumentError("its step {} does not fit its allocation (a damaged record)", step.id);
    next = step.first_index + static_cast<int>(step.tasks.size());
  }
  if (!record.steps.empty() && record.next_task_index < next) {
    return InvalidArgumentError("its step records overlap (a damaged record)");
  }
  return OkStatus();
}

std::pair<Step*, StepTask*> Controller::FindStepTask(JobRecord& record, int index) {
  auto [step, task] = FindStepTask(static_cast<const JobRecord&>(record), index);
  return {const_cast<Step*>(step), const_cast<StepTask*>(task)};
}

std::pair<const Step*, const StepTask*> Controller::FindStepTask(const JobRecord& record, int index) {
  // Steps hold consecutive ranges of indexes, in order: the last one starting at or before it.
  auto after = std::upper_bound(record.steps.begin(), record.steps.end(), index,
                                [](int i, const Step& step) { return i < step.first_index; });
  if (after == record.steps.begin()) return {nullptr, nullptr};
  const Step& step = *std::prev(after);
  size_t offset = static_cast<size_t>(index - step.first_index);
  if (offset >= step.tasks.size()) return {nullptr, nullptr};
  return {&step, &step.tasks[offset]};
}

json Controller::KillsFor(NodeIndex node, const std::set<std::tuple<JobId, uint64_t, int>>& known) const {
  json kills = json::array();
  for (const auto& [id, epoch, index] : known) {
    if (!TaskIsCurrent(id, epoch, index, node)) {
      kills.push_back({{"job", id}, {"epoch", epoch}, {"task", index}, {"grace_seconds", options_.kill_grace_seconds}});
    }
  }
  return kills;
}

void Controller::CompleteLongPoll(NodeIndex node) {
  auto found = long_polls_.find(node);
  if (found == long_polls_.end()) return;
  LongPoll poll = std::move(found->second);
  long_polls_.erase(found);
  for (const auto& [id, epoch, index] : poll.known) {
    if (auto watchers = long_polls_by_job_.find(id); watchers != long_polls_by_job_.end()) {
      watchers->second.erase(node);
      if (watchers->second.empty()) long_polls_by_job_.erase(watchers);
    }
  }
  json reply = {{"node", scheduler_->model().cluster().node(node).name}, {"heartbeat_seconds", HeartbeatSeconds()},
                {"assignments", AssignmentsFor(node, poll.known)}, {"kills", KillsFor(node, poll.known)},
                {"acks", json::array()}};
  // The callback only hands the reply to the network thread: cheap, and it takes no lock of ours.
  poll.done(std::move(reply));
}

void Controller::WakeNode(NodeIndex node) {
  if (long_polls_.contains(node)) CompleteLongPoll(node);
}

void Controller::WakeJob(JobId id) {
  if (auto watchers = long_polls_by_job_.find(id); watchers != long_polls_by_job_.end()) {
    std::set<NodeIndex> nodes = watchers->second;
    for (NodeIndex node : nodes) WakeNode(node);
  }
  if (const Job* job = scheduler_->model().FindJob(id); job && job->state == JobState::kRunning) {
    for (const TaskAllocation& task : job->tasks) WakeNode(task.node);
  }
}

void Controller::WakeJobAfterCommit(JobId id) {
  if (auto watchers = long_polls_by_job_.find(id); watchers != long_polls_by_job_.end()) {
    wake_after_commit_.insert(wake_after_commit_.end(), watchers->second.begin(), watchers->second.end());
  }
  if (const Job* job = scheduler_->model().FindJob(id); job && job->state == JobState::kRunning) {
    for (const TaskAllocation& task : job->tasks) wake_after_commit_.push_back(task.node);
  }
}

void Controller::WakeAfterCommit() {
  // Small enough that a submit waits for one slice at most (tens of milliseconds: a node's
  // assignments take about 0.2 ms to write), large enough that the lock is not taken per node.
  constexpr size_t kNodesPerSlice = 256;
  std::vector<NodeIndex> nodes;
  {
    std::lock_guard lock(mutex_);
    nodes.swap(wake_after_commit_);
  }
  std::sort(nodes.begin(), nodes.end());
  nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
  for (size_t begin = 0; begin < nodes.size(); begin += kNodesPerSlice) {
    std::lock_guard lock(mutex_);
    for (size_t i = begin; i < std::min(nodes.size(), begin + kNodesPerSlice); ++i) WakeNode(nodes[i]);
  }
}

double Controller::HeartbeatSeconds() const {
  const double nodes = static_cast<double>(scheduler_->model().cluster().nodes().size());
  return std::max(options_.heartbeat_seconds, nodes / options_.agent_syncs_per_second);
}

void Controller::LongPollTimerMain() {
  std::unique_lock lock(mutex_);
  while (!long_poll_timer_stopping_) {
    if (long_poll_deadlines_.empty()) {
      long_poll_timer_wakeup_.wait(lock);
      continue;
    }
    auto next = long_poll_deadlines_.begin();
    if (std::chrono::steady_clock::now() < next->first) {
      long_poll_timer_wakeup_.wait_until(lock, next->first);
      continue;
    }
    auto [node, serial] = next->second;
    long_poll_deadlines_.erase(next);
    // A poll that was answered (or superseded) since has left its entry behind: skip it.
    if (auto poll = long_polls_.find(node); poll != long_polls_.end() && poll->second.serial == serial) {
      CompleteLongPoll(node);
    }
  }
}

std::string Controller::LogPath(JobId id, int task, std::string_view stream) const {
  return (std::filesystem::path(options_.data_dir) / "logs" / std::to_string(id) /
          fmt::format("{}.{}", task, stream)).string();
}

json Controller::TaskEnvironment(const Job& job, const JobRecord& record, int task) const {
  const Cluster& cluster = scheduler_->model().cluster();
  if (!record.hosts || record.hosts->epoch != job.epoch) {
    std::vector<std::string> nodes;
    std::unordered_set<NodeIndex> seen;
    for (const TaskAllocation& allocation : job.tasks) {
      if (seen.insert(allocation.node).second) nodes.push_back(cluster.node(allocation.node).name);
    }
    record.hosts = JobRecord::Hosts{job.epoch, fmt::format("{}", fmt::join(nodes, ",")), CompressHostList(nodes)};
  }
  const JobRecord::Hosts& hosts = *record.hosts;
  std::string gpus;
  for (int gpu = 0; gpu < kMaxGpusPerNode; ++gpu) {
    if (job.tasks[task].gpu_mask & (uint32_t{1} << gpu)) gpus += (gpus.empty() ? "" : ",") + std::to_string(gpu);
  }
  NodeIndex master = job.tasks[0].node;
  auto agent = agents_.find(master);
  std::string master_address = agent != agents_.end() && !agent->second.address.empty() ? agent->second.address
                                                                                       : cluster.node(master).name;
  const int processes = record.request->processes_per_task;
  json environment = {
      {"ALLOT_JOB_ID", std::to_string(job.id)},
      {"ALLOT_JOB_NAME", job.spec.name},
      {"ALLOT_ACCOUNT", job.spec.account},
      {"ALLOT_EPOCH", std::to_string(job.epoch)},
      {"ALLOT_TASK_INDEX", std::to_string(task)},
      {"ALLOT_NUM_TASKS", std::to_string(job.spec.tasks)},
      {"ALLOT_NODELIST", hosts.list},
      {"ALLOT_PROCESSES_PER_TASK", std::to_string(processes)},
      // What `allot run` and srun inside the job present to start its steps.
      {"ALLOT_JOB_TOKEN", JobToken(job.id, job.epoch)},
      {"CUDA_VISIBLE_DEVICES", gpus},
      {"NVIDIA_VISIBLE_DEVICES", gpus},
      // torch.distributed and friends: one rendezvous per job, on the first task's node.
      {"MASTER_ADDR", master_address},
      {"MASTER_PORT", std::to_string(20000 + job.id % 40000)},
      {"WORLD_SIZE", std::to_string(job.spec.tasks * processes)},
      {"RANK", std::to_string(task * processes)},
      {"NODE_RANK", std::to_string(task)},
      {"LOCAL_WORLD_SIZE", std::to_string(processes)},
  };
  if (record.array_index >= 0) {
    environment["ALLOT_ARRAY_JOB_ID"] = std::to_string(record.array_job_id);
    environment["ALLOT_ARRAY_TASK_ID"] = std::to_string(record.array_index);
  }
  // What Slurm sets for a batch script (and a step's tasks), so existing scripts find what they
  // read. A Slurm "node" is an allot task; a Slurm task is one of its processes.
  const std::string slurm_tasks = std::to_string(job.spec.tasks * processes);
  const SubmitRequest& request = *record.request;
  std::map<std::string, std::string> slurm = {
      {"SLURM_JOB_ID", std::to_string(job.id)}, {"SLURM_JOBID", std::to_string(job.id)},
      {"SLURM_JOB_NAME", job.spec.name}, {"SLURM_JOB_ACCOUNT", job.spec.account},
      {"SLURM_JOB_USER", job.spec.user}, {"SLURM_JOB_PARTITION", cluster.pool(job.pool).name},
      {"SLURM_CLUSTER_NAME", "allot"},
      {"SLURM_JOB_NUM_NODES", std::to_string(job.spec.tasks)}, {"SLURM_NNODES", std::to_string(job.spec.tasks)},
      {"SLURM_JOB_NODELIST", hosts.hostlist}, {"SLURM_NODELIST", hosts.hostlist},
      {"SLURM_NTASKS", slurm_tasks}, {"SLURM_NPROCS", slurm_tasks},
      {"SLURM_NTASKS_PER_NODE", std::to_string(processes)},
      {"SLURM_TASKS_PER_NODE", job.spec.tasks > 1 ? fmt::format("{}(x{})", processes, job.spec.tasks) : std::to_string(processes)},
      {"SLURM_NODEID", std::to_string(task)}, {"SLURM_PROCID", std::to_string(task * processes)},
      {"SLURM_LOCALID", "0"}, {"SLURM_GPUS_ON_NODE", std::to_string(std::popcount(job.tasks[task].gpu_mask))},
      {"SLURM_JOB_GPUS", gpus}, {"SLURM_STEP_GPUS", gpus},
  };
  if (job.spec.cpus_per_task > 0) {
    slurm["SLURM_CPUS_PER_TASK"] = std::to_string(std::max<int64_t>(1, job.spec.cpus_per_task / processes));
    slurm["SLURM_CPUS_ON_NODE"] = std::to_string(job.spec.cpus_per_task);
  }
  if (!request.submit_dir.empty()) slurm["SLURM_SUBMIT_DIR"] = request.submit_dir;
  if (record.array_index >= 0) {
    slurm["SLURM_ARRAY_JOB_ID"] = std::to_string(record.array_job_id);
    slurm["SLURM_ARRAY_TASK_ID"] = std::to_string(record.array_index);
  }
  for (auto& [name, value] : slurm) environment[name] = std::move(value);
  return environment;
}

// Slurm's filename patterns: %j job id, %A array job id, %a array index, %x name, %u user,
// %t task index, %% a percent sign.
static std::string ExpandOutputPattern(std::string_view pattern, const Job& job, int array_job, int array_index, int task) {
  std::string out;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '%' || i + 1 == pattern.size()) {
      out += pattern[i];
      continue;
    }
    char code = pattern[++i];
    switch (code) {
      case 'j': out += std::to_string(job.id); break;
      case 'A': out += std::to_string(array_job > 0 ? array_job : static_cast<int>(job.id)); break;
      case 'a': out += array_index >= 0 ? std::to_string(array_index) : "0"; break;
      case 'x': out += job.spec.name; break;
      case 'u': out += job.spec.user; break;
      case 't': out += std::to_string(task); break;
      case '%': out += '%'; break;
      default: out += '%'; out += code;
    }
  }
  return out;
}

json Controller::AssignmentsFor(NodeIndex node, const std::set<std::tuple<JobId, uint64_t, int>>& known) const {
  json assignments = json::array();
  const Model& model = scheduler_->model();
  for (JobId id : model.JobsOnNode(node)) {
    const Job& job = *model.FindJob(id);
    const JobRecord& record = records_.at(id);
    const SubmitRequest& request = *record.request;
    // A batch script runs once, as the batch step on the allocation's first node; its other
    // nodes are the job's, for the steps the script starts.
    const int runs = request.batch ? 1 : static_cast<int>(job.tasks.size());
    for (int task = 0; task < runs; ++task) {
      if (job.tasks[task].node != node || record.task_exits.contains(task)) continue;
      if (known.contains({id, job.epoch, task})) continue;
      int array_job = static_cast<int>(record.array_job_id);
      // The working directory: --chdir (relative to the submit directory), else the submit
      // directory for a batch script, else the agent's own directory for the job.
      std::string working_directory = request.chdir;
      if (!request.submit_dir.empty() && (working_directory.empty() || working_directory[0] != '/')) {
        working_directory = working_directory.empty() ? request.submit_dir : request.submit_dir + "/" + working_directory;
      }
      // Slurm's default output for a batch script, in its working directory: written when the
      // node may write there, and shipped to `allot logs` either way.
      std::string output = request.output;
      bool default_output = request.batch && output.empty();
      if (default_output) output = record.array_index >= 0 ? "slurm-%A_%a.out" : "slurm-%j.out";
      json assignment = {
          {"job", id}, {"epoch", job.epoch}, {"task", task}, {"name", job.spec.name}, {"user", job.spec.user},
          {"account", job.spec.account},
          {"argv", job.spec.command}, {"script", request.script}, {"script_args", request.script_args},
          {"environment", TaskEnvironment(job, record, task)}, {"working_directory", working_directory},
          {"stdout", ExpandOutputPattern(output, job, array_job, record.array_index, task)},
          {"stderr", ExpandOutputPattern(request.error, job, array_job, record.array_index, task)},
          {"start_time", job.start_time}, {"time_limit", job.spec.time_limit},
          {"cpus", job.spec.cpus_per_task}, {"memory_bytes", job.spec.memory_per_task},
          {"grace_seconds", options_.kill_grace_seconds}};
      if (default_output) assignment["stdout_optional"] = true;
      if (!request.submit_dir.empty()) assignment["fallback_to_own_directory"] = true;
      assignments.push_back(std::move(assignment));
    }
    if (record.steps.empty()) continue;
    for (const Step& step : record.steps) {
      if (step.cancelled || step.ended()) continue;
      for (const StepTask& task : step.tasks) {
        if (task.exit_code || task.host != node) continue;
        if (known.contains({id, job.epoch, task.index})) continue;
        assignments.push_back(StepAssignment(job, record, step, task));
      }
    }
  }
  return assignments;
}

void Controller::AgentSync(const Principal& who, std::string_view node_name, std::string_view body, SyncDone done) {
  // Output to append to the jobs' logs, written after the state lock is released.
  struct LogWrite {
    JobId job = 0;
    std::filesystem::path path;
    int64_t offset = 0;
    std::string data;
  };
  std::vector<LogWrite> log_writes;
  Store::Ticket ticket;
  bool parked = false;
  StatusOr<json> reply = [&]() -> StatusOr<json> {
  if (who.role != Role::kAgent && !who.is_operator()) {
    return Status(StatusCode::kPermissionDenied, "only agents sync nodes");
  }
  // An agent's credential is its node's: it syncs, reports and writes output for that node only.
  if (who.role == Role::kAgent && who.node != node_name) {
    return Status(StatusCode::kPermissionDenied,
                  who.node.empty() ? fmt::format("this agent token is bound to no node; give node '{}' its own: allot token "
                                                 "create --role agent --node {}", node_name, node_name)
                                   : fmt::format("this agent token is node '{}''s, not '{}''s", who.node, node_name));
  }
  ALLOT_ASSIGN_OR_RETURN(json report, ParseAgentReport(body));
  {
    std::unique_lock lock(mutex_);
    const Time now = Now();
    ALLOT_ASSIGN_OR_RETURN(NodeIndex node, FindNode(node_name));
    const Cluster& cluster = scheduler_->model().cluster();
    const Node& shape = cluster.node(node);
    if (report.contains("gpus") && report["gpus"] != shape.gpus) {
      return InvalidArgumentError("node '{}' has {} GPUs in the config, but its agent found {}; fix the config or "
                                  "the agent's --gpus", node_name, shape.gpus, report["gpus"].dump());
    }
    const std::string& pool_model = cluster.pool(shape.pool).gpu_model;
    if (report.contains("gpu_model") && !SameGpuModel(report.value("gpu_model", ""), pool_model)) {
      return InvalidArgumentError("node '{}' is in a pool of {} GPUs, but its agent found {}", node_name, pool_model,
                                  report["gpu_model"].dump());
    }
    WriteBatch batch;
    AgentState& agent = agents_[node];
    // This sync supersedes any long poll of the same agent still waiting (the agent gave up on
    // it to report a task's exit): that one is answered at once, into a closed connection.
    const uint64_t serial = ++agent.sync_serial;
    CompleteLongPoll(node);
    bool first_sync = agent.last_seen == 0;
    agent.last_seen = now;
    agent.hostname = report.value("hostname", agent.hostname);
    agent.address = report.value("address", agent.address);
    if (first_sync) {
      batch.PutSetting({"agent", std::string(node_name), json{{"hostname", agent.hostname}, {"address", agent.address}}.dump()});
    }
    if (agent.marked_down && shape.state == NodeState::kDown) {
      (void)scheduler_->SetNodeState(node, NodeState::kUp, now);
      drain_reasons_.erase(node);
      batch.DeleteSetting("node", std::string(node_name));
      spdlog::info("node {}: its agent is back; the node is up again", node_name);
      MarkDirty();
    }
    agent.marked_down = false;

    // Output the tasks wrote since the last sync, appended where it belongs (a resent chunk is
    // skipped: the offset says where it starts).
    for (const json& chunk : report.value("logs", json::array())) {
      JobId id = chunk.value("job", JobId{0});
      int task = chunk.value("task", 0);
      std::string stream = chunk.value("stream", "out");
      // Only output of a task this node runs (or ran, for a job that has just ended): an agent
      // cannot write into another node's jobs' logs.
      if (!TaskRanOn(id, task, node)) continue;
      log_writes.push_back({id, LogPath(id, task, stream), chunk.value("offset", int64_t{0}), chunk.value("data", "")});
    }
    // Counted before the state lock is released, so a reader who sees an exit this sync reports
    // waits for the output that came with it (JobLogs). Only the count is under log_mutex_,
    // never the writing, so the state lock never waits for a disk.
    if (!log_writes.empty()) {
      std::lock_guard logs(log_mutex_);
      for (const LogWrite& write : log_writes) ++log_writes_in_flight_[write.job];
    }

    json kills = json::array();
    json acks = json::array();
    std::set<std::tuple<JobId, uint64_t, int>> known;
    for (const json& task : report.value("tasks", json::array())) {
      JobId id = task.value("job", JobId{0});
      uint64_t epoch = task.value("epoch", uint64_t{0});
      int index = task.value("task", -1);
      known.insert({id, epoch, index});
      const Job* job = scheduler_->model().FindJob(id);
      bool current = TaskIsCurrent(id, epoch, index, node);
      // A step's task: its exit is the step's, not the job's.
      auto [step, step_task] = current && index >= static_cast<int>(job->tasks.size())
                                   ? FindStepTask(records_.at(id), index)
                                   : std::pair<Step*, StepTask*>{nullptr, nullptr};
      if (step_task != nullptr) {
        if (task.value("state", "") == "exited") {
          acks.push_back({{"job", id}, {"epoch", epoch}, {"task", index}});
          step_task->exit_code = task.value("exit_code", 1);
          if (step->ended()) step->request.environment.clear();  // nothing starts from it any more
          PersistLive(id, batch);
        }
        continue;
      }
      if (current) {
        JobRecord& record = records_.at(id);
        if (record.placed_at) {
          start_delay_seconds_.Observe(
              std::chrono::duration<double>(std::chrono::steady_clock::now() - *record.placed_at).count());
          record.placed_at.reset();
        }
      }
      if (task.value("state", "") == "exited") {
        acks.push_back({{"job", id}, {"epoch", epoch}, {"task", index}});
        if (!current) continue;  // an older allocation's task, or the job ended meanwhile
        JobRecord& record = records_.at(id);
        record.task_exits[index] = task.value("exit_code", 1);
        if (task.value("timed_out", false)) record.timed_out = true;
        if (task.value("out_of_memory", false)) record.out_of_memory = true;
        // A batch job ends with its batch step (its script); any other job with its last task.
        const size_t needed = record.request->batch ? 1 : job->tasks.size();
        if (record.task_exits.size() < needed) {
          PersistLive(id, batch);
          continue;
        }
        int exit_code = 0;
        for (const auto& [i, code] : record.task_exits) {
          if (code != 0) {
            exit_code = code;
            break;
          }
        }
        // Killed at its time limit (by the agent, or the server's clock says the limit has
        // passed): a timeout, whatever status the kill left.
        bool timed_out = record.timed_out || now >= job->expected_end();
        StatusOr<Job> stopped = scheduler_->Complete(id, now);
        if (stopped.ok()) {
          EndInfo end{exit_code == 0 ? "completed" : "failed", exit_code,
                      exit_code == 0 ? "all tasks exited with status 0"
                                     : fmt::format("a task exited with status {}", exit_code)};
          if (timed_out && exit_code != 0) {
            end = {"timeout", exit_code, fmt::format("ended at its time limit of {}", FormatDuration(stopped->spec.time_limit))};
          } else if (record.out_of_memory && exit_code != 0) {
            end.message = fmt::format("a task ran out of memory: it was killed at its limit of {} MiB per task",
                                      stopped->spec.memory_per_task >> 20);
          }
          RecordEnded(*stopped, end, now, batch);
          MarkDirty();
        }
      } else if (!current) {
        // Not this node's to run (any more): cancelled, ended, preempted, or a stale epoch.
        kills.push_back({{"job", id}, {"epoch", epoch}, {"task", index}, {"grace_seconds", options_.kill_grace_seconds}});
      }
    }
    json assignments = AssignmentsFor(node, known);
    // A long poll never outlasts half the time after which its node is taken for lost, so a
    // waiting agent is never marked down; each is spread by up to 10% so that polls that began
    // together do not all come back together.
    double wait = std::min({report.value("wait_seconds", 0.0), options_.agent_wait_max_seconds,
                            HeartbeatSeconds() * options_.missed_heartbeats / 2});
    if (wait > 1) wait *= std::uniform_real_distribution<double>(0.9, 1.0)(jitter_);
    if (assignments.empty() && kills.empty() && acks.empty() && batch.empty() && wait > 0) {
      // Nothing to say: the sync waits here, holding no thread, until work for this node
      // appears (WakeNode) or its wait is over (the timer), whichever is first.
      LongPoll& poll = long_polls_[node];
      poll = LongPoll{.serial = serial, .known = std::move(known), .done = std::move(done)};
      for (const auto& [id, epoch, index] : poll.known) long_polls_by_job_[id].insert(node);
      long_poll_deadlines_.emplace(std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                                         std::chrono::duration<double>(wait)),
                                   std::make_pair(node, serial));
      long_poll_timer_wakeup_.notify_one();
      parked = true;
      return json();
    }
    // A sync that changed nothing and delivers nothing writes nothing; one that delivers work
    // waits for what is queued before it (the starts it reports) to be durable.
    if (!batch.empty() || !assignments.empty()) ticket = Queue(std::move(batch));
    return json{{"node", node_name}, {"heartbeat_seconds", HeartbeatSeconds()},
                {"assignments", assignments}, {"kills", kills}, {"acks", acks}};
  }
  }();
  // The output, appended outside the state lock; a resent chunk is skipped (its offset says where
  // it starts). Write errors are logged: the task goes on, and the agent sends the chunk again.
  if (!log_writes.empty()) {
    std::lock_guard files(log_file_mutex_);
    for (LogWrite& write : log_writes) {
      std::error_code error;
      std::filesystem::create_directories(write.path.parent_path(), error);
      int64_t size = std::filesystem::exists(write.path, error) ? static_cast<int64_t>(std::filesystem::file_size(write.path, error)) : 0;
      if (write.offset > size || write.offset + static_cast<int64_t>(write.data.size()) <= size) continue;
      std::ofstream file(write.path, std::ios::app | std::ios::binary);
      file << write.data.substr(static_cast<size_t>(size - write.offset));
      if (!file) spdlog::error("cannot write {}: {}", write.path.string(), std::strerror(errno));
    }
  }
  if (!log_writes.empty()) {
    {
      std::lock_guard logs(log_mutex_);
      for (const LogWrite& write : log_writes) {
        if (--log_writes_in_flight_[write.job] == 0) log_writes_in_flight_.erase(write.job);
      }
    }
    logs_written_.notify_all();
  }
  if (parked) return;
  if (reply.ok() && ticket) WaitDurable(ticket);
  done(std::move(reply));
}

void Controller::CheckAgents(Time now, WriteBatch& batch) {
  const double timeout = HeartbeatSeconds() * options_.missed_heartbeats;
  const Cluster& cluster = scheduler_->model().cluster();
  for (auto& [node, agent] : agents_) {
    if (agent.marked_down || static_cast<double>(now - agent.last_seen) <= timeout) continue;
    agent.marked_down = true;
    std::string reason = fmt::format("its agent missed {} syncs (none since {}s ago)", options_.missed_heartbeats,
                                     now - agent.last_seen);
    spdlog::warn("node {} is down: {}", cluster.node(node).name, reason);
    StatusOr<NodeFailure> failure = scheduler_->SetNodeState(node, NodeState::kDown, now);
    if (!failure.ok()) continue;
    drain_reasons_[node] = reason;
    batch.PutSetting({"node", cluster.node(node).name, json{{"state", "down"}, {"reason", reason}}.dump()});
    for (JobId id : failure->requeued) {
      const Job* job = scheduler_->model().FindJob(id);
      if (job) ChargeRun(*job, now, batch);
      if (auto record = records_.find(id); record != records_.end()) {
        record->second.task_exits.clear();
        record->second.timed_out = false;
        record->second.out_of_memory = false;
        record->second.steps.clear();
        record->second.next_task_index = 0;
      }
      PersistLive(id, batch);
    }
    for (const Job& ended : failure->ended) {
      RecordEnded(ended, {"node_fail", -1, fmt::format("node {} failed: {}", cluster.node(node).name, reason)}, now, batch);
    }
    MarkDirty();
  }
}

StatusOr<json> Controller::JobLogs(const Principal& who, JobId id, int task, std::string_view stream, int64_t offset) {
  if (stream != "out" && stream != "err") return InvalidArgumentError("stream must be out or err");
  if (offset < 0) return InvalidArgumentError("offset must not be negative");
  ALLOT_ASSIGN_OR_RETURN(json job, GetJob(who, id));  // visibility, and whether it has ended
  bool complete = job["state"] != "pending" && job["state"] != "running";
  // Output a sync has taken in but not yet written is waited for: whoever saw a task's exit
  // reads all the output shipped with it.
  {
    std::unique_lock logs(log_mutex_);
    logs_written_.wait_for(logs, std::chrono::seconds(10), [&] { return !log_writes_in_flight_.contains(id); });
  }
  std::ifstream file(LogPath(id, task, stream), std::ios::binary);
  std::string data;
  if (file) {
    file.seekg(offset);
    constexpr size_t kMaxChunk = 1 << 20;
    data.resize(kMaxChunk);
    file.read(data.data(), static_cast<std::streamsize>(kMaxChunk));
    data.resize(static_cast<size_t>(file.gcount()));
  }
  // The reply is JSON text, so it carries whole UTF-8 characters: an offset inside one starts at
  // the next, and a character cut at the end of the chunk waits for the next read (unless the
  // job has ended and nothing more will come). Bytes that are not UTF-8 at all arrive as U+FFFD.
  size_t skip = 0;
  while (skip < data.size() && skip < 3 && (static_cast<unsigned char>(data[skip]) & 0xC0) == 0x80) ++skip;
  size_t keep = complete && data.size() < (1 << 20) ? data.size() : std::max(skip, CompleteUtf8Prefix(data));
  return json{{"data", ReplaceInvalidUtf8(data.substr(skip, keep - skip))},
              {"next_offset", offset + static_cast<int64_t>(keep)}, {"complete", complete}};
}

// ---- The scheduling loop ----------------------------------------------------------------------

void Controller::EnforceTimeLimits(Time now, WriteBatch& batch) {
  const Model& model = scheduler_->model();
  std::vector<JobId> over;
  for (PoolIndex pool = 0; pool < model.cluster().pools().size(); ++pool) {
    for (const auto& [end, id] : model.running_by_end(pool)) {
      if (end > now) break;
      over.push_back(id);
    }
  }
  for (JobId id : over) {
    StatusOr<Job> stopped = scheduler_->Complete(id, now);
    if (!stopped.ok()) continue;
    RecordEnded(*stopped, {"timeout", -1, fmt::format("ended at its time limit of {}", FormatDuration(stopped->spec.time_limit))},
                now, batch);
  }
}

void Controller::ResolveDependencies(WriteBatch&) {
  const Model& model = scheduler_->model();
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    JobId id = *it;
    auto record = records_.find(id);
    const Job* job = model.FindJob(id);
    if (record == records_.end() || !job) {
      it = waiting_.erase(it);
      continue;
    }
    std::string note;
    for (const Dependency& dependency : record->second.request->dependencies) {
      if (dependency.type == DependencyType::kSingleton) {
        for (const auto& [other_id, other] : records_) {
          if (other_id < id && other.request->spec.name == record->second.request->spec.name &&
              other.request->spec.user == record->second.request->spec.user) {
            note = fmt::format("singleton: job {} of the same name and user has not ended", other_id);
            break;
          }
        }
        if (!note.empty()) break;
        continue;
      }
      std::string_view type = DependencyTypeName(dependency.type);
      if (const Job* other = model.FindJob(dependency.job)) {
        if (dependency.type == DependencyType::kAfter && other->state == JobState::kRunning) continue;
        note = fmt::format("{}: waiting for job {} to {}", type, dependency.job,
                           dependency.type == DependencyType::kAfter ? "start" : "end");
        break;
      }
      std::optional<std::string> ended = EndedState(dependency.job);
      if (!ended) {
        note = fmt::format("{}: job {} is unknown; this dependency can never be satisfied", type, dependency.job);
        break;
      }
      bool ok = (dependency.type == DependencyType::kAfterOk && *ended == "completed") ||
                (dependency.type == DependencyType::kAfterNotOk && *ended != "completed") ||
                dependency.type == DependencyType::kAfter || dependency.type == DependencyType::kAfterAny;
      if (!ok) {
        note = fmt::format("{}: job {} ended as {}; this dependency can never be satisfied (cancel the job)",
                           type, dependency.job, *ended);
        break;
      }
    }
    if (note.empty()) {
      record->second.waiting_dependencies = false;
      record->second.dependency_note.clear();
      SyncHold(id);
      it = waiting_.erase(it);
    } else {
      record->second.dependency_note = note;
      ++it;
    }
  }
}

void Controller::ApplyArrayLimits(WriteBatch&) {
  const Model& model = scheduler_->model();
  for (auto it = arrays_.begin(); it != arrays_.end();) {
    std::vector<JobId>& members = it->second;
    std::erase_if(members, [&](JobId id) { return model.FindJob(id) == nullptr; });
    if (members.empty()) {
      it = arrays_.erase(it);
      continue;
    }
    int limit = records_.at(members.front()).array_limit;
    int active = 0;
    for (JobId id : members) active += records_.at(id).throttled ? 0 : 1;
    for (JobId id : members) {
      if (active >= limit) break;
      JobRecord& record = records_.at(id);
      if (!record.throttled) continue;
      record.throttled = false;
      SyncHold(id);
      ++active;
    }
    ++it;
  }
}

void Controller::RunPass(Time now, WriteBatch& batch) {
  auto started = std::chrono::steady_clock::now();
  PassResult pass = scheduler_->RunPass(now);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  ++passes_;
  last_pass_time_ = now;
  last_pass_seconds_ = seconds;
  pass_seconds_.Observe(seconds);

  std::set<JobId> touched;
  std::map<JobId, std::string> preempt_reasons;
  for (const Decision& decision : pass.decisions) {
    if (const auto* start = std::get_if<StartDecision>(&decision)) {
      touched.insert(start->job);
      if (auto record = records_.find(start->job); record != records_.end()) {
        record->second.placed_at = std::chrono::steady_clock::now();
      }
    } else if (const auto* preempt = std::get_if<PreemptDecision>(&decision)) {
      preempt_reasons[preempt->victim] = preempt->reason;
      if (preempt->requeued) {
        if (const Job* victim = scheduler_->model().FindJob(preempt->victim)) ChargeRun(*victim, now, batch);
        touched.insert(preempt->victim);
      }
    }
  }
  for (const Job& ended : pass.ended) {
    RecordEnded(ended, {"preempted", -1, preempt_reasons[ended.id]}, now, batch);
  }
  for (JobId id : touched) {
    if (auto record = records_.find(id); record != records_.end()) {
      record->second.task_exits.clear();
      record->second.timed_out = false;
      record->second.out_of_memory = false;
      record->second.steps.clear();
      record->second.next_task_index = 0;
    }
    PersistLive(id, batch);
  }
  // Started jobs: their nodes get their tasks; requeued ones: their old nodes kill them. Both
  // once the batch is durable (WakeAfterCommit).
  for (JobId id : touched) WakeJobAfterCommit(id);
}

void Controller::Tick(Time now, WriteBatch& batch) {
  EnforceTimeLimits(now, batch);
  CheckAgents(now, batch);
  ResolveDependencies(batch);
  ApplyArrayLimits(batch);
  RunPass(now, batch);
}

void Controller::TickForTest() {
  Store::Ticket ticket;
  {
    std::lock_guard lock(mutex_);
    WriteBatch batch;
    Tick(Now(), batch);
    ticket = Queue(std::move(batch));
  }
  WaitDurable(ticket);
  WakeAfterCommit();
}

void Controller::LoopMain() {
  using Clock = std::chrono::steady_clock;
  // Passes run at most this often: the policy's interval, and never more than a quarter of the
  // time (three times the last pass's duration between passes), so that a large queue's passes
  // leave the lock to submits and agents; small queues get a pass within milliseconds.
  const double policy_interval = std::max<double>(options_.min_pass_interval_seconds,
                                                  static_cast<double>(scheduler_->policy().pass_interval));
  Clock::duration min_interval = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(policy_interval));
  const auto idle_interval = std::chrono::duration<double>(options_.idle_pass_interval_seconds);
  Clock::time_point last_pass = Clock::now() - std::chrono::hours(1);
  while (true) {
    {
      std::unique_lock lock(loop_mutex_);
      // Wake for events, and at least every second for time limits.
      loop_wakeup_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_ || dirty_; });
      if (stopping_) return;
      // Events within the interval wait for the next pass together.
      auto next_pass = last_pass + min_interval;
      if (dirty_ && Clock::now() < next_pass) {
        loop_wakeup_.wait_until(lock, next_pass, [&] { return stopping_; });
        if (stopping_) return;
      }
    }
    bool pass_due;
    {
      std::lock_guard lock(loop_mutex_);
      pass_due = dirty_ || Clock::now() - last_pass >= idle_interval;
      dirty_ = false;
    }
    Store::Ticket ticket;
    {
      std::lock_guard lock(mutex_);
      WriteBatch batch;
      const Time now = Now();
      EnforceTimeLimits(now, batch);
      CheckAgents(now, batch);
      bool ended_some = !batch.empty();
      ResolveDependencies(batch);
      ApplyArrayLimits(batch);
      if (pass_due || ended_some) {
        Clock::time_point started = Clock::now();
        RunPass(now, batch);
        last_pass = Clock::now();
        min_interval = std::max(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(policy_interval)),
                                3 * (last_pass - started));
      }
      if (!batch.empty()) ticket = Queue(std::move(batch));
    }
    if (ticket) WaitDurable(ticket);
    WakeAfterCommit();
  }
}

void Controller::StartLoop() {
  {
    std::lock_guard lock(mutex_);
    if (!long_poll_timer_.joinable()) {
      long_poll_timer_stopping_ = false;
      long_poll_timer_ = std::thread([this] { LongPollTimerMain(); });
    }
  }
  std::lock_guard lock(loop_mutex_);
  if (loop_.joinable()) return;
  stopping_ = false;
  dirty_ = true;
  loop_ = std::thread([this] { LoopMain(); });
}

void Controller::StopLoop() {
  {
    std::lock_guard lock(loop_mutex_);
    stopping_ = true;
    loop_wakeup_.notify_all();
  }
  if (loop_.joinable()) loop_.join();
  {
    std::lock_guard lock(mutex_);
    long_poll_timer_stopping_ = true;
    long_poll_timer_wakeup_.notify_all();
    // Waiting syncs hold their connections (through their responders); they go now, while the
    // front end that owns those connections still exists.
    long_polls_.clear();
    long_polls_by_job_.clear();
    long_poll_deadlines_.clear();
  }
  if (long_poll_timer_.joinable()) long_poll_timer_.join();
}

}  // namespace allot
