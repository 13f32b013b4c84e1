// Bearer tokens and roles.
//
// A token is "allot_" and 64 hex digits from the system's CSPRNG (OpenSSL RAND_bytes). The server
// stores only its SHA-256: the token has 256 bits of entropy, so a fast hash is enough (no
// salt or stretching needed, unlike passwords) and a leaked database yields no usable token.
//
//   std::string token = NewToken();               // shown to its owner once
//   std::string hash = HashToken(token);          // what the store keeps
//   StatusOr<Role> role = ParseRole("tenant");
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <string_view>

#include "core/accounts.h"
#include "core/status.h"

namespace allot {

// kBootstrap: may only enrol nodes (POST /v1/agents/{node}/register), each once, getting that
// node's own agent token; the kubelet TLS bootstrap, with tokens.
// kJob: a running job's own credential (ALLOT_JOB_TOKEN in its tasks' environment), minted by the
// server, never stored: it may start and follow steps of that job and read its job and logs.
enum class Role : uint8_t { kOperator, kTenant, kAgent, kBootstrap, kJob };
std::string_view RoleName(Role role);
StatusOr<Role> ParseRole(std::string_view name);

// Who a request comes from, resolved from its token.
struct Principal {
  int64_t token_id = 0;
  std::string user;
  Role role = Role::kTenant;
  std::string account;  // tenants: the root of the subtree they may use
  AccountIndex account_index = kNoAccount;
  std::string node;     // agents: the one node whose reports this token may make
  uint64_t job = 0;     // kJob: the job, and the allocation (epoch) the credential was made for
  uint64_t job_epoch = 0;
  std::string remote;   // where the request came from (address:port), for the audit log

  bool is_operator() const { return role == Role::kOperator; }
};

std::string NewToken();
// 256 random bits as hex: the key that signs jobs' credentials.
std::string NewSecretKey();

// A job's own credential: "allotjob_<job>_<epoch>_<HMAC-SHA256 of both under the server's key>".
// Nothing is stored: the server checks the signature, then that the job still runs in that epoch.
inline constexpr std::string_view kJobCredentialPrefix = "allotjob_";
std::string JobCredential(std::string_view key, uint64_t job, uint64_t epoch);
// The (job, epoch) a credential was made for, if its signature is the key's.
std::optional<std::pair<uint64_t, uint64_t>> CheckJobCredential(std::string_view key, std::string_view token);
std::string HashToken(std::string_view token);
// The token from an "Authorization: Bearer TOKEN" header value, or "" if it has none.
std::string_view BearerToken(std::string_view authorization);

}  // namespace allot
