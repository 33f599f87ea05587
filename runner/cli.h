// The `upcycle` command line (Boost.Program_options lives only in cli.cpp).
//   upcycle run|plan|status|query|table|params|stage ...
// Exit codes: 0 ok, 1 user error (message names the file, line and key, or the argument),
// 2 internal error, 75 (stage only) preempted.
#pragma once

namespace upcycle::runner {

/// Parses argv, dispatches, prints errors with hints; returns the process exit code. Never throws.
int run_cli(int argc, char** argv);

}  // namespace upcycle::runner
