// Server lists: ALLOT_SERVER and --server may name several `allot server` processes that share
// one PostgreSQL store ("https://a:8080,https://b:8080"). One of them leads; the others stand by
// and answer 503 naming the leader (X-Allot-Leader). The CLI and agents try them in turn.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace allot {

// Splits on commas; blanks around each URL are dropped, and so are empty entries.
std::vector<std::string> SplitServerList(std::string_view list);

// The header a standby names the leader in.
inline constexpr const char* kLeaderHeader = "X-Allot-Leader";

}  // namespace allot
