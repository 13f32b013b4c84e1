// Reading typed values out of YAML with errors a user can act on: every message names the
// source, line, column and field path ("cfg.yaml:12:9: accounts[0].quota.p: unknown field ...").
// Used by the config loader and the simulator's workload model.
//
//   YamlReader reader("cfg.yaml");
//   ALLOT_RETURN_IF_ERROR(reader.CheckMap(node, "policy", {"queue_order", "backfill"}));
//   ALLOT_ASSIGN_OR_RETURN(Duration limit, reader.DurationValue(node["limit"], "policy.limit"));
#pragma once

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/units.h"

namespace allot {

StatusOr<Time> ParseTimePoint(std::string_view text);

// Reads typed values out of a YAML tree and words errors as "source:line:col: field: message".
class YamlReader {
 public:
  explicit YamlReader(std::string_view source) : source_(source) {}

  template <typename... Args>
  Status Error(const YAML::Node& node, std::string_view field, fmt::format_string<Args...> format,
               Args&&... args) const {
    std::string where(source_);
    if (node.IsDefined() && node.Mark().line >= 0) {
      where = fmt::format("{}:{}:{}", source_, node.Mark().line + 1, node.Mark().column + 1);
    }
    return InvalidArgumentError("{}: {}: {}", where, field,
                                fmt::format(format, std::forward<Args>(args)...));
  }

  Status CheckMap(const YAML::Node& node, std::string_view field,
                  std::initializer_list<std::string_view> allowed) const {
    return CheckMap(node, field, std::vector<std::string_view>(allowed));
  }
  Status CheckMap(const YAML::Node& node, std::string_view field,
                  const std::vector<std::string_view>& allowed) const {
    if (!node.IsMap()) return Error(node, field, "expected a mapping of fields");
    for (const auto& entry : node) {
      std::string key = entry.first.Scalar();
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        std::string names;
        for (std::string_view name : allowed) names += (names.empty() ? "" : ", ") + std::string(name);
        return Error(entry.first, field, "unknown field '{}'; expected one of: {}", key, names);
      }
    }
    return OkStatus();
  }

  StatusOr<std::string> String(const YAML::Node& node, std::string_view field) const {
    if (!node.IsScalar()) return Error(node, field, "expected a string");
    return node.Scalar();
  }

  StatusOr<int64_t> Integer(const YAML::Node& node, std::string_view field, int64_t min,
                            int64_t max) const {
    if (!node.IsScalar()) return Error(node, field, "expected an integer");
    const std::string& text = node.Scalar();
    int64_t value = 0;
    std::istringstream stream(text);
    stream >> value;
    if (stream.fail() || !stream.eof()) {
      return Error(node, field, "expected an integer, got '{}'", text);
    }
    if (value < min || value > max) {
      return Error(node, field, "must be between {} and {}, got {}", min, max, value);
    }
    return value;
  }

  StatusOr<double> Number(const YAML::Node& node, std::string_view field) const {
    if (!node.IsScalar()) return Error(node, field, "expected a number");
    const std::string& text = node.Scalar();
    double value = 0;
    std::istringstream stream(text);
    stream >> value;
    if (stream.fail() || !stream.eof() || !std::isfinite(value)) {
      return Error(node, field, "expected a number, got '{}'", text);
    }
    return value;
  }

  StatusOr<bool> Bool(const YAML::Node& node, std::string_view field) const {
    if (node.IsScalar()) {
      const std::string& text = node.Scalar();
      if (text == "true" || text == "yes" || text == "on") return true;
      if (text == "false" || text == "no" || text == "off") return false;
    }
    return Error(node, field, "expected true or false");
  }

  StatusOr<Duration> DurationValue(const YAML::Node& node, std::string_view field) const {
    if (!node.IsScalar()) return Error(node, field, "expected a duration");
    StatusOr<Duration> value = ParseDuration(node.Scalar());
    if (!value.ok()) return Error(node, field, "{}", value.status().message());
    return value;
  }

  StatusOr<Time> TimeValue(const YAML::Node& node, std::string_view field) const {
    if (!node.IsScalar()) return Error(node, field, "expected a time");
    StatusOr<Time> value = ParseTimePoint(node.Scalar());
    if (!value.ok()) return Error(node, field, "{}", value.status().message());
    return value;
  }

  StatusOr<int64_t> Memory(const YAML::Node& node, std::string_view field) const {
    if (!node.IsScalar()) return Error(node, field, "expected a memory size");
    StatusOr<int64_t> value = ParseMemory(node.Scalar());
    if (!value.ok()) return Error(node, field, "{}", value.status().message());
    return value;
  }

  std::string_view source() const { return source_; }

 private:
  std::string_view source_;
};

inline std::string Field(std::string_view parent, std::string_view child) {
  return parent.empty() ? std::string(child) : fmt::format("{}.{}", parent, child);
}
inline std::string Item(std::string_view parent, size_t index) {
  return fmt::format("{}[{}]", parent, index);
}

}  // namespace allot
