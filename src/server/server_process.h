// ServerProcess: runs `allot server` as a child process on a free loopback port, for tests and
// benchmarks that must talk to a real server (and kill it).
//
//   ServerProcess server(ALLOT_BINARY, "tests/server/pool.yaml", data_dir);
//   ASSERT_TRUE(server.Start().ok());
//   httplib::Client client = server.Client();
//   server.Kill();   // SIGKILL, no shutdown at all
//   server.Start();  // same data directory, a new port
//
// With ALLOT_TEST_STORE=postgresql in the environment, each ServerProcess keeps its state in a
// scratch PostgreSQL database of its own (kept across Kill and Start, dropped with the object) in
// the cluster named by ALLOT_TEST_POSTGRESQL: the server tests run again on that engine so
// (CMake's server_test_on_postgresql, under scripts/with-postgresql.sh).
#pragma once

#include <httplib.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace allot {

class ScratchPostgresDatabase;

// A loopback port nothing listens on now (bound once to learn a free number, then closed): for
// servers that must keep one port across restarts, as clients given a list of servers expect.
int UnusedLoopbackPort();

class ServerProcess {
 public:
  ServerProcess(std::string binary, std::string config, std::string data_dir,
                std::vector<std::string> extra_args = {});
  ~ServerProcess();

  // Starts the server and waits until it accepts requests (its "listening on" line), or, sharing
  // a PostgreSQL store with a leader, until it stands by (standby() is then true).
  Status Start();
  bool standby() const { return standby_; }
  // SIGKILL, then reaps the process.
  void Kill();
  // SIGTERM and waits for a clean exit; returns the exit status.
  int Stop();
  // Waits up to `seconds` for the server to exit by itself; its exit status, or -1 if it still runs.
  int WaitExit(double seconds);

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  int port() const { return port_; }
  std::string url() const;
  // The operator token the server wrote on first start.
  std::string OperatorToken() const;
  httplib::Client Client() const;
  // Resident memory of the server process, from /proc.
  size_t ResidentBytes() const;
  const std::string& output() const { return output_; }

 private:
  std::string binary_;
  std::string config_;
  std::string data_dir_;
  std::vector<std::string> extra_args_;
  std::shared_ptr<ScratchPostgresDatabase> database_;  // ALLOT_TEST_STORE=postgresql
  pid_t pid_ = -1;
  int port_ = 0;
  bool standby_ = false;
  std::string output_;
};

// AgentProcess: runs `allot agent` for one node as a child process (its output goes to
// STATE_DIR/agent.log).
class AgentProcess {
 public:
  AgentProcess(std::string binary, std::vector<std::string> args, std::string state_dir);
  ~AgentProcess();
  Status Start();
  void Kill();  // SIGKILL: the agent dies, the tasks under its shims run on
  void Stop();  // SIGTERM, as an operator stops it (SIGKILL after 5 s)
  bool running() const { return pid_ > 0; }

 private:
  std::string binary_;
  std::vector<std::string> args_;
  std::string state_dir_;
  pid_t pid_ = -1;
};

}  // namespace allot
