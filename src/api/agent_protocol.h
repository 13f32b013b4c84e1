// The agent sync protocol (docs/agents.md), typed, for both ends: an agent (or nodesim's hollow
// nodes) sends an AgentReport with POST /v1/agents/{node}/sync and gets a SyncReply saying what
// to run, kill and forget. Each side builds these structs and parses the other's; the JSON wire
// form lives only here, so the agent and the server cannot drift apart on a field's name.
//
//   // The server: a report is parsed and checked whole before any of it is applied, so a
//   // malformed or hostile report changes nothing.
//   ALLOT_ASSIGN_OR_RETURN(AgentReport report, ParseAgentReport(body));
//   for (const ReportedTask& task : report.tasks) ...
//   SyncReply reply{.node = "gpu-001", .heartbeat_seconds = 10};
//   reply.assignments.push_back(...);   // cheap to build under a lock: the job's shared
//   std::string body = RenderSyncReply(reply);  // environment is shared, and JSON is made here
//
//   // The agent:
//   std::string body = RenderAgentReport(report);
//   ALLOT_ASSIGN_OR_RETURN(SyncReply orders, ParseSyncReply(reply_body));
//
// A report's wire form: an object with the optional fields hostname, address, gpu_model
// (strings), gpus (a count), cpus, memory, wait_seconds (numbers), tasks and logs (arrays). Each
// task has job, epoch, task (non-negative integers), state (running or exited), and may have
// exit_code (0-255), timed_out and out_of_memory (booleans). Each log chunk has job, task, offset
// (non-negative integers), stream (out or err) and data (text). A reply is read leniently (fields
// it does not know are skipped: a newer server may add some), a report strictly (an unknown
// field is refused: it is a mistake or an agent newer than the server).
//
// Versions: a report says which version of this protocol its agent speaks ("protocol"; absent
// is 1), and the server answers in that version. Version 2 sends a start's node list once, in
// Slurm's hostlist form ("nodelist": "gpu-[001-512]"), where version 1 sent every name in
// ALLOT_NODELIST: for a 512-node gang that was 8 KB in each of its 512 nodes' assignments. A
// server serves agents of every version up to its own, so servers are upgraded first (as
// slurmctld is before slurmd).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/job.h"
#include "core/status.h"
#include "core/units.h"

namespace allot {

// The newest version of the protocol this build speaks, and the oldest a server still answers.
inline constexpr int kAgentProtocol = 2;

// A job has at most a million tasks of its own (config.cc); the tasks of its steps (srun) take
// the indexes after those, up to this bound, which keeps every index an int.
inline constexpr uint64_t kMaxTaskIndex = uint64_t{1} << 30;

// ---- What an agent reports --------------------------------------------------------------------

struct ReportedTask {
  JobId job = 0;
  uint64_t epoch = 0;
  int task = 0;
  bool exited = false;  // else running
  std::optional<int> exit_code;  // 0-255, with exited
  bool timed_out = false;        // killed at its time limit by the agent
  bool out_of_memory = false;    // its cgroup ran out of memory
};

// Output a task wrote, from `offset` in its stream: sent again until a reply acknowledges the
// sync that carried it, so the server skips what it already has.
struct OutputChunk {
  JobId job = 0;
  int task = 0;
  std::string stream;  // "out" or "err"
  int64_t offset = 0;
  std::string data;
};

struct AgentReport {
  std::optional<std::string> hostname;
  std::optional<std::string> address;  // where the node's peers reach it (MASTER_ADDR)
  std::optional<uint64_t> gpus;
  std::optional<std::string> gpu_model;
  std::optional<double> cpus;
  std::optional<double> memory;
  // With nothing to deliver, how long the server may hold the sync waiting for work.
  double wait_seconds = 0;
  int protocol = 1;  // the version its agent speaks: 1 to kAgentProtocol ("protocol"; absent: 1)
  std::vector<ReportedTask> tasks;
  std::vector<OutputChunk> logs;
};

StatusOr<AgentReport> ParseAgentReport(std::string_view body);
// Text that is not UTF-8 (a task's raw output) is sent with U+FFFD in its place.
std::string RenderAgentReport(const AgentReport& report);

// ---- What the server answers ------------------------------------------------------------------

using EnvironmentVariables = std::map<std::string, std::string, std::less<>>;

// A task for the agent to start.
struct TaskAssignment {
  JobId job = 0;
  uint64_t epoch = 0;
  int task = 0;
  std::optional<int> step;  // a step's task (srun inside the job), not the job's own
  std::string name;
  std::string user;
  std::string account;
  std::vector<std::string> argv;
  std::string script;  // a batch script, run with script_args instead of argv
  std::vector<std::string> script_args;
  // The variables every task of the start shares, made once per start and shared by all of its
  // assignments (a 512-node gang's would otherwise be copied 512 times), then the task's own,
  // which win over them.
  std::shared_ptr<const EnvironmentVariables> shared_environment;
  EnvironmentVariables environment;
  // The start's nodes in Slurm's hostlist form ("a[1-2],b7"), for ALLOT_NODELIST (every name,
  // comma-separated, in task order), which the agent writes out (protocol 2) or the server does
  // (protocol 1): the one variable that grows with the gang.
  std::string nodelist;
  std::string working_directory;  // empty: the agent's own directory for the job
  bool fallback_to_own_directory = false;  // if working_directory is missing on this node
  std::string stdout_path;  // "stdout" on the wire
  std::string stderr_path;  // "stderr"
  bool stdout_optional = false;  // Slurm's default output: written where it may be
  Time start_time = 0;
  Time time_limit = 0;
  int64_t cpus = 0;          // 0: no limit
  int64_t memory_bytes = 0;  // 0: no limit
  double grace_seconds = 30;  // between SIGTERM and SIGKILL

  // The shared variables, ALLOT_NODELIST from `nodelist`, and the task's own over them.
  EnvironmentVariables MergedEnvironment() const;
};

struct TaskKill {
  JobId job = 0;
  uint64_t epoch = 0;
  int task = 0;
  double grace_seconds = 30;
};

// The server has the task's exit (and all the output sent with it): the agent may forget it.
struct TaskAck {
  JobId job = 0;
  uint64_t epoch = 0;
  int task = 0;
};

struct SyncReply {
  int protocol = 1;  // the version its agent speaks (its report's), which the reply is written in
  std::string node;
  double heartbeat_seconds = 0;
  double next_sync_seconds = 0;  // 0: sync again at once (older servers sent it)
  std::vector<TaskAssignment> assignments;
  std::vector<TaskKill> kills;
  std::vector<TaskAck> acks;
};

std::string RenderSyncReply(const SyncReply& reply);
StatusOr<SyncReply> ParseSyncReply(std::string_view body);

}  // namespace allot
