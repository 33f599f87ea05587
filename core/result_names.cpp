#include "core/result_names.h"

#include <cctype>

namespace upcycle::core {
namespace {

constexpr const char* kPerplexityPrefix = "ppl/";
constexpr const char* kRoutingPrefix = "routing/";

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.size() > prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

// Digits at `at` up to `end` (at most 9 of them) as a number; nullopt otherwise.
std::optional<int64_t> digits(const std::string& s, size_t at, size_t end) {
  if (at >= end || end - at > 9) return std::nullopt;
  int64_t v = 0;
  for (size_t i = at; i < end; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

}  // namespace

std::string perplexity_task(const std::string& domain) { return kPerplexityPrefix + domain; }
std::string routing_task(const std::string& domain) { return kRoutingPrefix + domain; }

ResultTask parse_result_task(const std::string& task) {
  if (starts_with(task, kPerplexityPrefix))
    return {ResultKind::kPerplexity, task.substr(std::string(kPerplexityPrefix).size()), ""};
  if (starts_with(task, kRoutingPrefix))
    return {ResultKind::kRouting, task.substr(std::string(kRoutingPrefix).size()), ""};
  return {ResultKind::kTask, "", task};
}

std::string router_metric(const std::string& router, int64_t layer, int64_t expert) {
  return router + "/l" + std::to_string(layer) + "/e" + std::to_string(expert);
}

std::optional<RouterCell> parse_router_metric(const std::string& name) {
  const size_t l = name.find("/l"), e = name.find("/e", l == std::string::npos ? 0 : l + 2);
  if (l == std::string::npos || l == 0 || e == std::string::npos) return std::nullopt;
  for (size_t i = 0; i < l; ++i) {
    if (!std::islower(static_cast<unsigned char>(name[i])) && name[i] != '_') return std::nullopt;
  }
  const auto layer = digits(name, l + 2, e), expert = digits(name, e + 2, name.size());
  if (!layer || !expert) return std::nullopt;
  return RouterCell{name.substr(0, l), *layer, *expert};
}

std::string layer_metric(const std::string& name, int64_t layer) {
  return name + "/l" + std::to_string(layer);
}

}  // namespace upcycle::core
