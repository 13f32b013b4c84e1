#include "agent/task_runner.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

namespace allot {
namespace {

namespace fs = std::filesystem;

// Between fork and exec only async-signal-safe calls are allowed (the agent has threads), so
// the child side below uses raw system calls and no allocation.

void WriteNumberFile(const char* temporary, const char* final_path, long value) {
  char text[32];
  int length = 0;
  bool negative = value < 0;
  unsigned long magnitude = negative ? static_cast<unsigned long>(-value) : static_cast<unsigned long>(value);
  char digits[24];
  int count = 0;
  do {
    digits[count++] = static_cast<char>('0' + magnitude % 10);
    magnitude /= 10;
  } while (magnitude > 0);
  if (negative) text[length++] = '-';
  while (count > 0) text[length++] = digits[--count];
  text[length++] = '\n';
  int fd = ::open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  ssize_t written = ::write(fd, text, static_cast<size_t>(length));
  (void)written;
  ::fsync(fd);
  ::close(fd);
  ::rename(temporary, final_path);
}

void CloseInheritedDescriptors() {
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, 3U, ~0U, 0U) == 0) return;
#endif
  for (int fd = 3; fd < 4096; ++fd) ::close(fd);
}

std::optional<long> ReadNumberFile(const fs::path& path) {
  std::ifstream file(path);
  long value = 0;
  if (!(file >> value)) return std::nullopt;
  return value;
}

std::string TaskDirName(JobId job, uint64_t epoch, int task) { return fmt::format("{}.{}.{}", job, epoch, task); }

}  // namespace

TaskRunner::TaskRunner(std::string tasks_dir) : tasks_dir_(std::move(tasks_dir)) {}

StatusOr<RunningTask> TaskRunner::Launch(const TaskLaunch& launch) {
  RunningTask task{.job = launch.job, .epoch = launch.epoch, .task_index = launch.task_index,
                   .stdout_path = launch.stdout_path,
                   .stderr_path = launch.stderr_path.empty() ? launch.stdout_path : launch.stderr_path};
  fs::path dir = fs::path(tasks_dir_) / TaskDirName(launch.job, launch.epoch, launch.task_index);
  std::error_code error;
  fs::remove_all(dir, error);
  fs::create_directories(dir, error);
  if (error) return InternalError("cannot create the task directory {}: {}", dir.string(), error.message());
  task.state_dir = dir.string();
  for (const std::string* path : {&task.stdout_path, &task.stderr_path}) {
    fs::path parent = fs::path(*path).parent_path();
    if (!parent.empty()) fs::create_directories(parent, error);
  }

  std::vector<std::string> argv = launch.argv;
  if (argv.empty()) {
    if (launch.script.empty()) return InvalidArgumentError("job {}: neither a command nor a script", launch.job);
    fs::path script = dir / "script";
    std::ofstream(script) << launch.script;
    fs::permissions(script, fs::perms::owner_all | fs::perms::group_read | fs::perms::others_read, error);
    argv = {script.string()};
  }
  // Everything the child needs, prepared before fork.
  std::vector<char*> argv_pointers;
  for (std::string& arg : argv) argv_pointers.push_back(arg.data());
  argv_pointers.push_back(nullptr);
  std::vector<std::string> environment;
  for (const auto& [name, value] : launch.environment) environment.push_back(name + "=" + value);
  std::vector<char*> environment_pointers;
  for (std::string& entry : environment) environment_pointers.push_back(entry.data());
  environment_pointers.push_back(nullptr);
  // execvpe searches the agent's PATH; the task's own PATH (if given) is what it sees after.
  const std::string pid_temporary = (dir / "pid.tmp").string();
  const std::string pid_path = (dir / "pid").string();
  const std::string exit_temporary = (dir / "exit.tmp").string();
  const std::string exit_path = (dir / "exit").string();
  const std::string& working_directory = launch.working_directory;
  const int run_as_uid = launch.uid;
  const int run_as_gid = launch.gid;
  if (run_as_uid >= 0) {
    // The task's files are created by the agent; hand them to the user the task runs as.
    for (const std::string* path : {&task.stdout_path, &task.stderr_path}) {
      int fd = ::open(path->c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd >= 0) {
        (void)::fchown(fd, static_cast<uid_t>(run_as_uid), static_cast<gid_t>(run_as_gid));
        ::close(fd);
      }
    }
  }

  pid_t shim = ::fork();
  if (shim < 0) return InternalError("fork failed: {}", std::strerror(errno));
  if (shim == 0) {
    ::setsid();
    pid_t child = ::fork();
    if (child == 0) {
      ::setpgid(0, 0);
      int null_fd = ::open("/dev/null", O_RDONLY);
      if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
      int out = ::open(task.stdout_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      int err = task.stderr_path == task.stdout_path ? out
                                                     : ::open(task.stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (out >= 0) ::dup2(out, STDOUT_FILENO);
      if (err >= 0) ::dup2(err, STDERR_FILENO);
      CloseInheritedDescriptors();
      if (run_as_uid >= 0) {
        // Drop every privilege before the user's code runs; a task must never run as root by
        // accident, so failing to drop is fatal for the task.
        if (::setgroups(0, nullptr) != 0 || ::setgid(static_cast<gid_t>(run_as_gid)) != 0 ||
            ::setuid(static_cast<uid_t>(run_as_uid)) != 0) {
          ::_exit(126);
        }
      }
      if (!working_directory.empty() && ::chdir(working_directory.c_str()) != 0) ::_exit(127);
      ::execvpe(argv_pointers[0], argv_pointers.data(), environment_pointers.data());
      ::_exit(127);
    }
    CloseInheritedDescriptors();
    if (child < 0) {
      WriteNumberFile(exit_temporary.c_str(), exit_path.c_str(), 127);
      ::_exit(0);
    }
    WriteNumberFile(pid_temporary.c_str(), pid_path.c_str(), child);
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    long code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    WriteNumberFile(exit_temporary.c_str(), exit_path.c_str(), code);
    ::_exit(0);
  }
  task.shim = shim;
  // The launch record lets a restarted agent find the task again.
  nlohmann::json record = {{"job", task.job}, {"epoch", task.epoch}, {"task_index", task.task_index},
                           {"shim", task.shim}, {"stdout", task.stdout_path}, {"stderr", task.stderr_path}};
  std::ofstream(dir / "launch.json") << record.dump();
  // Wait until the shim has started the task (its pid file), or has already ended.
  for (int i = 0; i < 5000; ++i) {
    if (std::optional<long> group = ReadNumberFile(dir / "pid")) {
      task.group = static_cast<pid_t>(*group);
      break;
    }
    if (fs::exists(dir / "exit")) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
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
                     .task_index = record.value("task_index", 0), .shim = record.value("shim", -1),
                     .state_dir = entry.path().string(), .stdout_path = record.value("stdout", ""),
                     .stderr_path = record.value("stderr", "")};
    if (std::optional<long> group = ReadNumberFile(entry.path() / "pid")) task.group = static_cast<pid_t>(*group);
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
  // the shim itself was killed (kill -9 of the session) and the task's outcome is unknown.
  if (std::optional<long> code = ReadNumberFile(exit_file)) return static_cast<int>(*code);
  if (task.group > 0) ::kill(-task.group, SIGKILL);
  return 128 + SIGKILL;
}

void TaskRunner::Signal(const RunningTask& task, int signal) const {
  if (task.group > 0) ::kill(-task.group, signal);
}

void TaskRunner::Collect(const RunningTask& task) const {
  if (task.shim > 0) ::waitpid(task.shim, nullptr, WNOHANG);
  std::error_code error;
  fs::remove_all(task.state_dir, error);
}

}  // namespace allot
