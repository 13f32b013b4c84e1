// `allot server`: loads the config, opens the controller on the data directory, and serves the
// API until SIGINT or SIGTERM.
#pragma once

#include <string>

namespace allot {

struct ServeCommand {
  std::string config;
  std::string data_dir = "allot-data";  // `allot server` sets .allot for --dev
  std::string store;  // --store: sqlite:DIR or postgresql://...; "" keeps the store in data_dir
  // With a PostgreSQL store, any number of servers may share it: one leads, the others stand by
  // (server/standby.h). --advertise: this server's URL as clients reach it; default from --listen.
  std::string advertise;
  std::string listen = "127.0.0.1:8080";  // HOST:PORT; port 0 picks a free one
  int threads = 64;
  std::string log_level = "info";
  // One command, one machine: without --config, a pool of this host with 8 emulated H200 GPUs;
  // state under ./.allot; an agent runs inside the server (docs/agents.md).
  bool dev = false;
  // Agents: sync interval, syncs missed before a node is marked down, SIGTERM-to-SIGKILL grace.
  double heartbeat_seconds = 5;
  int missed_heartbeats = 3;
  double kill_grace_seconds = 30;
  // Nodes are up without an agent (--static-nodes); by default a node is down until its agent
  // registers.
  bool static_nodes = false;
  // Per tenant token: submit requests a second, and the burst allowed above that rate.
  double submit_rate = 100;
  double submit_burst = 1000;
  // The front end (HttpServer): connections at once (more get 503), and TLS on the same port.
  size_t max_connections = 100000;
  double history_retention_days = 0;  // --history-retention; 0: ended jobs kept for ever
  // --reports: a directory of `allot sim --report` / `allot plan --report` reports that the
  // dashboard's Simulation view shows; "": none.
  std::string reports_dir;
  std::string tls_certificate_file;
  std::string tls_key_file;
};

// Prints "listening on http://HOST:PORT" on stdout once requests are accepted (tests wait for
// that line). Returns the exit code: 0 after a clean shutdown, 2 for bad input, 1 otherwise.
int RunServe(const ServeCommand& command);

}  // namespace allot
