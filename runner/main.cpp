// The `upcycle` binary: parse the command line and dispatch (runner/cli.cpp).
#include "runner/cli.h"

int main(int argc, char** argv) { return upcycle::runner::run_cli(argc, argv); }
