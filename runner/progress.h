// How far a running job is, from what it writes as it goes: its spec (the token budget) and the last
// line of its metrics.jsonl (tokens done, loss, tok/s). For `upcycle status`.
#pragma once

#include <string>

namespace upcycle::runner {

/// "5.1k/64.0k tokens (8%), loss 5.123, 1.2k tok/s, ETA 52 s" for a training job in `dir`;
/// "" when it has logged nothing yet or is not a training job.
std::string job_progress(const std::string& dir);

}  // namespace upcycle::runner
