#include "core/input_limits.h"

#include <algorithm>
#include <cstdint>

namespace allot {
namespace {

size_t LineOf(std::string_view text, size_t offset) {
  return 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(offset), '\n'));
}

// The length of the valid UTF-8 sequence at text[at], or 0 if it is not one.
size_t SequenceLength(std::string_view text, size_t at) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  uint8_t lead = byte(at);
  if (lead < 0x80) return 1;
  size_t length;
  uint32_t minimum;
  uint32_t code;
  if ((lead & 0xE0) == 0xC0) {
    length = 2, minimum = 0x80, code = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, minimum = 0x800, code = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, minimum = 0x10000, code = lead & 0x07;
  } else {
    return 0;
  }
  if (at + length > text.size()) return 0;
  for (size_t i = 1; i < length; ++i) {
    if ((byte(at + i) & 0xC0) != 0x80) return 0;
    code = (code << 6) | (byte(at + i) & 0x3F);
  }
  if (code < minimum || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return 0;
  return length;
}

}  // namespace

Status CheckUtf8(std::string_view text, std::string_view source) {
  for (size_t at = 0; at < text.size();) {
    size_t length = SequenceLength(text, at);
    if (length == 0) {
      return InvalidArgumentError("{}: not valid UTF-8 at byte {} (line {}): send text in UTF-8", source, at,
                                  LineOf(text, at));
    }
    at += length;
  }
  return OkStatus();
}

Status CheckUserName(std::string_view name, std::string_view field) {
  if (name.size() > 256) return InvalidArgumentError("{}: over 256 bytes", field);
  for (size_t at = 0; at < name.size(); ++at) {
    const auto c = static_cast<unsigned char>(name[at]);
    if (c < 0x20 || c == 0x7f) {
      return InvalidArgumentError("{}: a control character (0x{:02x}) at byte {}; use a plain user name", field, c, at);
    }
  }
  return OkStatus();
}

Status CheckNesting(std::string_view text, int max_depth, std::string_view source) {
  int depth = 0;
  char quote = 0;
  for (size_t at = 0; at < text.size(); ++at) {
    char c = text[at];
    if (quote != 0) {
      if (c == '\\' && quote == '"') {
        ++at;
      } else if (c == quote) {
        quote = 0;
      }
      continue;
    }
    if (c == '"' || c == '\'') {
      // A quote inside a plain YAML scalar (it's) does not open a string; only one that starts
      // a value does. Treating it as one anyway only makes the check count less, never crash.
      if (c == '"' || at == 0 || std::string_view(" \t\n[{,:").find(text[at - 1]) != std::string_view::npos) quote = c;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) {
        return InvalidArgumentError("{}: nested more than {} levels deep at byte {} (line {})", source, max_depth, at,
                                    LineOf(text, at));
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return OkStatus();
}

size_t CompleteUtf8Prefix(std::string_view text) {
  // A sequence is at most 4 bytes: look at the last 3 for a lead byte whose sequence is cut.
  for (size_t back = 1; back <= 3 && back <= text.size(); ++back) {
    auto byte = static_cast<uint8_t>(text[text.size() - back]);
    if ((byte & 0xC0) == 0x80) continue;  // a continuation byte: keep looking for the lead
    size_t length = byte < 0x80 ? 1 : (byte & 0xE0) == 0xC0 ? 2 : (byte & 0xF0) == 0xE0 ? 3 : (byte & 0xF8) == 0xF0 ? 4 : 1;
    return length > back ? text.size() - back : text.size();
  }
  return text.size();
}

std::string ReplaceInvalidUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t at = 0; at < text.size();) {
    size_t length = SequenceLength(text, at);
    if (length == 0) {
      out += "\xEF\xBF\xBD";
      ++at;
    } else {
      out.append(text.substr(at, length));
      at += length;
    }
  }
  return out;
}

}  // namespace allot
