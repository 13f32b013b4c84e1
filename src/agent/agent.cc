#include "agent/agent.h"

#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>
#include <utility>
#include <vector>

#include "core/server_list.h"

namespace allot {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

double SteadySeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

Time UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string HostName() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "localhost";
  return name;
}

// Up to `limit` bytes of a file from `offset`.
std::string ReadFrom(const std::string& path, int64_t offset, size_t limit) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return {};
  file.seekg(offset);
  std::string data(limit, '\0');
  file.read(data.data(), static_cast<std::streamsize>(limit));
  data.resize(static_cast<size_t>(file.gcount()));
  return data;
}

// The node's own token: kept from an earlier enrolment, or minted now with the bootstrap token
// (POST /v1/agents/{node}/register) and kept for the next start.
StatusOr<std::string> EnrolledToken(const AgentOptions& options) {
  const fs::path kept = fs::path(options.state_dir) / "node.token";
  if (std::ifstream file(kept); file) {
    std::string token;
    std::getline(file, token);
    if (!token.empty()) return token;
  }
  // With several servers (a leader and standbys), each attempt asks the next one.
  const std::vector<std::string> servers = SplitServerList(options.server);
  for (int attempt = 1;; ++attempt) {
    httplib::Client client(servers[static_cast<size_t>(attempt - 1) % servers.size()]);
    if (!options.ca_file.empty()) client.set_ca_cert_path(options.ca_file.c_str());
    client.enable_server_certificate_verification(true);
    client.set_connection_timeout(5, 0);
    client.set_bearer_token_auth(options.token);
    httplib::Result result = client.Post(fmt::format("/v1/agents/{}/register", options.node), "{}", "application/json");
    if (result && result->status == 201) {
      nlohmann::json reply = nlohmann::json::parse(result->body, nullptr, false);
      std::string token = reply.is_object() ? reply.value("token", "") : "";
      if (token.empty()) return InternalError("the server's enrolment reply holds no token");
      int fd = ::open(kept.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
      if (fd < 0) return InternalError("cannot keep the node's token in {}: {}", kept.string(), std::strerror(errno));
      std::string line = token + "\n";
      bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
      ::close(fd);
      if (!written) return InternalError("cannot keep the node's token in {}", kept.string());
      spdlog::info("node {} enrolled; its token is kept in {}", options.node, kept.string());
      return token;
    }
    if (result && !(result->status == 503 && result->has_header(kLeaderHeader))) {
      nlohmann::json reply = nlohmann::json::parse(result->body, nullptr, false);
      return Status(StatusCode::kFailedPrecondition,
                    fmt::format("the server refused to enrol node '{}': {}", options.node,
                                reply.is_object() ? reply.value("message", result->body) : result->body));
    }
    if (attempt == 30) return Status(StatusCode::kUnavailable, fmt::format("cannot reach {} to enrol", options.server));
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

}  // namespace

StatusOr<std::unique_ptr<Agent>> Agent::Create(AgentOptions options) {
  if (options.node.empty()) options.node = HostName();
  if (options.address.empty()) options.address = options.node;
  if (options.token.empty()) return InvalidArgumentError("the agent needs a token of role agent: pass --token");
  ALLOT_ASSIGN_OR_RETURN(GpuInventory gpus, DiscoverGpus(options.gpus));
  std::error_code error;
  // Absolute, so tasks that run elsewhere still find their scripts and state.
  options.state_dir = fs::absolute(options.state_dir, error).lexically_normal().string();
  for (const char* sub : {"tasks", "work"}) fs::create_directories(fs::path(options.state_dir) / sub, error);
  if (error) return InvalidArgumentError("cannot create the agent's state directory '{}': {}", options.state_dir, error.message());
  // Owned by the agent and listed by nobody else; a task's user may pass through to its own
  // working directory and script (0711).
  for (const fs::path& dir : {fs::path(options.state_dir), fs::path(options.state_dir) / "tasks",
                              fs::path(options.state_dir) / "work"}) {
    ::chmod(dir.c_str(), 0711);
  }
  std::optional<UserMap> users;
  if (!options.run_as.empty() && !options.user_map.empty()) {
    return InvalidArgumentError("give --run-as USER or --user-map FILE, not both");
  }
  if (options.run_as.empty() && options.user_map.empty() && geteuid() == 0) {
    // An agent runs as root; its jobs never do. Without a mapping they run as nobody.
    options.run_as = "nobody";
    spdlog::info("tasks run as user nobody (choose with --run-as USER or --user-map FILE)");
  }
  if (!options.run_as.empty()) {
    ALLOT_ASSIGN_OR_RETURN(users, UserMap::Single(options.run_as));
  } else if (!options.user_map.empty()) {
    ALLOT_ASSIGN_OR_RETURN(users, UserMap::Load(options.user_map));
  }
  if (users && geteuid() != 0) {
    return InvalidArgumentError("--run-as and --user-map need the agent to run as root, to switch users");
  }
  if (options.server.rfind("http://", 0) != 0 && options.server.rfind("https://", 0) != 0) {
    return InvalidArgumentError("--server '{}': expected http://HOST:PORT or https://HOST:PORT", options.server);
  }
  if (options.enrol) {
    ALLOT_ASSIGN_OR_RETURN(options.token, EnrolledToken(options));
    options.enrol = false;
  }
  if (options.shim.empty()) options.shim = (fs::read_symlink("/proc/self/exe", error).parent_path() / "allot-shim").string();
  if (::access(options.shim.c_str(), X_OK) != 0) {
    return InvalidArgumentError("cannot run the task shim '{}': {}; it is built and installed with allot (pass --shim "
                                "PATH if it is elsewhere)", options.shim, std::strerror(errno));
  }
  TaskCgroups cgroups;
  if (options.cgroups) {
    // Named after the node and the state directory, so agents sharing a machine keep apart and a
    // restarted agent finds its own.
    std::string state = fs::absolute(options.state_dir).lexically_normal().string();
    cgroups = TaskCgroups::Detect(fmt::format("{}-{:08x}", options.node, std::hash<std::string>{}(state) & 0xffffffffu));
  }
  return std::unique_ptr<Agent>(new Agent(std::move(options), std::move(gpus), std::move(cgroups), std::move(users)));
}

Agent::Agent(AgentOptions options, GpuInventory gpus, TaskCgroups cgroups, std::optional<UserMap> users)
    : options_(std::move(options)),
      gpus_(std::move(gpus)),
      runner_((fs::path(options_.state_dir) / "tasks").string(), options_.shim, std::move(cgroups)),
      servers_(SplitServerList(options_.server)),
      exit_watcher_(std::make_unique<ExitWatcher>([this] { OnTaskExit(); })),
      users_(std::move(users)) {
  if (servers_.empty()) servers_ = {options_.server};
  client_ = NewClient();
  // Tasks that outlived a previous agent on this node.
  for (RunningTask& running : runner_.Recover()) {
    TaskKey key{running.job, running.epoch, running.task_index};
    highest_epoch_[running.job] = std::max(highest_epoch_[running.job], running.epoch);
    spdlog::info("re-attached to task {} of job {} (epoch {})", running.task_index, running.job, running.epoch);
    if (running.shim > 0) watching_exits_ &= exit_watcher_->Watch(running.shim);
    tasks_[key] = Task{.running = std::move(running)};
  }
}

std::shared_ptr<httplib::Client> Agent::NewClient() const {
  auto client = std::make_shared<httplib::Client>(servers_[server_index_]);
  // One kept-alive connection: a waiting connection costs the server a socket, not a thread,
  // and a new connection per sync would leave a TIME_WAIT socket behind each one (at the
  // national pool's 36,880 nodes, more than a host's ports).
  client->set_keep_alive(true);
  if (!options_.ca_file.empty()) client->set_ca_cert_path(options_.ca_file.c_str());
  client->enable_server_certificate_verification(true);
  client->set_tcp_nodelay(true);
  client->set_connection_timeout(5, 0);
  client->set_read_timeout(90, 0);  // beyond the longest long poll the server grants (60 s)
  client->set_bearer_token_auth(options_.token);
  return client;
}

std::string Agent::CurrentServer() const {
  std::lock_guard lock(client_mutex_);
  return servers_[server_index_];
}

bool Agent::FollowLeader(const std::string& named) {
  std::lock_guard lock(client_mutex_);
  if (servers_.size() < 2) return false;
  auto found = std::find(servers_.begin(), servers_.end(), named);
  server_index_ = !named.empty() && found != servers_.end() ? static_cast<size_t>(found - servers_.begin())
                                                           : (server_index_ + 1) % servers_.size();
  if (!stopping_) client_ = NewClient();
  spdlog::info("syncing with {} from now on", servers_[server_index_]);
  return true;
}

void Agent::InterruptSync() const {
  // The request in flight fails at once when its socket is shut down. Not httplib's stop(): over
  // TLS that shuts the SSL session down from this thread while the sync's thread is inside it,
  // and OpenSSL's sessions are not thread-safe.
  std::shared_ptr<httplib::Client> client = Client();
  if (socket_t fd = client->socket(); fd != INVALID_SOCKET) ::shutdown(fd, SHUT_RDWR);
}

std::shared_ptr<httplib::Client> Agent::Client() const {
  std::lock_guard lock(client_mutex_);
  return client_;
}

Agent::~Agent() {
  exit_watcher_.reset();
  // The agent's cgroup parent goes when empty; tasks still running keep it (and it them).
  if (runner_.cgroups().available()) ::rmdir(runner_.cgroups().parent().c_str());
}

void Agent::WaitBeforeRetry(double seconds) {
  std::unique_lock lock(wake_mutex_);
  wake_.wait_for(lock, std::chrono::duration<double>(std::min(seconds, 300.0)), [&] { return stopping_.load(); });
}

void Agent::Stop() {
  stopping_ = true;
  InterruptSync();
  std::lock_guard lock(wake_mutex_);
  wake_.notify_all();
}

void Agent::OnTaskExit() {
  // Counted first, then checked: SyncOnce does the reverse (sets in_long_poll_, then looks at
  // the count), so with sequentially consistent atomics one of the two always sees the other.
  ++exits_seen_;
  if (in_long_poll_) InterruptSync();
  std::lock_guard lock(wake_mutex_);
  wake_.notify_all();
}

void Agent::Terminate(Task& task, double grace_seconds) {
  if (task.exit_code || task.kill_at > 0) return;
  runner_.Signal(task.running, SIGTERM);
  task.kill_at = SteadySeconds() + grace_seconds;
}

void Agent::WatchTasks() {
  const Time now = UnixNow();
  const double steady = SteadySeconds();
  for (auto& [key, task] : tasks_) {
    if (task.exit_code) continue;
    task.exit_code = runner_.Poll(task.running);
    if (task.exit_code) {
      task.out_of_memory = *task.exit_code != 0 && runner_.OutOfMemory(task.running);
      continue;
    }
    // The time limit is enforced here too, so a job ends on time even if the server is away.
    if (task.deadline > 0 && now >= task.deadline && task.kill_at == 0) {
      task.timed_out = true;
      Terminate(task, task.grace_seconds);
    }
    if (task.kill_at > 0 && steady >= task.kill_at) runner_.Signal(task.running, SIGKILL);
  }
}

void Agent::Launch(const TaskAssignment& assignment) {
  TaskKey key{assignment.job, assignment.epoch, assignment.task};
  const auto& [job, epoch, index] = key;
  if (tasks_.contains(key)) return;
  // Fencing: an allocation older than one this node has seen must never start.
  if (auto seen = highest_epoch_.find(job); seen != highest_epoch_.end() && epoch < seen->second) {
    spdlog::warn("refusing job {} epoch {}: epoch {} was seen already", job, epoch, seen->second);
    return;
  }
  highest_epoch_[job] = epoch;

  TaskLaunch launch{.job = job, .epoch = epoch, .task_index = index};
  launch.argv = assignment.argv;
  launch.script = assignment.script;
  launch.script_args = assignment.script_args;
  // The task sees a small base environment of the agent's, then the job's.
  for (const char* name : {"PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ"}) {
    if (const char* value = std::getenv(name)) launch.environment[name] = value;
  }
  if (!launch.environment.contains("PATH")) launch.environment["PATH"] = "/usr/local/bin:/usr/bin:/bin";
  // A task finds the server, and `allot run` and `srun` beside the shim (where allot is) first on
  // its PATH, so a script's steps start through allot however allot was installed there, and
  // even on a node that has Slurm's own srun too.
  launch.environment["ALLOT_SERVER"] = options_.server;
  if (!options_.ca_file.empty()) launch.environment["ALLOT_CA_FILE"] = options_.ca_file;
  const std::string tools = fs::path(options_.shim).parent_path().string();
  if (!tools.empty() && !(":" + launch.environment["PATH"] + ":").starts_with(":" + tools + ":")) {
    launch.environment["PATH"] = tools + ":" + launch.environment["PATH"];
  }
  for (const auto& [name, value] : assignment.MergedEnvironment()) launch.environment[name] = value;
  // Whose uid the task gets; a job no Unix user is mapped for does not start.
  Status user_status = OkStatus();
  if (users_) {
    StatusOr<UnixUser> user = users_->Resolve(assignment.user, assignment.account);
    if (user.ok()) {
      launch.uid = user->uid;
      launch.gid = user->gid;
      launch.environment["USER"] = launch.environment["LOGNAME"] = user->name;
      launch.environment["HOME"] = user->home;
    } else {
      user_status = user.status();
    }
  }
  fs::path work = assignment.working_directory;
  const bool fallback = assignment.fallback_to_own_directory;
  if (work.empty() || fallback) {
    // The job's own directory under the agent's work/ (which only root may change, so the path
    // cannot be swapped for a link): created here, then given to the job's user.
    fs::path own = fs::path(options_.state_dir) / "work" / std::to_string(job);
    struct stat info {};
    if (::mkdir(own.c_str(), 0700) == 0 || (::lstat(own.c_str(), &info) == 0 && S_ISDIR(info.st_mode))) {
      if (launch.uid >= 0) (void)::lchown(own.c_str(), static_cast<uid_t>(launch.uid), static_cast<gid_t>(launch.gid));
    }
    if (work.empty()) {
      work = own;
    } else {
      launch.fallback_working_directory = own.string();
    }
  }
  launch.stdout_optional = assignment.stdout_optional;
  launch.working_directory = work.is_absolute() ? work.string() : (fs::path(options_.state_dir) / "work" / work).string();
  // The job's own output files, opened by the shim as the job's user. Slurm's rule: with an
  // output file and no error file, stderr goes to the output file too.
  launch.stdout_path = assignment.stdout_path;
  launch.stderr_path = assignment.stderr_path;
  launch.stderr_to_stdout = !launch.stdout_path.empty() && launch.stderr_path.empty();
  Task task;
  const Time start = assignment.start_time;
  const Time limit = assignment.time_limit;
  task.deadline = start > 0 && limit > 0 ? start + limit : 0;
  task.grace_seconds = assignment.grace_seconds;
  launch.limits = {.cpus = static_cast<int>(assignment.cpus), .memory_bytes = assignment.memory_bytes};
  StatusOr<RunningTask> running = user_status.ok() ? runner_.Launch(launch) : StatusOr<RunningTask>(user_status);
  if (!running.ok()) {
    // The job ends failed; its stderr says why, so `allot logs` shows it.
    spdlog::error("job {} task {}: cannot start: {}", job, index, running.status().message());
    task.running = runner_.Failed(launch, fmt::format("allot: cannot start the task: {}\n", running.status().message()));
    // As a shell reports it: 126, found but not allowed to run (no user to run it as); 127, not run.
    task.exit_code = user_status.ok() ? 127 : 126;
  } else {
    task.running = std::move(*running);
    watching_exits_ &= exit_watcher_->Watch(task.running.shim);
  }
  tasks_[key] = std::move(task);
}

Status Agent::SyncOnce() {
  const uint64_t exits_before = exits_seen_;
  WatchTasks();
  AgentReport report{.hostname = HostName(), .address = options_.address,
                     .gpus = static_cast<uint64_t>(gpus_.count), .gpu_model = gpus_.model};
  // Output offsets advance only once the server has answered; until then the same bytes are
  // sent again, and the server skips what it already has.
  std::vector<std::pair<int64_t*, int64_t>> shipped_on_reply;
  bool running = false;
  constexpr size_t kChunk = 256 << 10;
  bool output_left = false;  // an exited task has more output than one sync carries
  for (auto& [key, task] : tasks_) {
    // Named copies, not structured bindings: the lambda below captures them (clang < 16 cannot).
    const JobId job = std::get<0>(key);
    const uint64_t epoch = std::get<1>(key);
    const int index = std::get<2>(key);
    // Ships the next chunk of a stream; whether more may follow it.
    auto ship = [&](const std::string& path, const char* stream, int64_t& shipped) {
      if (path.empty()) return false;
      std::string data = ReadFrom(path, shipped, kChunk);
      if (data.empty()) return false;
      const bool more = data.size() == kChunk;
      shipped_on_reply.emplace_back(&shipped, shipped + static_cast<int64_t>(data.size()));
      report.logs.push_back({.job = job, .task = index, .stream = stream, .offset = shipped, .data = std::move(data)});
      return more;
    };
    bool more = ship(task.running.stdout_path, "out", task.shipped_out);
    if (task.running.stderr_path != task.running.stdout_path) more |= ship(task.running.stderr_path, "err", task.shipped_err);
    // An exit is reported only with the last of the task's output: once the server acks it, the
    // task's files are gone, and for a step's task they are the only copy.
    const bool exited = task.exit_code.has_value() && !more;
    output_left |= task.exit_code.has_value() && more;
    report.tasks.push_back({.job = job, .epoch = epoch, .task = index, .exited = exited,
                            .exit_code = exited ? task.exit_code : std::nullopt, .timed_out = task.timed_out,
                            .out_of_memory = task.out_of_memory});
    running |= !task.exit_code.has_value();
  }
  const bool shipped_any = !report.logs.empty();
  // A long poll, unless a task exited since WatchTasks looked (see OnTaskExit), or exits can
  // only be seen by polling here.
  double wait = running && !watching_exits_ ? options_.poll_seconds : options_.wait_seconds;
  if (running && shipped_any) wait = std::min(wait, options_.output_seconds);
  if (output_left) wait = 0;
  // ... and no longer than until a task's time limit or a SIGKILL after its grace period is due.
  const double steady = SteadySeconds();
  const Time now = UnixNow();
  for (const auto& [key, task] : tasks_) {
    if (task.exit_code) continue;
    if (task.kill_at > 0) wait = std::min(wait, std::max(0.0, task.kill_at - steady));
    if (task.deadline > 0 && task.kill_at == 0) wait = std::min(wait, std::max(0.0, static_cast<double>(task.deadline - now)));
  }
  in_long_poll_ = true;
  if (exits_seen_ != exits_before) wait = 0;
  report.wait_seconds = wait;
  report.protocol = kAgentProtocol;  // a gang's node list comes as a hostlist

  std::string path = fmt::format("/v1/agents/{}/sync", options_.node);
  httplib::Result result = Client()->Post(path, RenderAgentReport(report), "application/json");
  in_long_poll_ = false;
  if (!result) {
    // Interrupted on purpose (a task exited, or Stop): sync again at once, on a fresh client
    // (an https client that was stopped mid-request does not recover).
    if (stopping_ || exits_seen_ != exits_before) {
      std::lock_guard lock(client_mutex_);
      if (!stopping_) client_ = NewClient();
      return OkStatus();
    }
    // The server is away: tasks go on, and everything is reported again, after a wait that
    // grows while it stays away.
    const double wait = backoff_.Next();
    spdlog::warn("sync with {} failed: {}; retrying in {:.1f} s", CurrentServer(), httplib::to_string(result.error()), wait);
    FollowLeader("");  // another server of the list, if there are several
    WaitBeforeRetry(wait);
    return OkStatus();
  }
  if (result->status != 200) {
    const json error = json::parse(result->body, nullptr, false);
    std::string message = error.is_object() && error.contains("message") && error["message"].is_string()
                              ? error["message"].get<std::string>()
                              : result->body;
    if (result->status == 400 || result->status == 401 || result->status == 403 || result->status == 404) {
      return Status(StatusCode::kFailedPrecondition, fmt::format("the server refused node '{}': {}", options_.node, message));
    }
    // A standby: the leader it names gets the next sync, at once.
    if (result->status == 503 && result->has_header(kLeaderHeader) &&
        FollowLeader(result->get_header_value(kLeaderHeader))) {
      WaitBeforeRetry(0.1);
      return OkStatus();
    }
    // Busy (503, 429) or failing: back off, and never come back sooner than it asked (but not
    // so late that the node is taken for lost).
    double wait = backoff_.Next();
    if (result->has_header("Retry-After")) {
      wait = std::min(backoff_.max(),
                      std::max(wait, std::strtod(result->get_header_value("Retry-After").c_str(), nullptr)));
    }
    spdlog::warn("sync: the server answered {}: {}; retrying in {:.1f} s", result->status, message, wait);
    WaitBeforeRetry(wait);
    return OkStatus();
  }
  StatusOr<SyncReply> orders = ParseSyncReply(result->body);
  if (!orders.ok()) {
    // A reply this agent does not understand (a newer or broken server): keep the tasks, say
    // so, and try again; what was sent is sent again.
    spdlog::error("sync: cannot read the server's reply: {}", orders.status().message());
    WaitBeforeRetry(backoff_.Next());
    return OkStatus();
  }
  backoff_.Reset();
  if (orders->heartbeat_seconds > 0) backoff_.set_max(std::min(30.0, orders->heartbeat_seconds));
  for (const auto& [shipped, to] : shipped_on_reply) *shipped = to;
  for (const TaskAck& ack : orders->acks) {
    auto found = tasks_.find({ack.job, ack.epoch, ack.task});
    if (found == tasks_.end() || !found->second.exit_code) continue;
    runner_.Collect(found->second.running);
    tasks_.erase(found);
  }
  for (const TaskKill& kill : orders->kills) {
    if (auto found = tasks_.find({kill.job, kill.epoch, kill.task}); found != tasks_.end()) {
      Terminate(found->second, kill.grace_seconds);
    }
  }
  for (const TaskAssignment& assignment : orders->assignments) Launch(assignment);
  // The server has no thread to spare for a long poll now: come back later, or at an exit.
  if (double later = orders->next_sync_seconds; later > 0) {
    std::unique_lock lock(wake_mutex_);
    const uint64_t seen = exits_seen_;
    wake_.wait_for(lock, std::chrono::duration<double>(later), [&] { return stopping_ || exits_seen_ != seen; });
  }
  return OkStatus();
}

Status Agent::Run() {
  spdlog::info("agent for node {} ({} {} GPUs, {}) syncing with {}", options_.node, gpus_.count, gpus_.model,
               gpus_.source, options_.server);
  spdlog::info("{}", runner_.cgroups().Describe());
  while (!stopping_) {
    try {
      ALLOT_RETURN_IF_ERROR(SyncOnce());
    } catch (const nlohmann::json::exception& error) {
      // A reply this agent does not understand (a newer or broken server): keep the tasks,
      // say so, and try again.
      spdlog::error("sync: cannot read the server's reply: {}", error.what());
      WaitBeforeRetry(backoff_.Next());
    }
  }
  return OkStatus();
}

}  // namespace allot
