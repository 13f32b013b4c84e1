#include "cli/format.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <ctime>
#include <tuple>
#include <utility>

namespace allot {
namespace {

size_t DisplayWidth(std::string_view text) {
  // Counts UTF-8 lead bytes: one per code point.
  return static_cast<size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

std::tm UtcTime(Time unix_seconds) {
  std::time_t seconds = static_cast<std::time_t>(unix_seconds);
  std::tm parts{};
  gmtime_r(&seconds, &parts);
  return parts;
}

}  // namespace

std::string CompressIndexes(std::vector<int64_t> indexes) {
  std::sort(indexes.begin(), indexes.end());
  indexes.erase(std::unique(indexes.begin(), indexes.end()), indexes.end());
  std::string list;
  for (size_t start = 0; start < indexes.size();) {
    size_t end = start + 1;
    while (end < indexes.size() && indexes[end] == indexes[end - 1] + 1) ++end;
    if (!list.empty()) list += ',';
    list += std::to_string(indexes[start]);
    if (end - start > 1) list += '-' + std::to_string(indexes[end - 1]);
    start = end;
  }
  return list;
}

std::string FormatElapsed(Duration seconds) {
  if (seconds < 0) seconds = 0;
  Duration days = seconds / 86400;
  Duration hours = seconds / 3600 % 24;
  Duration minutes = seconds / 60 % 60;
  Duration secs = seconds % 60;
  if (days > 0) return fmt::format("{}-{:02}:{:02}:{:02}", days, hours, minutes, secs);
  if (hours > 0) return fmt::format("{}:{:02}:{:02}", hours, minutes, secs);
  return fmt::format("{}:{:02}", minutes, secs);
}

std::string FormatTimestamp(Time unix_seconds) {
  if (unix_seconds == 0) return "-";
  std::tm parts = UtcTime(unix_seconds);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", parts.tm_year + 1900, parts.tm_mon + 1,
                     parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec);
}

std::string FormatDate(Time unix_seconds) {
  std::tm parts = UtcTime(unix_seconds);
  return fmt::format("{:04}-{:02}-{:02}", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday);
}

Table::Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

void Table::AddRow(std::vector<std::string> cells) {
  assert(cells.size() <= columns_.size() && "a table row has more cells than columns");
  cells.resize(columns_.size());
  rows_.push_back(std::move(cells));
}

void Table::Print(std::ostream& out) const {
  std::vector<size_t> widths(columns_.size());
  for (size_t column = 0; column < columns_.size(); ++column) {
    widths[column] = DisplayWidth(columns_[column].header);
    for (const std::vector<std::string>& row : rows_) {
      widths[column] = std::max(widths[column], DisplayWidth(row[column]));
    }
  }
  auto print_line = [&](auto cell_of) {
    std::string line;
    for (size_t column = 0; column < columns_.size(); ++column) {
      const std::string& cell = cell_of(column);
      std::string padding(widths[column] - DisplayWidth(cell), ' ');
      if (column > 0) line += "  ";
      line += columns_[column].align == Align::kRight ? padding + cell : cell + padding;
    }
    line.erase(line.find_last_not_of(' ') + 1);
    out << line << '\n';
  };
  print_line([&](size_t column) -> const std::string& { return columns_[column].header; });
  for (const std::vector<std::string>& row : rows_) {
    print_line([&](size_t column) -> const std::string& { return row[column]; });
  }
}

}  // namespace allot
