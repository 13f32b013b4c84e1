#include "server/server_process.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string_view>
#include <thread>

#include "store/postgres_testing.h"

namespace allot {

int UnusedLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  int port = 0;
  if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  if (fd >= 0) close(fd);
  return port;
}

ServerProcess::ServerProcess(std::string binary, std::string config, std::string data_dir,
                             std::vector<std::string> extra_args)
    : binary_(std::move(binary)), config_(std::move(config)), data_dir_(std::move(data_dir)),
      extra_args_(std::move(extra_args)) {
  const char* engine = std::getenv("ALLOT_TEST_STORE");
  bool names_its_store = std::find(extra_args_.begin(), extra_args_.end(), "--store") != extra_args_.end();
  if (engine != nullptr && std::string_view(engine) == "postgresql" && !names_its_store) {
    database_ = std::make_shared<ScratchPostgresDatabase>();
  }
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) Kill();
}

Status ServerProcess::Start() {
  int pipe_fds[2];
  if (database_ && !database_->available()) {
    return FailedPreconditionError("ALLOT_TEST_STORE=postgresql needs a scratch database: {}",
                                   database_->error().empty() ? ScratchPostgresDatabase::kSkipReason : database_->error());
  }
  if (pipe(pipe_fds) != 0) return InternalError("pipe failed");
  std::vector<std::string> args = {binary_, "server", "--data", data_dir_, "--log-level", "warn"};
  // A fixed port when the caller names one (servers that clients find by a list), else any.
  if (std::find(extra_args_.begin(), extra_args_.end(), "--listen") == extra_args_.end()) {
    args.insert(args.end(), {"--listen", "127.0.0.1:0"});
  }
  if (database_) args.insert(args.end(), {"--store", database_->uri()});
  if (!config_.empty()) args.insert(args.begin() + 2, {"--config", config_});  // else --dev in extra_args
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  pid_t pid = fork();
  if (pid < 0) return InternalError("fork failed");
  if (pid == 0) {
    // If the test dies, so does its server: an orphan would hold the test's output open and
    // keep ctest waiting.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(pipe_fds[1], STDOUT_FILENO);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    execv(binary_.c_str(), argv.data());
    _exit(127);
  }
  close(pipe_fds[1]);
  pid_ = pid;
  // Read stdout until the "listening on" line gives the port (or a standby's "standby on").
  output_.clear();
  standby_ = false;
  FILE* out = fdopen(pipe_fds[0], "r");
  char line[1024];
  while (fgets(line, sizeof line, out)) {
    output_ += line;
    std::string text(line);
    for (std::string_view prefix : {"listening on http://127.0.0.1:", "listening on https://127.0.0.1:",
                                    "standby on http://127.0.0.1:", "standby on https://127.0.0.1:"}) {
      size_t at = text.find(prefix);
      if (at != std::string::npos) {
        port_ = std::stoi(text.substr(at + prefix.size()));
        standby_ = prefix.starts_with("standby");
      }
    }
    // A server alone on its scratch database leads; right after a kill it may stand by for a
    // moment, until PostgreSQL has ended the killed one's session: wait for it to lead.
    if (standby_ && database_) {
      port_ = 0;
      standby_ = false;
    }
    if (port_ != 0) break;
  }
  // The rest of stdout is not needed; a thread drains it so the server never blocks on a pipe.
  std::thread([out] {
    char rest[1024];
    while (fgets(rest, sizeof rest, out)) {
    }
    fclose(out);
  }).detach();
  if (port_ == 0) {
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return InternalError("the server did not start (exit status {}); output: {}", WEXITSTATUS(status), output_);
  }
  return OkStatus();
}

void ServerProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

int ServerProcess::Stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int ServerProcess::WaitExit(double seconds) {
  if (pid_ <= 0) return -1;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (true) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (std::chrono::steady_clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::string ServerProcess::url() const { return fmt::format("http://127.0.0.1:{}", port_); }

std::string ServerProcess::OperatorToken() const {
  std::ifstream file(data_dir_ + "/operator.token");
  std::string token;
  file >> token;
  return token;
}

httplib::Client ServerProcess::Client() const {
  httplib::Client client("127.0.0.1", port_);
  client.set_read_timeout(60, 0);
  client.set_keep_alive(true);
  client.set_tcp_nodelay(true);
  return client;
}

size_t ServerProcess::ResidentBytes() const {
  std::ifstream status(fmt::format("/proc/{}/status", pid_));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      std::istringstream fields(line.substr(6));
      size_t kib = 0;
      fields >> kib;
      return kib * 1024;
    }
  }
  return 0;
}

AgentProcess::AgentProcess(std::string binary, std::vector<std::string> args, std::string state_dir)
    : binary_(std::move(binary)), args_(std::move(args)), state_dir_(std::move(state_dir)) {}

AgentProcess::~AgentProcess() { Stop(); }

Status AgentProcess::Start() {
  std::vector<std::string> args = {binary_, "agent", "--state", state_dir_};
  args.insert(args.end(), args_.begin(), args_.end());
  std::string log = state_dir_ + ".log";
  pid_t pid = fork();
  if (pid < 0) return InternalError("fork failed");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
    }
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    execv(binary_.c_str(), argv.data());
    _exit(127);
  }
  pid_ = pid;
  return OkStatus();
}

void AgentProcess::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  for (int i = 0; i < 500; ++i) {
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Kill();
}

void AgentProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

}  // namespace allot
