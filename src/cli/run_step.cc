#include "cli/run_step.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

extern char** environ;

namespace allot {

using nlohmann::json;

std::atomic<int> step_interrupt{0};

std::map<std::string, std::string> ProcessEnvironment() {
  std::map<std::string, std::string> variables;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    size_t equals = text.find('=');
    if (equals == std::string_view::npos || equals == 0) continue;
    variables.emplace(text.substr(0, equals), text.substr(equals + 1));
  }
  return variables;
}

namespace {

// srun's --export: ALL (every variable), NONE, or a list of NAME (from the environment) and
// NAME=VALUE, which may include ALL.
StatusOr<std::map<std::string, std::string>> ExportedEnvironment(const StepOptions& options) {
  std::map<std::string, std::string> exported;
  std::string_view list = options.export_variables;
  if (list == "NONE") return exported;
  for (size_t start = 0; start <= list.size();) {
    size_t comma = std::min(list.find(',', start), list.size());
    std::string_view item = list.substr(start, comma - start);
    start = comma + 1;
    if (item.empty()) continue;
    if (item == "ALL") {
      for (const auto& [name, value] : options.environment) exported.emplace(name, value);
      continue;
    }
    if (item == "NONE") return InvalidArgumentError("--export: NONE cannot be combined with other names");
    size_t equals = item.find('=');
    if (equals == 0) return InvalidArgumentError("--export: '{}' has no variable name", item);
    if (equals != std::string_view::npos) {
      exported[std::string(item.substr(0, equals))] = std::string(item.substr(equals + 1));
    } else if (auto found = options.environment.find(std::string(item)); found != options.environment.end()) {
      exported[found->first] = found->second;
    }
  }
  return exported;
}

// One task's stream as this process prints it: whole lines behind a "RANK: " label when
// labelling, else as it comes.
struct Stream {
  int64_t offset = 0;
  std::string partial;  // a labelled stream's unfinished last line
};

void Print(std::ostream& out, Stream& stream, std::string_view data, bool label, size_t rank, bool flush_partial) {
  if (!label) {
    out << data;
    return;
  }
  stream.partial += data;
  size_t start = 0;
  for (size_t newline = stream.partial.find('\n'); newline != std::string::npos;
       newline = stream.partial.find('\n', start)) {
    out << rank << ": " << std::string_view(stream.partial).substr(start, newline + 1 - start);
    start = newline + 1;
  }
  stream.partial.erase(0, start);
  if (flush_partial && !stream.partial.empty()) {
    out << rank << ": " << stream.partial << '\n';
    stream.partial.clear();
  }
}

}  // namespace

int RunStep(ApiClient& client, const StepOptions& options, const CommandEnv& env) {
  std::string job = options.job;
  for (const char* name : {"ALLOT_JOB_ID", "SLURM_JOB_ID"}) {
    if (!job.empty()) break;
    if (auto found = options.environment.find(name); found != options.environment.end()) job = found->second;
  }
  if (job.empty()) {
    return ReportError(InvalidArgumentError("allot run starts a step inside a running job: run it in the job's "
                                            "script, or name the job with --jobid"),
                       env.err);
  }
  if (job.find_first_not_of("0123456789") != std::string::npos) {
    return ReportError(InvalidArgumentError("--jobid: '{}' is not a job id", job), env.err);
  }
  if (options.argv.empty()) {
    return ReportError(InvalidArgumentError("give the command to run: allot run [OPTIONS] COMMAND [ARGS...]"), env.err);
  }
  StatusOr<std::map<std::string, std::string>> exported = ExportedEnvironment(options);
  if (!exported.ok()) return ReportError(exported.status(), env.err);
  json request = {{"argv", options.argv}, {"environment", *exported}};
  if (options.ntasks > 0) request["ntasks"] = options.ntasks;
  if (options.ntasks_per_node > 0) request["ntasks_per_node"] = options.ntasks_per_node;
  if (options.nodes > 0) request["nodes"] = options.nodes;
  if (options.gpus_per_task > 0) request["gpus_per_task"] = options.gpus_per_task;
  std::string directory = options.working_directory;
  if (directory.empty()) {
    std::error_code error;
    directory = std::filesystem::current_path(error).string();
  }
  if (!directory.empty()) request["working_directory"] = directory;

  const std::string job_path = fmt::format("/v1/jobs/{}", job);
  StatusOr<json> step = client.Post(job_path + "/steps", request);
  if (!step.ok()) return ReportError(step.status(), env.err);
  const std::string step_path = fmt::format("{}/steps/{}", job_path, step->value("step", 0));
  const json tasks = step->value("tasks", json::array());
  std::vector<Stream> out(tasks.size());
  std::vector<Stream> err(tasks.size());

  // Prints what each task wrote since the last call; returns whether anything came.
  auto drain = [&](bool flush_partial) -> StatusOr<bool> {
    bool any = false;
    for (size_t rank = 0; rank < tasks.size(); ++rank) {
      const std::string task = std::to_string(tasks[rank].value("task", 0));
      for (auto [name, streams, sink] : {std::tuple{"out", &out, &env.out}, std::tuple{"err", &err, &env.err}}) {
        Stream& stream = (*streams)[rank];
        while (true) {
          StatusOr<json> chunk = client.Get(job_path + "/logs", {{"task", task}, {"stream", name},
                                                                {"offset", std::to_string(stream.offset)}});
          if (!chunk.ok()) return chunk.status();
          std::string data = chunk->value("data", "");
          stream.offset = chunk->value("next_offset", stream.offset);
          Print(*sink, stream, data, options.label, rank, flush_partial);
          if (data.empty()) break;
          any = true;
        }
        sink->flush();
      }
    }
    return any;
  };

  int interrupted = 0;
  double wait = 0.05;
  auto last_drain = std::chrono::steady_clock::now();
  // Reading every task's output costs two requests per task: a big step is read less often.
  const double drain_every = std::max(1.0, static_cast<double>(tasks.size()) / 50.0);
  while (true) {
    if (int signal = step_interrupt.exchange(0); signal != 0 && interrupted == 0) {
      interrupted = signal;
      env.err << fmt::format("allot run: cancelling step {} of job {} (signal {})\n", step->value("step", 0), job, signal);
      if (StatusOr<json> cancelled = client.Post(step_path + "/cancel", json::object()); !cancelled.ok()) {
        return ReportError(cancelled.status(), env.err);
      }
    }
    StatusOr<json> state = client.Get(step_path);
    if (!state.ok()) {
      // The job ended under the step (cancelled, out of time): its tasks are gone with it.
      (void)drain(true);
      return ReportError(state.status().WithContext(fmt::format("step {} of job {}", step->value("step", 0), job)), env.err);
    }
    const std::string current = state->value("state", "running");
    if (current != "running") {
      StatusOr<bool> drained = drain(true);
      if (!drained.ok()) return ReportError(drained.status(), env.err);
      if (current == "cancelled") return interrupted != 0 ? 128 + interrupted : kExitServerError;
      return state->value("exit_code", 1);
    }
    if (std::chrono::steady_clock::now() - last_drain >= std::chrono::duration<double>(drain_every)) {
      StatusOr<bool> drained = drain(false);
      if (!drained.ok()) return ReportError(drained.status(), env.err);
      last_drain = std::chrono::steady_clock::now();
      if (*drained) wait = 0.05;
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(wait));
    wait = std::min(options.max_poll_seconds, wait * 1.5);
  }
}

}  // namespace allot
