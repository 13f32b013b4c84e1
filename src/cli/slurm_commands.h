// Slurm's commands for Slurm users: sbatch, squeue, scancel, sinfo, sacct and scontrol, installed
// as links to `allot` (main.cc dispatches on the name it was called by). Each is a thin front for
// the same client code as the allot commands, accepts the flags people and scripts use most, and
// prints Slurm's default formats, with -o/--format where scripts parse the output. A flag allot
// does not support is an error naming it, never silently ignored. docs/slurm.md lists them all.
//
//   CommandEnv env{.in = std::cin, .out = std::cout, .err = std::cerr, .now = std::time(nullptr)};
//   int code = RunSlurmCommand(client, {"squeue", "--me", "-t", "PD"}, env);
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/client.h"
#include "cli/commands.h"
#include "core/hostlist.h"  // ExpandHostList, for scontrol show hostnames

namespace allot {

// Whether `name` (the program's base name) is one of Slurm's commands allot provides.
bool IsSlurmCommand(std::string_view name);

// Runs args[0] (sbatch, squeue, ...) with its arguments against the server; the exit code.
int RunSlurmCommand(ApiClient& client, const std::vector<std::string>& args, const CommandEnv& env);

// The same, resolving the client settings from the environment and the config file first, as the
// allot commands do; commands that need no server (scontrol show hostnames) never contact it.
int RunSlurmCommandFromEnvironment(const std::vector<std::string>& args, const CommandEnv& env);

}  // namespace allot
