// Building the YAML tree a recipe is parsed from: loading files, composing `include:`/`defaults:`,
// applying "a.b.c=value" overrides, and flattening the result to "a.b.c" -> value for the store's
// params. Internal to runner/ (recipe.cpp); YAML::Node does not leave this folder.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "runner/yaml_reader.h"

namespace upcycle::runner {

/// Limits on what a recipe may make the loader do: file size, include depth, node visits.
inline constexpr int64_t kMaxYamlBytes = 1 << 20;
inline constexpr size_t kMaxIncludeDepth = 16;
inline constexpr size_t kMaxYamlNodes = 1000000;

/// A recipe or included file's text: a regular file of at most kMaxYamlBytes, else ConfigError
/// naming the path and the reason.
std::string read_yaml_text(const std::string& path);

/// Throws ConfigError naming `origin` when walking `root` visits more than kMaxYamlNodes nodes, a
/// mapping has a key twice, or a node carries an explicit tag (!!binary, !custom) that the recipe
/// reader would ignore (FILE:LINE:COL of the offending node).
void check_expansion(const YAML::Node& root, const std::string& origin);

/// Parses YAML text as exactly one document (a second `---` document is refused at its line, as
/// are tags), with check_expansion. Errors are ConfigError "ORIGIN:LINE:COL: ...".
YAML::Node parse_yaml(const std::string& text, const std::string& origin);

/// Parses a YAML file; throws ConfigError "PATH:LINE:COL: YAML syntax error" or "PATH: not found".
YAML::Node load_yaml_file(const std::string& path);

/// Merges `src` into `dst`: mappings merge key by key, anything else replaces (keeping its key
/// node).
void merge_into(YAML::Node dst, const YAML::Node& src);

/// Resolves `include:` and `defaults:` of `root` (loaded from `file`): each listed file is loaded
/// (recursively composed), merged in order, and `root` merged on top. `{group: name}` loads
/// DIR/group/name.yaml under the key `group`. Every included node is registered in `files` so
/// errors name its file; `stack` holds the files being composed (cycle detection).
YAML::Node compose(YAML::Node root, const std::string& file, SourceFiles& files,
                   std::vector<std::string>& stack);

/// Throws ConfigError "origin:line:col: not valid UTF-8" unless `text` is UTF-8 (YAML's encoding,
/// and what every JSON output of the recipe's values needs).
void check_utf8(const std::string& text, const std::string& origin);

/// Applies one "a.b.c=value" override (value parsed as YAML) and returns the value's node. A
/// segment may select a list element by index, "data.domains[0].shards.dir=...", or by a key of
/// the element, "data.domains[name=code].shards.dir=..." (a plain "code" element becomes
/// {name: code}). Throws ConfigError naming the override and, for a selector, the list's size or
/// names.
YAML::Node apply_override(YAML::Node& root, const std::string& text);

/// Where an override's key ends: its first '=' outside a [...] selector (npos when none).
size_t override_key_end(const std::string& text);

/// The tree's scalars as "a.b.c" -> value (sequence elements as "a.0").
void flatten(const YAML::Node& n, const std::string& prefix,
             std::map<std::string, std::string>& out);

}  // namespace upcycle::runner
