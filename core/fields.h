// Fields declared once. A spec or recipe section lists its fields in one table (name, type, range,
// doc, whether it enters the content key, whether a recipe sets it); the struct's member initialisers
// are the defaults. From the table come reading (from a job spec's JSON or a recipe's YAML, through
// FieldSource), range checks, JSON out, key material and the docs' key reference (recipes/README.md,
// checked by a test). Cross-field rules stay in the spec's validate().
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <type_traits>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/integer.h"
#include "core/json_integer.h"

namespace upcycle::core {

/// A field is missing, mistyped or out of range. `path` is the key path ("optim.beta1"); the recipe
/// parser points it at the YAML key that set the field.
class FieldError : public Error {
 public:
  FieldError(std::string path, std::string reason, std::string hint = "")
      : Error(path.empty() ? reason : path + ": " + reason, std::move(hint)),
        path_(std::move(path)),
        reason_(std::move(reason)) {}
  const std::string& path() const { return path_; }
  const std::string& reason() const { return reason_; }

 private:
  std::string path_;
  std::string reason_;
};

/// A mapping of values by key that tables read from: a job spec's JSON object (JsonSource) or a
/// recipe's YAML mapping (runner/yaml_source.h). Each value is converted as its field's type says.
class FieldSource {
 public:
  virtual ~FieldSource() = default;
  virtual bool has(const std::string& key) const = 0;
  virtual std::vector<std::string> keys() const = 0;  ///< in the source's order
  /// Integers outside `range` are an error naming the key.
  virtual int64_t integer(const std::string& key, IntegerRange range) const = 0;
  virtual double number(const std::string& key) const = 0;
  virtual bool boolean(const std::string& key) const = 0;
  virtual std::string text(const std::string& key) const = 0;
  /// A list of strings (YAML also takes one scalar).
  virtual std::vector<std::string> texts(const std::string& key) const = 0;
  virtual std::unique_ptr<FieldSource> child(const std::string& key) const = 0;  ///< a mapping
  /// Throws the error for `key` ("" = this mapping): a located ConfigError for YAML, a FieldError
  /// with the key path for JSON.
  [[noreturn]] virtual void fail(const std::string& key, const std::string& reason,
                                 const std::string& hint = "") const = 0;
  /// Throws unless every key is in `allowed` (with a "did you mean").
  virtual void expect_only(const std::vector<std::string>& allowed) const = 0;
};

/// A JSON object as a FieldSource; errors are FieldErrors under `prefix`.
class JsonSource : public FieldSource {
 public:
  explicit JsonSource(const nlohmann::json& j, std::string prefix = "");
  bool has(const std::string& key) const override { return j_.contains(key); }
  std::vector<std::string> keys() const override;
  int64_t integer(const std::string& key, IntegerRange range) const override;
  double number(const std::string& key) const override;
  bool boolean(const std::string& key) const override;
  std::string text(const std::string& key) const override;
  std::vector<std::string> texts(const std::string& key) const override;
  std::unique_ptr<FieldSource> child(const std::string& key) const override;
  [[noreturn]] void fail(const std::string& key, const std::string& reason,
                         const std::string& hint = "") const override;
  void expect_only(const std::vector<std::string>& allowed) const override;
  std::string path(const std::string& key) const { return prefix_.empty() ? key : prefix_ + "." + key; }
  const nlohmann::json& json() const { return j_; }

  /// A required field of any type nlohmann::json converts (integers checked exactly).
  template <typename T>
  T value(const std::string& key) const {
    return convert<T>(at(key), path(key));
  }
  /// An optional field: `fallback` when absent.
  template <typename T>
  T value(const std::string& key, T fallback) const {
    return has(key) ? convert<T>(j_.at(key), path(key)) : fallback;
  }
  /// A required object field, read with the same rules.
  JsonSource object(const std::string& key) const { return JsonSource(at(key), path(key)); }
  /// The elements of a required array of objects, each named "key[i]".
  std::vector<JsonSource> items(const std::string& key) const;

 private:
  template <typename T>
  static T convert(const nlohmann::json& v, const std::string& field) {
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      if (std::string why = integer_problem<T>(v); !why.empty()) throw FieldError(field, why);
    }
    try {
      return v.get<T>();
    } catch (const nlohmann::json::exception&) {
      throw FieldError(field, std::string("has the wrong type (") + v.type_name() + ")");
    }
  }
  const nlohmann::json& at(const std::string& key) const;
  const nlohmann::json& j_;
  std::string prefix_;
};

/// A closed or half-open interval for real-valued fields.
struct NumberRange {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = false;
  bool hi_open = false;
  bool contains(double v) const;
  /// "[0, 1)", "> 0", ">= 0"; "" for the whole line.
  std::string text() const;
};

/// The names of an enum's values, in the order docs list them.
template <typename E>
using EnumNames = std::vector<std::pair<E, const char*>>;

/// "a, b or c".
std::string or_list(const std::vector<std::string>& names);

template <typename E>
const char* enum_name(const EnumNames<E>& names, E e) {
  for (const auto& [v, n] : names) {
    if (v == e) return n;
  }
  throw InternalError("enum value without a name");
}

template <typename E>
std::vector<std::string> enum_names(const EnumNames<E>& names) {
  std::vector<std::string> out;
  for (const auto& p : names) out.push_back(p.second);
  return out;
}

/// The value called `text`, or a FieldError at `path` listing the names.
template <typename E>
E enum_from(const EnumNames<E>& names, const std::string& text, const std::string& path) {
  for (const auto& [v, n] : names) {
    if (text == n) return v;
  }
  throw FieldError(path, "'" + text + "' is not allowed; expected " + or_list(enum_names(names)));
}

/// One row of a docs key table.
struct FieldDoc {
  std::string key;      ///< "optim.lr"
  std::string fallback;  ///< the default, as the docs show it
  std::string allowed;  ///< "integer in [1, 4096]", "`soft` or `top_k`"
  std::string doc;
};

/// Markdown: | key | default | allowed | meaning |.
std::string docs_table(const std::vector<FieldDoc>& rows);

enum FieldFlags : unsigned {
  kKeyed = 0,            ///< the default: in the recipe and in the content key
  kNotKeyed = 1u << 0,   ///< never in a content key (paths, which follow from input keys)
  kPlanned = 1u << 1,    ///< set by the planner, not a recipe key (not read from YAML, not in the docs)
};

template <typename S>
class Fields {
 public:
  struct Field {
    std::string name;
    std::string doc;
    unsigned flags = kKeyed;
    std::function<void(const FieldSource&, S&)> read;  ///< called when the key is present
    std::function<void(const S&, nlohmann::json&)> write;
    std::function<std::string(const S&)> problem;  ///< "" when the value is in range
    std::function<void(const std::string&, std::vector<FieldDoc>&)> docs;
  };

  template <typename T>
  Fields& integer(const char* name, T S::*m, IntegerRange r, const char* doc, unsigned flags = kKeyed) {
    add(name, doc, flags, [=](const FieldSource& s, S& o) { o.*m = static_cast<T>(s.integer(name, r)); },
        [=](const S& o, nlohmann::json& j) { j[name] = o.*m; },
        [=](const S& o) {
          const auto v = static_cast<long double>(o.*m);
          return v < r.lo || v > r.hi ? range_requirement(r) + ", got " + std::to_string(o.*m) : std::string();
        },
        [=](const S& d) { return code(std::to_string(d.*m)); }, "integer" + interval(r));
    return *this;
  }
  Fields& number(const char* name, double S::*m, NumberRange r, const char* doc, unsigned flags = kKeyed) {
    add(name, doc, flags, [=](const FieldSource& s, S& o) { o.*m = s.number(name); },
        [=](const S& o, nlohmann::json& j) { j[name] = o.*m; },
        [=](const S& o) { return r.contains(o.*m) ? std::string() : "must be " + r.text(); },
        [=](const S& d) { return code(nlohmann::json(d.*m).dump()); },
        "number" + (r.text().empty() ? std::string() : " " + r.text()));
    return *this;
  }
  Fields& boolean(const char* name, bool S::*m, const char* doc, unsigned flags = kKeyed) {
    add(name, doc, flags, [=](const FieldSource& s, S& o) { o.*m = s.boolean(name); },
        [=](const S& o, nlohmann::json& j) { j[name] = o.*m; }, nullptr,
        [=](const S& d) { return code(d.*m ? "true" : "false"); }, "`true` or `false`");
    return *this;
  }
  Fields& text(const char* name, std::string S::*m, const char* doc, unsigned flags = kKeyed) {
    add(name, doc, flags, [=](const FieldSource& s, S& o) { o.*m = s.text(name); },
        [=](const S& o, nlohmann::json& j) { j[name] = o.*m; }, nullptr,
        [=](const S& d) { return (d.*m).empty() ? std::string("—") : code(d.*m); }, "text");
    return *this;
  }
  template <typename E>
  Fields& choice(const char* name, E S::*m, const EnumNames<E>& names, const char* doc, unsigned flags = kKeyed) {
    add(name, doc, flags,
        [=](const FieldSource& s, S& o) {
          const std::string t = s.text(name);
          for (const auto& [v, n] : names) {
            if (t == n) {
              o.*m = v;
              return;
            }
          }
          s.fail(name, "'" + t + "' is not allowed; expected " + or_list(enum_names(names)));
        },
        [=](const S& o, nlohmann::json& j) { j[name] = enum_name(names, o.*m); }, nullptr,
        [=](const S& d) { return code(enum_name(names, d.*m)); }, quoted_or_list(enum_names(names)));
    return *this;
  }
  /// A string that must be one of `choices` (for choices that stay strings past the boundary).
  Fields& one_of(const char* name, std::string S::*m, std::vector<std::string> choices, const char* doc,
                 unsigned flags = kKeyed) {
    add(name, doc, flags, [=](const FieldSource& s, S& o) { o.*m = s.text(name); },
        [=](const S& o, nlohmann::json& j) { j[name] = o.*m; },
        [=](const S& o) {
          for (const auto& c : choices) {
            if (o.*m == c) return std::string();
          }
          return "'" + o.*m + "' is not allowed; expected " + or_list(choices);
        },
        [=](const S& d) { return code(d.*m); }, quoted_or_list(choices));
    return *this;
  }
  /// A nested section with its own table ("optim" of the training settings).
  template <typename C>
  Fields& group(const char* name, C S::*m, const Fields<C>& sub, unsigned flags = kKeyed) {
    Field f;
    f.name = name;
    f.flags = flags;
    f.read = [=, &sub](const FieldSource& s, S& o) { sub.read(*s.child(name), o.*m); };
    f.write = [=, &sub](const S& o, nlohmann::json& j) { j[name] = sub.to_json(o.*m); };
    f.problem = [=, &sub](const S& o) {
      const std::pair<std::string, std::string> p = sub.first_problem(o.*m);
      return p.first.empty() ? std::string() : p.first + ": " + p.second;
    };
    f.docs = [=, &sub](const std::string& prefix, std::vector<FieldDoc>& rows) {
      for (FieldDoc d : sub.docs()) {
        d.key = prefix + name + "." + d.key;
        rows.push_back(d);
      }
    };
    fields_.push_back(std::move(f));
    return *this;
  }
  /// A value the planner sets (a map, a list), converted by nlohmann::json; not a recipe key.
  template <typename T>
  Fields& planned(const char* name, T S::*m, const char* doc, unsigned flags = kPlanned) {
    add(name, doc, flags | kPlanned,
        [=](const FieldSource& s, S& o) {
          const auto* js = dynamic_cast<const JsonSource*>(&s);
          if (!js) s.fail(name, "is set by the planner");
          o.*m = js->template value<T>(name);
        },
        [=](const S& o, nlohmann::json& j) { j[name] = o.*m; }, nullptr, nullptr, "");
    return *this;
  }

  /// Every field of `base`'s table, for a struct S derived from B.
  template <typename B>
  Fields& inherit(const Fields<B>& base) {
    static_assert(std::is_base_of_v<B, S>);
    for (const auto& b : base.fields()) {
      Field f;
      f.name = b.name;
      f.doc = b.doc;
      f.flags = b.flags;
      f.read = [r = b.read](const FieldSource& s, S& o) { r(s, static_cast<B&>(o)); };
      f.write = [w = b.write](const S& o, nlohmann::json& j) { w(static_cast<const B&>(o), j); };
      if (b.problem) f.problem = [p = b.problem](const S& o) { return p(static_cast<const B&>(o)); };
      f.docs = b.docs;
      fields_.push_back(std::move(f));
    }
    return *this;
  }

  /// Reads the keys present in `s` over `out`; unknown keys, wrong types and out-of-range values are
  /// errors at their key. `recipe`: a recipe section, whose planner-set fields are unknown keys.
  /// `also`: keys the caller reads itself.
  void read(const FieldSource& s, S& out, bool recipe = false, const std::vector<std::string>& also = {}) const {
    std::vector<std::string> allowed = names(recipe);
    allowed.insert(allowed.end(), also.begin(), also.end());
    s.expect_only(allowed);
    read_present(s, out, recipe);
  }
  /// The same without the unknown-key check, for a mapping whose other keys the caller reads.
  void read_present(const FieldSource& s, S& out, bool recipe = true) const {
    for (const Field& f : fields_) {
      if ((recipe && (f.flags & kPlanned)) || !s.has(f.name)) continue;
      f.read(s, out);
      if (f.problem) {
        if (const std::string why = f.problem(out); !why.empty()) s.fail(f.name, why);
      }
    }
  }
  /// The first field out of range, as {path, reason}; {"", ""} when all are in range.
  std::pair<std::string, std::string> first_problem(const S& o) const {
    for (const Field& f : fields_) {
      if (!f.problem) continue;
      if (const std::string why = f.problem(o); !why.empty()) {
        const size_t sep = why.find(": ");
        const bool nested = f.docs && sep != std::string::npos && why.compare(0, 5, "must ") != 0;
        return nested ? std::make_pair(f.name + "." + why.substr(0, sep), why.substr(sep + 2))
                      : std::make_pair(f.name, why);
      }
    }
    return {"", ""};
  }
  /// Throws FieldError(prefix + path) for the first field out of range.
  void check(const S& o, const std::string& prefix = "") const {
    const auto [path, why] = first_problem(o);
    if (!path.empty()) throw FieldError(prefix + path, why);
  }
  nlohmann::json to_json(const S& o) const {
    nlohmann::json j = nlohmann::json::object();
    for (const Field& f : fields_) f.write(o, j);
    return j;
  }
  /// The fields that enter a content key.
  nlohmann::json key_material(const S& o) const {
    nlohmann::json j = to_json(o);
    for (const Field& f : fields_) {
      if (f.flags & kNotKeyed) j.erase(f.name);
    }
    return j;
  }
  /// Recipe keys (`recipe`) or every field's name.
  std::vector<std::string> names(bool recipe = false) const {
    std::vector<std::string> out;
    for (const Field& f : fields_) {
      if (!recipe || !(f.flags & kPlanned)) out.push_back(f.name);
    }
    return out;
  }
  const std::vector<Field>& fields() const { return fields_; }
  /// The docs rows of the recipe keys, defaults from `S{}`.
  std::vector<FieldDoc> docs() const {
    std::vector<FieldDoc> rows;
    for (const Field& f : fields_) {
      if (f.flags & kPlanned) continue;
      if (f.docs) f.docs("", rows);
    }
    return rows;
  }

 private:
  template <typename Read, typename Write, typename Problem, typename Default>
  void add(const char* name, const char* doc, unsigned flags, Read read, Write write, Problem problem,
           Default fallback, std::string allowed) {
    Field f;
    f.name = name;
    f.doc = doc;
    f.flags = flags;
    f.read = read;
    f.write = write;
    if constexpr (!std::is_same_v<Problem, std::nullptr_t>) f.problem = problem;
    if constexpr (!std::is_same_v<Default, std::nullptr_t>) {
      f.docs = [=](const std::string& prefix, std::vector<FieldDoc>& rows) {
        rows.push_back({prefix + name, fallback(S{}), allowed, doc});
      };
    }
    fields_.push_back(std::move(f));
  }
  static std::string code(const std::string& s) { return "`" + s + "`"; }
  static std::string interval(IntegerRange r) {
    const std::string req = range_requirement(r);  // "must be in [a, b]", "must be >= a"
    return req.rfind("must be ", 0) == 0 && req.find("fit") == std::string::npos ? " " + req.substr(8) : "";
  }
  static std::string quoted_or_list(const std::vector<std::string>& names) {
    std::vector<std::string> q;
    for (const auto& n : names) q.push_back(code(n));
    return or_list(q);
  }
  std::vector<Field> fields_;
};

}  // namespace upcycle::core
