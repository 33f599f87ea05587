#include "core/fields.h"

#include <cmath>

#include "core/suggest.h"

namespace upcycle::core {

JsonSource::JsonSource(const nlohmann::json& j, std::string prefix)
    : j_(j), prefix_(std::move(prefix)) {
  if (!j_.is_object())
    throw FieldError(prefix_.empty() ? "spec" : prefix_, "expected a JSON object");
}

const nlohmann::json& JsonSource::at(const std::string& key) const {
  if (!j_.contains(key)) throw FieldError(path(key), "missing");
  return j_.at(key);
}

std::vector<std::string> JsonSource::keys() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : j_.items()) out.push_back(k);
  return out;
}

int64_t JsonSource::integer(const std::string& key, IntegerRange range) const {
  const int64_t v = value<int64_t>(key);
  if (v < range.lo || v > range.hi)
    throw FieldError(path(key), range_requirement(range) + ", got " + std::to_string(v));
  return v;
}

double JsonSource::number(const std::string& key) const {
  const double v = value<double>(key);
  if (!std::isfinite(v)) throw FieldError(path(key), "must be finite");
  return v;
}

bool JsonSource::boolean(const std::string& key) const { return value<bool>(key); }
std::string JsonSource::text(const std::string& key) const { return value<std::string>(key); }
std::vector<std::string> JsonSource::texts(const std::string& key) const {
  return value<std::vector<std::string>>(key);
}

std::unique_ptr<FieldSource> JsonSource::child(const std::string& key) const {
  return std::make_unique<JsonSource>(at(key), path(key));
}

std::vector<std::unique_ptr<FieldSource>> JsonSource::list(const std::string& key) const {
  std::vector<std::unique_ptr<FieldSource>> out;
  for (auto& item : items(key)) out.push_back(std::make_unique<JsonSource>(item));
  return out;
}

std::vector<JsonSource> JsonSource::items(const std::string& key) const {
  const nlohmann::json& a = at(key);
  if (!a.is_array()) throw FieldError(path(key), "expected a list");
  std::vector<JsonSource> out;
  for (size_t i = 0; i < a.size(); ++i)
    out.emplace_back(a[i], path(key) + "[" + std::to_string(i) + "]");
  return out;
}

void JsonSource::fail(const std::string& key, const std::string& reason,
                      const std::string& hint) const {
  throw FieldError(key.empty() ? prefix_ : path(key), reason, hint);
}

void JsonSource::expect_only(const std::vector<std::string>& allowed) const {
  for (const auto& [k, v] : j_.items()) {
    bool known = false;
    for (const auto& a : allowed) known = known || k == a;
    if (known) continue;
    const std::string guess = closest_match(k, allowed);
    throw FieldError(path(k),
                     "unknown field" + (guess.empty() ? "" : "; did you mean '" + guess + "'?"));
  }
}

std::string number_text(double x) {
  std::string s = nlohmann::json(x).dump();
  if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
  return s;
}

bool NumberRange::contains(double v) const {
  if (!std::isfinite(v)) return false;
  return (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
}

std::string NumberRange::text() const {
  auto show = number_text;
  const bool low = std::isfinite(lo), high = std::isfinite(hi);
  if (low && high)
    return "in " + std::string(lo_open ? "(" : "[") + show(lo) + ", " + show(hi) +
           (hi_open ? ")" : "]");
  if (low) return (lo_open ? "> " : ">= ") + show(lo);
  if (high) return (hi_open ? "< " : "<= ") + show(hi);
  return "";
}

std::string or_list(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i)
    out += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
  return out;
}

std::string docs_table(const std::vector<FieldDoc>& rows) {
  std::string out = "| key | default | allowed | meaning |\n|---|---|---|---|\n";
  for (const FieldDoc& r : rows) {
    out += "| `" + r.key + "` | " + r.fallback + " | " + r.allowed + " | " + r.doc + " |\n";
  }
  return out;
}

}  // namespace upcycle::core
