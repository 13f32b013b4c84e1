// Checks that untrusted text (request bodies, submit files, configs) is safe to hand to a parser:
// valid UTF-8, and not nested deeper than a parser's recursion can bear. Each check runs in one
// pass over the bytes and allocates nothing, so it costs less than the parse it protects.
//
//   ALLOT_RETURN_IF_ERROR(CheckUtf8(body, "request"));
//   ALLOT_RETURN_IF_ERROR(CheckNesting(body, kMaxNestingDepth, "request"));
//
// Errors are InvalidArgument and say where (byte offset, line) and what to fix.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/status.h"

namespace allot {

// JSON and YAML documents deeper than this are refused: no job spec, config or agent report
// needs more than a handful of levels, and parsers and copies recurse once per level.
inline constexpr int kMaxNestingDepth = 64;
// A YAML document may not expand (aliases included) into more values than this: a job
// submission (a spec has a few dozen), and a config (the operator's, but it may list every node).
inline constexpr size_t kMaxSubmissionValues = 10000;
inline constexpr size_t kMaxConfigValues = 20000000;

// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
Status CheckUtf8(std::string_view text, std::string_view source);

// A user name as jobs and tokens carry it: no control characters (NUL among them, which
// PostgreSQL's text refuses), at most 256 bytes. The error names `field`.
Status CheckUserName(std::string_view name, std::string_view field);
// The depth of [ ] and { } outside quoted strings ("..." with backslash escapes, and YAML's
// '...'), which bounds how deep a JSON or flow-style YAML parser recurses.
Status CheckNesting(std::string_view text, int max_depth, std::string_view source);
// Where `text` has an incomplete UTF-8 sequence at its end, the length without it.
size_t CompleteUtf8Prefix(std::string_view text);
// `text` with every byte that is not part of valid UTF-8 replaced by U+FFFD (a task's output
// may be any bytes; a JSON reply carries text).
std::string ReplaceInvalidUtf8(std::string_view text);

}  // namespace allot
