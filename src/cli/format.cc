#include "cli/format.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <ctime>
#include <tuple>
#include <utility>

namespace allot {
namespace {

// A node name split as "prefix" + "digits"; `number` is meaningful only when `numbered`.
struct SplitName {
  std::string prefix;
  std::string digits;
  uint64_t number = 0;
  bool numbered = false;
};

// Up to 18 digits always fit in uint64_t; a longer run is kept as plain text.
constexpr size_t kMaxSuffixDigits = 18;

SplitName Split(const std::string& name) {
  size_t start = name.size();
  while (start > 0 && name[start - 1] >= '0' && name[start - 1] <= '9') --start;
  SplitName split{.prefix = name};
  size_t digit_count = name.size() - start;
  if (digit_count == 0 || digit_count > kMaxSuffixDigits) return split;
  split.prefix = name.substr(0, start);
  split.digits = name.substr(start);
  split.number = std::stoull(split.digits);
  split.numbered = true;
  return split;
}

bool HasLeadingZero(const std::string& digits) { return digits.size() > 1 && digits[0] == '0'; }

// Whether `next` continues a range that ends at `last`: the next number, written the same way
// (zero-padded numbers must keep their width: "n09,n10" is a range, "n09,n010" is not).
bool Continues(const SplitName& last, const SplitName& next) {
  if (next.number != last.number + 1) return false;
  if (next.digits.size() == last.digits.size()) return true;
  return !HasLeadingZero(last.digits) && !HasLeadingZero(next.digits);
}

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

std::string CompressNodeList(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  std::vector<SplitName> splits;
  splits.reserve(names.size());
  for (const std::string& name : names) splits.push_back(Split(name));
  std::sort(splits.begin(), splits.end(), [](const SplitName& a, const SplitName& b) {
    return std::forward_as_tuple(a.prefix, b.numbered, a.number, a.digits.size()) <
           std::forward_as_tuple(b.prefix, a.numbered, b.number, b.digits.size());
  });

  std::string list;
  for (size_t begin = 0; begin < splits.size();) {
    const SplitName& first = splits[begin];
    if (!list.empty()) list += ',';
    if (!first.numbered) {
      list += first.prefix;
      ++begin;
      continue;
    }
    size_t end = begin + 1;
    while (end < splits.size() && splits[end].numbered && splits[end].prefix == first.prefix) ++end;
    if (end - begin == 1) {
      list += first.prefix + first.digits;
      begin = end;
      continue;
    }
    list += first.prefix + '[';
    for (size_t range_start = begin; range_start < end;) {
      size_t range_end = range_start + 1;
      while (range_end < end && Continues(splits[range_end - 1], splits[range_end])) ++range_end;
      if (range_start != begin) list += ',';
      list += splits[range_start].digits;
      if (range_end - range_start > 1) list += '-' + splits[range_end - 1].digits;
      range_start = range_end;
    }
    list += ']';
    begin = end;
  }
  return list;
}

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
