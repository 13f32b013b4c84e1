#include "agent/cgroups.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

namespace allot {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const fs::path& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

std::set<std::string> Words(const std::string& text) {
  std::istringstream stream(text);
  std::set<std::string> words;
  for (std::string word; stream >> word;) words.insert(word);
  return words;
}

// Cgroup files take one write each; the kernel's answer is in errno. Returns 0 or the errno.
int WriteCgroupFile(const fs::path& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  int error = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) ? 0 : errno;
  ::close(fd);
  return error;
}

struct Cgroup2Mount {
  std::string point;  // where it is mounted
  std::string root;   // the cgroup shown there ("/" unless a cgroup namespace hides the rest)
};

// /proc/self/mountinfo: "36 25 0:31 ROOT MOUNT_POINT OPTIONS ... - cgroup2 SOURCE SUPER_OPTIONS".
std::optional<Cgroup2Mount> FindCgroup2Mount() {
  std::ifstream mountinfo("/proc/self/mountinfo");
  for (std::string line; std::getline(mountinfo, line);) {
    std::istringstream stream(line);
    std::vector<std::string> fields;
    for (std::string field; stream >> field;) fields.push_back(field);
    for (size_t i = 6; i + 1 < fields.size(); ++i) {
      if (fields[i] == "-") {
        if (fields[i + 1] == "cgroup2" && fields.size() > 4) return Cgroup2Mount{fields[4], fields[3]};
        break;
      }
    }
  }
  return std::nullopt;
}

// This process's cgroup v2 path, from the "0::PATH" line of /proc/self/cgroup.
std::string OwnCgroupPath() {
  std::ifstream file("/proc/self/cgroup");
  for (std::string line; std::getline(file, line);) {
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  }
  return {};
}

// Controllers can be handed down only from a cgroup without processes. When the agent is the
// only process in its cgroup, it moves into a leaf of its own to make that so.
bool MoveSelfIntoLeaf(const fs::path& own) {
  for (const std::string& pid : Words(ReadFile(own / "cgroup.procs"))) {
    if (pid != std::to_string(::getpid())) return false;
  }
  std::error_code error;
  fs::create_directory(own / "allot-agent", error);
  return !error && WriteCgroupFile(own / "allot-agent" / "cgroup.procs", "0") == 0;
}

}  // namespace

TaskCgroups TaskCgroups::Detect(const std::string& agent_name) {
  TaskCgroups cgroups;
  std::optional<Cgroup2Mount> mount = FindCgroup2Mount();
  if (!mount) {
    cgroups.description_ = "no cgroup v2 hierarchy is mounted: tasks run without cgroups or limits";
    return cgroups;
  }
  std::string path = OwnCgroupPath();
  if (path.empty()) {
    cgroups.description_ = "this process has no cgroup v2 path: tasks run without cgroups or limits";
    return cgroups;
  }
  // The path is relative to the mount's root when a cgroup namespace shows only part of the tree.
  if (mount->root != "/" && path.rfind(mount->root, 0) == 0) path = path.substr(mount->root.size());
  fs::path own = fs::path(mount->point) / fs::path(path).relative_path();
  // Started from the leaf an earlier agent moved into (a child process of it, or a restart that
  // kept the cgroup): the agent's cgroup is the one above.
  if (own.filename() == "allot-agent") own = own.parent_path();

  std::set<std::string> available = Words(ReadFile(own / "cgroup.controllers"));
  std::set<std::string> enabled = Words(ReadFile(own / "cgroup.subtree_control"));
  std::vector<std::string> wanted;
  std::string why_not;
  for (const char* controller : {"memory", "cpu"}) {
    if (!available.contains(controller)) {
      why_not = fmt::format("the memory and cpu controllers are not available in {} (on this machine they may "
                            "belong to cgroup v1)", own.string());
      continue;
    }
    int error = enabled.contains(controller) ? 0 : WriteCgroupFile(own / "cgroup.subtree_control", fmt::format("+{}", controller));
    if (error == EBUSY && MoveSelfIntoLeaf(own)) {
      error = WriteCgroupFile(own / "cgroup.subtree_control", fmt::format("+{}", controller));
    }
    if (error != 0) {
      why_not = fmt::format("cannot hand the {} controller down from {}: {}{}", controller, own.string(),
                            std::strerror(error),
                            error == EBUSY ? " (other processes share the agent's cgroup; give the agent a cgroup of its "
                                             "own, e.g. systemd's Delegate=yes)"
                                           : "");
      continue;
    }
    wanted.push_back(controller);
  }

  const fs::path parent = own / fmt::format("allot-{}", agent_name);
  std::error_code error;
  fs::create_directory(parent, error);
  if (error) {
    cgroups.description_ = fmt::format("cannot create {} ({}): tasks run without cgroups or limits", parent.string(),
                                       error.message());
    return cgroups;
  }
  cgroups.parent_ = parent.string();
  for (const std::string& controller : wanted) {
    if (int failed = WriteCgroupFile(parent / "cgroup.subtree_control", "+" + controller); failed != 0) {
      why_not = fmt::format("cannot enable the {} controller in {}: {}", controller, parent.string(), std::strerror(failed));
      continue;
    }
    (controller == "memory" ? cgroups.memory_ : cgroups.cpu_) = true;
  }
  if (cgroups.memory_ && cgroups.cpu_) {
    cgroups.description_ = fmt::format("tasks run in cgroups under {}, limited to the memory and CPUs they asked for",
                                       cgroups.parent_);
  } else {
    const char* limited = cgroups.memory_ ? "with memory limits but no CPU limits"
                          : cgroups.cpu_  ? "with CPU limits but no memory limits"
                                          : "without memory or CPU limits";
    cgroups.description_ = fmt::format("tasks run in cgroups under {} (so a kill reaches every process), {}: {}",
                                       cgroups.parent_, limited, why_not);
  }
  return cgroups;
}

StatusOr<std::string> TaskCgroups::Create(const std::string& task_name, const TaskLimits& limits) const {
  if (!available()) return std::string();
  const fs::path dir = fs::path(parent_) / task_name;
  std::error_code error;
  fs::create_directory(dir, error);
  if (error) return InternalError("cannot create the task's cgroup {}: {}", dir.string(), error.message());
  auto fail = [&](const char* file, int failed) -> Status {
    ::rmdir(dir.c_str());
    return InternalError("cannot set {} of the task's cgroup {}: {}", file, dir.string(), std::strerror(failed));
  };
  if (memory_ && limits.memory_bytes > 0) {
    if (int failed = WriteCgroupFile(dir / "memory.max", std::to_string(limits.memory_bytes))) return fail("memory.max", failed);
    // Without this, a task over its limit would page out to swap instead of being held to it.
    if (fs::exists(dir / "memory.swap.max")) (void)WriteCgroupFile(dir / "memory.swap.max", "0");
  }
  if (cpu_ && limits.cpus > 0) {
    // cpus CPUs' worth of time in every 100 ms period.
    constexpr int64_t kPeriodMicros = 100000;
    std::string quota = fmt::format("{} {}", limits.cpus * kPeriodMicros, kPeriodMicros);
    if (int failed = WriteCgroupFile(dir / "cpu.max", quota)) return fail("cpu.max", failed);
  }
  return dir.string();
}

bool TaskCgroups::Kill(const std::string& cgroup) {
  return !cgroup.empty() && WriteCgroupFile(fs::path(cgroup) / "cgroup.kill", "1") == 0;
}

bool TaskCgroups::OutOfMemory(const std::string& cgroup) {
  if (cgroup.empty()) return false;
  std::istringstream events(ReadFile(fs::path(cgroup) / "memory.events"));
  std::string key;
  int64_t count = 0;
  while (events >> key >> count) {
    if (key == "oom_kill") return count > 0;
  }
  return false;
}

void TaskCgroups::Remove(const std::string& cgroup) {
  if (cgroup.empty() || ::rmdir(cgroup.c_str()) == 0 || errno == ENOENT) return;
  // Processes the task left behind: they end with the task, as in Slurm's proctrack/cgroup.
  Kill(cgroup);
  for (int attempt = 0; attempt < 100; ++attempt) {
    if (::rmdir(cgroup.c_str()) == 0 || errno != EBUSY) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace allot
