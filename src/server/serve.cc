#include "server/serve.h"

#include <signal.h>
#include <fmt/chrono.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <optional>
#include <thread>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string_view>

#include "agent/agent.h"
#include "server/http_api.h"
#include "server/standby.h"

namespace allot {
namespace {

StatusOr<std::pair<std::string, int>> ParseListen(const std::string& listen) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return InvalidArgumentError("--listen '{}': expected HOST:PORT, e.g. 127.0.0.1:8080", listen);
  }
  int port = -1;
  std::string port_text = listen.substr(colon + 1);
  auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (error != std::errc() || end != port_text.data() + port_text.size() || port < 0 || port > 65535) {
    return InvalidArgumentError("--listen '{}': the port must be a number from 0 to 65535", listen);
  }
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return std::make_pair(host, port);
}

std::string DevNodeName() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

// The pool of `allot server --dev`: this host, 8 emulated GPUs, an account to submit to and a
// second one (guest, no quota of its own: it runs on what default leaves idle, within a grant of
// 1,000 GPU-hours for 90 days from today), so that tenancy, borrowing, grants and the
// dashboard's tenant views can be tried on one machine.
std::string DevConfig(const std::string& host) {
  const std::time_t today = std::time(nullptr) / 86400 * 86400;
  const std::time_t in_90_days = today + 90 * 86400;
  std::tm start{}, end{};
  gmtime_r(&today, &start);
  gmtime_r(&in_90_days, &end);
  return fmt::format(R"(pools:
  - {{name: dev, gpu_model: H200}}
nodes:
  - {{name: "{}", pool: dev, gpus: 8}}
accounts:
  - name: dev
    children:
      - {{name: default, quota: {{dev: 8}}}}
      - {{name: guest, quota: {{dev: 0}}, grants: [{{name: trial, gpu_hours: 1000, start: {:%Y-%m-%d}, end: {:%Y-%m-%d}}}]}}
policy:
  pass_interval: 0
)", host, start, end);
}

// Jobs of `allot server --dev` never run as root: as the user who started it, or, when root
// started it, as the user behind sudo, else nobody. "" means the server's own (non-root) user.
std::string DevJobUser() {
  if (::geteuid() != 0) return "";
  const char* sudo_user = std::getenv("SUDO_USER");
  if (sudo_user && *sudo_user && std::string_view(sudo_user) != "root") return sudo_user;
  return "nobody";
}

// Where the embedded agent keeps its tasks' scripts and working directories. Beside the data
// when jobs run as the server's own user; when they run as another (nobody), somewhere that user
// can pass through, which a data directory under a private home (/root) is not: a directory of
// its own under /var/lib/allot (only root may create or swap entries there), named after the
// data directory so a restarted server finds its tasks again.
std::string DevAgentStateDir(const std::string& data_dir, bool jobs_run_as_another_user) {
  if (!jobs_run_as_another_user) return (std::filesystem::path(data_dir) / "agent").string();
  const std::filesystem::path base = "/var/lib/allot";
  std::error_code error;
  std::filesystem::create_directories(base, error);
  ::chmod(base.c_str(), 0711);
  return (base / fmt::format("dev-agent-{:08x}", std::hash<std::string>{}(data_dir) & 0xffffffffu)).string();
}

int Fail(const Status& status) {
  std::fprintf(stderr, "allot server: %s\n", status.message().c_str());
  return status.code() == StatusCode::kInvalidArgument || status.code() == StatusCode::kNotFound ? 2 : 1;
}

}  // namespace

int RunServe(const ServeCommand& given) {
  ServeCommand command = given;
  // Absolute from here on: the embedded agent's tasks run in other working directories, and the
  // hints printed below work from any shell.
  std::error_code absolute_error;
  command.data_dir = std::filesystem::absolute(command.data_dir, absolute_error).lexically_normal().string();
  // Logs go to stderr; stdout carries only the lines users and scripts read.
  spdlog::set_default_logger(spdlog::stderr_color_mt("allot"));
  spdlog::set_level(spdlog::level::from_str(command.log_level));
  StatusOr<std::pair<std::string, int>> listen = ParseListen(command.listen);
  if (!listen.ok()) return Fail(listen.status());
  // Whatever the server writes (the store, logs, tokens) is for its own user only.
  ::umask(077);
  std::string host = DevNodeName();
  StatusOr<Config> config = command.config.empty() && command.dev
                                ? ParseConfig(DevConfig(host), "<allot server --dev>")
                                : LoadConfigFile(command.config);
  if (!config.ok()) return Fail(config.status());

  // Signals go to one thread that waits for them; every other thread has them blocked.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // Several servers may share a PostgreSQL store: this one leads, or stands by until it can.
  std::unique_ptr<Leadership> leadership;
  int port_to_bind = listen->second;
  if (Store::IsPostgres(command.store)) {
    std::string scheme = command.tls_certificate_file.empty() ? "http" : "https";
    std::string advertise = !command.advertise.empty() ? command.advertise
                            : listen->first == "0.0.0.0" || listen->first == "::"
                                ? fmt::format("{}://{}:{}", scheme, DevNodeName(), listen->second)
                                : fmt::format("{}://{}:{}", scheme, listen->first, listen->second);
    StatusOr<Leading> leading = LeadOrStandBy({.store = command.store, .advertise = advertise, .host = listen->first,
                                               .port = listen->second,
                                               .tls_certificate_file = command.tls_certificate_file,
                                               .tls_key_file = command.tls_key_file},
                                              signals);
    if (!leading.ok()) return Fail(leading.status());
    if (!leading->leadership) return 0;  // asked to stop while standing by
    leadership = std::move(leading->leadership);
    port_to_bind = leading->port;
  }

  ControllerOptions controller_options{.data_dir = command.data_dir,
                                       .store = command.store,
                                       .fencing_epoch = leadership ? leadership->epoch() : 0,
                                       .heartbeat_seconds = command.heartbeat_seconds,
                                       .missed_heartbeats = command.missed_heartbeats,
                                       .kill_grace_seconds = command.kill_grace_seconds,
                                       .submit_rate_per_token = command.submit_rate,
                                       .submit_burst = command.submit_burst,
                                       .nodes_need_agents = !command.static_nodes,
                                       .history_retention_days = command.history_retention_days};
  if (command.dev) controller_options.operator_account = "default";
  StatusOr<std::unique_ptr<Controller>> controller = Controller::Open(std::move(*config), controller_options);
  if (!controller.ok()) return Fail(controller.status());
  // The data directory is the server's alone.
  ::chmod(command.data_dir.c_str(), 0700);
  if (command.tls_certificate_file.empty() != command.tls_key_file.empty()) {
    return Fail(InvalidArgumentError("TLS needs both --tls-cert FILE and --tls-key FILE"));
  }
  if (!command.reports_dir.empty() && !std::filesystem::is_directory(command.reports_dir)) {
    return Fail(InvalidArgumentError("--reports {}: no such directory; create it, or leave --reports out",
                                     command.reports_dir));
  }
  HttpApi api(**controller, {.threads = command.threads, .max_connections = command.max_connections,
                             .tls_certificate_file = command.tls_certificate_file, .tls_key_file = command.tls_key_file,
                             .reports_dir = command.reports_dir});
  StatusOr<int> port = api.Bind(listen->first, port_to_bind);
  if (!port.ok()) return Fail(port.status());
  if (leadership && command.advertise.empty() && listen->second == 0) {
    // The port the system chose is known only now: standbys should name that one.
    std::string scheme = command.tls_certificate_file.empty() ? "http" : "https";
    std::string host = listen->first == "0.0.0.0" || listen->first == "::" ? DevNodeName() : listen->first;
    if (Status advertised = leadership->Advertise(fmt::format("{}://{}:{}", scheme, host, *port)); !advertised.ok()) {
      return Fail(advertised);
    }
  }
  // A leader that loses its lock session exits before it could act beside a new leader.
  std::optional<LeadershipWatch> watch;
  if (leadership) watch.emplace(*leadership);
  (*controller)->StartLoop();

  std::string token_file = (std::filesystem::path(command.data_dir) / "operator.token").string();
  if ((*controller)->created_operator_token()) {
    std::fprintf(stderr, "allot server: wrote the operator token to %s (mode 0600)\n", token_file.c_str());
  }
  // --dev: the node's agent runs inside the server, with an agent token of its own.
  std::unique_ptr<Agent> agent;
  std::thread agent_thread;
  if (command.dev) {
    StatusOr<nlohmann::json> token = (*controller)->CreateToken(
        Principal{.user = "operator", .role = Role::kOperator}, nlohmann::json{{"role", "agent"}, {"user", "dev-agent"}, {"node", host}}.dump());
    if (!token.ok()) return Fail(token.status());
    std::string local = listen->first == "0.0.0.0" ? "127.0.0.1" : listen->first;
    const std::string job_user = DevJobUser();
    StatusOr<std::unique_ptr<Agent>> created = Agent::Create(
        {.server = fmt::format("http://{}:{}", local, *port), .token = (*token)["token"], .node = host,
         .address = local, .state_dir = DevAgentStateDir(command.data_dir, !job_user.empty()),
         .gpus = {.count = 8, .model = "H200"}, .run_as = job_user});
    if (!created.ok()) return Fail(created.status());
    agent = std::move(*created);
    agent_thread = std::thread([&agent] {
      if (Status ran = agent->Run(); !ran.ok()) spdlog::error("embedded agent: {}", ran.message());
    });
  }

  std::string url = fmt::format("{}://{}:{}", command.tls_certificate_file.empty() ? "http" : "https", listen->first, *port);
  std::string store_note = command.store.empty() ? "" : ", store " + Store::Describe(command.store);
  std::printf("allot server listening on %s (data in %s%s)\n", url.c_str(), command.data_dir.c_str(), store_note.c_str());
  if (command.dev) {
    std::printf("\nA one-node cluster: node %s with 8 emulated H200 GPUs, account 'default' (and 'guest', which runs\n"
                "on GPUs default leaves idle). The dashboard: %s/ (sign in with the token in %s). Next, in another shell:\n"
                "  export ALLOT_SERVER=%s ALLOT_TOKEN=@%s\n"
                "  allot submit examples/hello.yaml     # or any #SBATCH script\n"
                "  allot queue; allot logs 1\n"
                "  sbatch examples/hello.sh; squeue; sacct   # Slurm's commands too (docs/slurm.md)\n"
                "  curl -H \"Authorization: Bearer $(cat %s)\" %s/v1/jobs   # the REST API (/openapi.json)\n",
                host.c_str(), url.c_str(), token_file.c_str(), url.c_str(), token_file.c_str(), token_file.c_str(), url.c_str());
  } else if (std::filesystem::exists(token_file)) {
    std::printf("try: allot --server %s --token @%s queue\n", url.c_str(), token_file.c_str());
    std::printf("dashboard: %s/ (sign in with the token in %s)\n", url.c_str(), token_file.c_str());
  } else {
    // A server that took over a shared store: the operator token was written by the first one.
    std::printf("try: allot --server %s --token @TOKEN_FILE queue   (tokens are shared by the servers of a store)\n",
                url.c_str());
  }
  std::fflush(stdout);

  std::thread waiter([&] {
    int signal = 0;
    sigwait(&signals, &signal);
    spdlog::info("signal {}: shutting down", signal);
    // The embedded agent stops first, while the API still answers its last sync.
    if (agent) {
      agent->Stop();
      agent_thread.join();
    }
    api.Stop();
  });
  api.Serve();
  // Serve returns when Stop was called (by the waiter) or the socket failed; either way the
  // waiter must be released before it is joined.
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  if (agent_thread.joinable()) {
    agent->Stop();
    agent_thread.join();
  }
  (*controller)->StopLoop();
  return 0;
}

}  // namespace allot
