// Typed, located access to a yaml-cpp tree. Every error is a ConfigError that starts with
// "FILE:LINE:COL: key.path: " (1-based line and column), and unknown keys get a "did you mean".
// YAML::Node never leaves runner/.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fields.h"
#include "core/integer.h"
#include "core/suggest.h"

namespace upcycle::runner {

/// Which file each node of a composed tree came from (include:/defaults:), so that errors in an
/// included file name that file. Nodes not registered belong to the main file.
class SourceFiles {
 public:
  explicit SourceFiles(std::string main) : main_(std::move(main)) {}
  /// Registers every node (keys included) under `root` as coming from `file`.
  void add(const YAML::Node& root, const std::string& file);
  /// Registers the value an override set; errors in it name `origin` ("override 'model.layers=0'").
  void add_override(const YAML::Node& value, const std::string& origin);
  /// Where `node` was written: "file:line:col", or "override 'model.layers=0'".
  std::string where(const YAML::Node& node) const;
  const std::string& main() const { return main_; }

 private:
  struct Origin {
    std::string name;
    bool has_lines = true;  ///< false for an override: its marks count within the value text
  };
  void add_nodes(const YAML::Node& root, Origin origin);
  std::string main_;
  std::vector<std::pair<YAML::Node, size_t>> nodes_;  ///< node, index into origins_
  std::vector<Origin> origins_;
};

class YamlReader {
 public:
  YamlReader(const YAML::Node& node, std::string path, const SourceFiles* files)
      : node_(node), path_(std::move(path)), files_(files) {}

  const YAML::Node& node() const { return node_; }
  const std::string& path() const { return path_; }
  bool has(const std::string& key) const { return node_.IsMap() && node_[key].IsDefined(); }
  bool is_map() const { return node_.IsMap(); }
  bool is_sequence() const { return node_.IsSequence(); }
  bool is_scalar() const { return node_.IsScalar(); }

  /// A child by key (which must exist) or by index.
  YamlReader child(const std::string& key) const;
  YamlReader at(size_t i) const;
  size_t size() const { return node_.size(); }
  std::vector<std::string> keys() const;  ///< in file order

  /// Throws unless the node is a map whose keys are all in `allowed` (with a "did you mean").
  void expect_map(const std::vector<std::string>& allowed) const;

  std::string str() const;
  double number() const;
  /// Accepts 4096, 4k, 4M, 1.5B, 2e6 (core/integer.h); outside `range` is an error naming the key.
  int64_t integer(core::IntegerRange range = {}) const;
  bool boolean() const;
  std::vector<std::string> strings() const;  ///< a sequence of scalars, or one scalar

  std::string get_str(const std::string& key, const std::string& fallback) const;
  double get_number(const std::string& key, double fallback) const;
  int64_t get_integer(const std::string& key, int64_t fallback,
                      core::IntegerRange range = {}) const;
  bool get_bool(const std::string& key, bool fallback) const;
  /// A string that must be one of `choices` ("expected a, b or c" otherwise).
  std::string get_choice(const std::string& key, const std::string& fallback,
                         const std::vector<std::string>& choices) const;

  /// "FILE:LINE:COL: path: message" as a ConfigError.
  ConfigError error(const std::string& message, const std::string& hint = "") const;

 private:
  YAML::Node node_;
  std::string path_;
  const SourceFiles* files_;
};

/// An enum-valued key: one of `names` (the error lists them); `fallback` when absent, unless
/// `required`.
template <typename E>
E choice(const YamlReader& r, const std::string& key, const core::EnumNames<E>& names, E fallback,
         bool required = false) {
  if (!r.has(key) && !required) return fallback;
  const YamlReader v = r.child(key);
  const std::string text = v.str();
  for (const auto& [e, n] : names) {
    if (text == n) return e;
  }
  throw v.error("'" + text + "' is not allowed; expected " +
                core::or_list(core::enum_names(names)));
}

/// A YAML mapping as a core::FieldSource, so that the spec tables (core/fields.h) read recipe
/// sections with every error at its file, line and key.
class YamlSource : public core::FieldSource {
 public:
  explicit YamlSource(YamlReader r) : r_(std::move(r)) {}
  bool has(const std::string& key) const override { return r_.has(key); }
  std::vector<std::string> keys() const override { return r_.keys(); }
  int64_t integer(const std::string& key, core::IntegerRange range) const override {
    return r_.child(key).integer(range);
  }
  double number(const std::string& key) const override { return r_.child(key).number(); }
  bool boolean(const std::string& key) const override { return r_.child(key).boolean(); }
  std::string text(const std::string& key) const override { return r_.child(key).str(); }
  std::vector<std::string> texts(const std::string& key) const override {
    return r_.child(key).strings();
  }
  std::vector<double> numbers(const std::string& key) const override {
    const YamlReader v = r_.child(key);
    if (!v.is_sequence()) throw v.error("expected a list of numbers");
    std::vector<double> out;
    for (size_t i = 0; i < v.size(); ++i) out.push_back(v.at(i).number());
    return out;
  }
  std::unique_ptr<core::FieldSource> child(const std::string& key) const override {
    return std::make_unique<YamlSource>(r_.child(key));
  }
  std::vector<std::unique_ptr<core::FieldSource>> list(const std::string& key) const override {
    const YamlReader v = r_.child(key);
    if (!v.is_sequence()) throw v.error("expected a list");
    std::vector<std::unique_ptr<core::FieldSource>> out;
    for (size_t i = 0; i < v.size(); ++i) out.push_back(std::make_unique<YamlSource>(v.at(i)));
    return out;
  }
  bool is_scalar() const override { return r_.is_scalar(); }
  std::string scalar() const override { return r_.str(); }
  [[noreturn]] void fail(const std::string& key, const std::string& reason,
                         const std::string& hint = "") const override {
    throw(key.empty() || !r_.has(key) ? r_ : r_.child(key)).error(reason, hint);
  }
  void expect_only(const std::vector<std::string>& allowed) const override {
    r_.expect_map(allowed);
  }
  const YamlReader& reader() const { return r_; }

 private:
  YamlReader r_;
};

using core::closest_match;

}  // namespace upcycle::runner
