// The CLI's store-reading commands: status, query, table, compare, and tag (the one that writes
// tags). Every one takes --store, or --recipe for the recipe's store.
#include <cctype>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "analysis/compare.h"
#include "analysis/query.h"
#include "analysis/render.h"
#include "analysis/tables.h"
#include "core/error.h"
#include "core/log.h"
#include "core/utf8.h"
#include "runner/accounting_report.h"
#include "runner/cli_common.h"
#include "runner/progress.h"
#include "runner/recipe.h"
#include "runner/slurm_run.h"

namespace upcycle::runner::cli {

po::variables_map parse(const std::string& cmd, const std::vector<std::string>& args,
                        const po::options_description& desc,
                        const po::positional_options_description& pos) {
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(desc).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw ConfigError("upcycle " + cmd + ": " + e.what(), "see `upcycle " + cmd + " --help`");
  }
  return vm;
}

int64_t integer_option(const po::variables_map& vm, const std::string& name,
                       core::IntegerRange range) {
  const std::string text = vm[name].as<std::string>();
  try {
    return core::parse_integer(text, range);
  } catch (const std::logic_error& e) {  // not an integer, or out of range: the reason says which
    throw ConfigError("--" + name + ": " + e.what());
  }
}

bool wants_help(const po::variables_map& vm, const std::string& cmd, const char* synopsis,
                const po::options_description& desc) {
  if (!vm.count("help")) return false;
  std::cout << "usage: upcycle " << cmd << " " << synopsis << "\n\n" << desc << "\n";
  return true;
}

void add_store_options(po::options_description& desc, bool with_format) {
  desc.add_options()("help,h", "show this help")(
      "store", po::value<std::string>()->default_value(""),
      "SQLite store (default: the --recipe's store, else runs/store.sqlite)")(
      "recipe", po::value<std::string>()->default_value(""), "take the store from this recipe")(
      "run", po::value<std::string>()->default_value(""), "run name (default: the latest)");
  if (with_format) {
    desc.add_options()("format", po::value<std::string>()->default_value("table"),
                       "table | md | latex (for people); csv | tsv | json (for programs: the "
                       "data alone on stdout, one document, messages on stderr)");
  }
}

std::string store_path(const po::variables_map& vm) {
  std::string store = vm["store"].as<std::string>();
  if (!store.empty()) return store;
  const std::string recipe = vm["recipe"].as<std::string>();
  return recipe.empty() ? kDefaultStore : load_recipe(recipe).store;
}

tracking::Store open_store_ro(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    throw StoreError(path + ": no store here",
                     "run a recipe first (`upcycle run RECIPE`) or pass --store");
  }
  return tracking::Store(path, tracking::Store::Mode::kReadOnly);
}

std::string join_tags(const std::vector<std::string>& tags, const std::string& option) {
  std::string out;
  for (const auto& t : tags) {
    bool ok = !t.empty() && t.size() <= 64;
    for (char c : t)
      ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || std::strchr("_.:=+-", c));
    if (!ok) {
      throw ConfigError(option + ": tag '" +
                        (core::invalid_utf8_at(t) == core::kValidUtf8 ? t : "(not UTF-8)") +
                        "' is not allowed: 1 to 64 of letters, digits and _ . : = + -");
    }
    out += (out.empty() ? "" : ",") + t;
  }
  return out;
}

int cmd_status(const std::vector<std::string>& args) {
  po::options_description desc("status options");
  add_store_options(desc);
  desc.add_options()("all", "every run with its status and job counts, instead of one run's jobs");
  auto vm = parse("status", args, desc, {});
  if (wants_help(vm, "status", "[--store PATH] [--run NAME | --all]", desc)) return 0;
  refresh_slurm_jobs(store_path(vm));
  auto store = open_store_ro(store_path(vm));
  auto format = analysis::parse_format(vm["format"].as<std::string>());
  if (vm.count("all")) {
    std::cout << analysis::render(
        store.select("SELECT r.name AS run, r.status, r.tags, COUNT(j.id) AS jobs, "
                     "SUM(j.status = 'done') AS done, SUM(j.status = 'failed') AS failed, "
                     "COALESCE(r.updated_at, r.created_at) AS updated "
                     "FROM runs r LEFT JOIN run_jobs rj ON rj.run_id = r.id LEFT JOIN jobs j ON "
                     "j.id = rj.job_id "
                     "GROUP BY r.id ORDER BY r.id"),
        format);
    return 0;
  }
  std::string run = analysis::run_or_latest(store, vm["run"].as<std::string>());
  auto rs = store.select(
      "SELECT stage, kind, status, attempts, exit_code, CASE WHEN wall_s IS NULL THEN NULL ELSE "
      "printf('%.1f', wall_s) "
      "END AS wall_s, "
      // each attempt's share of wall_s when there were several (requeues, retries)
      "(SELECT CASE WHEN COUNT(*) > 1 THEN group_concat(printf('%.1f', a.ended_at - "
      "a.started_at), '+') END FROM job_attempts a JOIN jobs jj ON jj.id = a.job_id WHERE jj.key = "
      "v_jobs.key AND a.started_at IS NOT NULL AND a.ended_at IS NOT NULL) AS attempt_s, "
      "substr(key, 1, 12) AS key, scheduler_id, "
      "CASE WHEN instr(error, char(10)) > 0 THEN substr(error, 1, instr(error, char(10)) - 1) ELSE "
      "error END AS why, "
      "dir FROM v_jobs WHERE run = ? ORDER BY stage",
      {run});
  // Running jobs show how far they are (their metrics.jsonl); the dir column is last.
  rs.columns.insert(rs.columns.end() - 1, "progress");
  for (auto& row : rs.rows) {
    const std::string status = tracking::text_of(row[2]);
    row.insert(row.end() - 1, status == "running"
                                  ? tracking::Cell(job_progress(tracking::text_of(row.back())))
                                  : tracking::Cell());
  }
  auto st = store.select("SELECT status, tags FROM runs WHERE name = ?", {run});
  if (st.rows.empty()) throw StoreError(store.path() + ": no run named '" + run + "'");
  // For people a heading; for programs the data alone (the heading goes to stderr).
  (analysis::is_data_format(format) ? std::cerr : std::cout)
      << "run " << run << ": " << tracking::text_of(st.rows[0][0])
      << (tracking::text_of(st.rows[0][1]).empty() ? ""
                                                   : " [" + tracking::text_of(st.rows[0][1]) + "]")
      << "\n";
  std::cout << analysis::render(rs, format);
  return 0;
}

int cmd_query(const std::vector<std::string>& args) {
  po::options_description desc("query options");
  add_store_options(desc);
  desc.add_options()(
      "where,w", po::value<std::string>()->default_value(""),
      "filter, e.g. \"task LIKE 'ppl/%' AND (model = 'bam_dm' OR params.seed IN (1, 2))\"; "
      "fields: run experiment stage model task metric filter value stderr n n_shot status "
      "tags params.<key> metrics.<key>");
  auto vm = parse("query", args, desc, {});
  if (wants_help(vm, "query", "[--where EXPR] [--run NAME] [--format table|csv|tsv|json]", desc))
    return 0;
  auto store = open_store_ro(store_path(vm));
  auto q = analysis::compile_query(vm["where"].as<std::string>(), vm["run"].as<std::string>());
  std::cout << analysis::render(store.select(q.sql, q.binds),
                                analysis::parse_format(vm["format"].as<std::string>()));
  return 0;
}

int cmd_table(const std::vector<std::string>& args) {
  po::options_description desc("table options");
  add_store_options(desc);
  desc.add_options()("which", po::value<std::string>()->default_value("ppl"),
                     "the table (--list shows them)")(
      "metric", po::value<std::string>()->default_value("ppl"),
      "perplexity tables: ppl (per token) or bpb (bits per byte, comparable across tokenizers)")(
      "all-rows", "also the paper's rows this run has no model for")("list", "list the tables");
  po::positional_options_description pos;
  pos.add("which", 1);
  auto vm = parse("table", args, desc, pos);
  if (wants_help(vm, "table",
                 "NAME [--run NAME] [--metric ppl|bpb] [--all-rows] "
                 "[--format table|md|csv|tsv|latex|json]",
                 desc))
    return 0;
  if (vm.count("list")) {
    for (const auto& [name, what] : analysis::table_names())
      std::cout << name << "  " << what << "\n";
    return 0;
  }
  const auto format = analysis::parse_format(vm["format"].as<std::string>());
  const analysis::TableDef& def = analysis::find_table(vm["which"].as<std::string>());
  if (def.source == analysis::TableSource::kRecipe) {  // beside BAM Tables 9 and 7
    const std::string recipe = vm["recipe"].as<std::string>();
    const auto models =
        models_for_accounting(recipe.empty() ? "recipes/paper/bam_590m.yaml" : recipe, {}, "");
    std::cout << analysis::render_table(accounting_vs_paper(models, def.name), format);
    return 0;
  }
  analysis::TableOptions options;
  options.run = vm["run"].as<std::string>();
  options.metric = vm["metric"].as<std::string>();
  options.all_rows = vm.count("all-rows") > 0;
  analysis::check_known(analysis::perplexity_metrics(), options.metric, "--metric");
  auto store = open_store_ro(store_path(vm));  // after every check of the arguments
  const analysis::Table t = analysis::make_table(store, def.name, options);
  if (t.empty()) {  // nothing on stdout: no document rather than an empty one
    core::log_error("upcycle table " + def.name + ": no rows: " + t.no_rows);
    if (!t.hint.empty()) core::log_error("---> HINT: " + t.hint);
    return kExitUserError;
  }
  std::cout << analysis::render_table(t, format);
  return 0;
}

int cmd_compare(const std::vector<std::string>& args) {
  po::options_description desc("compare options");
  add_store_options(desc);
  desc.add_options()("runs", po::value<std::vector<std::string>>()->composing(), "runs to compare")(
      "where,w", po::value<std::string>()->default_value(""),
      "filter the results, as in `upcycle query`")("params",
                                                   "also list the recipe keys whose values differ");
  po::positional_options_description pos;
  pos.add("runs", -1);
  auto vm = parse("compare", args, desc, pos);
  if (wants_help(vm, "compare",
                 "RUN RUN... [--where EXPR] [--params] [--format table|csv|tsv|json]", desc))
    return 0;
  if (!vm.count("runs")) throw ConfigError("upcycle compare: give two or more runs");
  auto runs = vm["runs"].as<std::vector<std::string>>();
  auto store = open_store_ro(store_path(vm));
  auto format = analysis::parse_format(vm["format"].as<std::string>());
  const bool params = vm.count("params") > 0;
  if (params && (format == analysis::Format::kCsv || format == analysis::Format::kTsv)) {
    throw ConfigError("upcycle compare: --params with --format " + vm["format"].as<std::string>() +
                          " would print two tables in one file",
                      "use --format json (one object with results and params), or run it twice");
  }
  auto results = analysis::compare_results(store, runs, vm["where"].as<std::string>());
  if (format == analysis::Format::kJson && params) {  // one document: {results, params}
    std::cout << "{\"results\": " << analysis::render(results, format)
              << ", \"params\": " << analysis::render(analysis::compare_params(store, runs), format)
              << "}\n";
    return 0;
  }
  std::cout << analysis::render(results, format);
  if (params) {
    std::cout << "\nparameters that differ:\n"
              << analysis::render(analysis::compare_params(store, runs), format);
  }
  return 0;
}

int cmd_tag(const std::vector<std::string>& args) {
  po::options_description desc("tag options");
  add_store_options(desc, /*with_format=*/false);
  desc.add_options()("tags", po::value<std::vector<std::string>>()->composing(),
                     "tags, e.g. baseline or owner=ana");
  po::positional_options_description pos;
  pos.add("tags", -1);
  auto vm = parse("tag", args, desc, pos);
  if (wants_help(vm, "tag", "TAG... [--run NAME]   (replaces the run's tags; no TAG clears them)",
                 desc))
    return 0;
  const std::string tags =
      vm.count("tags") ? join_tags(vm["tags"].as<std::vector<std::string>>(), "upcycle tag") : "";
  std::string path = store_path(vm);
  std::string run;
  {
    auto ro = open_store_ro(path);
    run = analysis::run_or_latest(ro, vm["run"].as<std::string>());
  }
  tracking::Store store(path);
  store.set_run_tags(run, tags);
  std::cout << "run " << run << ": tags " << (tags.empty() ? "(none)" : tags) << "\n";
  return 0;
}

}  // namespace upcycle::runner::cli
