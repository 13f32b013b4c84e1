// allot-shim: the process that owns one task on a node, as slurmstepd owns a Slurm step and a
// containerd shim owns a container. The agent starts it (posix_spawn, so starting it costs the
// same however large the agent is) with the task's environment as its own; it then
//
//   1. starts a new session, so its pid is the process group of everything the task starts and
//      a signal to that group reaches the whole task (the shim itself blocks every signal it can,
//      so only SIGKILL ends it, and then the task with it);
//   2. writes its pid to STATE_DIR/pid, which a restarted agent reads to find it again;
//   3. forks the task: the task joins its cgroup (if given), drops to the mapped user (if given),
//      enters its working directory and execs argv, searching the task's own PATH;
//   4. waits for the task and writes its exit status to STATE_DIR/exit: the exit code, or 128 +
//      the signal that killed it, as a shell reports it.
//
// It outlives the agent, so a task goes on while its agent restarts. It is a program of its own,
// not `allot` with another subcommand, because it starts once per task: a small binary with no
// libraries to load starts in a fraction of the time.
//
//   allot-shim --state-dir DIR --stdout FILE --stderr FILE [--workdir DIR] [--cgroup DIR]
//              [--uid N --gid N] -- ARGV...
//
// Exit status of the shim itself: 0 once the exit file is written; 2 for a usage error.
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

struct ShimOptions {
  std::string state_dir;
  std::string stdout_path;
  std::string stderr_path;
  std::string working_directory;
  std::string cgroup;
  int uid = -1;
  int gid = -1;
  char** argv = nullptr;  // the task's, null-terminated
};

bool ParseOptions(int argc, char** argv, ShimOptions& options) {
  for (int i = 1; i < argc; ++i) {
    std::string name = argv[i];
    if (name == "--") {
      if (i + 1 >= argc) return false;
      options.argv = argv + i + 1;
      return !options.state_dir.empty() && !options.stdout_path.empty();
    }
    if (i + 1 >= argc) return false;
    std::string value = argv[++i];
    if (name == "--state-dir") options.state_dir = value;
    else if (name == "--stdout") options.stdout_path = value;
    else if (name == "--stderr") options.stderr_path = value;
    else if (name == "--workdir") options.working_directory = value;
    else if (name == "--cgroup") options.cgroup = value;
    else if (name == "--uid") options.uid = std::atoi(value.c_str());
    else if (name == "--gid") options.gid = std::atoi(value.c_str());
    else return false;
  }
  return false;
}

// Written to a temporary name and renamed, so a reader sees the whole number or no file. There
// is no fsync: these files matter across a restart of the agent (the page cache survives it),
// and after a crash of the machine no task survives for them to describe.
void WriteNumberFile(const std::string& dir, const char* name, long value) {
  std::string final_path = dir + "/" + name;
  std::string temporary = final_path + ".tmp";
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  std::string text = std::to_string(value) + "\n";
  ssize_t written = ::write(fd, text.data(), text.size());
  ::close(fd);
  if (written == static_cast<ssize_t>(text.size())) ::rename(temporary.c_str(), final_path.c_str());
}

void CloseInheritedDescriptors() {
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, 3U, ~0U, 0U) == 0) return;
#endif
  for (int fd = 3; fd < 4096; ++fd) ::close(fd);
}

// The task's side of the fork: everything here ends in exec or _exit.
[[noreturn]] void RunTask(const ShimOptions& options) {
  // The task starts with every signal at its default and none blocked, whatever the agent had.
  for (int signal = 1; signal < NSIG; ++signal) ::signal(signal, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (!options.cgroup.empty()) {
    // Joined before the user's code runs, so nothing it starts escapes the limits. A limit that
    // was asked for and cannot be applied fails the task rather than running it unlimited.
    std::string procs = options.cgroup + "/cgroup.procs";
    int fd = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ::write(fd, "0", 1) != 1) {
      std::fprintf(stderr, "allot: cannot move the task into its cgroup %s: %s\n", options.cgroup.c_str(),
                   std::strerror(errno));
      ::_exit(125);
    }
    ::close(fd);
  }
  if (options.uid >= 0) {
    // Every privilege goes before the user's code runs; a task must never run as root by
    // accident, so failing to drop is fatal for the task.
    if (::setgroups(0, nullptr) != 0 || ::setgid(static_cast<gid_t>(options.gid)) != 0 ||
        ::setuid(static_cast<uid_t>(options.uid)) != 0) {
      std::fprintf(stderr, "allot: cannot switch to uid %d gid %d: %s\n", options.uid, options.gid, std::strerror(errno));
      ::_exit(126);
    }
  }
  if (!options.working_directory.empty() && ::chdir(options.working_directory.c_str()) != 0) {
    std::fprintf(stderr, "allot: cannot enter the working directory %s: %s\n", options.working_directory.c_str(),
                 std::strerror(errno));
    ::_exit(127);
  }
  ::execvp(options.argv[0], options.argv);
  int error = errno;
  std::fprintf(stderr, "allot: cannot run '%s': %s\n", options.argv[0], std::strerror(error));
  // As a shell reports it: 126 found but not runnable, 127 not found.
  ::_exit(error == EACCES || error == ENOEXEC ? 126 : 127);
}

}  // namespace

int main(int argc, char** argv) {
  ShimOptions options;
  if (!ParseOptions(argc, argv, options)) {
    std::fprintf(stderr,
                 "usage: allot-shim --state-dir DIR --stdout FILE [--stderr FILE] [--workdir DIR] [--cgroup DIR] "
                 "[--uid N --gid N] -- ARGV...\n(allot agent starts this program; it is not meant to be run by hand)\n");
    return 2;
  }
  if (options.stderr_path.empty()) options.stderr_path = options.stdout_path;
  CloseInheritedDescriptors();
  ::setsid();
  // Only SIGKILL (and SIGSTOP) reach the shim: signals to the task's group are for the task.
  sigset_t all;
  sigfillset(&all);
  ::sigprocmask(SIG_SETMASK, &all, nullptr);
  WriteNumberFile(options.state_dir, "pid", ::getpid());

  // The shim's own standard streams become the task's, so a task that cannot start says why in
  // its own log.
  int null_fd = ::open("/dev/null", O_RDONLY);
  if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
  int out = ::open(options.stdout_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  int err = options.stderr_path == options.stdout_path
                ? out
                : ::open(options.stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (out >= 0) ::dup2(out, STDOUT_FILENO);
  if (err >= 0) ::dup2(err, STDERR_FILENO);
  for (int fd : {null_fd, out, err}) {
    if (fd > STDERR_FILENO) ::close(fd);
  }

  pid_t task = ::fork();
  if (task == 0) RunTask(options);
  if (task < 0) {
    std::fprintf(stderr, "allot: cannot start the task: %s\n", std::strerror(errno));
    WriteNumberFile(options.state_dir, "exit", 127);
    return 0;
  }
  int status = 0;
  while (::waitpid(task, &status, 0) < 0 && errno == EINTR) {
  }
  long code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  WriteNumberFile(options.state_dir, "exit", code);
  return 0;
}
