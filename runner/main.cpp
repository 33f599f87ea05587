// The `upcycle` binary: parse the command line and dispatch (runner/cli.cpp).
#include <csignal>

#include "runner/cli.h"

int main(int argc, char** argv) {
  // Past a file-size limit (ulimit -f) a write fails with EFBIG and its caller names the file;
  // the default SIGXFSZ would kill the process without a word.
  std::signal(SIGXFSZ, SIG_IGN);
  // A closed stdout (`upcycle run ... | head -1`) ends the printing, never a run: writes fail with
  // EPIPE instead, and the jobs and the store go on. Children get the default back (core/process).
  std::signal(SIGPIPE, SIG_IGN);
  return upcycle::runner::run_cli(argc, argv);
}
