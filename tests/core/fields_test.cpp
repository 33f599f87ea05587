// The field tables of core/fields.h: one declaration gives reading, ranges, JSON, key material and
// the docs rows; aliases, lifted and inherited fields keep the declaration's type and range.
#include "core/fields.h"

#include <gtest/gtest.h>

namespace upcycle::core {
namespace {

enum class Mode { kFast, kExact };
const EnumNames<Mode> kModes = {{Mode::kFast, "fast"}, {Mode::kExact, "exact"}};

struct Inner {
  double rate = 0.5;
};
struct Spec {
  int64_t steps = 10;
  Mode mode = Mode::kFast;
  bool on = true;
  std::string path;
  Inner inner;
};

const Fields<Inner>& inner_fields() {
  static const Fields<Inner> f =
      Fields<Inner>().number("rate", &Inner::rate, {0, 1, false, true}, "a rate");
  return f;
}

Fields<Spec> spec_fields() {
  Fields<Spec> f;
  f.integer("steps", &Spec::steps, {1, 100}, "how many")
      .choice("mode", &Spec::mode, kModes, "how")
      .boolean("on", &Spec::on, "whether")
      .text("path", &Spec::path, "where", kPlanned | kNotKeyed)
      .group("inner", &Spec::inner, inner_fields());
  return f;
}

std::string error_of(const nlohmann::json& j) {
  try {
    Spec s;
    spec_fields().read(JsonSource(j), s);
  } catch (const FieldError& e) {
    return e.what();
  }
  return "";
}

TEST(FieldsTest, OneDeclarationReadsWritesAndKeys) {
  Spec s;
  spec_fields().read(
      JsonSource({{"steps", 7}, {"mode", "exact"}, {"path", "/x"}, {"inner", {{"rate", 0.25}}}}),
      s);
  EXPECT_EQ(s.steps, 7);
  EXPECT_EQ(s.mode, Mode::kExact);
  EXPECT_TRUE(s.on);  // absent: the struct's default
  EXPECT_EQ(s.inner.rate, 0.25);
  const nlohmann::json out = spec_fields().to_json(s);
  EXPECT_EQ(out, nlohmann::json({{"steps", 7},
                                 {"mode", "exact"},
                                 {"on", true},
                                 {"path", "/x"},
                                 {"inner", {{"rate", 0.25}}}}));
  nlohmann::json key = out;
  key.erase("path");  // not keyed: a path follows from input keys
  EXPECT_EQ(spec_fields().key_material(s), key);
  Spec back;
  spec_fields().read(JsonSource(out), back);
  EXPECT_EQ(spec_fields().to_json(back), out);
}

TEST(FieldsTest, BadValuesAreErrorsAtTheirKey) {
  EXPECT_EQ(error_of({{"steps", 0}}), "steps: must be in [1, 100], got 0");
  EXPECT_EQ(error_of({{"steps", 2.5}}), "steps: expected an integer, got 2.5");
  EXPECT_EQ(error_of({{"mode", "slow"}}), "mode: 'slow' is not allowed; expected fast or exact");
  EXPECT_EQ(error_of({{"inner", {{"rate", 1.0}}}}), "inner.rate: must be in [0, 1)");
  EXPECT_EQ(error_of({{"inner", {{"rat", 1.0}}}}),
            "inner.rat: unknown field; did you mean 'rate'?");
  EXPECT_EQ(error_of({{"on", "yes"}}), "on: has the wrong type (string)");
  Spec s;
  s.inner.rate = 3;
  try {
    spec_fields().check(s);
    ADD_FAILURE() << "no error";
  } catch (const FieldError& e) {
    EXPECT_EQ(e.path(), "inner.rate");
    EXPECT_EQ(e.reason(), "must be in [0, 1)");
  }
}

// The docs rows come from the declarations and the struct's defaults: a field added to the table is
// a row, a planned field is none.
TEST(FieldsTest, DocsRowsAreTheDeclarations) {
  Fields<Spec> f = spec_fields();
  auto rows = f.docs();
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].key, "steps");
  EXPECT_EQ(rows[0].fallback, "`10`");
  EXPECT_EQ(rows[0].allowed, "integer in [1, 100]");
  EXPECT_EQ(rows[1].allowed, "`fast` or `exact`");
  EXPECT_EQ(rows[3].key, "inner.rate");
  EXPECT_EQ(rows[3].allowed, "number in [0, 1)");
  f.integer("extra", &Spec::steps, {0, 5}, "a new key");
  rows = f.docs();
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(docs_table({rows[4]}),
            "| key | default | allowed | meaning |\n|---|---|---|---|\n"
            "| `extra` | `10` | integer in [0, 5] | a new key |\n");
}

TEST(FieldsTest, AliasesAndLiftedFieldsKeepTheDeclaredRange) {
  struct Outer {
    Inner in;
  };
  Fields<Inner> renamed;
  renamed.alias("speed", inner_fields(), "rate", "the rate under another name");
  Fields<Outer> outer;
  outer.lift(&Outer::in, renamed);
  Outer o;
  outer.read(JsonSource(nlohmann::json{{"speed", 0.75}}), o);
  EXPECT_EQ(o.in.rate, 0.75);
  EXPECT_EQ(outer.to_json(o), nlohmann::json({{"speed", 0.75}}));
  EXPECT_THROW(outer.read(JsonSource(nlohmann::json{{"speed", 2}}), o), FieldError);
  EXPECT_THROW(renamed.alias("x", inner_fields(), "nope", ""), InternalError);
}

}  // namespace
}  // namespace upcycle::core
