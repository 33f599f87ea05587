// `upcycle plot` and `upcycle report`: figures and the HTML report from the store (analysis/).
#include <iostream>

#include "analysis/plots.h"
#include "analysis/report.h"
#include "core/error.h"
#include "runner/cli_common.h"

namespace upcycle::runner::cli {

int cmd_plot(const std::vector<std::string>& args) {
  po::options_description desc("plot options");
  add_store_options(desc, /*with_format=*/false);
  desc.add_options()("which", po::value<std::string>(), "the plot (--list shows them)")(
      "out", po::value<std::string>()->default_value("runs/plots"),
      "directory for NAME.svg, NAME.png, NAME.pdf, .dat, .gp")(
      "stage", po::value<std::string>()->default_value(""),
      "expert-util: the mixture model (default: the last one evaluated)")("list", "list the plots");
  po::positional_options_description pos;
  pos.add("which", 1);
  auto vm = parse("plot", args, desc, pos);
  if (wants_help(vm, "plot", "NAME [--run NAME] [--out DIR] [--stage S]", desc)) return 0;
  if (vm.count("list") || !vm.count("which")) {
    if (!vm.count("list")) std::cout << "upcycle plot NAME, with NAME one of:\n";
    for (const auto& [name, what] : analysis::plot_names())
      std::cout << "  " << name << "  " << what << "\n";
    return vm.count("list") ? 0 : 1;
  }
  const std::string which = vm["which"].as<std::string>();
  analysis::check_plot_name(which);  // before looking for a store
  auto store = open_store_ro(store_path(vm));
  auto out = analysis::make_plot(store, which, vm["run"].as<std::string>(),
                                 vm["out"].as<std::string>(), vm["stage"].as<std::string>());
  for (const auto& n : out.notes) std::cerr << "note: " << n << "\n";  // stdout: the paths alone
  std::cout << out.svg << "\n" << out.png << "\n" << out.pdf << "\n";
  return 0;
}

int cmd_report(const std::vector<std::string>& args) {
  po::options_description desc("report options");
  desc.add_options()("help,h", "show this help")("store",
                                                 po::value<std::string>()->default_value(""),
                                                 "SQLite store (default: runs/store.sqlite)")(
      "recipe", po::value<std::string>()->default_value(""), "take the store from this recipe")(
      "run", po::value<std::vector<std::string>>()->composing(),
      "a run to report (repeat; default: the latest)")(
      "out", po::value<std::string>()->default_value("runs/report"),
      "directory for RUN/report.html (with RUN/plots/) and index.html");
  auto vm = parse("report", args, desc, {});
  if (wants_help(vm, "report", "[--run NAME ...] [--out DIR]", desc)) return 0;
  auto store = open_store_ro(store_path(vm));
  const auto runs =
      vm.count("run") ? vm["run"].as<std::vector<std::string>>() : std::vector<std::string>{};
  const analysis::ReportPaths paths =
      analysis::write_report(store, runs, vm["out"].as<std::string>());
  for (const auto& p : paths.pages) std::cout << p << "\n";
  std::cout << paths.index << "\n";
  return 0;
}

}  // namespace upcycle::runner::cli
