// SIGTERM / SIGUSR2 turn into a flag the trainer polls once per step: it then checkpoints and exits
// with kExitPreempted. Slurm sends SIGUSR2 (--signal) before the time limit; the local executor
// sends SIGTERM on Ctrl-C.
#pragma once

namespace upcycle::stages {

/// Installs the handlers (idempotent).
void install_preemption_handlers();
/// True once a preemption signal arrived.
bool preemption_requested();

}  // namespace upcycle::stages
