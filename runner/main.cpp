// The `upcycle` binary: parse the command line and dispatch (runner/cli.cpp).
#include <csignal>

#include "runner/cli.h"

int main(int argc, char** argv) {
  // Past a file-size limit (ulimit -f) a write fails with EFBIG and its caller names the file;
  // the default SIGXFSZ would kill the process without a word.
  std::signal(SIGXFSZ, SIG_IGN);
  return upcycle::runner::run_cli(argc, argv);
}
