#include "runner/accounting_report.h"

#include <cmath>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>

#include "analysis/paper.h"
#include "analysis/render.h"
#include "core/error.h"
#include "runner/plan.h"
#include "runner/recipe.h"
#include "stages/arch/accounting.h"

namespace upcycle::runner {
namespace {

analysis::Format table_or_json(const std::string& format) {
  if (format == "table") return analysis::Format::kTable;
  if (format == "json") return analysis::Format::kJson;
  throw ConfigError("--format: unknown format '" + format + "' (expected table or json)");
}

// The first model an upcycle job of `method` makes (BAM with `kv`), or nullptr.
const stages::ModelConfig* upcycled(const Plan& plan, const std::string& method,
                                    stages::KvMode kv = stages::KvMode::kExpert) {
  for (const auto& j : plan.jobs) {
    if (j.kind != "upcycle" || j.spec.value("method", "") != method) continue;
    if (method != "bam" || j.model.attn_kv == kv) return &j.model;
  }
  return nullptr;
}

double training_ratio(const stages::ModelConfig* a, const stages::ModelConfig* b) {
  if (!a || !b) return std::numeric_limits<double>::quiet_NaN();
  return double(stages::count_flops(*a).training()) / double(stages::count_flops(*b).training());
}

// Three decimals, or an empty cell for NaN (a model the recipe lacks).
tracking::Cell rounded(double x) {
  if (std::isnan(x)) return tracking::Cell();
  return std::round(x * 1000) / 1000;
}

}  // namespace

std::vector<NamedModel> models_for_accounting(const std::string& input,
                                              const std::vector<std::string>& overrides,
                                              const std::string& stage) {
  if (!is_recipe_file(input)) {
    if (!overrides.empty() || !stage.empty()) {
      throw ConfigError(input + ": a model config takes neither overrides nor --stage");
    }
    return {{std::filesystem::path(input).stem().string(), load_model_config(input)}};
  }
  Plan plan = make_plan(load_recipe(input, overrides));
  std::vector<NamedModel> out;
  for (const auto& j : plan.jobs) {
    if (!j.produces_model) continue;
    if (!stage.empty() && j.stage != stage && j.stage_name != stage) continue;
    out.emplace_back(j.stage, j.model);
  }
  if (out.empty() && !stage.empty()) {
    throw ConfigError("--stage: '" + stage + "' is not a stage of " + input +
                      " that produces a model");
  }
  return out;
}

std::string params_report(const std::vector<NamedModel>& models, const std::string& format) {
  analysis::Format f = table_or_json(format);
  tracking::ResultSet rs;
  rs.columns = {"model", "total", "active", "embedding", "attention", "ffn", "routers", "norms"};
  for (const auto& [name, c] : models) {
    auto p = stages::count_params(c);
    rs.rows.push_back(
        {name, p.total, p.active, p.embedding, p.attention, p.ffn, p.routers, p.norms});
  }
  return analysis::render(rs, f);
}

std::string flops_report(const std::vector<NamedModel>& models, int64_t context,
                         const std::string& format) {
  analysis::Format f = table_or_json(format);
  if (f == analysis::Format::kJson) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& [name, c] : models) {
      auto fl = stages::count_flops(c, context);
      nlohmann::json layers = nlohmann::json::array();
      for (const auto& l : fl.layers) {
        layers.push_back({{"attention", l.attention},
                          {"ffn", l.ffn},
                          {"routers", l.routers},
                          {"total", l.total()}});
      }
      out.push_back({{"model", name},
                     {"context", context > 0 ? context : c.seq_len},
                     {"layers", layers},
                     {"head", fl.head},
                     {"forward", fl.forward},
                     {"training", fl.training()}});
    }
    return out.dump(2) + "\n";
  }
  tracking::ResultSet rs;
  rs.columns = {"model", "layers", "attention", "ffn", "routers", "layer_total", "forward/token"};
  for (const auto& [name, c] : models) {
    auto fl = stages::count_flops(c, context);
    // Consecutive identical layers fold into one row ("0-5", or "all 6").
    const auto& L = fl.layers;
    auto same = [&](size_t i, size_t j) {
      return L[i].attention == L[j].attention && L[i].ffn == L[j].ffn &&
             L[i].routers == L[j].routers;
    };
    for (size_t a = 0; a < L.size();) {
      size_t b = a;
      while (b + 1 < L.size() && same(a, b + 1)) ++b;
      std::string which = (a == 0 && b + 1 == L.size()) ? "all " + std::to_string(L.size())
                          : a == b                      ? std::to_string(a)
                                   : std::to_string(a) + "-" + std::to_string(b);
      rs.rows.push_back(
          {name, which, L[a].attention, L[a].ffn, L[a].routers, L[a].total(), fl.forward});
      a = b + 1;
    }
  }
  return analysis::render(rs, f);
}

Proportions proportions_of(const Plan& plan) {
  const stages::ModelConfig* dense = nullptr;
  for (const auto& j : plan.jobs) {
    if (!dense && j.produces_model && j.model.is_dense()) dense = &j.model;
  }
  if (!dense) throw ConfigError("the recipe has no dense model to take proportions of");
  Proportions p;
  const auto params = stages::count_params(*dense);
  p.dense_params = params.total;
  p.embedding_share = double(params.embedding) / double(params.total);
  const auto fl = stages::count_flops(*dense);
  int64_t attention = 0, ffn = 0;
  for (const auto& l : fl.layers) {
    attention += l.attention;
    ffn += l.ffn;
  }
  p.attention_share = double(attention) / double(fl.forward);
  p.ffn_share = double(ffn) / double(fl.forward);
  p.head_share = double(fl.head) / double(fl.forward);
  const auto* btx = upcycled(plan, "btx");
  p.bam_over_btx = training_ratio(upcycled(plan, "bam"), btx);
  p.bam_shared_over_btx = training_ratio(upcycled(plan, "bam", stages::KvMode::kShared), btx);
  return p;
}

std::string proportions_report(const std::vector<std::string>& recipes, const std::string& format) {
  if (format != "table" && format != "markdown" && format != "json")
    throw ConfigError("--format: unknown format '" + format +
                      "' (expected table, markdown or json)");
  tracking::ResultSet rs;
  rs.columns = {"recipe",        "dense_params",        "embedding_share", "attention_share",
                "ffn_share",     "head_share",          "bam_over_btx",    "bam_shared_over_btx",
                "cm_tokens_bam", "cm_tokens_bam_shared"};
  for (const auto& path : recipes) {
    if (!is_recipe_file(path)) throw ConfigError(path + ": --compare takes recipes");
    for (const Recipe& recipe : load_recipes(path)) {  // one row per sweep point
      const Proportions p = proportions_of(make_plan(recipe));
      rs.rows.push_back({recipe.run_name, p.dense_params, rounded(p.embedding_share),
                         rounded(p.attention_share), rounded(p.ffn_share), rounded(p.head_share),
                         rounded(p.bam_over_btx), rounded(p.bam_shared_over_btx),
                         rounded(1 / p.bam_over_btx), rounded(1 / p.bam_shared_over_btx)});
    }
  }
  return analysis::render(rs, format == "json"       ? analysis::Format::kJson
                              : format == "markdown" ? analysis::Format::kMarkdown
                                                     : analysis::Format::kTable);
}

namespace {

// Ours for one paper column: params total/active, or the first layer's FLOPs at `context`.
double ours_for(const stages::ModelConfig& c, const std::string& column, int64_t context) {
  if (column == "total") {
    return context ? static_cast<double>(stages::count_flops(c, context).layers.at(0).total())
                   : static_cast<double>(stages::count_params(c).total);
  }
  if (column == "active") return static_cast<double>(stages::count_params(c).active);
  const auto layer = stages::count_flops(c, context).layers.at(0);
  return static_cast<double>(column == "attention" ? layer.attention : layer.ffn);
}

}  // namespace

analysis::Table accounting_vs_paper(const std::vector<NamedModel>& models,
                                    const std::string& what) {
  const auto paper = analysis::paper_table(what);
  if (!paper) throw InternalError("no paper table " + what);
  const std::vector<std::string> columns =
      what == "params" ? std::vector<std::string>{"total", "active"}
                       : std::vector<std::string>{"attention", "ffn", "total"};
  analysis::Table t;
  t.title = "Ours beside " + paper->source;
  t.display.columns = {"paper row", "our model"};
  for (const auto& c : columns)
    t.display.columns.insert(t.display.columns.end(), {c + " (paper)", c + " (ours)", "diff"});
  t.display.columns.push_back("why they differ");
  t.data.columns = t.display.columns;
  for (const auto& row : paper->rows) {
    const NamedModel* ours = nullptr;
    for (const auto& alias : row.ours) {
      for (const auto& m : models) {
        if (!ours && m.first == alias) ours = &m;
      }
    }
    std::vector<tracking::Cell> cells{
        row.label, ours ? tracking::Cell(ours->first) : tracking::Cell("(not in recipe)")};
    std::string reasons;
    for (const auto& col : columns) {
      const double p = row.values.at(col);
      cells.push_back(static_cast<int64_t>(p));
      if (!ours) {
        cells.insert(cells.end(), {tracking::Cell(), tracking::Cell()});
        continue;
      }
      const double o = ours_for(ours->second, col, paper->context);
      cells.push_back(static_cast<int64_t>(o));
      cells.push_back(static_cast<int64_t>(o - p));
      if (o != p) {
        auto it = row.reasons.find(col);
        reasons += (reasons.empty() ? "" : "; ") + col + ": " +
                   (it == row.reasons.end() ? "unexplained" : it->second);
      }
    }
    cells.push_back(reasons);
    t.display.rows.push_back(cells);
    t.data.rows.push_back(cells);
  }
  if (paper->context)
    t.notes.push_back("ours at the paper's context length, " + std::to_string(paper->context) +
                      " tokens");
  t.notes.push_back(
      "rows of the paper are matched to the recipe's stage labels (analysis/paper_numbers.json)");
  return t;
}

}  // namespace upcycle::runner
