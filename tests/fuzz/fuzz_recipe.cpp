// Fuzzes the recipe loader end to end: YAML, composition (include, overrides), sweep expansion,
// typed parsing and validation, then planning. The input is a recipe file written into a copy of
// recipes/ci/, so `include: common.yaml` resolves as it does for the real recipes. Lines starting
// with "#= " (YAML comments) are also applied as CLI overrides ("#= model.layers=4").
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "runner/plan.h"
#include "runner/recipe.h"
#include "tests/fuzz/fuzz_support.h"

namespace fs = std::filesystem;
using namespace upcycle;

static const std::string& recipe_dir() {
  static const std::string dir = [] {
    std::string d = fuzz::scratch_dir() + "/ci";
    fs::copy(std::string(UPCYCLE_SOURCE_DIR) + "/recipes/ci", d, fs::copy_options::recursive);
    return d;
  }();
  return dir;
}

static std::vector<std::string> overrides_in(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("#= ", 0) == 0) out.push_back(line.substr(3));
  }
  return out;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string path = recipe_dir() + "/fuzz-input.yaml";
  fuzz::write_text(path, text);
  try {
    // Each sweep point is parsed and planned anew: a grid of 10,000 points (the limit) takes
    // minutes under the sanitizers, so grids past 64 points are planned as their base recipe alone.
    // The limits on grids are cases of tests/e2e/bad_input_test.cpp.
    const std::vector<std::string> overrides = overrides_in(text);
    const runner::Recipe base = runner::load_recipe(path, overrides);
    double grid = 1;
    for (const auto& axis : base.sweep) grid *= static_cast<double>(axis.values.size());
    const std::vector<runner::Recipe> points =
        grid > 64 ? std::vector<runner::Recipe>{base} : runner::load_recipes(path, overrides);
    for (const auto& recipe : points) {
      runner::Plan plan = runner::make_plan(recipe);
      (void)runner::describe_plan(plan);
    }
  } catch (const Error&) {
    // a clear message for bad input: the expected outcome
  }
  return 0;
}
