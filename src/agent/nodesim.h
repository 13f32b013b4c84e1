// NodeSim: hollow agents, thousands in one process, that speak the real sync protocol
// (docs/agents.md), as kubemark's hollow nodes and nomad-nodesim do. Each hollow node takes its
// name and GPUs from the pool config, long-polls the server, accepts assignments, reports its
// tasks running, and then exited after their run time; it keeps the server's cadence (the wait
// the server allows, a new sync at once when a task ends). Nothing is started on the machine.
//
//   allot nodesim --server URL --token @operator.token --config examples/national-pool.yaml
//                 [--nodes N] [--runtime 30s|exp:60s] [--duration 10m] [--threads 1]
//
// It prints a line every 10 s (syncs per second, tasks running, errors) and a summary at the end.
// It uses an operator token: it speaks for many nodes at once.
#pragma once

#include <string>

#include "core/status.h"
#include "core/units.h"

namespace allot {

struct NodeSimOptions {
  std::string server = "http://127.0.0.1:8080";
  std::string token;
  std::string config;
  size_t nodes = 0;             // the first N nodes of the config; 0: all
  std::string runtime = "30s";  // how long each task runs: a duration, or exp:MEAN for exponential
  double duration_seconds = 0;  // stop after this long; 0: until SIGINT/SIGTERM
  double wait_seconds = 30;     // the long poll each hollow node asks for
  unsigned seed = 1;
  int threads = 1;              // event-loop threads (each node's steps stay in order on its strand)
};

// Runs until the duration is over or a stop signal; returns 0, or 2 for bad options.
int RunNodeSim(const NodeSimOptions& options);

}  // namespace allot
