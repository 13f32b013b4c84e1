// allot-shim: the process that owns one task on a node, as slurmstepd owns a Slurm step and a
// containerd shim owns a container. The agent starts it (posix_spawn, so starting it costs the
// same however large the agent is) with the task's environment as its own; it then
//
//   1. starts a new session, so its pid is the process group of everything the task starts and
//      a signal to that group reaches the whole task (the shim itself blocks every signal it can,
//      so only SIGKILL ends it, and then the task with it);
//   2. writes its pid to STATE_DIR/pid, which a restarted agent reads to find it again;
//   3. opens the files the job named for its output *as the job's user* (seteuid, as slurmstepd
//      does), so a job can only write where its user may: a path to /etc/shadow or a symlink to
//      root's files fails for the job as it would for the user;
//   4. forks the task: the task joins its cgroup (if given), drops to the mapped user (if given),
//      enters its working directory and execs argv, searching the task's own PATH;
//   5. copies the task's stdout and stderr, which come through pipes, to the job's files and to
//      STATE_DIR/stdout and STATE_DIR/stderr, the agent's own copies (mode 0600), which are all
//      the agent ever reads and ships: it never opens a file a job named;
//   6. once the task has exited, writes its exit status to STATE_DIR/exit: the exit code, or 128 +
//      the signal that killed it, as a shell reports it.
//
// It outlives the agent, so a task goes on while its agent restarts. It is a program of its own,
// not `allot` with another subcommand, because it starts once per task: a small binary with no
// libraries to load starts in a fraction of the time.
//
//   allot-shim --state-dir DIR [--stdout FILE] [--stderr FILE | --stderr-to-stdout] [--workdir DIR]
//              [--cgroup DIR] [--uid N --gid N] -- ARGV...
//
// Without --stdout (--stderr) that stream goes to the agent's copy only; with --stderr-to-stdout
// stderr goes where stdout goes, and the agent has one copy of both. Exit status of the shim itself: 0 once the exit file is written; 2 for a
// usage error.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
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
  std::string stdout_path;  // the job's file; "": the agent's copy only
  std::string stderr_path;  // the job's file for stderr; "": none
  bool merge = false;       // stderr goes where stdout goes (--stderr-to-stdout)
  std::string working_directory;
  std::string fallback_working_directory;  // when the user cannot enter working_directory
  bool stdout_optional = false;            // a stdout file that cannot be opened is skipped
  std::string cgroup;
  int uid = -1;
  int gid = -1;
  char** argv = nullptr;  // the task's, null-terminated
};

bool ParseNumber(const std::string& text, int& value) {
  char* end = nullptr;
  errno = 0;
  long parsed = std::strtol(text.c_str(), &end, 10);
  if (errno != 0 || end == text.c_str() || *end != '\0' || parsed < 0 || parsed > 0x7fffffff) return false;
  value = static_cast<int>(parsed);
  return true;
}

bool ParseOptions(int argc, char** argv, ShimOptions& options) {
  for (int i = 1; i < argc; ++i) {
    std::string name = argv[i];
    if (name == "--stderr-to-stdout") {
      options.merge = true;
      continue;
    }
    if (name == "--stdout-optional") {
      options.stdout_optional = true;
      continue;
    }
    if (name == "--") {
      if (i + 1 >= argc) return false;
      options.argv = argv + i + 1;
      return !options.state_dir.empty() && (options.uid < 0) == (options.gid < 0);
    }
    if (i + 1 >= argc) return false;
    std::string value = argv[++i];
    if (name == "--state-dir") options.state_dir = value;
    else if (name == "--stdout") options.stdout_path = value;
    else if (name == "--stderr") options.stderr_path = value;
    else if (name == "--workdir") options.working_directory = value;
    else if (name == "--fallback-workdir") options.fallback_working_directory = value;
    else if (name == "--cgroup") options.cgroup = value;
    else if (name == "--uid") { if (!ParseNumber(value, options.uid)) return false; }
    else if (name == "--gid") { if (!ParseNumber(value, options.gid)) return false; }
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
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
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

void WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t written = ::write(fd, data, size);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return;  // a full disk or a closed file: the copy stops, the task goes on
    data += written;
    size -= static_cast<size_t>(written);
  }
}

// Runs `open` with the job user's identity (effective uid, gid and groups), so the kernel checks
// the job's paths as it would for that user, then takes root's identity back. The shim is single
// threaded, so the switch is for this one call. Returns the descriptor or -1 with errno set.
template <typename Open>
int AsUser(const ShimOptions& options, Open open) {
  if (options.uid < 0) return open();
  gid_t gid = static_cast<gid_t>(options.gid);
  if (::setgroups(1, &gid) != 0 || ::setegid(gid) != 0 || ::seteuid(static_cast<uid_t>(options.uid)) != 0) {
    int error = errno;
    (void)::seteuid(0);
    (void)::setegid(0);
    errno = error;
    return -1;
  }
  int fd = open();
  int error = errno;
  // Taking root back cannot fail for a process whose real uid is root; if it somehow did, the
  // shim must not go on with half an identity.
  if (::seteuid(0) != 0 || ::setegid(0) != 0 || ::setgroups(0, nullptr) != 0) ::_exit(125);
  errno = error;
  return fd;
}

// Creates the directories above `path` that are missing, as the job's user (mkdir -p).
void CreateParents(const std::string& path) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos; slash = path.find('/', slash + 1)) {
    ::mkdir(path.substr(0, slash).c_str(), 0755);
  }
}

// Opens one of the job's output files for appending, as its user. O_NONBLOCK keeps a FIFO named
// as output from stalling the shim; it is cleared once open.
int OpenJobFile(const ShimOptions& options, const std::string& path) {
  std::string absolute = path;
  if (absolute.empty() || absolute[0] != '/') absolute = options.working_directory + "/" + path;
  int fd = AsUser(options, [&] {
    CreateParents(absolute);
    return ::open(absolute.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0644);
  });
  if (fd >= 0) ::fcntl(fd, F_SETFL, O_WRONLY | O_APPEND);
  return fd;
}

// The task's side of the fork: everything here ends in exec or _exit.
[[noreturn]] void RunTask(const ShimOptions& options, int stdout_fd, int stderr_fd) {
  ::dup2(stdout_fd, STDOUT_FILENO);
  ::dup2(stderr_fd, STDERR_FILENO);
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
        ::setuid(static_cast<uid_t>(options.uid)) != 0 || ::setuid(0) == 0) {
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

// One output stream of the task: the pipe it writes into, and where the shim copies it.
struct Stream {
  int pipe = -1;      // read end; -1 once closed
  int agent_copy = -1;
  int job_file = -1;  // -1: none
};

// Copies what is in the pipe now; false at end of file.
bool Pump(Stream& stream) {
  char buffer[1 << 16];
  while (true) {
    ssize_t got = ::read(stream.pipe, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return errno == EAGAIN;
    if (got == 0) return false;
    WriteAll(stream.agent_copy, buffer, static_cast<size_t>(got));
    if (stream.job_file >= 0) WriteAll(stream.job_file, buffer, static_cast<size_t>(got));
    if (got < static_cast<ssize_t>(sizeof buffer)) return true;
  }
}

int OpenAgentCopy(const ShimOptions& options, const char* name) {
  std::string path = options.state_dir + "/" + name;
  return ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
}

}  // namespace

int main(int argc, char** argv) {
  ShimOptions options;
  if (!ParseOptions(argc, argv, options)) {
    std::fprintf(stderr,
                 "usage: allot-shim --state-dir DIR [--stdout FILE] [--stderr FILE | --stderr-to-stdout] [--workdir DIR] [--cgroup DIR] "
                 "[--uid N --gid N] -- ARGV...\n(allot agent starts this program; it is not meant to be run by hand)\n");
    return 2;
  }
  CloseInheritedDescriptors();
  // The agent (or a server with --dev) runs with a private umask; the task gets the usual one,
  // so the files a job writes are as its user would make them by hand.
  ::umask(022);
  ::setsid();
  // Only SIGKILL (and SIGSTOP) reach the shim: signals to the task's group are for the task.
  // SIGCHLD stays blocked too and is read from a signalfd.
  sigset_t all;
  sigfillset(&all);
  ::sigprocmask(SIG_SETMASK, &all, nullptr);
  // An ignored SIGCHLD (inherited through the spawn) would reap the task behind the shim's back.
  ::signal(SIGCHLD, SIG_DFL);
  WriteNumberFile(options.state_dir, "pid", ::getpid());
  int null_fd = ::open("/dev/null", O_RDWR);
  if (null_fd >= 0) {
    for (int fd : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO}) ::dup2(null_fd, fd);
    if (null_fd > STDERR_FILENO) ::close(null_fd);
  }

  const bool merged = options.merge || (!options.stderr_path.empty() && options.stderr_path == options.stdout_path);
  Stream out{.agent_copy = OpenAgentCopy(options, "stdout")};
  Stream err{.agent_copy = merged ? -1 : OpenAgentCopy(options, "stderr")};
  const int notes = merged ? out.agent_copy : err.agent_copy;  // what the task is told on its stderr
  // A working directory the user cannot enter (a submit directory the node lacks, or cannot
  // reach as that user): the fallback, as Slurm falls back to /tmp, and the task's stderr says so.
  if (!options.fallback_working_directory.empty() && !options.working_directory.empty()) {
    int dir = AsUser(options, [&] { return ::open(options.working_directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
    if (dir >= 0) {
      ::close(dir);
    } else {
      std::string note = "allot: cannot enter the working directory " + options.working_directory + ": " +
                         std::strerror(errno) + "; running in " + options.fallback_working_directory + " instead\n";
      if (notes >= 0) WriteAll(notes, note.data(), note.size());
      options.working_directory = options.fallback_working_directory;
    }
  }
  // The job's own files, opened as its user. One that cannot be opened fails the task before it
  // starts, with the reason in the output the agent ships, as Slurm fails a job whose output
  // file it cannot open.
  std::string refused;
  auto open_job_file = [&](const std::string& path) {
    int fd = OpenJobFile(options, path);
    if (fd < 0 && refused.empty()) {
      refused = "allot: cannot open the output file " + path + ": " + std::strerror(errno) +
                (options.uid >= 0 ? " (opened as uid " + std::to_string(options.uid) + ")" : "") + "\n";
    }
    return fd;
  };
  if (!options.stdout_path.empty()) {
    if (options.stdout_optional) {
      // Slurm's default output file: written where the user may, else only shipped.
      out.job_file = OpenJobFile(options, options.stdout_path);
      if (out.job_file < 0 && notes >= 0) {
        std::string note = "allot: cannot write " + options.stdout_path + " in " + options.working_directory + ": " +
                           std::strerror(errno) + "; the output is kept by allot (allot logs)\n";
        WriteAll(notes, note.data(), note.size());
      }
    } else {
      out.job_file = open_job_file(options.stdout_path);
    }
  }
  if (!merged && !options.stderr_path.empty()) err.job_file = open_job_file(options.stderr_path);
  if (out.agent_copy < 0 || (!merged && err.agent_copy < 0) || !refused.empty()) {
    if (out.agent_copy >= 0) WriteAll(out.agent_copy, refused.data(), refused.size());
    WriteNumberFile(options.state_dir, "exit", 127);
    return 0;
  }

  int out_pipe[2], err_pipe[2] = {-1, -1};
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || (!merged && ::pipe2(err_pipe, O_CLOEXEC) != 0)) {
    WriteNumberFile(options.state_dir, "exit", 127);
    return 0;
  }
  sigset_t child_signal;
  sigemptyset(&child_signal);
  sigaddset(&child_signal, SIGCHLD);
  int child_events = ::signalfd(-1, &child_signal, SFD_CLOEXEC | SFD_NONBLOCK);

  pid_t task = ::fork();
  if (task == 0) RunTask(options, out_pipe[1], merged ? out_pipe[1] : err_pipe[1]);
  ::close(out_pipe[1]);
  if (!merged) ::close(err_pipe[1]);
  out.pipe = out_pipe[0];
  err.pipe = err_pipe[0];
  // The read ends only (the task's write ends are other open files): a pump never blocks.
  for (int fd : {out.pipe, err.pipe}) {
    if (fd >= 0) ::fcntl(fd, F_SETFL, O_NONBLOCK);
  }
  if (task < 0) {
    std::string message = std::string("allot: cannot start the task: ") + std::strerror(errno) + "\n";
    WriteAll(out.agent_copy, message.data(), message.size());
    WriteNumberFile(options.state_dir, "exit", 127);
    return 0;
  }

  int status = 0;
  bool exited = false;
  while (!exited) {
    pollfd fds[3] = {{out.pipe, POLLIN, 0}, {err.pipe, POLLIN, 0}, {child_events, POLLIN, 0}};
    // Without a signalfd, the exit is noticed at least every 100 ms.
    if (::poll(fds, 3, child_events < 0 ? 100 : -1) < 0 && errno != EINTR) break;
    for (Stream* stream : {&out, &err}) {
      if (stream->pipe >= 0 && !Pump(*stream)) {
        ::close(stream->pipe);
        stream->pipe = -1;
      }
    }
    if (child_events >= 0) {
      signalfd_siginfo info;
      while (::read(child_events, &info, sizeof info) > 0) {
      }
    }
    pid_t reaped = ::waitpid(task, &status, WNOHANG);
    exited = reaped == task || (reaped < 0 && errno != EINTR);
  }
  // What the task wrote before it exited is in the pipes now; processes it left behind may keep
  // them open, so read what is there without waiting for their end of file.
  for (Stream* stream : {&out, &err}) {
    if (stream->pipe >= 0) Pump(*stream);
  }
  long code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  WriteNumberFile(options.state_dir, "exit", code);
  return 0;
}
