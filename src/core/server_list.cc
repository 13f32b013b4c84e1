#include "core/server_list.h"

namespace allot {

std::vector<std::string> SplitServerList(std::string_view list) {
  std::vector<std::string> servers;
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (!item.empty()) servers.emplace_back(item);
  }
  return servers;
}

}  // namespace allot
