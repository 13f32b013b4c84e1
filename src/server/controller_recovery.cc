// The Controller's recovery: at start, the state is rebuilt from the store (settings, tokens,
// live jobs with their allocations and steps, usage), checked against the config, and the
// first operator token is made when there is none. Kept apart from controller.cc, which holds
// the job lifecycle this restores.
#include "server/controller.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <limits>
#include <filesystem>

#include "api/submission.h"
#include "server/controller_internal.h"

namespace allot {
namespace {

using nlohmann::json;
using namespace controller_internal;

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
  // A submit answered within the last day is answered the same way again after a restart, even
  // if its jobs have ended since or could not be restored: a client whose reply was lost in a
  // crash or a failover retries with its key, and must not make the job twice.
  auto remember_submit = [&](const JobRow& row, const json& doc) {
    if (!doc.is_object() || !doc.contains("idempotency_key") || !doc["idempotency_key"].is_string()) return;
    std::string key = IdempotencyScope(row.account, row.user, doc["idempotency_key"].get<std::string>());
    json& earlier = submit_replies_[key];
    if (earlier.is_null()) {
      earlier = {{"ids", json::array()}};
      if (doc.value("array_index", json()).is_number()) earlier["array_job_id"] = doc.value("array_job_id", JobId{0});
      submit_reply_ages_.emplace_back(now, key);
    }
    earlier["ids"].push_back(row.id);
  };
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
      if (status.ok()) {
        // Ranking fields: a damaged one counts as 0 rather than failing a healthy job.
        auto number = [&doc](const char* key) {
          const json& value = doc.value(key, json());
          return value.is_number() ? value.get<double>() : 0.0;
        };
        const json& restarts = doc.value("restarts", json());
        scheduler_->RestoreService(row.id, number("attained_gpu_seconds"), static_cast<Time>(number("requeue_time")),
                                   number("forgiven_gpu_seconds"),
                                   restarts.is_number_integer() ? restarts.get<int>() : 0);
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
      remember_submit(row, doc);
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
  // Keys of the last day's submits whose jobs have ended (live jobs' keys are restored above).
  ALLOT_ASSIGN_OR_RETURN(std::vector<JobRow> recent,
                         store_->ListJobs({.states = kEndedStates, .submitted_since = now - kDay,
                                           .limit = std::numeric_limits<int32_t>::max()}));
  std::reverse(recent.begin(), recent.end());  // by id, as submitted
  for (const JobRow& row : recent) remember_submit(row, json::parse(row.doc, nullptr, false));
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
    agent.synced = true;
    last_seen_[*node].store(now);
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
  spdlog::info("restored {} live jobs ({} running) from the {} store in {}", restored,
               scheduler_->model().running_count(), store_->engine(),
               options_.store.empty() ? options_.data_dir : Store::Describe(options_.store));
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

}  // namespace allot
