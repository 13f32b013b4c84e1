#include "agent/exit_watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <vector>

namespace allot {

ExitWatcher::ExitWatcher(std::function<void()> on_exit) : on_exit_(std::move(on_exit)) {
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ >= 0) thread_ = std::thread([this] { Loop(); });
}

ExitWatcher::~ExitWatcher() {
  stopping_ = true;
  Wake();
  if (thread_.joinable()) thread_.join();
  for (const auto& [pid, fd] : pidfds_) ::close(fd);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void ExitWatcher::Wake() {
  uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!::write(wake_fd_, &one, sizeof one);
}

bool ExitWatcher::Watch(pid_t pid) {
  if (wake_fd_ < 0) return false;
#ifdef SYS_pidfd_open
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  int fd = -1;
  errno = ENOSYS;
#endif
  if (fd < 0) {
    if (errno != ESRCH) return false;
    on_exit_();  // gone already
    return true;
  }
  {
    std::lock_guard lock(mutex_);
    if (auto [it, inserted] = pidfds_.emplace(pid, fd); !inserted) {
      ::close(it->second);
      it->second = fd;
    }
  }
  Wake();
  return true;
}

void ExitWatcher::Loop() {
  std::vector<pollfd> fds;
  std::vector<pid_t> pids;
  while (!stopping_) {
    fds.assign(1, pollfd{.fd = wake_fd_, .events = POLLIN, .revents = 0});
    pids.assign(1, 0);
    {
      std::lock_guard lock(mutex_);
      for (const auto& [pid, fd] : pidfds_) {
        fds.push_back(pollfd{.fd = fd, .events = POLLIN, .revents = 0});
        pids.push_back(pid);
      }
    }
    if (::poll(fds.data(), fds.size(), -1) < 0) continue;  // EINTR
    if (fds[0].revents & POLLIN) {
      uint64_t count = 0;
      (void)!::read(wake_fd_, &count, sizeof count);
    }
    bool exited = false;
    for (size_t i = 1; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;  // a pidfd is readable once its process has exited
      std::lock_guard lock(mutex_);
      if (auto it = pidfds_.find(pids[i]); it != pidfds_.end() && it->second == fds[i].fd) {
        ::close(it->second);
        pidfds_.erase(it);
        exited = true;
      }
    }
    if (exited) on_exit_();
  }
}

}  // namespace allot
