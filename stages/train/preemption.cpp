#include "stages/train/preemption.h"

#include <csignal>

namespace upcycle::stages {
namespace {

volatile std::sig_atomic_t g_preempt = 0;

void on_signal(int) { g_preempt = 1; }

}  // namespace

void install_preemption_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGUSR2, &sa, nullptr);
}

bool preemption_requested() { return g_preempt != 0; }

}  // namespace upcycle::stages
