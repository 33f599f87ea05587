// Fields declared once. A spec or recipe section lists its fields in one table (name, type, range,
// doc, whether it enters the content key, whether a recipe sets it); the struct's member
// initialisers are the defaults. From the table come reading (from a job spec's JSON or a recipe's
// YAML, through FieldSource), range checks, JSON out, key material and the docs' key reference
// (recipes/README.md, checked by a test). Cross-field rules stay in the spec's validate().
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
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
  virtual std::vector<double> numbers(const std::string& key) const = 0;  ///< a list of numbers
  virtual std::unique_ptr<FieldSource> child(const std::string& key) const = 0;  ///< a mapping
  /// The elements of a list, each a source: a mapping, or a scalar (is_scalar, scalar).
  virtual std::vector<std::unique_ptr<FieldSource>> list(const std::string& key) const = 0;
  virtual bool is_scalar() const = 0;
  virtual std::string scalar() const = 0;  ///< a scalar element's text
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
  std::vector<double> numbers(const std::string& key) const override {
    return value<std::vector<double>>(key);
  }
  std::unique_ptr<FieldSource> child(const std::string& key) const override;
  std::vector<std::unique_ptr<FieldSource>> list(const std::string& key) const override;
  bool is_scalar() const override { return false; }  // a JsonSource is an object
  std::string scalar() const override { throw FieldError(prefix_, "expected a string"); }
  [[noreturn]] void fail(const std::string& key, const std::string& reason,
                         const std::string& hint = "") const override;
  void expect_only(const std::vector<std::string>& allowed) const override;
  std::string path(const std::string& key) const {
    return prefix_.empty() ? key : prefix_ + "." + key;
  }
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

/// A real number as docs and errors show it: 0.001, 1e-08, 10000 (no trailing ".0").
std::string number_text(double v);

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
  std::string key;       ///< "optim.lr"
  std::string fallback;  ///< the default, as the docs show it
  std::string allowed;   ///< "integer in [1, 4096]", "`soft` or `top_k`"
  std::string doc;
};

/// Markdown: | key | default | allowed | meaning |.
std::string docs_table(const std::vector<FieldDoc>& rows);

enum FieldFlags : unsigned {
  kKeyed = 0,           ///< the default: in the recipe and in the content key
  kNotKeyed = 1u << 0,  ///< never in a content key (paths, which follow from input keys)
  kPlanned =
      1u << 1,  ///< set by the planner, not a recipe key (not read from YAML, not in the docs)
  /// Written (to JSON, and so to content keys and config.json) only when not at its default: for
  /// fields added after stores were filled, whose keys then stay what they were.
  kOmitDefault = 1u << 2,
};

template <typename S>
class Fields {
 public:
  /// One field. Readers and writers take the key, so that a field can be shown under another name
  /// (alias: a recipe's `attention.top_k` is the model's `attn_top_k`).
  struct Field {
    std::string name;
    std::string doc;
    unsigned flags = kKeyed;
    std::function<void(const FieldSource&, const std::string&, S&)>
        read;  ///< called when the key is present
    std::function<void(const S&, const std::string&, nlohmann::json&)> write;
    std::function<std::string(const S&)> problem;  ///< "" when the value is in range
    std::string allowed;                           ///< for the docs
    std::function<std::string(const S&)> shown;    ///< the value as the docs show it
  };

  template <typename T>
  Fields& integer(const char* name, T S::*m, IntegerRange r, const char* doc,
                  unsigned flags = kKeyed) {
    return add(
        name, doc, flags,
        [=](const FieldSource& s, const std::string& k, S& o) {
          o.*m = static_cast<T>(s.integer(k, r));
        },
        member_writer(m),
        [=](const S& o) {
          const auto v = static_cast<long double>(o.*m);
          return v < r.lo || v > r.hi ? range_requirement(r) + ", got " + std::to_string(o.*m)
                                      : std::string();
        },
        "integer" + interval(r), [=](const S& d) { return code(std::to_string(d.*m)); });
  }
  Fields& number(const char* name, double S::*m, NumberRange r, const char* doc,
                 unsigned flags = kKeyed) {
    return add(
        name, doc, flags,
        [=](const FieldSource& s, const std::string& k, S& o) { o.*m = s.number(k); },
        member_writer(m),
        [=](const S& o) { return r.contains(o.*m) ? std::string() : "must be " + r.text(); },
        "number" + (r.text().empty() ? std::string() : " " + r.text()),
        [=](const S& d) { return code(number_text(d.*m)); });
  }
  Fields& boolean(const char* name, bool S::*m, const char* doc, unsigned flags = kKeyed) {
    return add(
        name, doc, flags,
        [=](const FieldSource& s, const std::string& k, S& o) { o.*m = s.boolean(k); },
        member_writer(m), nullptr, "`true` or `false`",
        [=](const S& d) { return code(d.*m ? "true" : "false"); });
  }
  Fields& text(const char* name, std::string S::*m, const char* doc, unsigned flags = kKeyed) {
    return add(
        name, doc, flags,
        [=](const FieldSource& s, const std::string& k, S& o) { o.*m = s.text(k); },
        member_writer(m), nullptr, "text",
        [=](const S& d) { return (d.*m).empty() ? std::string("—") : code(d.*m); });
  }
  /// A list of numbers (`average_weights`).
  Fields& numbers(const char* name, std::vector<double> S::*m, const char* doc,
                  unsigned flags = kKeyed) {
    return add(
        name, doc, flags,
        [=](const FieldSource& s, const std::string& k, S& o) { o.*m = s.numbers(k); },
        member_writer(m), nullptr, "list of numbers",
        [=](const S& d) {
          return (d.*m).empty() ? std::string("—") : code(nlohmann::json(d.*m).dump());
        });
  }
  template <typename E>
  Fields& choice(const char* name, E S::*m, const EnumNames<E>& names, const char* doc,
                 unsigned flags = kKeyed) {
    return add(
        name, doc, flags,
        [=](const FieldSource& s, const std::string& k, S& o) {
          const std::string t = s.text(k);
          for (const auto& [v, n] : names) {
            if (t == n) {
              o.*m = v;
              return;
            }
          }
          s.fail(k, "'" + t + "' is not allowed; expected " + or_list(enum_names(names)));
        },
        [=](const S& o, const std::string& k, nlohmann::json& j) { j[k] = enum_name(names, o.*m); },
        nullptr, quoted_or_list(enum_names(names)),
        [=](const S& d) { return code(enum_name(names, d.*m)); });
  }
  /// A string that must be one of `choices` (for choices that stay strings past the boundary).
  Fields& one_of(const char* name, std::string S::*m, const std::vector<std::string>& choices,
                 const char* doc, unsigned flags = kKeyed) {
    return add(
        name, doc, flags,
        [=](const FieldSource& s, const std::string& k, S& o) { o.*m = s.text(k); },
        member_writer(m),
        [=](const S& o) {
          for (const auto& c : choices) {
            if (o.*m == c) return std::string();
          }
          return "'" + o.*m + "' is not allowed; expected " + or_list(choices);
        },
        quoted_or_list(choices), [=](const S& d) { return code(d.*m); });
  }
  /// A nested section with its own table ("optim" of the training settings).
  template <typename C>
  Fields& group(const char* name, C S::*m, const Fields<C>& sub, unsigned flags = kKeyed) {
    Field f;
    f.name = name;
    f.flags = flags;
    f.read = [=, &sub](const FieldSource& s, const std::string& k, S& o) {
      sub.read(*s.child(k), o.*m);
    };
    f.write = [=, &sub](const S& o, const std::string& k, nlohmann::json& j) {
      j[k] = sub.to_json(o.*m);
    };
    f.problem = [=, &sub](const S& o) {
      const std::pair<std::string, std::string> p = sub.first_problem(o.*m);
      return p.first.empty() ? std::string() : p.first + ": " + p.second;
    };
    fields_.push_back(std::move(f));
    nested_docs_.push_back({name, [&sub] { return sub.docs(); }});
    return *this;
  }
  /// A value the planner sets (a map, a list), converted by nlohmann::json; not a recipe key.
  template <typename T>
  Fields& planned(const char* name, T S::*m, const char* doc, unsigned flags = kPlanned) {
    return add(
        name, doc, flags | kPlanned,
        [=](const FieldSource& s, const std::string& k, S& o) {
          const auto* js = dynamic_cast<const JsonSource*>(&s);
          if (!js) s.fail(k, "is set by the planner");
          o.*m = js->template value<T>(k);
        },
        member_writer(m), nullptr, "", nullptr);
  }
  /// Field `from_name` of `from` under the name `name` with its own doc (a recipe's name for it).
  Fields& alias(const char* name, const Fields<S>& from, const char* from_name, const char* doc,
                unsigned flags = kKeyed) {
    for (const Field& f : from.fields()) {
      if (f.name != from_name) continue;
      Field a = f;
      a.name = name;
      a.doc = doc;
      a.flags = flags;
      fields_.push_back(std::move(a));
      return *this;
    }
    throw InternalError(std::string("Fields::alias: no field ") + from_name);
  }
  /// Every field of `base`'s table, for a struct S derived from B.
  template <typename B>
  Fields& inherit(const Fields<B>& base) {
    static_assert(std::is_base_of_v<B, S>);
    return adopt(
        base, [](auto& o) -> auto& {
          return static_cast<std::conditional_t<
              std::is_const_v<std::remove_reference_t<decltype(o)>>, const B&, B&>>(o);
        });
  }
  /// Every field of `sub` at this level, stored in member `m` (a recipe's `experts:` is the
  /// mixture's ffn_experts).
  template <typename C>
  Fields& lift(C S::*m, const Fields<C>& sub) {
    return adopt(
        sub, [m](auto& o) -> auto& { return o.*m; });
  }

  /// Reads the keys present in `s` over `out`; unknown keys, wrong types and out-of-range values
  /// are errors at their key. `recipe`: a recipe section, whose planner-set fields are unknown
  /// keys. `also`: keys the caller reads itself.
  void read(const FieldSource& s, S& out, bool recipe = false,
            const std::vector<std::string>& also = {}) const {
    std::vector<std::string> allowed = names(recipe);
    allowed.insert(allowed.end(), also.begin(), also.end());
    s.expect_only(allowed);
    read_present(s, out, recipe);
  }
  /// The same without the unknown-key check, for a mapping whose other keys the caller reads.
  void read_present(const FieldSource& s, S& out, bool recipe = true) const {
    for (const Field& f : fields_) {
      if ((recipe && (f.flags & kPlanned)) || !s.has(f.name)) continue;
      f.read(s, f.name, out);
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
        const bool nested =
            f.allowed.empty() && sep != std::string::npos;  // a group's "path: reason"
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
    for (const Field& f : fields_) {
      f.write(o, f.name, j);
      if constexpr (std::is_default_constructible_v<S>) {
        if (f.flags & kOmitDefault) {
          nlohmann::json d;
          f.write(S{}, f.name, d);
          if (d[f.name] == j[f.name]) j.erase(f.name);
        }
      }
    }
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
  bool has(const std::string& name) const {
    for (const Field& f : fields_) {
      if (f.name == name) return true;
    }
    return false;
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
  using NestedDocs = std::pair<std::string, std::function<std::vector<FieldDoc>()>>;
  const std::vector<NestedDocs>& nested_docs() const { return nested_docs_; }
  /// The docs rows of the recipe keys in declaration order (a group's rows as "group.key");
  /// defaults from `S{}`.
  std::vector<FieldDoc> docs() const {
    std::vector<FieldDoc> rows;
    const S defaults{};
    size_t nested = 0;
    for (const Field& f : fields_) {
      if (f.flags & kPlanned) continue;
      if (f.shown) {
        rows.push_back({f.name, f.shown(defaults), f.allowed, f.doc});
      } else if (nested < nested_docs_.size() && nested_docs_[nested].first == f.name) {
        for (FieldDoc d : nested_docs_[nested++].second()) {
          d.key = f.name + "." + d.key;
          rows.push_back(d);
        }
      }
    }
    return rows;
  }

 private:
  template <typename C, typename Get>
  Fields& adopt(const Fields<C>& sub, Get get) {
    for (const auto& c : sub.fields()) {
      Field f;
      f.name = c.name;
      f.doc = c.doc;
      f.flags = c.flags;
      f.allowed = c.allowed;
      f.read = [r = c.read, get](const FieldSource& s, const std::string& k, S& o) {
        r(s, k, get(o));
      };
      f.write = [w = c.write, get](const S& o, const std::string& k, nlohmann::json& j) {
        w(get(o), k, j);
      };
      if (c.problem) f.problem = [p = c.problem, get](const S& o) { return p(get(o)); };
      if (c.shown) f.shown = [w = c.shown, get](const S& o) { return w(get(o)); };
      fields_.push_back(std::move(f));
    }
    for (const auto& n : sub.nested_docs()) nested_docs_.push_back(n);
    return *this;
  }
  template <typename T>
  static auto member_writer(T S::*m) {
    return [=](const S& o, const std::string& k, nlohmann::json& j) { j[k] = o.*m; };
  }
  template <typename Read, typename Write, typename Problem, typename Shown>
  Fields& add(const char* name, const char* doc, unsigned flags, Read read, Write write,
              Problem problem, const std::string& allowed, Shown shown) {
    Field f;
    f.name = name;
    f.doc = doc;
    f.flags = flags;
    f.read = read;
    f.write = write;
    if constexpr (!std::is_same_v<Problem, std::nullptr_t>) f.problem = problem;
    f.allowed = allowed;
    if constexpr (!std::is_same_v<Shown, std::nullptr_t>) f.shown = shown;
    fields_.push_back(std::move(f));
    return *this;
  }
  static std::string code(const std::string& s) { return "`" + s + "`"; }
  static std::string interval(IntegerRange r) {
    const std::string req = range_requirement(r);  // "must be in [a, b]", "must be >= a"
    return req.rfind("must be ", 0) == 0 && req.find("fit") == std::string::npos
               ? " " + req.substr(8)
               : "";
  }
  static std::string quoted_or_list(const std::vector<std::string>& names) {
    std::vector<std::string> q;
    for (const auto& n : names) q.push_back(code(n));
    return or_list(q);
  }
  std::vector<Field> fields_;
  std::vector<NestedDocs> nested_docs_;
};

}  // namespace upcycle::core
