// ExitWatcher: tells the agent the moment a task's shim exits, so a finished task is reported
// at once instead of at the next poll. One thread waits in poll(2) on a pidfd per shim (Linux
// 5.3+); the agent's sync loop stays single-threaded, and the watcher only calls `on_exit`,
// which interrupts the agent's long poll.
//
//   ExitWatcher watcher([&] { interrupt_long_poll(); });
//   if (!watcher.Watch(shim_pid)) { /* no pidfds here: poll instead */ }
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

namespace allot {

class ExitWatcher {
 public:
  explicit ExitWatcher(std::function<void()> on_exit);
  ~ExitWatcher();
  ExitWatcher(const ExitWatcher&) = delete;
  ExitWatcher& operator=(const ExitWatcher&) = delete;

  // Watches a process (any process, not only a child). False where the kernel has no pidfds;
  // a process that is already gone counts as an exit.
  bool Watch(pid_t pid);

 private:
  void Loop();
  void Wake();

  std::function<void()> on_exit_;
  std::mutex mutex_;
  std::map<pid_t, int> pidfds_;  // guarded by mutex_
  int wake_fd_ = -1;             // an eventfd: the set of pidfds changed, or stop
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace allot
