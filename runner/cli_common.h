// Helpers shared by the CLI's command files (cli.cpp: running; cli_slurm.cpp: Slurm;
// cli_store.cpp: reading the store).
// Internal to runner/.
#pragma once

#include <boost/program_options.hpp>
#include <string>
#include <vector>

#include "core/integer.h"
#include "runner/plan.h"
#include "runner/recipe.h"
#include "runner/run.h"
#include "tracking/store.h"

namespace upcycle::runner::cli {

namespace po = boost::program_options;

/// Parses `args` against `desc` (+ positionals). Unknown options are user errors.
po::variables_map parse(const std::string& cmd, const std::vector<std::string>& args,
                        const po::options_description& desc,
                        const po::positional_options_description& pos);

/// The integer option --`name` (a po::value<std::string>) through core::parse_integer: exact,
/// suffixes k M B T allowed, within `range`; otherwise a ConfigError naming the flag.
int64_t integer_option(const po::variables_map& vm, const std::string& name,
                       core::IntegerRange range);

/// Prints the usage and returns true when --help was given.
bool wants_help(const po::variables_map& vm, const std::string& cmd, const char* synopsis,
                const po::options_description& desc);

/// --help, --store, --recipe (whose `store:` is the default store), --run and, `with_format`,
/// --format.
void add_store_options(po::options_description& desc, bool with_format = true);

/// The store path: --store, else the `store:` of --recipe, else runs/store.sqlite.
std::string store_path(const po::variables_map& vm);

/// Opens an existing store read-only; a missing one is a user error with a hint.
tracking::Store open_store_ro(const std::string& path);

/// Joins run tags with commas, as the store keeps them. A tag is 1 to 64 of [A-Za-z0-9_.:=+-];
/// throws ConfigError naming `option` and the tag otherwise.
std::string join_tags(const std::vector<std::string>& tags, const std::string& option);

/// Queues the points on Slurm and returns (or, with opts.wait, collects until nothing is left).
RunSummary submit_and_maybe_wait(const std::vector<RunPoint>& points, const RunOptions& opts);
/// `plan --executor slurm`: each job's request settled against the site, and every refusal;
/// returns the exit code (1 when Slurm would refuse a job).
int print_site_checks(Plan& plan, const Recipe& recipe, tracking::Store* store);
int cmd_wait(const std::vector<std::string>& args);
int cmd_collect(const std::vector<std::string>& args);
int cmd_cancel(const std::vector<std::string>& args);

int cmd_status(const std::vector<std::string>& args);
int cmd_query(const std::vector<std::string>& args);
int cmd_table(const std::vector<std::string>& args);
int cmd_compare(const std::vector<std::string>& args);
int cmd_tag(const std::vector<std::string>& args);
int cmd_plot(const std::vector<std::string>& args);
int cmd_report(const std::vector<std::string>& args);
int cmd_export(const std::vector<std::string>& args);
int cmd_import(const std::vector<std::string>& args);

}  // namespace upcycle::runner::cli
