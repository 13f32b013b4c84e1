#include "core/units.h"

#include <cctype>
#include <charconv>
#include <cstdint>
#include <iterator>
#include <vector>

namespace allot {
namespace {

bool ParseNonNegative(std::string_view text, int64_t& out) {
  if (text.empty()) return false;
  const char* end = text.data() + text.size();
  auto [ptr, error] = std::from_chars(text.data(), end, out);
  return error == std::errc() && ptr == end && out >= 0;
}

// total += amount * unit; false if the result does not fit in int64_t.
bool AddProduct(int64_t amount, int64_t unit, int64_t& total) {
  int64_t product = 0;
  return !__builtin_mul_overflow(amount, unit, &product) &&
         !__builtin_add_overflow(total, product, &total);
}

Status BadDuration(std::string_view text) {
  return InvalidArgumentError(
      "'{}' is not a duration; write seconds (3600), units (90m, 1h30m, 7d) or D-HH:MM:SS", text);
}

// "D-HH:MM:SS" and its shorter Slurm forms.
StatusOr<Duration> ParseClockDuration(std::string_view text) {
  int64_t days = 0;
  std::string_view clock = text;
  if (size_t dash = text.find('-'); dash != std::string_view::npos) {
    if (!ParseNonNegative(text.substr(0, dash), days)) return BadDuration(text);
    clock = text.substr(dash + 1);
  }
  std::vector<int64_t> parts;
  while (true) {
    size_t colon = clock.find(':');
    int64_t part = 0;
    if (!ParseNonNegative(clock.substr(0, colon), part)) return BadDuration(text);
    parts.push_back(part);
    if (colon == std::string_view::npos) break;
    clock = clock.substr(colon + 1);
  }
  if (parts.size() > 3) return BadDuration(text);
  int64_t seconds = 0;
  bool has_days = text.find('-') != std::string_view::npos;
  // D-HH, D-HH:MM, D-HH:MM:SS; without days MM:SS or HH:MM:SS.
  static constexpr int64_t kFromHours[] = {3600, 60, 1};
  static constexpr int64_t kFromMinutes[] = {60, 1};
  const int64_t* scale = has_days || parts.size() == 3 ? kFromHours : kFromMinutes;
  if (!AddProduct(days, 86400, seconds)) return BadDuration(text);
  for (size_t i = 0; i < parts.size(); ++i) {
    if (!AddProduct(parts[i], scale[i], seconds)) return BadDuration(text);
  }
  return seconds;
}

}  // namespace

StatusOr<Duration> ParseDuration(std::string_view text) {
  if (text.empty()) return BadDuration(text);
  int64_t plain = 0;
  if (ParseNonNegative(text, plain)) return plain;
  if (text.find(':') != std::string_view::npos ||
      (text.find('-') != std::string_view::npos && text.front() != '-')) {
    return ParseClockDuration(text);
  }
  Duration total = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
    if (start == i || i == text.size()) return BadDuration(text);
    int64_t amount = 0;
    if (!ParseNonNegative(text.substr(start, i - start), amount)) return BadDuration(text);
    int64_t unit = 0;
    switch (text[i]) {
      case 's': unit = 1; break;
      case 'm': unit = 60; break;
      case 'h': unit = 3600; break;
      case 'd': unit = 86400; break;
      case 'w': unit = 7 * 86400; break;
      default: return BadDuration(text);
    }
    ++i;
    if (!AddProduct(amount, unit, total)) return BadDuration(text);
  }
  return total;
}

StatusOr<int64_t> ParseMemory(std::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  int64_t amount = 0;
  auto bad = [&] {
    return InvalidArgumentError("'{}' is not a memory size; write bytes or a number with a unit "
                                "(512Mi, 64G, 2TiB)", text);
  };
  if (!ParseNonNegative(text.substr(0, digits), amount)) return bad();
  std::string suffix(text.substr(digits));
  if (suffix.empty() || suffix == "B") return amount;
  bool decimal = suffix.size() == 2 && suffix[1] == 'B';  // "GB": decimal, as disks are sold
  if (suffix.size() >= 2 && suffix[1] == 'i') {
    if (suffix.size() > 3 || (suffix.size() == 3 && suffix[2] != 'B')) return bad();
  } else if (suffix.size() > 2 || (suffix.size() == 2 && !decimal)) {
    return bad();
  }
  int exponent = 0;
  switch (suffix[0]) {
    case 'K': case 'k': exponent = 1; break;
    case 'M': exponent = 2; break;
    case 'G': exponent = 3; break;
    case 'T': exponent = 4; break;
    case 'P': exponent = 5; break;
    default: return bad();
  }
  int64_t base = decimal ? 1000 : 1024;
  for (int i = 0; i < exponent; ++i) {
    if (__builtin_mul_overflow(amount, base, &amount)) return bad();
  }
  return amount;
}

std::string FormatDuration(Duration seconds) {
  if (seconds == 0) return "0s";
  // The magnitude as unsigned, so the most negative duration has one too.
  uint64_t left = seconds < 0 ? uint64_t{0} - static_cast<uint64_t>(seconds) : static_cast<uint64_t>(seconds);
  fmt::memory_buffer out;
  if (seconds < 0) out.push_back('-');
  const std::pair<uint64_t, char> units[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
  for (auto [size, letter] : units) {
    if (left >= size) {
      fmt::format_to(std::back_inserter(out), "{}{}", left / size, letter);
      left %= size;
    }
  }
  return fmt::to_string(out);
}

}  // namespace allot
