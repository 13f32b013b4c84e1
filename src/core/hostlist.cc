#include "core/hostlist.h"

#include <fmt/format.h>

#include <algorithm>
#include <tuple>
#include <unordered_set>

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

// Writes the names in their order: runs of numbered names with one prefix share a bracket, and
// within it, runs of consecutive numbers become ranges.
std::string Join(const std::vector<SplitName>& splits) {
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
  return Join(splits);
}

std::string CompressHostList(const std::vector<std::string>& names) {
  std::unordered_set<std::string_view> seen;
  std::vector<SplitName> splits;
  splits.reserve(names.size());
  for (const std::string& name : names) {
    if (seen.insert(name).second) splits.push_back(Split(name));
  }
  return Join(splits);
}

StatusOr<std::vector<std::string>> ExpandHostList(std::string_view list) {
  std::vector<std::string> hosts;
  size_t i = 0;
  while (i < list.size()) {
    // One item: a prefix, then optionally "[ranges]" and a suffix; items are separated by commas
    // outside brackets.
    size_t open = list.find_first_of("[,", i);
    if (open == std::string_view::npos || list[open] == ',') {
      size_t end = open == std::string_view::npos ? list.size() : open;
      if (end > i) hosts.emplace_back(list.substr(i, end - i));
      i = end + 1;
      continue;
    }
    size_t close = list.find(']', open);
    if (close == std::string_view::npos) return InvalidArgumentError("'{}' is not a host list: a '[' is not closed", list);
    std::string prefix(list.substr(i, open - i));
    size_t next = list.find(',', close);
    std::string suffix(list.substr(close + 1, (next == std::string_view::npos ? list.size() : next) - close - 1));
    std::string_view ranges = list.substr(open + 1, close - open - 1);
    for (size_t start = 0; start <= ranges.size();) {
      size_t comma = std::min(ranges.find(',', start), ranges.size());
      std::string range(ranges.substr(start, comma - start));
      start = comma + 1;
      if (range.empty()) continue;
      size_t dash = range.find('-');
      std::string first = range.substr(0, dash);
      std::string last = dash == std::string::npos ? first : range.substr(dash + 1);
      if (first.empty() || first.size() > kMaxSuffixDigits || first.find_first_not_of("0123456789") != std::string::npos ||
          last.empty() || last.size() > kMaxSuffixDigits || last.find_first_not_of("0123456789") != std::string::npos) {
        return InvalidArgumentError("'{}' is not a host list: '{}' is not a number or a range", list, range);
      }
      uint64_t from = std::stoull(first);
      uint64_t to = std::stoull(last);
      if (to < from || to - from > 100000 || hosts.size() + (to - from) > 100000) {
        return InvalidArgumentError("'{}' is not a host list: bad range '{}' (at most 100,000 names)", list, range);
      }
      for (uint64_t n = from; n <= to; ++n) hosts.push_back(fmt::format("{}{:0{}}{}", prefix, n, first.size(), suffix));
    }
    i = next == std::string_view::npos ? list.size() : next + 1;
  }
  return hosts;
}

}  // namespace allot
