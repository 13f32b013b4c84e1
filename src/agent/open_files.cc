#include "agent/open_files.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>

namespace allot {

void RaiseOpenFileLimit() {
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) != 0) return;
  rlim_t wanted = 1 << 20;
  if (std::FILE* nr_open = std::fopen("/proc/sys/fs/nr_open", "r")) {
    unsigned long most = 0;
    if (std::fscanf(nr_open, "%lu", &most) == 1 && most > 0) wanted = std::min<rlim_t>(wanted, most);
    std::fclose(nr_open);
  }
  rlimit raised{.rlim_cur = std::max(wanted, files.rlim_cur), .rlim_max = std::max(wanted, files.rlim_max)};
  if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) return;
  files.rlim_cur = files.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &files);
}

}  // namespace allot
