// Slurm's hostlist expressions, which Slurm users read and scripts parse: names that differ only
// in a trailing number share one bracket, "n1,n2,n3,n7" <-> "n[1-3,7]".
//
//   CompressNodeList({"n7", "n1", "n2", "n3"})  -> "n[1-3,7]"      (sorted, for display)
//   CompressHostList({"n3", "n1", "n2"})        -> "n[3,1-2]"      (in the order given)
//   ExpandHostList("gpu[001-003],login")        -> {"gpu001", "gpu002", "gpu003", "login"}
//
// The server writes a job's nodes in the order of its tasks (SLURM_JOB_NODELIST), so that the
// first name a script expands is the node of task 0, where the batch script and rank 0 run.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace allot {

// Sorted by prefix and ascending number; duplicates dropped; zero padding kept ("gpu001,gpu002"
// -> "gpu[001-002]"); names without a trailing number listed as they are. "" for no names.
std::string CompressNodeList(std::vector<std::string> names);

// The same form, keeping the order given (a later duplicate is dropped): consecutive names with
// one prefix share a bracket, and ExpandHostList gives back exactly `names` without duplicates.
std::string CompressHostList(const std::vector<std::string>& names);

// The names a hostlist expression stands for, in its order; an error that says what is wrong for
// an unclosed bracket, a range that is not numbers, or one over 100,000 names.
StatusOr<std::vector<std::string>> ExpandHostList(std::string_view list);

}  // namespace allot
