#include "sched/scenario.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "core/config.h"
#include "sched/scheduler.h"

namespace allot {
namespace {

struct Arguments {
  std::string command;
  std::vector<std::string> positional;
  std::map<std::string, std::string> named;
};

Arguments Split(std::string_view text) {
  Arguments args;
  std::istringstream stream{std::string(text)};
  std::string word;
  stream >> args.command;
  while (stream >> word) {
    size_t equals = word.find('=');
    if (equals == std::string::npos) {
      args.positional.push_back(word);
    } else {
      args.named[word.substr(0, equals)] = word.substr(equals + 1);
    }
  }
  return args;
}

StatusOr<bool> ParseBool(const std::string& text) {
  if (text == "true" || text == "yes") return true;
  if (text == "false" || text == "no") return false;
  return InvalidArgumentError("'{}' is not true or false", text);
}

StatusOr<int64_t> ParseCount(const std::string& key, const std::string& text) {
  try {
    size_t used = 0;
    int64_t value = std::stoll(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  return InvalidArgumentError("{}: '{}' is not an integer", key, text);
}

class Runner {
 public:
  explicit Runner(std::unique_ptr<Scheduler> scheduler) : scheduler_(std::move(scheduler)) {}

  Status Execute(Time now, const Arguments& args) {
    CompleteUpTo(now);
    now_ = now;
    const std::string& command = args.command;
    if (command == "submit") return Submit(args);
    if (command == "pass") return Pass();
    if (command == "usage") return Usage();
    if (command == "node") {
      if (args.positional.size() != 2) return InvalidArgumentError("usage: node NAME up|draining|down");
      ALLOT_ASSIGN_OR_RETURN(NodeIndex node, scheduler_->model().cluster().FindNode(args.positional[0]));
      ALLOT_ASSIGN_OR_RETURN(NodeState state, ParseNodeState(args.positional[1]));
      ALLOT_ASSIGN_OR_RETURN(NodeFailure failure, scheduler_->SetNodeState(node, state, now));
      Log("node {} {}", args.positional[0], NodeStateName(state));
      for (JobId id : failure.requeued) Log("requeue job={} reason=\"node failure\"", id);
      for (const Job& job : failure.ended) Log("end job={} node-failure", job.id);
      return OkStatus();
    }
    const std::vector<std::string> job_commands = {"complete", "cancel", "hold", "release", "show"};
    if (std::find(job_commands.begin(), job_commands.end(), command) == job_commands.end()) {
      return InvalidArgumentError("unknown command '{}'", command);
    }
    if (args.positional.size() != 1) return InvalidArgumentError("usage: {} JOB", command);
    ALLOT_ASSIGN_OR_RETURN(int64_t id, ParseCount("job", args.positional[0]));
    if (command == "complete") {
      ALLOT_RETURN_IF_ERROR(scheduler_->Complete(id, now).status());
      runtimes_.erase(id);
      Log("end job={} completed", id);
      return OkStatus();
    }
    if (command == "cancel") {
      ALLOT_RETURN_IF_ERROR(scheduler_->Cancel(id, now).status());
      runtimes_.erase(id);
      Log("end job={} cancelled", id);
      return OkStatus();
    }
    if (command == "hold") return scheduler_->Hold(id);
    if (command == "release") return scheduler_->Release(id);
    if (command == "show") {
      const Job* job = scheduler_->model().FindJob(id);
      if (!job) return NotFoundError("no job {}", id);
      if (job->state == JobState::kRunning) {
        Log("show job={} running since={} pool={}", id, job->start_time,
            scheduler_->model().cluster().pool(job->pool).name);
      } else {
        PendingReason reason = scheduler_->ReasonOf(*job);
        Log("show job={} pending reason={} \"{}\"", id, ReasonCodeName(reason.code), reason.message);
      }
      return OkStatus();
    }
    return InvalidArgumentError("unknown command '{}'", command);
  }

  // Ends, in time order, the running jobs whose runtime (or time limit) has passed by `now`.
  void CompleteUpTo(Time now) {
    while (true) {
      std::optional<std::pair<Time, JobId>> next;
      for (const auto& [id, runtime] : runtimes_) {
        const Job* job = scheduler_->model().FindJob(id);
        if (!job || job->state != JobState::kRunning) continue;
        Time end = job->start_time + std::min(runtime, job->spec.time_limit);
        if (end <= now && (!next || std::make_pair(end, id) < *next)) next = std::make_pair(end, id);
      }
      if (!next) return;
      const Job& job = *scheduler_->model().FindJob(next->second);
      bool timeout = runtimes_[next->second] > job.spec.time_limit;
      now_ = next->first;
      (void)scheduler_->Complete(next->second, next->first);
      runtimes_.erase(next->second);
      Log("end job={} {}", next->second, timeout ? "timeout" : "completed");
    }
  }

  std::string log() const { return log_.str(); }

 private:
  template <typename... Args>
  void Log(fmt::format_string<Args...> format, Args&&... args) {
    log_ << "t=" << now_ << ' ' << fmt::format(format, std::forward<Args>(args)...) << '\n';
  }

  Status Submit(const Arguments& args) {
    JobSpec spec;
    JobId id = next_id_;
    Duration runtime = -1;
    for (const auto& [key, value] : args.named) {
      if (key == "id") {
        ALLOT_ASSIGN_OR_RETURN(int64_t parsed, ParseCount(key, value));
        id = static_cast<JobId>(parsed);
      } else if (key == "account") {
        spec.account = value;
      } else if (key == "name") {
        spec.name = value;
      } else if (key == "tasks") {
        ALLOT_ASSIGN_OR_RETURN(int64_t tasks, ParseCount(key, value));
        spec.tasks = static_cast<int>(tasks);
      } else if (key == "gpus") {
        ALLOT_ASSIGN_OR_RETURN(int64_t gpus, ParseCount(key, value));
        spec.gpus_per_task = static_cast<int>(gpus);
      } else if (key == "cpus") {
        ALLOT_ASSIGN_OR_RETURN(int64_t cpus, ParseCount(key, value));
        spec.cpus_per_task = static_cast<int>(cpus);
      } else if (key == "memory") {
        ALLOT_ASSIGN_OR_RETURN(spec.memory_per_task, ParseMemory(value));
      } else if (key == "pools") {
        std::istringstream list(value);
        for (std::string pool; std::getline(list, pool, ',');) spec.pools.push_back(pool);
      } else if (key == "model") {
        spec.gpu_model = value;
      } else if (key == "topology") {
        size_t colon = value.find(':');
        ALLOT_ASSIGN_OR_RETURN(spec.topology.level, ParseLevel(value.substr(0, colon)));
        std::string mode = colon == std::string::npos ? "required" : value.substr(colon + 1);
        if (mode != "required" && mode != "preferred") {
          return InvalidArgumentError("topology mode '{}': use required or preferred", mode);
        }
        spec.topology.mode = mode == "required" ? TopologyMode::kRequired : TopologyMode::kPreferred;
      } else if (key == "limit") {
        ALLOT_ASSIGN_OR_RETURN(spec.time_limit, ParseDuration(value));
      } else if (key == "runtime") {
        ALLOT_ASSIGN_OR_RETURN(runtime, ParseDuration(value));
      } else if (key == "class") {
        spec.priority_class = value;
      } else if (key == "preemptible") {
        ALLOT_ASSIGN_OR_RETURN(spec.preemptible, ParseBool(value));
      } else if (key == "requeue") {
        ALLOT_ASSIGN_OR_RETURN(spec.requeue, ParseBool(value));
      } else {
        return InvalidArgumentError("submit: unknown key '{}'", key);
      }
    }
    next_id_ = std::max(next_id_, id + 1);
    Status submitted = scheduler_->Submit(id, spec, now_);
    if (!submitted.ok()) {
      Log("reject job={} \"{}\"", id, submitted.message());
      return OkStatus();
    }
    if (runtime >= 0) runtimes_[id] = runtime;
    Log("submit job={} account={} gpus={}x{}", id, spec.account, spec.tasks, spec.gpus_per_task);
    return OkStatus();
  }

  Status Pass() {
    PassResult result = scheduler_->RunPass(now_);
    const Model& model = scheduler_->model();
    for (const Decision& decision : result.decisions) Log("{}", FormatDecision(model, decision));
    for (const Job& job : result.ended) runtimes_.erase(job.id);
    for (JobId id : model.pending()) {
      PendingReason reason = scheduler_->ReasonOf(*model.FindJob(id));
      Log("wait job={} {}: {}", id, ReasonCodeName(reason.code), reason.message);
    }
    return OkStatus();
  }

  Status Usage() {
    const Model& model = scheduler_->model();
    const AccountTree& tree = model.accounts();
    for (AccountIndex index = 1; index < tree.accounts().size(); ++index) {
      const Account& account = tree.account(index);
      std::string pools;
      for (PoolIndex pool = 0; pool < model.cluster().pools().size(); ++pool) {
        if (account.allocated[pool] == 0 && account.quota[pool].nominal == 0) continue;
        pools += fmt::format(" {}={}/{}", model.cluster().pool(pool).name, account.allocated[pool],
                             account.quota[pool].nominal);
      }
      Log("usage {}{} recent={:.0f}", account.path, pools, account.decayed_usage);
    }
    return OkStatus();
  }

  std::unique_ptr<Scheduler> scheduler_;
  std::map<JobId, Duration> runtimes_;
  std::ostringstream log_;
  Time now_ = 0;
  JobId next_id_ = 1;
};

}  // namespace

StatusOr<std::string> RunScenario(std::string_view yaml, std::string_view source) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& error) {
    return InvalidArgumentError("{}:{}: not valid YAML: {}", source, error.mark.line + 1, error.msg);
  }
  if (!root.IsMap() || !root["config"] || !root["script"]) {
    return InvalidArgumentError("{}: a scenario needs 'config' and 'script'", source);
  }
  for (const auto& entry : root) {
    std::string key = entry.first.Scalar();
    if (key != "config" && key != "script" && key != "description") {
      return InvalidArgumentError("{}: unknown field '{}'; expected config, script, description", source, key);
    }
  }
  ALLOT_ASSIGN_OR_RETURN(Config config, ParseConfigNode(root["config"], source));
  ALLOT_ASSIGN_OR_RETURN(std::unique_ptr<Scheduler> scheduler, Scheduler::Create(std::move(config)));
  Runner runner(std::move(scheduler));
  int first_line = root["script"].Mark().line + 2;  // a block scalar starts on the next line
  std::istringstream script(root["script"].Scalar());
  Time last = 0;
  int line_number = first_line - 1;
  for (std::string line; std::getline(script, line);) {
    ++line_number;
    if (size_t hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream words(line);
    std::string when;
    if (!(words >> when)) continue;
    auto where = [&](const Status& status) {
      return InvalidArgumentError("{}:{}: {}", source, line_number, status.message());
    };
    StatusOr<Duration> at = ParseDuration(when);
    if (!at.ok()) return where(at.status());
    if (*at < last) return where(InvalidArgumentError("time {} is before {}", *at, last));
    last = *at;
    std::string rest;
    std::getline(words, rest);
    Arguments args = Split(rest);
    if (args.command.empty()) return where(InvalidArgumentError("a command must follow the time"));
    Status status = runner.Execute(*at, args);
    if (!status.ok()) return where(status);
  }
  return runner.log();
}

StatusOr<std::string> RunScenarioFile(const std::string& path) {
  std::ifstream file(path);
  if (!file) return NotFoundError("cannot read scenario '{}'", path);
  std::stringstream text;
  text << file.rdbuf();
  return RunScenario(text.str(), path);
}

}  // namespace allot
