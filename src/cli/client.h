// Talking to `allot server` from the command line: where the server is and which token to show it
// (ClientSettings, resolved from flags, the environment and a config file), and ApiClient, which
// sends JSON requests and turns error replies into Status values with the server's message.
//
//   StatusOr<ClientSettings> settings = ResolveClientSettings({.token = "@data/operator.token"});
//   if (!settings.ok()) return settings.status();
//   StatusOr<ApiClient> client = ApiClient::Create(*settings);
//   if (!client.ok()) return client.status();
//   StatusOr<nlohmann::json> jobs = client->Get("/v1/jobs", {{"state", "running"}});
//   // jobs.status(): kUnavailable when the server cannot be reached, kNotFound on a 404, ...
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace httplib {
class Client;
}  // namespace httplib

namespace allot {

inline constexpr std::string_view kDefaultServer = "http://127.0.0.1:8080";

struct ClientSettings {
  // "http://HOST:PORT", optionally with a path prefix ("https://h/allot"); or several, comma
  // separated, for servers that share a store (core/server_list.h): the client finds the leader.
  std::string server;
  std::string token;   // the bearer token itself, never "@FILE"
  // https: the CA certificates (PEM) to verify the server against; "": the system's.
  std::string ca_file;
};

// What the command line said; an empty string means the flag was not given.
struct ClientFlags {
  std::string server;  // --server URL
  std::string token;   // --token TOKEN, or --token @FILE
  std::string ca_file;  // --ca-file FILE (else ALLOT_CA_FILE)
};

// Each setting comes from the first of: the flag, the environment (ALLOT_SERVER, ALLOT_TOKEN; an
// empty variable counts as unset), the config file (ClientConfigPath(), YAML with the keys
// `server` and `token`). The server defaults to kDefaultServer; the token has no default.
// A token written "@PATH" is read from the file PATH, surrounding whitespace trimmed; a relative
// PATH in the config file is relative to the config file's folder, elsewhere to the working
// directory. The config file is read only when a flag or variable leaves a setting open, so a
// broken file does not get in the way of `--server X --token Y`.
// Errors: kUnauthenticated when no source gives a token; kInvalidArgument for an unreadable or
// malformed config file (unknown keys included), an unreadable or empty token file, a token with
// whitespace or control characters, or a server that is not an http:// or https:// URL. Each
// message names where the bad value came from.
StatusOr<ClientSettings> ResolveClientSettings(const ClientFlags& flags);

// $XDG_CONFIG_HOME/allot/config.yaml when XDG_CONFIG_HOME is an absolute path, else
// $HOME/.config/allot/config.yaml; "" when neither is set.
std::string ClientConfigPath();

// Sends requests to one server with one token and reads JSON replies.
//
// Every request carries `Authorization: Bearer TOKEN`. A 2xx reply is parsed as JSON (an empty
// body reads as an empty object). An error reply becomes a Status whose message is the server's
// `message` and whose code follows the HTTP status: 400 and 413 kInvalidArgument, 401
// kUnauthenticated, 403 kPermissionDenied, 404 kNotFound, 409 kFailedPrecondition, 502-504
// kUnavailable, other 5xx kInternal. A server that cannot be reached is kUnavailable with a hint to
// check `allot server` and --server. Timeouts: 5 s to connect, 60 s for each read.
//
// With several servers, a request that could not be sent (no connection) or that a standby
// refused (503 naming the leader) goes to the next server, or straight to the leader it named,
// for up to 20 s: long enough for a standby to take over. Such a request reached no leader, so
// it is safe to send again whatever its method. The client stays with the server that answered.
//
// Not thread-safe: one request at a time. Keeps its connection open between requests.
class ApiClient {
 public:
  using Query = std::vector<std::pair<std::string, std::string>>;

  // Errors: kInvalidArgument when settings.server is not an http:// or https:// URL.
  static StatusOr<ApiClient> Create(const ClientSettings& settings);

  ApiClient(ApiClient&&) noexcept;
  ApiClient& operator=(ApiClient&&) noexcept;
  ~ApiClient();

  // `path` starts with "/" ("/v1/jobs"); query values are URL-encoded here.
  StatusOr<nlohmann::json> Get(std::string_view path, const Query& query = {});
  StatusOr<nlohmann::json> Post(std::string_view path,
                                const nlohmann::json& body = nlohmann::json::object());
  // A POST that may be sent again: it carries an Idempotency-Key, and when the reply is lost (the
  // connection failed or closed before it came) it is retried with the same key, up to three
  // times, so the server acts on it once. For submits.
  StatusOr<nlohmann::json> PostOnce(std::string_view path, const nlohmann::json& body);
  StatusOr<nlohmann::json> Put(std::string_view path, const nlohmann::json& body);
  StatusOr<nlohmann::json> Delete(std::string_view path);

  // The URL of the server the client talks to now, for messages.
  const std::string& server() const { return endpoints_[current_].server; }

 private:
  enum class Method : uint8_t { kGet, kPost, kPut, kDelete };

  struct Endpoint {
    std::string server;
    std::string base_path;  // "" or a prefix such as "/allot", prepended to every path
    std::unique_ptr<httplib::Client> http;
  };
  // One server's answer; `elsewhere` when the request reached no leader and may go to another
  // server (no connection, or a standby), `leader` the URL a standby named.
  struct Attempt {
    StatusOr<nlohmann::json> reply;
    bool elsewhere = false;
    std::string leader;
  };

  ApiClient(std::vector<Endpoint> endpoints, std::string token);

  StatusOr<nlohmann::json> Send(Method method, std::string_view path, const Query& query,
                                const nlohmann::json* body, std::string_view idempotency_key = {});
  Attempt SendTo(Endpoint& endpoint, Method method, std::string_view path, const Query& query,
                 const nlohmann::json* body, std::string_view idempotency_key);

  std::vector<Endpoint> endpoints_;
  size_t current_ = 0;
  std::string token_;
};

}  // namespace allot
