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

// A new, empty directory owned by the agent; 0711, so a task's user may run its script in it
// without listing it. What was there (a task of the same name before) goes first.
StatusOr<fs::path> FreshTaskDirectory(const std::string& tasks_dir, const std::string& name) {
  fs::path dir = fs::path(tasks_dir) / name;
  std::error_code error;
  fs::remove_all(dir, error);
  if (::mkdir(dir.c_str(), 0711) != 0) {
    return InternalError("cannot create the task directory {}: {}", dir.string(), std::strerror(errno));
  }
  ::chmod(dir.c_str(), 0711);  // whatever the umask
  return dir;
}

void WritePrivateFile(const fs::path& path, std::string_view text, mode_t mode = 0600) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return;
  while (!text.empty()) {
    ssize_t written = ::write(fd, text.data(), text.size());
    if (written <= 0) break;
    text.remove_prefix(static_cast<size_t>(written));
  }
  ::close(fd);
}

}  // namespace

TaskRunner::TaskRunner(std::string tasks_dir, std::string shim, TaskCgroups cgroups)
    : tasks_dir_(std::move(tasks_dir)), shim_(std::move(shim)), cgroups_(std::move(cgroups)) {}

StatusOr<RunningTask> TaskRunner::Launch(const TaskLaunch& launch) {
  const std::string name = TaskDirName(launch.job, launch.epoch, launch.task_index);
  ALLOT_ASSIGN_OR_RETURN(fs::path dir, FreshTaskDirectory(tasks_dir_, name));
  const bool merged = launch.stderr_to_stdout;
  RunningTask task{.job = launch.job, .epoch = launch.epoch, .task_index = launch.task_index,
                   .state_dir = dir.string(), .stdout_path = (dir / "stdout").string(),
                   .stderr_path = merged ? "" : (dir / "stderr").string()};
  std::error_code error;
  std::vector<std::string> task_argv = launch.argv;
  if (task_argv.empty()) {
    if (launch.script.empty()) return InvalidArgumentError("job {}: neither a command nor a script", launch.job);
    // The script belongs to the task's user and nobody else reads it: 0500, in a directory only
    // root lists. Created here (O_EXCL in a fresh directory), so nothing a job named is chowned.
    fs::path script = dir / "script";
    int fd = ::open(script.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0500);
    if (fd < 0) return InternalError("cannot write the job's script {}: {}", script.string(), std::strerror(errno));
    std::string_view text = launch.script;
    while (!text.empty()) {
      ssize_t written = ::write(fd, text.data(), text.size());
      if (written <= 0) break;
      text.remove_prefix(static_cast<size_t>(written));
    }
    if (launch.uid >= 0) (void)::fchown(fd, static_cast<uid_t>(launch.uid), static_cast<gid_t>(launch.gid));
    ::close(fd);
    task_argv = {script.string()};
    task_argv.insert(task_argv.end(), launch.script_args.begin(), launch.script_args.end());
  }
  ALLOT_ASSIGN_OR_RETURN(task.cgroup, cgroups_.Create(name, launch.limits));

  // The launch record goes first: an agent that dies right after the spawn still finds the task
  // on restart (through the shim's pid file) instead of starting it a second time.
  nlohmann::json record = {{"job", task.job}, {"epoch", task.epoch}, {"task_index", task.task_index},
                           {"stdout", task.stdout_path}, {"stderr", task.stderr_path}, {"cgroup", task.cgroup}};
  WritePrivateFile(dir / "launch.json", record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));

  std::vector<std::string> shim_argv = {shim_, "--state-dir", task.state_dir, "--workdir", launch.working_directory};
  if (!launch.fallback_working_directory.empty()) {
    shim_argv.insert(shim_argv.end(), {"--fallback-workdir", launch.fallback_working_directory});
  }
  if (launch.stdout_optional) shim_argv.push_back("--stdout-optional");
  if (!launch.stdout_path.empty()) shim_argv.insert(shim_argv.end(), {"--stdout", launch.stdout_path});
  if (merged) {
    shim_argv.push_back("--stderr-to-stdout");
  } else if (!launch.stderr_path.empty()) {
    shim_argv.insert(shim_argv.end(), {"--stderr", launch.stderr_path});
  }
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
  WritePrivateFile(dir / "pid.agent", fmt::format("{}\n", shim));
  fs::rename(dir / "pid.agent", dir / "pid", error);
  return task;
}

RunningTask TaskRunner::Failed(const TaskLaunch& launch, const std::string& message) const {
  RunningTask task{.job = launch.job, .epoch = launch.epoch, .task_index = launch.task_index};
  StatusOr<fs::path> dir = FreshTaskDirectory(tasks_dir_, TaskDirName(launch.job, launch.epoch, launch.task_index));
  if (!dir.ok()) return task;
  task.state_dir = dir->string();
  task.stdout_path = (*dir / "stdout").string();
  task.stderr_path = launch.stderr_to_stdout ? "" : (*dir / "stderr").string();
  WritePrivateFile(task.stderr_path.empty() ? task.stdout_path : task.stderr_path, message);
  if (!task.stderr_path.empty()) WritePrivateFile(task.stdout_path, "");
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
