#include "agent/nodesim.h"

#include <sys/resource.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <thread>
#include <tuple>
#include <vector>

#include "agent/backoff.h"
#include "agent/open_files.h"
#include "api/agent_protocol.h"
#include "core/config.h"

namespace allot {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

// Counted by every node, from any of the event loop's threads.
struct Counters {
  std::atomic<uint64_t> syncs = 0;
  std::atomic<uint64_t> errors = 0;
  std::atomic<uint64_t> started = 0;
  std::atomic<uint64_t> ended = 0;
  std::atomic<uint64_t> killed = 0;
  std::atomic<int64_t> running = 0;
};

struct Simulation {
  const NodeSimOptions& options;
  net::io_context io;
  tcp::endpoint endpoint;  // the server's address: its first IPv4 one, else its first
  std::string host;
  std::mt19937_64 random;  // seeds each node's own (used before the event loop runs)
  double runtime_seconds = 30;
  bool exponential = false;
  Counters counters;
};

// One hollow node: a state machine of syncs over one kept-alive connection. Its handlers run on
// its own strand, so the nodes are spread over the event loop's threads while each one's steps
// stay in order.
class HollowNode : public std::enable_shared_from_this<HollowNode> {
 public:
  HollowNode(Simulation& sim, size_t index, std::string name, int gpus, std::string model)
      : sim_(sim), index_(index), name_(std::move(name)), gpus_(gpus), model_(std::move(model)),
        strand_(net::make_strand(sim.io)), stream_(strand_), exit_timer_(strand_), retry_timer_(strand_),
        random_(sim.random()) {}

  void Start(Clock::duration delay) {
    retry_timer_.expires_after(delay);
    retry_timer_.async_wait([self = shared_from_this()](beast::error_code error) {
      if (!error) self->Sync();
    });
  }

 private:
  struct Task {
    Clock::time_point ends;
    bool exited = false;
    int exit_code = 0;
  };
  using TaskKey = std::tuple<uint64_t, uint64_t, int>;

  void Sync() {
    MarkEnded();
    AgentReport report{.hostname = name_, .gpus = static_cast<uint64_t>(gpus_), .gpu_model = model_};
    bool exited = false;
    for (const auto& [key, task] : tasks_) {
      const auto& [job, epoch, index] = key;
      report.tasks.push_back({.job = job, .epoch = epoch, .task = index, .exited = task.exited,
                              .exit_code = task.exited ? std::optional<int>(task.exit_code) : std::nullopt});
      exited |= task.exited;
    }
    report.wait_seconds = exited ? 0.0 : sim_.options.wait_seconds;
    report.protocol = kAgentProtocol;  // a gang's node list comes as a hostlist
    request_ = {http::verb::post, "/v1/agents/" + name_ + "/sync", 11};
    request_.set(http::field::host, sim_.host);
    request_.set(http::field::authorization, "Bearer " + sim_.options.token);
    request_.set(http::field::content_type, "application/json");
    request_.keep_alive(true);
    request_.body() = RenderAgentReport(report);
    request_.prepare_payload();
    in_flight_ = true;
    ArmExitTimer();
    stream_.expires_after(std::chrono::seconds(static_cast<int>(sim_.options.wait_seconds) + 30));
    if (connected_) return Write();
    if (sim_.endpoint.address().is_v4() && sim_.endpoint.address().is_loopback()) {
      // One source address can open only ~28,000 connections to one port (the ephemeral range):
      // on loopback, each node takes its own 127.1.x.y, as separate machines would.
      beast::error_code error;
      stream_.socket().open(tcp::v4(), error);
      net::ip::address_v4::bytes_type bytes = {127, 1, static_cast<unsigned char>((index_ >> 8) & 0xff),
                                               static_cast<unsigned char>(index_ & 0xff)};
      if (!error) stream_.socket().bind(tcp::endpoint(net::ip::address_v4(bytes), 0), error);
    }
    // To the one endpoint: connecting to a range of them closes the socket before each try, and
    // with it the source address bound above (every node then took a port of 127.0.0.1, and the
    // kernel's search for a free one cost about a millisecond per connection at 18,000 nodes).
    stream_.async_connect(sim_.endpoint, [self = shared_from_this()](beast::error_code error) {
      if (error) return self->Failed(error);
      self->connected_ = true;
      self->stream_.socket().set_option(tcp::no_delay(true));
      self->Write();
    });
  }

  void Write() {
    http::async_write(stream_, request_, [self = shared_from_this()](beast::error_code error, size_t) {
      if (error) return self->Failed(error);
      self->response_ = {};
      http::async_read(self->stream_, self->buffer_, self->response_,
                       [self](beast::error_code error, size_t) { self->OnReply(error); });
    });
  }

  void OnReply(beast::error_code error) {
    in_flight_ = false;
    if (error == net::error::operation_aborted && interrupted_) {
      // A task ended during the long poll: report it at once, on a new connection.
      interrupted_ = false;
      Reconnect(/*abandon=*/true);
      return Sync();
    }
    if (error) return Failed(error);
    if (!response_.keep_alive()) Reconnect();
    ++sim_.counters.syncs;
    StatusOr<SyncReply> reply = response_.result() == http::status::ok ? ParseSyncReply(response_.body())
                                                                        : StatusOr<SyncReply>(InternalError("the server answered {}", response_.result_int()));
    if (!reply.ok()) {
      ++sim_.counters.errors;
      return Retry(BackoffDelay());
    }
    backoff_.Reset();
    const Clock::time_point now = Clock::now();
    for (const TaskAck& ack : reply->acks) {
      auto found = tasks_.find({ack.job, ack.epoch, ack.task});
      if (found != tasks_.end() && found->second.exited) tasks_.erase(found);
    }
    for (const TaskKill& kill : reply->kills) {
      auto found = tasks_.find({kill.job, kill.epoch, kill.task});
      if (found != tasks_.end() && !found->second.exited) {
        found->second = {now, true, 143};
        ++sim_.counters.killed;
        --sim_.counters.running;
      }
    }
    for (const TaskAssignment& assignment : reply->assignments) {
      TaskKey key{assignment.job, assignment.epoch, assignment.task};
      if (tasks_.contains(key)) continue;
      double seconds = SampleRuntime();
      tasks_[key] = {now + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds))};
      ++sim_.counters.started;
      ++sim_.counters.running;
    }
    if (double later = reply->next_sync_seconds; later > 0) {
      return Retry(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(later)));
    }
    Sync();
  }

  void MarkEnded() {
    const Clock::time_point now = Clock::now();
    for (auto& [key, task] : tasks_) {
      if (!task.exited && task.ends <= now) {
        task.exited = true;
        ++sim_.counters.ended;
        --sim_.counters.running;
      }
    }
  }

  // Wakes the node when its next running task ends, so a waiting sync is cut short.
  void ArmExitTimer() {
    Clock::time_point next = Clock::time_point::max();
    for (const auto& [key, task] : tasks_) {
      if (!task.exited) next = std::min(next, task.ends);
    }
    exit_timer_.cancel();
    if (next == Clock::time_point::max()) return;
    exit_timer_.expires_at(next);
    exit_timer_.async_wait([self = shared_from_this()](beast::error_code error) {
      if (error || !self->in_flight_) return;
      self->interrupted_ = true;
      beast::error_code ignored;
      self->stream_.socket().cancel(ignored);
    });
  }

  // `abandon`: the connection carries a waiting sync whose answer no longer matters. It is reset,
  // not closed: a close would leave it in TIME_WAIT on this side, and with a task ending every
  // few milliseconds across thousands of nodes the kernel's search for a free port among those
  // took more of the emulator's time than everything else it does.
  void Reconnect(bool abandon = false) {
    beast::error_code ignored;
    if (abandon) {
      stream_.socket().set_option(net::socket_base::linger(true, 0), ignored);
    } else {
      stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    }
    stream_.close();
    connected_ = false;
    buffer_.clear();
  }

  void Failed(beast::error_code error = {}) {
    in_flight_ = false;
    // The first few errors are printed: they say what is wrong (descriptors, ports, the server).
    if (++sim_.counters.errors <= 5) {
      std::fprintf(stderr, "nodesim: %s: %s\n", name_.c_str(), error ? error.message().c_str() : "bad reply");
    }
    Reconnect();
    // Back off as a real agent does (exponential, with jitter), so a server that dropped many
    // does not get them all back in the same instant.
    Retry(BackoffDelay());
  }

  double SampleRuntime() {
    if (!sim_.exponential) return sim_.runtime_seconds;
    return std::exponential_distribution<double>(1.0 / sim_.runtime_seconds)(random_);
  }

  Clock::duration BackoffDelay() {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(backoff_.Next()));
  }

  void Retry(Clock::duration delay) {
    retry_timer_.expires_after(delay);
    retry_timer_.async_wait([self = shared_from_this()](beast::error_code error) {
      if (!error) self->Sync();
    });
  }

  Simulation& sim_;
  size_t index_;
  std::string name_;
  int gpus_;
  std::string model_;
  net::strand<net::io_context::executor_type> strand_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
  net::steady_timer exit_timer_;
  net::steady_timer retry_timer_;
  std::mt19937_64 random_;
  Backoff backoff_{1, 30, random_()};
  std::map<TaskKey, Task> tasks_;
  bool connected_ = false;
  bool in_flight_ = false;
  bool interrupted_ = false;
};

}  // namespace

int RunNodeSim(const NodeSimOptions& options) {
  auto fail = [](const Status& status) {
    std::fprintf(stderr, "allot nodesim: %s\n", status.message().c_str());
    return 2;
  };
  StatusOr<Config> config = LoadConfigFile(options.config);
  if (!config.ok()) return fail(config.status());
  if (options.server.rfind("http://", 0) != 0) return fail(InvalidArgumentError("--server: expected http://HOST:PORT"));
  std::string host_port = options.server.substr(7);
  while (!host_port.empty() && host_port.back() == '/') host_port.pop_back();
  size_t colon = host_port.rfind(':');
  if (colon == std::string::npos) return fail(InvalidArgumentError("--server: expected http://HOST:PORT"));
  Simulation sim{.options = options, .random = std::mt19937_64(options.seed)};
  sim.host = host_port;
  std::string runtime = options.runtime;
  if (runtime.rfind("exp:", 0) == 0) {
    sim.exponential = true;
    runtime = runtime.substr(4);
  }
  StatusOr<Duration> seconds = ParseDuration(runtime);
  if (!seconds.ok() || *seconds <= 0) return fail(InvalidArgumentError("--runtime '{}': a duration such as 30s, or exp:60s", options.runtime));
  sim.runtime_seconds = static_cast<double>(*seconds);
  beast::error_code error;
  tcp::resolver resolver(sim.io);
  tcp::resolver::results_type addresses = resolver.resolve(host_port.substr(0, colon), host_port.substr(colon + 1), error);
  if (error || addresses.empty()) {
    return fail(InvalidArgumentError("--server: cannot resolve {}: {}", host_port, error ? error.message() : "no address"));
  }
  // IPv4 first: "localhost" may resolve to ::1 first, while the server listens on 127.0.0.1.
  sim.endpoint = addresses.begin()->endpoint();
  for (const auto& address : addresses) {
    if (address.endpoint().address().is_v4()) {
      sim.endpoint = address.endpoint();
      break;
    }
  }
  // A socket per hollow node.
  RaiseOpenFileLimit();

  const Cluster& cluster = config->cluster;
  size_t count = options.nodes == 0 ? cluster.nodes().size() : std::min(options.nodes, cluster.nodes().size());
  std::vector<std::shared_ptr<HollowNode>> nodes;
  nodes.reserve(count);
  for (NodeIndex index = 0; index < count; ++index) {
    const Node& node = cluster.node(index);
    nodes.push_back(std::make_shared<HollowNode>(sim, index, node.name, node.gpus, cluster.pool(node.pool).gpu_model));
    // Staggered, 5,000 a second, as a fleet that boots does not connect in one instant.
    nodes.back()->Start(std::chrono::microseconds(200 * index));
  }
  std::printf("nodesim: %zu hollow nodes of %s syncing with %s\n", count, options.config.c_str(), options.server.c_str());
  std::fflush(stdout);

  net::signal_set signals(sim.io, SIGINT, SIGTERM);
  signals.async_wait([&](beast::error_code, int) { sim.io.stop(); });
  net::steady_timer end(sim.io);
  if (options.duration_seconds > 0) {
    end.expires_after(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.duration_seconds)));
    end.async_wait([&](beast::error_code failed) {
      if (!failed) sim.io.stop();
    });
  }
  net::steady_timer report(sim.io);
  uint64_t last_syncs = 0;
  const Clock::time_point began = Clock::now();
  std::function<void(beast::error_code)> tick = [&](beast::error_code failed) {
    if (failed) return;
    const Counters& now = sim.counters;
    const uint64_t syncs = now.syncs;
    std::printf("nodesim: %6.0f s  %7.0f syncs/s  %lld tasks running  %llu started  %llu ended  %llu errors\n",
                std::chrono::duration<double>(Clock::now() - began).count(),
                static_cast<double>(syncs - last_syncs) / 10.0, static_cast<long long>(now.running.load()),
                static_cast<unsigned long long>(now.started.load()), static_cast<unsigned long long>(now.ended.load()),
                static_cast<unsigned long long>(now.errors.load()));
    std::fflush(stdout);
    last_syncs = syncs;
    report.expires_after(std::chrono::seconds(10));
    report.async_wait(tick);
  };
  report.expires_after(std::chrono::seconds(10));
  report.async_wait(tick);
  // The event loop on several threads: a pass that wakes thousands of nodes at once has their
  // replies read and their next reports written on every core given.
  std::vector<std::thread> threads;
  for (int i = 1; i < options.threads; ++i) threads.emplace_back([&sim] { sim.io.run(); });
  sim.io.run();
  for (std::thread& thread : threads) thread.join();
  const Counters& total = sim.counters;
  std::printf("nodesim: done: %llu syncs, %llu tasks started, %llu ended, %llu killed, %llu errors\n",
              static_cast<unsigned long long>(total.syncs.load()), static_cast<unsigned long long>(total.started.load()),
              static_cast<unsigned long long>(total.ended.load()), static_cast<unsigned long long>(total.killed.load()),
              static_cast<unsigned long long>(total.errors.load()));
  return 0;
}

}  // namespace allot
