#include "runner/compose.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <yaml-cpp/eventhandler.h>

#include "core/atomic_file.h"
#include "core/integer.h"
#include "core/utf8.h"

namespace upcycle::runner {

void check_utf8(const std::string& text, const std::string& origin) {
  const size_t bad = core::invalid_utf8_at(text);
  if (bad == core::kValidUtf8) return;
  const size_t line_start = text.rfind('\n', bad == 0 ? 0 : bad - 1);
  const size_t line =
      static_cast<size_t>(std::count(text.begin(), text.begin() + static_cast<long>(bad), '\n')) +
      1;
  const size_t col = bad - (line_start == std::string::npos || bad == 0 ? 0 : line_start + 1) + 1;
  throw ConfigError(origin + ":" + std::to_string(line) + ":" + std::to_string(col) +
                    ": not valid UTF-8 (byte " + std::to_string(bad) + "); recipes are UTF-8 text");
}

size_t override_key_end(const std::string& text) {
  int depth = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '[') ++depth;
    if (text[i] == ']' && depth > 0) --depth;
    if (text[i] == '=' && depth == 0) return i;
  }
  return std::string::npos;
}

namespace {

// One segment of an override's key: a mapping key, and maybe a list selector.
struct KeySegment {
  std::string key;
  bool selects = false;
  std::string index;                 ///< "[3]"
  std::string match_key, match_val;  ///< "[name=code]"
};

std::vector<KeySegment> key_segments(const std::string& path, const std::string& text) {
  auto bad = [&](const std::string& why) -> ConfigError {
    return ConfigError("override '" + text + "': " + why,
                       "select a list element as key[0] or key[name=value]");
  };
  std::vector<KeySegment> out;
  size_t at = 0;
  while (at <= path.size()) {
    size_t end = at;
    while (end < path.size() && path[end] != '.' && path[end] != '[') ++end;
    KeySegment seg;
    seg.key = path.substr(at, end - at);
    if (seg.key.empty()) throw bad("an empty key in '" + path + "'");
    if (end < path.size() && path[end] == '[') {
      const size_t close = path.find(']', end);
      if (close == std::string::npos) throw bad("'[' without ']'");
      const std::string sel = path.substr(end + 1, close - end - 1);
      seg.selects = true;
      const size_t eq = sel.find('=');
      if (eq == std::string::npos) {
        seg.index = sel;
      } else {
        seg.match_key = sel.substr(0, eq);
        seg.match_val = sel.substr(eq + 1);
        if (seg.match_key.empty() || seg.match_val.empty())
          throw bad("'[" + sel + "]' needs key=value");
      }
      end = close + 1;
      if (end < path.size() && path[end] != '.') throw bad("expected '.' after ']'");
    }
    out.push_back(seg);
    if (end >= path.size()) break;
    at = end + 1;
  }
  if (out.size() > 64) throw bad("more than 64 key segments");
  return out;
}

// The element of `list` that `seg` selects; a plain scalar element equal to the value of a
// [name=...] selector becomes the mapping {name: value} so keys can be set under it.
YAML::Node select_element(YAML::Node list, const KeySegment& seg, const std::string& text) {
  const std::string where = "override '" + text + "': " + seg.key;
  if (!list.IsSequence()) throw ConfigError(where + " is not a list");
  if (!seg.index.empty()) {
    int64_t i = 0;
    try {
      i = core::parse_integer(seg.index, {0, 1000000}, false);
    } catch (const std::exception& e) {
      throw ConfigError(where + "[" + seg.index + "]: " + e.what());
    }
    if (i >= int64_t(list.size()))
      throw ConfigError(where + "[" + seg.index + "]: index out of range (the list has " +
                        std::to_string(list.size()) + " element" + (list.size() == 1 ? "" : "s") +
                        ")");
    return list[size_t(i)];
  }
  std::vector<std::string> seen;
  for (size_t i = 0; i < list.size(); ++i) {
    YAML::Node e = list[i];
    if (e.IsScalar() && seg.match_key == "name") {
      seen.push_back(e.Scalar());
      if (e.Scalar() != seg.match_val) continue;
      YAML::Node m(YAML::NodeType::Map);
      m["name"] = seg.match_val;
      list[i] = m;
      return list[i];
    }
    if (!e.IsMap() || !e[seg.match_key] || !e[seg.match_key].IsScalar()) continue;
    seen.push_back(e[seg.match_key].Scalar());
    if (e[seg.match_key].Scalar() == seg.match_val) return e;
  }
  std::string names;
  for (const auto& n : seen) names += (names.empty() ? "" : ", ") + n;
  throw ConfigError(where + "[" + seg.match_key + "=" + seg.match_val + "]: no element has " +
                        seg.match_key + " " + seg.match_val,
                    names.empty() ? "the list's elements have no " + seg.match_key
                                  : "the list has " + seg.match_key + " " + names);
}

}  // namespace

YAML::Node apply_override(YAML::Node& root, const std::string& text) {
  if (size_t bad = core::invalid_utf8_at(text); bad != core::kValidUtf8) {
    throw ConfigError("override '" + text.substr(0, bad) + "...': not valid UTF-8 (byte " +
                      std::to_string(bad) + ")");
  }
  const size_t eq = override_key_end(text);
  if (eq == std::string::npos && text.find('[') != std::string::npos &&
      text.find(']') == std::string::npos)
    throw ConfigError("override '" + text + "': '[' without ']'");
  if (eq == std::string::npos || eq == 0) {
    throw ConfigError("override '" + text + "': expected key.path=value");
  }
  const std::string path = text.substr(0, eq), value = text.substr(eq + 1);
  const std::vector<KeySegment> segs = key_segments(path, text);
  // yaml-cpp nodes are handles: walk by reassigning a copy, then set the leaf.
  YAML::Node node = root;
  for (size_t i = 0; i < segs.size(); ++i) {
    const KeySegment& seg = segs[i];
    const bool leaf = i + 1 == segs.size();
    if (node.IsDefined() && !node.IsNull() && !node.IsMap()) {
      throw ConfigError("override '" + text + "': " + (i ? segs[i - 1].key : "the recipe") +
                        " is not a mapping");
    }
    if (leaf && !seg.selects) {
      YAML::Node parsed = parse_yaml(value, "override '" + text + "'");
      node.remove(seg.key);  // a fresh node: the replaced one keeps its source file
      node[seg.key] = parsed;
      return parsed;
    }
    YAML::Node next = node[seg.key];
    if (!seg.selects) {
      node.reset(next);
      continue;
    }
    if (!next.IsDefined()) throw ConfigError("override '" + text + "': " + seg.key + " is not set");
    YAML::Node element = select_element(next, seg, text);
    if (leaf) {
      YAML::Node parsed = parse_yaml(value, "override '" + text + "'");
      element = parsed;  // assigns through the handle: the list's element
      return parsed;
    }
    node.reset(element);
  }
  return node;
}

void flatten(const YAML::Node& n, const std::string& prefix,
             std::map<std::string, std::string>& out) {
  if (n.IsMap()) {
    for (const auto& kv : n) {
      std::string k = kv.first.as<std::string>();
      flatten(kv.second, prefix.empty() ? k : prefix + "." + k, out);
    }
  } else if (n.IsSequence()) {
    for (size_t i = 0; i < n.size(); ++i) flatten(n[i], prefix + "." + std::to_string(i), out);
  } else if (n.IsScalar()) {
    out[prefix] = n.Scalar();
  }
}

std::string read_yaml_text(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) throw ConfigError(path + ": file not found or not readable");
  // Kernel files look regular but may block forever (/proc/kmsg) or never end. What is not a
  // regular file (a device, a FIFO, a directory), and what is past the cap, core::read_file
  // refuses.
  const std::string real = fs::weakly_canonical(path, ec).string();
  for (const char* virt : {"/proc/", "/sys/", "/dev/"}) {
    if (fs::is_regular_file(st) && real.rfind(virt, 0) == 0) {
      throw ConfigError(path + ": a kernel file, not a recipe (" + real + ")");
    }
  }
  std::string text;
  try {
    text = core::read_file(path, kMaxYamlBytes);
  } catch (const Error& e) {
    throw ConfigError(e.what(), "a recipe is a small YAML file, at most " +
                                    std::to_string(kMaxYamlBytes >> 10) + " KiB");
  }
  check_utf8(text, path);
  return text;
}

void check_expansion(const YAML::Node& root, const std::string& origin) {
  // Aliases share nodes, so a few lines can stand for billions (YAML's "billion laughs"); walking
  // the tree as readers will, counting every visit, stops at the limit instead of running out of
  // memory.
  std::vector<YAML::Node> todo{root};
  size_t visited = 0;
  while (!todo.empty()) {
    YAML::Node n = todo.back();
    todo.pop_back();
    if (++visited > kMaxYamlNodes) {
      throw ConfigError(origin + ": expands to more than " + std::to_string(kMaxYamlNodes) +
                        " YAML nodes (aliases that repeat aliases?)");
    }
    // yaml-cpp tags untagged plain nodes "?" and quoted ones "!"; anything else was written.
    if (const std::string& tag = n.Tag(); !tag.empty() && tag != "?" && tag != "!") {
      const YAML::Mark m = n.Mark();
      throw ConfigError(origin + ":" + std::to_string(m.line + 1) + ":" +
                        std::to_string(m.column + 1) + ": YAML tag '" + tag +
                        "' is not supported; a recipe holds plain mappings, lists and scalars");
    }
    if (n.IsMap()) {
      std::set<std::string>
          keys;  // YAML says a key appears once; yaml-cpp keeps both and reads one
      for (const auto& kv : n) {
        const YAML::Mark m = kv.first.Mark();
        const std::string where =
            origin + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
        if (!kv.first.IsScalar()) {
          throw ConfigError(where + ": a key must be a word or a string, not " +
                            (kv.first.IsNull() ? "empty" : "a mapping or a list"));
        }
        if (!keys.insert(kv.first.Scalar()).second)
          throw ConfigError(where + ": duplicate key '" + kv.first.Scalar() + "'");
        todo.push_back(kv.second);
      }
    } else if (n.IsSequence()) {
      for (const auto& x : n) todo.push_back(x);
    }
  }
}

namespace {

// Events of a document we only need to know exists, and where it starts.
class DocumentStarts : public YAML::EventHandler {
 public:
  YAML::Mark start;
  void OnDocumentStart(const YAML::Mark& mark) override { start = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

ConfigError yaml_syntax_error(const std::string& origin, const YAML::Exception& e) {
  return ConfigError(origin + ":" + std::to_string(e.mark.line + 1) + ":" +
                     std::to_string(e.mark.column + 1) + ": YAML syntax error: " + e.msg);
}

}  // namespace

YAML::Node parse_yaml(const std::string& text, const std::string& origin) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw yaml_syntax_error(origin, e);
  }
  // A second document: the parser is asked for exactly two (YAML::LoadAll loops forever on some
  // malformed input, found by the fuzzers).
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentStarts docs;
  try {
    if (parser.HandleNextDocument(docs) && parser.HandleNextDocument(docs)) {
      const YAML::Mark& m = docs.start;
      throw ConfigError(origin + (m.line >= 0 ? ":" + std::to_string(m.line + 1) : "") +
                            ": a second YAML document ('---'); a recipe is one document",
                        "put each recipe in its own file, or use sweep: for variations");
    }
  } catch (const YAML::Exception& e) {
    throw yaml_syntax_error(origin, e);
  }
  check_expansion(root, origin);
  return root;
}

YAML::Node load_yaml_file(const std::string& path) {
  return parse_yaml(read_yaml_text(path), path);
}

// Merges `src` into `dst`: mappings merge key by key, anything else replaces.
void merge_into(YAML::Node dst, const YAML::Node& src) {
  for (const auto& kv : src) {
    std::string k = kv.first.as<std::string>();
    if (dst[k].IsMap() && kv.second.IsMap()) {
      merge_into(dst[k], kv.second);
    } else {
      dst.remove(k);
      dst.force_insert(kv.first, kv.second);  // keeps the key node, and so its location
    }
  }
}

// Resolves `include:` and `defaults:` of `root` (loaded from `file`): each listed file is loaded
// (recursively composed), merged in order, and `root` is merged on top. An entry `{group: name}`
// loads DIR/group/name.yaml under the key `group` (Hydra's config groups). Paths are relative to
// `file`.
YAML::Node compose(YAML::Node root, const std::string& file, SourceFiles& files,
                   std::vector<std::string>& stack) {
  if (!root.IsMap()) return root;
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(file).parent_path();
  YAML::Node base(YAML::NodeType::Map);
  bool any = false;
  for (const char* key : {"defaults", "include"}) {
    if (!root[key].IsDefined()) continue;
    YamlReader list(root[key], key, &files);
    if (!list.is_sequence() && !list.is_scalar())
      throw list.error("expected a file or a list of files");
    std::vector<YamlReader> entries;
    if (list.is_scalar()) entries.push_back(list);
    for (size_t i = 0; list.is_sequence() && i < list.size(); ++i) entries.push_back(list.at(i));
    for (const auto& e : entries) {
      std::string group, rel;
      if (e.is_map()) {
        if (e.size() != 1) throw e.error("expected {group: name}, loading DIR/group/name.yaml");
        group = e.keys()[0];
        rel = group + "/" + e.child(group).str() + ".yaml";
      } else {
        rel = e.str();
      }
      fs::path p = fs::path(rel).is_absolute() ? fs::path(rel) : dir / rel;
      std::string path = p.lexically_normal().string();
      std::error_code ec;  // a name too long for the OS is an error here, not an exception
      const fs::file_status st = fs::status(p, ec);
      if (!fs::exists(st)) {
        throw e.error(
            "included file '" + path + "' does not exist" +
            (ec && ec != std::errc::no_such_file_or_directory ? " (" + ec.message() + ")" : ""));
      }
      if (!fs::is_regular_file(st))
        throw e.error("included file '" + path + "' is not a regular file");
      if (std::find(stack.begin(), stack.end(), path) != stack.end()) {
        throw e.error("include cycle: '" + path + "' includes itself");
      }
      if (stack.size() >= kMaxIncludeDepth) {
        throw e.error("includes nest deeper than " + std::to_string(kMaxIncludeDepth) + " files");
      }
      YAML::Node sub = load_yaml_file(path);
      files.add(sub, path);
      stack.push_back(path);
      sub = compose(sub, path, files, stack);
      stack.pop_back();
      if (!group.empty()) {
        YAML::Node wrapped(YAML::NodeType::Map);
        wrapped[group] = sub;
        sub = wrapped;
      } else if (!sub.IsMap()) {
        throw e.error("included file '" + path + "' is not a YAML mapping");
      }
      merge_into(base, sub);
      any = true;
    }
    root.remove(key);
  }
  if (!any) return root;
  merge_into(base, root);
  return base;
}

}  // namespace upcycle::runner
