// Status and StatusOr: how allot reports expected failures.
//
// Errors a caller can act on (bad input, unknown names, requests that can never be met) travel as
// values, never as exceptions, and are mapped to HTTP codes or exit codes only at the edge.
// Messages are written for the person who must fix the input:
//
//   StatusOr<AccountIndex> account = tree.Find("lab-x");
//   if (!account.ok()) return account.status();  // "unknown account 'lab-x'"
//
//   ALLOT_ASSIGN_OR_RETURN(AccountIndex index, tree.Find(name));
//   ALLOT_RETURN_IF_ERROR(model.Validate(spec));
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace allot {

enum class StatusCode {
  kOk,
  kInvalidArgument,     // the input is malformed or impossible; fix it and retry
  kNotFound,            // a named thing does not exist
  kAlreadyExists,       // a thing with that name or id exists already
  kFailedPrecondition,  // the request is well formed but the current state forbids it
  kResourceExhausted,   // a limit (size, quota) was hit
  kTooManyRequests,     // a rate limit was hit; retry later
  kPermissionDenied,
  kUnauthenticated,
  kUnavailable,
  kInternal,            // a bug: an invariant did not hold
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "INVALID_ARGUMENT: ..." for logs; users see message() alone.
  std::string ToString() const;

  // Returns a copy whose message is "context: message", for errors raised deep in a loader.
  Status WithContext(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }

template <typename... Args>
Status InvalidArgumentError(fmt::format_string<Args...> format, Args&&... args) {
  return Status(StatusCode::kInvalidArgument, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
Status NotFoundError(fmt::format_string<Args...> format, Args&&... args) {
  return Status(StatusCode::kNotFound, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
Status AlreadyExistsError(fmt::format_string<Args...> format, Args&&... args) {
  return Status(StatusCode::kAlreadyExists, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
Status FailedPreconditionError(fmt::format_string<Args...> format, Args&&... args) {
  return Status(StatusCode::kFailedPrecondition, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
Status InternalError(fmt::format_string<Args...> format, Args&&... args) {
  return Status(StatusCode::kInternal, fmt::format(format, std::forward<Args>(args)...));
}

// Holds either a T or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status status) : value_(std::move(status)) {  // NOLINT: implicit by design
    assert(!std::get<Status>(value_).ok() && "StatusOr needs a value or an error");
  }
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(value_); }
  Status status() const { return ok() ? OkStatus() : std::get<Status>(value_); }

  T& value() & { return std::get<T>(value_); }
  const T& value() const& { return std::get<T>(value_); }
  T&& value() && { return std::get<T>(std::move(value_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<Status, T> value_;
};

}  // namespace allot

#define ALLOT_CONCAT_INNER(a, b) a##b
#define ALLOT_CONCAT(a, b) ALLOT_CONCAT_INNER(a, b)

#define ALLOT_RETURN_IF_ERROR(expr)          \
  do {                                       \
    ::allot::Status allot_status_ = (expr);  \
    if (!allot_status_.ok()) {               \
      return allot_status_;                  \
    }                                        \
  } while (false)

#define ALLOT_ASSIGN_OR_RETURN_IMPL(result, lhs, expr) \
  auto result = (expr);                                \
  if (!result.ok()) {                                  \
    return result.status();                            \
  }                                                    \
  lhs = std::move(result).value()

#define ALLOT_ASSIGN_OR_RETURN(lhs, expr) \
  ALLOT_ASSIGN_OR_RETURN_IMPL(ALLOT_CONCAT(allot_result_, __LINE__), lhs, expr)
