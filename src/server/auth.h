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
#include <string>
#include <string_view>

#include "core/accounts.h"
#include "core/status.h"

namespace allot {

// kBootstrap: may only enrol nodes (POST /v1/agents/{node}/register), each once, getting that
// node's own agent token; the kubelet TLS bootstrap, with tokens.
enum class Role : uint8_t { kOperator, kTenant, kAgent, kBootstrap };
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
  std::string remote;   // where the request came from (address:port), for the audit log

  bool is_operator() const { return role == Role::kOperator; }
};

std::string NewToken();
std::string HashToken(std::string_view token);
// The token from an "Authorization: Bearer TOKEN" header value, or "" if it has none.
std::string_view BearerToken(std::string_view authorization);

}  // namespace allot
