// Plots with gnuplot (Debian's gnuplot-nox), each written as NAME.svg and NAME.png with the data
// (NAME.dat) and script (NAME.gp) that made it, so a figure can be restyled by hand. No LibTorch.
//   loss         training loss (lines) and validation loss (points) against tokens, every train
//   stage loss-flops   the same against training FLOPs (tokens x the model's training FLOPs per
//   token), the
//                axis of the compute-matched comparison
//   ppl          perplexity per domain, one bar per model, error bars across seeds
//   expert-util  per domain and layer of one evaluated mixture model, the FFN router's fraction of
//                tokens per expert and the attention router's mean gate per expert, as heatmaps
//                (the eval job's routing/<domain> rows; training metrics for runs from before them)
#pragma once

#include <string>
#include <vector>

#include "analysis/table.h"
#include "tracking/store.h"

namespace upcycle::analysis {

/// The plots `upcycle plot NAME` knows, with one line each.
const NamedList& plot_names();

/// Throws ConfigError listing the known plots unless `name` is one.
void check_plot_name(const std::string& name);

struct PlotOutput {
  std::string svg, png, pdf;       ///< paths written (PDF for papers)
  std::vector<std::string> notes;  ///< what the plot leaves out and why ("no MoE stage")
};

/// `s` as one gnuplot string expression that shows it literally: the one escaping function for text
/// that reaches a gnuplot script (titles, keys, tic labels, paths).
std::string gnuplot_quote(const std::string& s);

/// Writes plot `name` of `run` ("" = the latest) into `out_dir`, an output collection
/// (core::claim_output_collection: created with the marker, refused when it is someone else's).
/// `stage` picks the model of expert-util ("" = the last mixture model evaluated). Throws
/// StoreError naming what is missing, Error when gnuplot fails (with its message).
PlotOutput make_plot(tracking::Store& store, const std::string& name, const std::string& run,
                     const std::string& out_dir, const std::string& stage = "");

}  // namespace upcycle::analysis
