// The dashboard's files (src/dashboard/web/), compiled into the binary: `allot server` serves
// index.html at / and the rest under /dashboard/.
//
//   if (const DashboardAsset* asset = FindDashboardAsset("app.js")) reply(asset->body, asset->content_type);
#pragma once

#include <string_view>

namespace allot {

struct DashboardAsset {
  std::string_view name;  // "app.js"
  std::string_view content_type;
  std::string_view body;
};

// nullptr when there is no such file.
const DashboardAsset* FindDashboardAsset(std::string_view name);

}  // namespace allot
