#include "cli/client.h"

#include <httplib.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

#include "core/server_list.h"

namespace allot {
namespace {

constexpr time_t kConnectTimeoutSeconds = 5;
constexpr time_t kReadTimeoutSeconds = 60;

// A server URL split the way httplib wants it: "http://host:port" and a path prefix.
struct ServerUrl {
  std::string scheme_host_port;
  std::string base_path;  // "" or "/prefix", without a trailing slash
};

StatusOr<ServerUrl> ParseServerUrl(std::string_view url) {
  auto invalid = [&] {
    return InvalidArgumentError(
        "'{}' is not a server URL; write http://HOST:PORT or https://HOST[:PORT][/PATH]", url);
  };
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return invalid();
  std::string_view scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") return invalid();
  std::string_view rest = url.substr(scheme_end + 3);
  size_t host_end = std::min(rest.find('/'), rest.size());
  std::string_view host_port = rest.substr(0, host_end);
  if (host_port.empty() || host_port.find_first_of("@?# \t") != std::string_view::npos ||
      rest.find_first_of("?# \t") != std::string_view::npos) {
    return invalid();
  }
  std::string_view path = rest.substr(host_end);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  return ServerUrl{.scheme_host_port = std::string(url.substr(0, scheme_end + 3 + host_end)),
                   .base_path = std::string(path)};
}

std::string EnvironmentValue(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

// "~/.config/allot/config.yaml" rather than "/home/kim/.config/allot/config.yaml", for messages.
std::string ShortenHome(const std::string& path) {
  std::string home = EnvironmentValue("HOME");
  while (home.size() > 1 && home.back() == '/') home.pop_back();
  if (home.size() > 1 && path.starts_with(home + "/")) return "~" + path.substr(home.size());
  return path;
}

std::string_view Trim(std::string_view text) {
  size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string_view::npos) return {};
  size_t end = text.find_last_not_of(" \t\r\n");
  return text.substr(begin, end - begin + 1);
}

// A setting's value and where it came from ("--token", "ALLOT_TOKEN", a config file path), so an
// error can say which source to fix.
struct Setting {
  std::string value;
  std::string origin;
  std::filesystem::path relative_to;  // the folder an "@relative/path" token is read from
};

std::optional<Setting> FromFlagOrEnvironment(const std::string& flag, std::string_view flag_name,
                                             const char* variable) {
  if (!flag.empty()) return Setting{.value = flag, .origin = std::string(flag_name)};
  std::string value = EnvironmentValue(variable);
  if (!value.empty()) return Setting{.value = value, .origin = variable};
  return std::nullopt;
}

struct ConfigFile {
  std::optional<Setting> server;
  std::optional<Setting> token;
};

// A missing file is not an error: it only means the file gives no settings.
StatusOr<ConfigFile> ReadConfigFile(const std::string& path) {
  ConfigFile config;
  if (path.empty()) return config;
  std::error_code error;
  if (!std::filesystem::exists(path, error)) return config;
  std::ifstream stream(path);
  if (!stream) {
    return InvalidArgumentError("cannot read the config file {}: {}", path, std::strerror(errno));
  }
  std::stringstream text;
  text << stream.rdbuf();
  YAML::Node root;
  try {
    root = YAML::Load(text.str());
  } catch (const YAML::Exception& exception) {
    return InvalidArgumentError("{}:{}:{}: {}", path, exception.mark.line + 1,
                                exception.mark.column + 1, exception.msg);
  }
  if (root.IsNull()) return config;
  if (!root.IsMap()) {
    return InvalidArgumentError("{}: expected keys `server:` and `token:`, one per line", path);
  }
  std::filesystem::path folder = std::filesystem::path(path).parent_path();
  for (const auto& entry : root) {
    const std::string key = entry.first.Scalar();
    const int line = entry.first.Mark().line + 1;
    std::optional<Setting>* target = key == "server"  ? &config.server
                                     : key == "token" ? &config.token
                                                      : nullptr;
    if (target == nullptr) {
      return InvalidArgumentError(
          "{}:{}: unknown key '{}'; the allot config file takes server and token", path, line, key);
    }
    if (!entry.second.IsScalar() || entry.second.Scalar().empty()) {
      return InvalidArgumentError("{}:{}: {} must be a non-empty string", path, line, key);
    }
    *target = Setting{.value = entry.second.Scalar(), .origin = path, .relative_to = folder};
  }
  return config;
}

// Reads "@PATH" tokens from their file; checks the token can travel in an HTTP header.
StatusOr<std::string> TokenValue(const Setting& setting) {
  std::string token = setting.value;
  if (token.starts_with('@')) {
    std::filesystem::path path = token.substr(1);
    if (path.empty()) {
      return InvalidArgumentError("the token from {} is '@' without a file name; write @PATH",
                                  setting.origin);
    }
    if (path.is_relative() && !setting.relative_to.empty()) path = setting.relative_to / path;
    std::ifstream stream(path);
    if (!stream) {
      return InvalidArgumentError("cannot read the token file {} (from {}): {}", path.string(),
                                  setting.origin, std::strerror(errno));
    }
    std::stringstream text;
    text << stream.rdbuf();
    token = std::string(Trim(text.str()));
    if (token.empty()) {
      return InvalidArgumentError("the token file {} (from {}) is empty", path.string(),
                                  setting.origin);
    }
  }
  for (char c : token) {
    if (static_cast<unsigned char>(c) <= ' ' || c == '\x7f') {
      return InvalidArgumentError("the token from {} contains whitespace or control characters",
                                  setting.origin);
    }
  }
  return token;
}

// Why a request got no reply, in words.
std::string DescribeTransportError(httplib::Error error) {
  switch (error) {
    case httplib::Error::Connection:
      return "connection failed";
    case httplib::Error::ConnectionTimeout:
      return fmt::format("no connection within {} s", kConnectTimeoutSeconds);
    case httplib::Error::Read:
      return fmt::format("the connection closed, or no reply came within {} s",
                         kReadTimeoutSeconds);
    case httplib::Error::Write:
      return "the connection closed while the request was being sent";
    case httplib::Error::SSLConnection:
      return "the TLS handshake failed";
    case httplib::Error::SSLLoadingCerts:
      return "the system's CA certificates could not be loaded";
    case httplib::Error::SSLServerVerification:
      return "the server's TLS certificate is not trusted";
    default:
      return httplib::to_string(error);
  }
}

bool IsConnectError(httplib::Error error) {
  switch (error) {
    case httplib::Error::Connection:
    case httplib::Error::ConnectionTimeout:
    case httplib::Error::BindIPAddress:
    case httplib::Error::SSLConnection:
    case httplib::Error::SSLLoadingCerts:
    case httplib::Error::SSLServerVerification:
      return true;
    default:
      return false;
  }
}

StatusCode CodeForHttpStatus(int http_status) {
  switch (http_status) {
    case 400:
    case 413:
      return StatusCode::kInvalidArgument;
    case 401:
      return StatusCode::kUnauthenticated;
    case 403:
      return StatusCode::kPermissionDenied;
    case 404:
      return StatusCode::kNotFound;
    case 409:
      return StatusCode::kFailedPrecondition;
    case 429:
      return StatusCode::kTooManyRequests;
    case 502:
    case 503:
    case 504:
      return StatusCode::kUnavailable;
    default:
      return http_status >= 500 ? StatusCode::kInternal : StatusCode::kInvalidArgument;
  }
}

}  // namespace

std::string ClientConfigPath() {
  std::string config_home = EnvironmentValue("XDG_CONFIG_HOME");
  // The XDG spec says to ignore a relative XDG_CONFIG_HOME.
  if (!config_home.empty() && config_home.front() == '/') return config_home + "/allot/config.yaml";
  std::string home = EnvironmentValue("HOME");
  if (home.empty()) return "";
  while (home.size() > 1 && home.back() == '/') home.pop_back();
  return home + "/.config/allot/config.yaml";
}

StatusOr<ClientSettings> ResolveClientSettings(const ClientFlags& flags) {
  std::optional<Setting> server = FromFlagOrEnvironment(flags.server, "--server", "ALLOT_SERVER");
  std::optional<Setting> token = FromFlagOrEnvironment(flags.token, "--token", "ALLOT_TOKEN");
  const std::string config_path = ClientConfigPath();
  if (!server || !token) {
    ALLOT_ASSIGN_OR_RETURN(ConfigFile config, ReadConfigFile(config_path));
    if (!server) server = std::move(config.server);
    if (!token) token = std::move(config.token);
  }
  if (!server) server = Setting{.value = std::string(kDefaultServer), .origin = "the default"};
  if (!token) {
    return Status(StatusCode::kUnauthenticated,
                  fmt::format("no token: pass --token, set ALLOT_TOKEN, or put token: in {}",
                              config_path.empty() ? "~/.config/allot/config.yaml"
                                                  : ShortenHome(config_path)));
  }
  std::vector<std::string> servers = SplitServerList(server->value);
  if (servers.empty()) {
    return InvalidArgumentError("server from {}: no URL in '{}'; write http://HOST:PORT", server->origin, server->value);
  }
  for (const std::string& each : servers) {
    if (StatusOr<ServerUrl> url = ParseServerUrl(each); !url.ok()) {
      return url.status().WithContext(fmt::format("server from {}", server->origin));
    }
  }
  ALLOT_ASSIGN_OR_RETURN(std::string token_value, TokenValue(*token));
  std::optional<Setting> ca_file = FromFlagOrEnvironment(flags.ca_file, "--ca-file", "ALLOT_CA_FILE");
  return ClientSettings{.server = server->value, .token = std::move(token_value),
                        .ca_file = ca_file ? ca_file->value : ""};
}

StatusOr<ApiClient> ApiClient::Create(const ClientSettings& settings) {
  std::vector<Endpoint> endpoints;
  for (const std::string& server : SplitServerList(settings.server)) {
    ALLOT_ASSIGN_OR_RETURN(ServerUrl url, ParseServerUrl(server));
    auto http = std::make_unique<httplib::Client>(url.scheme_host_port);
    http->set_connection_timeout(kConnectTimeoutSeconds);
    http->set_read_timeout(kReadTimeoutSeconds);
    http->set_write_timeout(kReadTimeoutSeconds);
    // A request goes out as headers, then body: with Nagle's algorithm on, the body waits for the
    // server's delayed ACK of the headers, 40 ms on Linux, on every request with a body.
    http->set_tcp_nodelay(true);
    // https verifies the server's certificate: against --ca-file, else the system's CAs.
    if (!settings.ca_file.empty()) http->set_ca_cert_path(settings.ca_file.c_str());
    http->enable_server_certificate_verification(true);
    endpoints.push_back({.server = server, .base_path = std::move(url.base_path), .http = std::move(http)});
  }
  if (endpoints.empty()) return InvalidArgumentError("no server URL in '{}'; write http://HOST:PORT", settings.server);
  return ApiClient(std::move(endpoints), settings.token);
}

ApiClient::ApiClient(std::vector<Endpoint> endpoints, std::string token)
    : endpoints_(std::move(endpoints)), token_(std::move(token)) {}

ApiClient::ApiClient(ApiClient&&) noexcept = default;
ApiClient& ApiClient::operator=(ApiClient&&) noexcept = default;
ApiClient::~ApiClient() = default;

StatusOr<nlohmann::json> ApiClient::Get(std::string_view path, const Query& query) {
  return Send(Method::kGet, path, query, nullptr);
}

StatusOr<nlohmann::json> ApiClient::Post(std::string_view path, const nlohmann::json& body) {
  return Send(Method::kPost, path, {}, &body);
}

StatusOr<nlohmann::json> ApiClient::PostOnce(std::string_view path, const nlohmann::json& body) {
  std::random_device entropy;
  std::string key;
  for (int i = 0; i < 4; ++i) key += fmt::format("{:08x}", entropy());
  constexpr int kAttempts = 4;
  StatusOr<nlohmann::json> reply = Send(Method::kPost, path, {}, &body, key);
  for (int attempt = 1; attempt < kAttempts && !reply.ok() && reply.status().code() == StatusCode::kUnavailable; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200 * attempt));
    reply = Send(Method::kPost, path, {}, &body, key);
  }
  return reply;
}

StatusOr<nlohmann::json> ApiClient::Put(std::string_view path, const nlohmann::json& body) {
  return Send(Method::kPut, path, {}, &body);
}

StatusOr<nlohmann::json> ApiClient::Delete(std::string_view path) {
  return Send(Method::kDelete, path, {}, nullptr);
}

StatusOr<nlohmann::json> ApiClient::Send(Method method, std::string_view path, const Query& query,
                                         const nlohmann::json* body, std::string_view idempotency_key) {
  if (endpoints_.size() == 1) return SendTo(endpoints_[0], method, path, query, body, idempotency_key).reply;
  // Several servers: find the leader, for as long as a takeover takes.
  constexpr auto kFailoverWindow = std::chrono::seconds(20);
  const auto deadline = std::chrono::steady_clock::now() + kFailoverWindow;
  while (true) {
    // One round: each server at most once, the leader a standby names first.
    std::vector<bool> tried(endpoints_.size(), false);
    tried[current_] = true;
    Attempt attempt = SendTo(endpoints_[current_], method, path, query, body, idempotency_key);
    while (attempt.elsewhere) {
      auto named = std::find_if(endpoints_.begin(), endpoints_.end(),
                                [&](const Endpoint& endpoint) { return endpoint.server == attempt.leader; });
      size_t next = named != endpoints_.end() && !attempt.leader.empty()
                        ? static_cast<size_t>(named - endpoints_.begin())
                        : endpoints_.size();
      if (next == endpoints_.size() || tried[next]) {
        next = std::find(tried.begin(), tried.end(), false) - tried.begin();
        if (next == endpoints_.size()) break;  // all tried in this round
      }
      current_ = next;
      tried[current_] = true;
      attempt = SendTo(endpoints_[current_], method, path, query, body, idempotency_key);
    }
    if (!attempt.elsewhere || std::chrono::steady_clock::now() >= deadline) return std::move(attempt.reply);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

ApiClient::Attempt ApiClient::SendTo(Endpoint& endpoint, Method method, std::string_view path, const Query& query,
                                     const nlohmann::json* body, std::string_view idempotency_key) {
  const std::string& server = endpoint.server;
  httplib::Client& http = *endpoint.http;
  const std::string target = endpoint.base_path + std::string(path);
  constexpr std::string_view kMethodNames[] = {"GET", "POST", "PUT", "DELETE"};
  const std::string request =
      fmt::format("{} {}", kMethodNames[static_cast<size_t>(method)], path);  // for messages
  httplib::Headers headers = {{"Authorization", "Bearer " + token_}, {"Accept", "application/json"}};
  if (!idempotency_key.empty()) headers.emplace("Idempotency-Key", std::string(idempotency_key));
  const std::string payload =
      body == nullptr ? "" : body->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  constexpr const char* kJson = "application/json";

  httplib::Result result = [&]() {
    switch (method) {
      case Method::kGet:
        return http.Get(target, httplib::Params(query.begin(), query.end()), headers);
      case Method::kPost:
        return http.Post(target, headers, payload, kJson);
      case Method::kPut:
        return http.Put(target, headers, payload, kJson);
      case Method::kDelete:
        break;
    }
    return http.Delete(target, headers);
  }();

  if (!result) {
    httplib::Error error = result.error();
    if (IsConnectError(error)) {
      return {.reply = Status(StatusCode::kUnavailable,
                              fmt::format("cannot reach the allot server at {}: {} (is `allot server` "
                                          "running? set --server or ALLOT_SERVER)",
                                          server, DescribeTransportError(error))),
              .elsewhere = true};
    }
    return {.reply = Status(StatusCode::kUnavailable,
                            fmt::format("no reply from the allot server at {} to {}: {}", server, request,
                                        DescribeTransportError(error)))};
  }

  const httplib::Response& response = *result;
  nlohmann::json reply = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (response.status >= 200 && response.status < 300) {
    if (Trim(response.body).empty()) return {.reply = nlohmann::json::object()};
    if (reply.is_discarded()) {
      return {.reply = InternalError("the reply of {} to {} is not JSON; is {} an allot server?", server,
                                     request, server)};
    }
    return {.reply = std::move(reply)};
  }
  // A standby acts on nothing: the request may go to the leader it names.
  const bool standby = response.status == 503 && response.has_header(kLeaderHeader);
  std::string leader = standby ? response.get_header_value(kLeaderHeader) : "";
  if (reply.is_object() && reply.contains("message") && reply["message"].is_string()) {
    return {.reply = Status(CodeForHttpStatus(response.status), reply["message"].get<std::string>()),
            .elsewhere = standby, .leader = std::move(leader)};
  }
  return {.reply = Status(CodeForHttpStatus(response.status),
                          fmt::format("the server at {} answered HTTP {} to {}", server, response.status, request)),
          .elsewhere = standby, .leader = std::move(leader)};
}

}  // namespace allot
