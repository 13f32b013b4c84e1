// Agent: `allot agent`, the process on every node that runs what the server assigns to it.
//
// It syncs with the server in a loop (POST /v1/agents/{node}/sync, docs/agents.md): it reports
// its GPUs, the tasks it runs and those that exited with their status, and the output they
// wrote since the last sync; it gets back the tasks to start and those to kill. The server's
// answer is the truth and the agent only reconciles with it, so a lost message is repaired by
// the next sync, and a task never runs twice at once: every assignment carries the job's
// allocation epoch, the agent refuses an epoch older than one it has seen, and the server tells
// it to kill any task it runs that is not in the job's current allocation.
//
// Tasks run under TaskRunner's shims, so they outlive an agent restart; a restarted agent finds
// them in its state directory and goes on reporting them.
//
// While nothing changes, a sync is a long poll: the server answers when it has work for the
// node, or after the wait. A task that exits interrupts the long poll (ExitWatcher), so its end
// is reported at once: no polling, whatever the number of nodes.
//
//   ALLOT_ASSIGN_OR_RETURN(std::unique_ptr<Agent> agent, Agent::Create(options));
//   agent->Run();  // until Stop() from another thread
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>

#include "agent/backoff.h"
#include "api/agent_protocol.h"
#include "agent/exit_watcher.h"
#include "agent/gpus.h"
#include "agent/task_runner.h"
#include "agent/user_map.h"
#include "core/status.h"

namespace httplib {
class Client;
}

namespace allot {

struct AgentOptions {
  std::string server = "http://127.0.0.1:8080";
  std::string token;
  // `token` is a bootstrap token: enrol the node with it (once; the node's own token is kept in
  // STATE/node.token, mode 0600) and sync with the node's token.
  bool enrol = false;
  std::string ca_file;  // https: the CA certificates (PEM) the server's certificate is verified against
  std::string node;       // the node's name in the server's config; default: the host name
  std::string address;    // how other nodes reach this one (MASTER_ADDR); default: the node name
  std::string state_dir = "allot-agent";
  GpuDeclaration gpus;    // count 0: discover with NVML
  std::string run_as;     // run every task as this unprivileged Unix user (the agent runs as root)
  std::string user_map;   // or: a file mapping jobs' users and accounts to Unix users (UserMap)
  std::string shim;       // the allot-shim program; default: next to this program
  bool cgroups = true;    // a cgroup v2 per task, with limits, where the machine allows it
  double wait_seconds = 30;          // long poll: how long the server may hold a sync (it may cut it shorter)
  double poll_seconds = 0.05;        // without pidfds only: how soon an exit is noticed
  // While a running task writes output, syncs come at least this often, so `allot logs -f` and
  // srun see it flow; a task that writes nothing costs no extra syncs.
  double output_seconds = 2;
};

class Agent {
 public:
  static StatusOr<std::unique_ptr<Agent>> Create(AgentOptions options);
  ~Agent();

  // Syncs until Stop(). Returns an error only when the server refuses the node for good (it is
  // not in the config, or its GPUs differ); network errors are retried.
  Status Run();
  // Ends Run() soon: it interrupts a long poll in flight.
  void Stop();

  const GpuInventory& gpus() const { return gpus_; }
  const std::string& node() const { return options_.node; }

 private:
  struct Task {
    RunningTask running;
    std::optional<int> exit_code;
    Time deadline = 0;       // start + time limit, by the server's clock
    double grace_seconds = 30;
    double kill_at = 0;      // steady seconds at which SIGKILL follows a SIGTERM; 0: none sent
    bool timed_out = false;  // this agent ended it at its time limit
    bool out_of_memory = false;
    int64_t shipped_out = 0;
    int64_t shipped_err = 0;
  };
  using TaskKey = std::tuple<JobId, uint64_t, int>;

  Agent(AgentOptions options, GpuInventory gpus, TaskCgroups cgroups, std::optional<UserMap> users);
  // One round: watch the tasks, report, apply the answer. Returns a permanent error, or OK.
  Status SyncOnce();
  void WatchTasks();
  void Terminate(Task& task, double grace_seconds);
  void Launch(const TaskAssignment& assignment);
  // From the exit watcher's thread: a shim exited; interrupt the long poll if one is waiting.
  void OnTaskExit();

  AgentOptions options_;
  GpuInventory gpus_;
  TaskRunner runner_;
  std::shared_ptr<httplib::Client> NewClient() const;
  // Ends the sync in flight, if any, from another thread (an exit, or Stop).
  void InterruptSync() const;
  // The client for the next request; replaced after an interrupted one. Shared, because the exit
  // watcher's thread may stop the one a sync is using while the sync replaces it.
  std::shared_ptr<httplib::Client> Client() const;
  mutable std::mutex client_mutex_;
  std::shared_ptr<httplib::Client> client_;
  // options_.server split (core/server_list.h); the client talks to servers_[server_index_].
  // Both under client_mutex_ once the agent runs.
  std::vector<std::string> servers_;
  size_t server_index_ = 0;
  // Several servers: the one synced with was away or a standby; the next sync goes to the
  // leader it named, else to the next server in the list. Returns false with one server.
  bool FollowLeader(const std::string& named);
  std::string CurrentServer() const;
  std::unique_ptr<ExitWatcher> exit_watcher_;
  bool watching_exits_ = true;             // false where the kernel has no pidfds: poll then
  std::atomic<uint64_t> exits_seen_{0};    // shims that exited, counted by the watcher
  std::atomic<bool> in_long_poll_{false};
  // Waiting before the next sync when the server says so (next_sync_seconds); an exit or Stop
  // ends the wait.
  std::mutex wake_mutex_;
  std::condition_variable wake_;
  // After a failed sync: the server is away or busy; each failure in a row waits longer, up to
  // the server's heartbeat interval (it marks a node down after several missed ones), which
  // every reply carries; 5 s, the server's default, until the first reply.
  Backoff backoff_{1, 5};
  // Waits `seconds` (at most 300), or until Stop.
  void WaitBeforeRetry(double seconds);
  std::map<TaskKey, Task> tasks_;
  std::map<JobId, uint64_t> highest_epoch_;  // fencing: never start an older allocation
  std::atomic<bool> stopping_{false};
  std::optional<UserMap> users_;  // none: tasks run as the agent's own user
};

}  // namespace allot
