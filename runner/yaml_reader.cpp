#include "runner/yaml_reader.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

namespace upcycle::runner {

void SourceFiles::add(const YAML::Node& root, const std::string& file) {
  add_nodes(root, {file, true});
}

void SourceFiles::add_override(const YAML::Node& value, const std::string& origin) {
  add_nodes(value, {origin, false});
}

void SourceFiles::add_nodes(const YAML::Node& root, Origin origin) {
  origins_.push_back(std::move(origin));
  std::vector<YAML::Node> todo{root};
  while (!todo.empty()) {
    YAML::Node n = todo.back();
    todo.pop_back();
    nodes_.emplace_back(n, origins_.size() - 1);
    if (n.IsMap()) {
      for (const auto& kv : n) {
        nodes_.emplace_back(kv.first, origins_.size() - 1);
        todo.push_back(kv.second);
      }
    } else if (n.IsSequence()) {
      for (const auto& e : n) todo.push_back(e);
    }
  }
}

std::string SourceFiles::where(const YAML::Node& node) const {
  const Origin* origin = nullptr;
  for (const auto& [n, i] : nodes_) {
    if (n.is(node))
      origin = &origins_[i];  // the last registration: an override replaces a file's node
  }
  if (origin && !origin->has_lines) return origin->name;
  const YAML::Mark m = node.Mark();
  std::string out = origin ? origin->name : main_;
  if (m.line >= 0) out += ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
  return out;
}

YamlReader YamlReader::child(const std::string& key) const {
  if (!has(key)) throw error("missing required key '" + key + "'");
  return YamlReader(node_[key], path_.empty() ? key : path_ + "." + key, files_);
}

YamlReader YamlReader::at(size_t i) const {
  return YamlReader(node_[i], path_ + "[" + std::to_string(i) + "]", files_);
}

std::vector<std::string> YamlReader::keys() const {
  std::vector<std::string> out;
  if (!node_.IsMap()) return out;
  for (const auto& kv : node_) out.push_back(kv.first.as<std::string>());
  return out;
}

void YamlReader::expect_map(const std::vector<std::string>& allowed) const {
  if (!node_.IsMap()) throw error("expected a mapping");
  for (const auto& kv : node_) {
    std::string k = kv.first.as<std::string>();
    if (std::find(allowed.begin(), allowed.end(), k) != allowed.end()) continue;
    YamlReader key_node(kv.first, path_.empty() ? k : path_ + "." + k, files_);
    std::string guess = closest_match(k, allowed);
    throw key_node.error(
        "unknown key '" + k + "'" + (guess.empty() ? "" : "; did you mean '" + guess + "'?"),
        "allowed here: " + [&] {
          std::string all;
          for (const auto& a : allowed) all += (all.empty() ? "" : ", ") + a;
          return all;
        }());
  }
}

std::string YamlReader::str() const {
  if (!node_.IsScalar()) throw error("expected a string");
  return node_.Scalar();
}

double YamlReader::number() const {
  if (!node_.IsScalar()) throw error("expected a number");
  try {
    size_t used = 0;
    double v = std::stod(node_.Scalar(), &used);
    if (used != node_.Scalar().size() || !std::isfinite(v)) throw std::invalid_argument("");
    return v;
  } catch (const std::exception&) {
    throw error("expected a number, got '" + node_.Scalar() + "'");
  }
}

int64_t YamlReader::integer(core::IntegerRange range) const {
  if (!node_.IsScalar()) throw error("expected an integer");
  try {
    return core::parse_integer(node_.Scalar(), range);
  } catch (const std::out_of_range& e) {
    throw error(e.what());
  } catch (const std::invalid_argument&) {
    throw error("expected an integer (suffixes k, M, B allowed), got '" + node_.Scalar() + "'");
  }
}

bool YamlReader::boolean() const {
  if (node_.IsScalar()) {
    const std::string& s = node_.Scalar();
    if (s == "true" || s == "yes" || s == "on") return true;
    if (s == "false" || s == "no" || s == "off") return false;
  }
  throw error("expected true or false");
}

std::vector<std::string> YamlReader::strings() const {
  if (node_.IsScalar()) return {node_.Scalar()};
  if (!node_.IsSequence()) throw error("expected a list of names");
  std::vector<std::string> out;
  for (size_t i = 0; i < node_.size(); ++i) out.push_back(at(i).str());
  return out;
}

std::string YamlReader::get_str(const std::string& key, const std::string& fallback) const {
  return has(key) ? child(key).str() : fallback;
}
double YamlReader::get_number(const std::string& key, double fallback) const {
  return has(key) ? child(key).number() : fallback;
}
int64_t YamlReader::get_integer(const std::string& key, int64_t fallback,
                                core::IntegerRange range) const {
  return has(key) ? child(key).integer(range) : fallback;
}
bool YamlReader::get_bool(const std::string& key, bool fallback) const {
  return has(key) ? child(key).boolean() : fallback;
}

std::string YamlReader::get_choice(const std::string& key, const std::string& fallback,
                                   const std::vector<std::string>& choices) const {
  if (!has(key)) return fallback;
  std::string v = child(key).str();
  if (std::find(choices.begin(), choices.end(), v) != choices.end()) return v;
  std::string list;
  for (size_t i = 0; i < choices.size(); ++i) {
    list += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + choices[i];
  }
  throw child(key).error("'" + v + "' is not allowed; expected " + list);
}

ConfigError YamlReader::error(const std::string& message, const std::string& hint) const {
  std::ostringstream where;
  where << (files_ ? files_->where(node_) : std::string("<recipe>")) << ": ";
  if (!path_.empty()) where << path_ << ": ";
  where << message;
  return ConfigError(where.str(), hint);
}

}  // namespace upcycle::runner
