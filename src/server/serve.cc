#include "server/serve.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "server/http_api.h"

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

int Fail(const Status& status) {
  std::fprintf(stderr, "allot server: %s\n", status.message().c_str());
  return status.code() == StatusCode::kInvalidArgument || status.code() == StatusCode::kNotFound ? 2 : 1;
}

}  // namespace

int RunServe(const ServeCommand& command) {
  spdlog::set_level(spdlog::level::from_str(command.log_level));
  StatusOr<std::pair<std::string, int>> listen = ParseListen(command.listen);
  if (!listen.ok()) return Fail(listen.status());
  StatusOr<Config> config = LoadConfigFile(command.config);
  if (!config.ok()) return Fail(config.status());

  // Signals go to one thread that waits for them; every other thread has them blocked.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  StatusOr<std::unique_ptr<Controller>> controller =
      Controller::Open(std::move(*config), {.data_dir = command.data_dir});
  if (!controller.ok()) return Fail(controller.status());
  HttpApi api(**controller, {.threads = command.threads});
  StatusOr<int> port = api.Bind(listen->first, listen->second);
  if (!port.ok()) return Fail(port.status());
  (*controller)->StartLoop();

  std::string token_file = (std::filesystem::path(command.data_dir) / "operator.token").string();
  if ((*controller)->created_operator_token()) {
    std::fprintf(stderr, "allot server: wrote the operator token to %s (mode 0600)\n", token_file.c_str());
  }
  std::printf("allot server listening on http://%s:%d (data in %s)\n", listen->first.c_str(), *port,
              command.data_dir.c_str());
  std::printf("try: allot --server http://%s:%d --token @%s queue\n", listen->first.c_str(), *port,
              token_file.c_str());
  std::fflush(stdout);

  std::thread waiter([&] {
    int signal = 0;
    sigwait(&signals, &signal);
    spdlog::info("signal {}: shutting down", signal);
    api.Stop();
  });
  api.Serve();
  // Serve returns when Stop was called (by the waiter) or the socket failed; either way the
  // waiter must be released before it is joined.
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  (*controller)->StopLoop();
  return 0;
}

}  // namespace allot
