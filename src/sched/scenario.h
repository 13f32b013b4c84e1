// Scenario scripts: drive the scheduler from a small file and log every decision.
//
// In the style of flux-sched's resource-query tests: a scenario holds a config (pools, nodes,
// accounts, policy) and a script of timed commands; running it gives a decision log that a person
// can read and that golden tests diff against an expected file. `allot schedule FILE` runs one.
//
//   config: {pools: [...], accounts: [...], policy: {...}}
//   script: |
//     0    submit id=1 account=lab gpus=8 tasks=2 limit=2h runtime=1h
//     0    pass
//     3600 pass                 # job 1 completes at 3600 before this pass
//
// Commands (times in seconds, or durations like 1h, must not go backwards):
//   submit [id=N] account=A [tasks=N] [gpus=N] [cpus=N] [memory=SIZE] [pools=P,Q] [model=M]
//          [topology=LEVEL[:required|preferred]] [limit=DUR] [class=C] [preemptible=BOOL]
//          [requeue=BOOL] [runtime=DUR] [name=S]
//   pass | complete ID | cancel ID | hold ID | release ID | node NAME up|draining|down
//   show ID | usage
// A job submitted with runtime=D completes by itself D after it starts (or at its time limit,
// logged as a timeout); completions happen before any command at the same or a later time.
// After each pass the log lists every pending job with its reason.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace allot {

// Runs a scenario and returns its log; errors name the file and script line.
StatusOr<std::string> RunScenario(std::string_view yaml, std::string_view source);
StatusOr<std::string> RunScenarioFile(const std::string& path);

}  // namespace allot
