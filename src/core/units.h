// Units that appear in configs and specs: times, durations and memory sizes.
//
// Time is whole seconds on one clock: virtual seconds in the simulator, Unix seconds in the
// server. The scheduler never reads a clock; callers pass `now`.
//
//   ParseDuration("1h30m") -> 5400        ParseDuration("7d") -> 604800
//   ParseMemory("2TiB")    -> 2^41        FormatDuration(5400) -> "1h30m"
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "core/status.h"

namespace allot {

using Time = int64_t;      // seconds
using Duration = int64_t;  // seconds

inline constexpr Time kForever = std::numeric_limits<Time>::max() / 4;

// Accepts plain seconds ("3600"), unit suffixes s/m/h/d/w combined ("1h30m", "2d"), and
// Slurm's forms "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM", "D-HH:MM:SS". Rejects negatives.
StatusOr<Duration> ParseDuration(std::string_view text);

// Accepts bytes ("1048576") or a number with K/M/G/T/P suffixes, decimal (G, GB) or binary (Gi,
// GiB); the bare letter is read as binary, as Slurm and Kubernetes users expect for memory.
StatusOr<int64_t> ParseMemory(std::string_view text);

// "2d3h", "1h30m", "45s", "0s": the shortest exact form.
std::string FormatDuration(Duration seconds);

}  // namespace allot
