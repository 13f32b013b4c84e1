#include "server/standby.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

#include <nlohmann/json.hpp>

#include "server/http_server.h"
#include "store/store.h"

namespace allot {

StatusOr<Leading> LeadOrStandBy(const StandbyOptions& options, const sigset_t& stop) {
  // The schema (allot_leader among it) exists before anyone asks who leads.
  ALLOT_RETURN_IF_ERROR(Store::Open(options.store).status());
  ALLOT_ASSIGN_OR_RETURN(std::unique_ptr<Leadership> leadership, Leadership::Connect(options.store));
  StatusOr<bool> leading = leadership->TryAcquire(options.advertise);
  if (leading.ok() && *leading) return Leading{.leadership = std::move(leadership), .port = options.port};
  // Not now (another server leads, or a takeover waits on the last term's writes): stand by.
  if (!leading.ok()) spdlog::warn("standby: {}", leading.status().message());

  std::mutex leader_mutex;
  Leadership::Leader leader;
  if (StatusOr<Leadership::Leader> current = leadership->CurrentLeader(); current.ok()) leader = *current;
  HttpServer server({.network_threads = 1, .worker_threads = 2, .max_connections = 100000,
                     .tls_certificate_file = options.tls_certificate_file, .tls_key_file = options.tls_key_file});
  auto answer = [&](const HttpRequest&, HttpResponse& response) {
    std::string url;
    {
      std::lock_guard lock(leader_mutex);
      url = leader.url;
    }
    response.status = 503;
    response.set_header("Retry-After", "1");
    response.set_header("X-Allot-Leader", url);
    response.set_content(nlohmann::json{{"code", "standby"},
                                        {"message", fmt::format("this server is a standby; the leader is {}",
                                                                url.empty() ? "not known yet" : url)},
                                        {"leader", url}}.dump(),
                         "application/json");
  };
  for (const char* method : {"GET", "POST", "PUT", "PATCH", "DELETE"}) server.Route(method, ".*", answer);
  ALLOT_ASSIGN_OR_RETURN(int port, server.Bind(options.host, options.port));
  std::thread serving([&server] { server.Serve(); });
  std::printf("allot server standby on %s://%s:%d (the leader is %s, epoch %lld)\n",
              options.tls_certificate_file.empty() ? "http" : "https", options.host.c_str(), port,
              leader.url.c_str(), static_cast<long long>(leader.epoch));
  std::fflush(stdout);

  bool stopped = false;
  while (true) {
    // A second between attempts, during which a stop signal ends the wait at once.
    timespec second{.tv_sec = 1, .tv_nsec = 0};
    siginfo_t info;
    if (sigtimedwait(&stop, &info, &second) > 0) {
      spdlog::info("signal {}: the standby stops", info.si_signo);
      stopped = true;
      break;
    }
    StatusOr<bool> acquired = leadership->TryAcquire(options.advertise);
    if (!acquired.ok()) {
      // PostgreSQL itself may be failing over; keep standing by and say so.
      spdlog::warn("standby: {}", acquired.status().message());
      continue;
    }
    if (*acquired) break;
    if (StatusOr<Leadership::Leader> current = leadership->CurrentLeader(); current.ok()) {
      std::lock_guard lock(leader_mutex);
      leader = *current;
    }
  }
  server.Stop();
  serving.join();
  if (stopped) return Leading{};
  spdlog::info("this server leads now (epoch {}); recovering the state", leadership->epoch());
  return Leading{.leadership = std::move(leadership), .port = port};
}

LeadershipWatch::LeadershipWatch(Leadership& leadership) : leadership_(leadership) {
  thread_ = std::thread([this] {
    while (true) {
      {
        std::unique_lock lock(mutex_);
        if (stop_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; })) return;
      }
      if (!leadership_.StillHeld()) {
        spdlog::critical("lost the session that holds leadership (epoch {}); another server may lead now: "
                         "exiting so that this one never acts as a second leader", leadership_.epoch());
        std::fflush(nullptr);
        std::_Exit(70);
      }
    }
  });
}

LeadershipWatch::~LeadershipWatch() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  stop_.notify_all();
  thread_.join();
}

}  // namespace allot
