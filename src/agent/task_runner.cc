#include "agent/task_runner.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace allot {
namespace {

namespace fs = std::filesystem;

std::optional<long> ReadNumberFile(const fs::path& path) {
  std::ifstream file(path);
  long value = 0;
  if (!(file >> value)) return std::nullopt;
  return value;
}

std::string TaskDirName(JobId job, uint64_t epoch, int task) { return fmt::format("{}.{}.{}", job, epoch, task); }

}  // namespace

TaskRunner::TaskRunner(std::string tasks_dir, std::string shim, TaskCgroups cgroups)
    : tasks_dir_(std::move(tasks_dir)), shim_(std::move(shim)), cgroups_(std::move(cgroups)) {}

StatusOr<RunningTask> TaskRunner::Launch(const TaskLaunch& launch) {
  RunningTask task{.job = launch.job, .epoch = launch.epoch, .task_index = launch.task_index,
                   .stdout_path = launch.stdout_path,
                   .stderr_path = launch.stderr_path.empty() ? launch.stdout_path : launch.stderr_path};
  const std::string name = TaskDirName(launch.job, launch.epoch, launch.task_index);
  fs::path dir = fs::path(tasks_dir_) / name;
  std::error_code error;
  fs::remove_all(dir, error);
  fs::create_directories(dir, error);
  if (error) return InternalError("cannot create the task directory {}: {}", dir.string(), error.message());
  task.state_dir = dir.string();
  for (const std::string* path : {&task.stdout_path, &task.stderr_path}) {
    fs::path parent = fs::path(*path).parent_path();
    if (!parent.empty()) fs::create_directories(parent, error);
  }
  if (launch.uid >= 0) {
    // The task's output files are created here, by root; they belong to the user it runs as.
    for (const std::string* path : {&task.stdout_path, &task.stderr_path}) {
      int fd = ::open(path->c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd >= 0) {
        (void)::fchown(fd, static_cast<uid_t>(launch.uid), static_cast<gid_t>(launch.gid));
        ::close(fd);
      }
    }
  }
  std::vector<std::string> task_argv = launch.argv;
  if (task_argv.empty()) {
    if (launch.script.empty()) return InvalidArgumentError("job {}: neither a command nor a script", launch.job);
    fs::path script = dir / "script";
    std::ofstream(script) << launch.script;
    fs::permissions(script, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                fs::perms::others_read | fs::perms::others_exec, error);
    task_argv = {script.string()};
  }
  ALLOT_ASSIGN_OR_RETURN(task.cgroup, cgroups_.Create(name, launch.limits));

  // The launch record goes first: an agent that dies right after the spawn still finds the task
  // on restart (through the shim's pid file) instead of starting it a second time.
  nlohmann::json record = {{"job", task.job}, {"epoch", task.epoch}, {"task_index", task.task_index},
                           {"stdout", task.stdout_path}, {"stderr", task.stderr_path}, {"cgroup", task.cgroup}};
  std::ofstream(dir / "launch.json") << record.dump();

  std::vector<std::string> shim_argv = {shim_, "--state-dir", task.state_dir, "--stdout", task.stdout_path,
                                        "--stderr", task.stderr_path, "--workdir", launch.working_directory};
  if (!task.cgroup.empty()) shim_argv.insert(shim_argv.end(), {"--cgroup", task.cgroup});
  if (launch.uid >= 0) {
    shim_argv.insert(shim_argv.end(), {"--uid", std::to_string(launch.uid), "--gid", std::to_string(launch.gid)});
  }
  shim_argv.push_back("--");
  shim_argv.insert(shim_argv.end(), task_argv.begin(), task_argv.end());
  std::vector<char*> argv_pointers;
  for (std::string& arg : shim_argv) argv_pointers.push_back(arg.data());
  argv_pointers.push_back(nullptr);
  // The shim runs with the task's environment, so the task's PATH is the one searched.
  std::vector<std::string> environment;
  for (const auto& [variable, value] : launch.environment) environment.push_back(variable + "=" + value);
  std::vector<char*> environment_pointers;
  for (std::string& entry : environment) environment_pointers.push_back(entry.data());
  environment_pointers.push_back(nullptr);

  // posix_spawn (vfork underneath) costs the same however much memory the agent has mapped,
  // unlike fork; the shim closes the descriptors it inherits.
  pid_t shim = -1;
  int failed = ::posix_spawn(&shim, shim_.c_str(), nullptr, nullptr, argv_pointers.data(), environment_pointers.data());
  if (failed != 0) {
    TaskCgroups::Remove(task.cgroup);
    fs::remove_all(dir, error);
    return InternalError("cannot start {}: {}", shim_, std::strerror(failed));
  }
  task.shim = shim;
  task.group = shim;
  // The shim writes this too, first thing; written here as well, a restart right now finds it.
  std::ofstream(dir / "pid.agent") << shim << "\n";
  fs::rename(dir / "pid.agent", dir / "pid", error);
  return task;
}

std::vector<RunningTask> TaskRunner::Recover() const {
  std::vector<RunningTask> tasks;
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(tasks_dir_, error)) {
    std::ifstream file(entry.path() / "launch.json");
    std::stringstream text;
    text << file.rdbuf();
    nlohmann::json record = nlohmann::json::parse(text.str(), nullptr, false);
    if (record.is_discarded()) continue;
    RunningTask task{.job = record.value("job", JobId{0}), .epoch = record.value("epoch", uint64_t{0}),
                     .task_index = record.value("task_index", 0), .state_dir = entry.path().string(),
                     .stdout_path = record.value("stdout", ""), .stderr_path = record.value("stderr", ""),
                     .cgroup = record.value("cgroup", "")};
    if (std::optional<long> shim = ReadNumberFile(entry.path() / "pid")) {
      task.shim = static_cast<pid_t>(*shim);
      task.group = task.shim;
    }
    tasks.push_back(std::move(task));
  }
  return tasks;
}

std::optional<int> TaskRunner::Poll(RunningTask& task) const {
  const fs::path exit_file = fs::path(task.state_dir) / "exit";
  if (std::optional<long> code = ReadNumberFile(exit_file)) {
    if (task.shim > 0) ::waitpid(task.shim, nullptr, WNOHANG);  // reap it if it is our child
    return static_cast<int>(*code);
  }
  bool shim_alive = false;
  if (task.shim > 0) {
    pid_t reaped = ::waitpid(task.shim, nullptr, WNOHANG);
    // 0: our child, still running; -1 with ECHILD: started by an agent before a restart.
    shim_alive = reaped == 0 || (reaped < 0 && errno == ECHILD && ::kill(task.shim, 0) == 0);
  }
  if (shim_alive) return std::nullopt;
  // The shim is gone. It writes the exit file before it exits, so look once more; without one,
  // the shim itself was killed (SIGKILL to the task's group) and the task with it.
  if (std::optional<long> code = ReadNumberFile(exit_file)) return static_cast<int>(*code);
  Signal(task, SIGKILL);
  return 128 + SIGKILL;
}

void TaskRunner::Signal(const RunningTask& task, int signal) const {
  if (task.group > 0) ::kill(-task.group, signal);
  if (signal == SIGKILL) TaskCgroups::Kill(task.cgroup);
}

void TaskRunner::Collect(const RunningTask& task) const {
  if (task.shim > 0) ::waitpid(task.shim, nullptr, WNOHANG);
  TaskCgroups::Remove(task.cgroup);
  std::error_code error;
  fs::remove_all(task.state_dir, error);
}

}  // namespace allot
