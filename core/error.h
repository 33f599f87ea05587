// upcycle error hierarchy. Every folder throws these at its public API and translates third-party
// exceptions (YAML::Exception, SQLite::Exception, c10::Error) into them with context.
// The CLI maps them to exit codes: upcycle::Error -> 1 (user error), anything else -> 2 (internal).
#pragma once

#include <stdexcept>
#include <string>

namespace upcycle {

/// Exit codes shared by the CLI and by jobs (`upcycle stage`).
inline constexpr int kExitOk = 0;
inline constexpr int kExitUserError = 1;
inline constexpr int kExitInternalError = 2;
/// A job that caught SIGTERM/SIGUSR2, wrote a checkpoint and wants to be requeued (EX_TEMPFAIL).
inline constexpr int kExitPreempted = 75;

/// Base of all expected errors: bad input, missing files, failed jobs. Message is user-facing.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what, std::string hint = "")
      : std::runtime_error(what), hint_(std::move(hint)) {}
  /// An actionable suggestion printed after the message ("---> HINT"), or empty.
  const std::string& hint() const { return hint_; }

 private:
  std::string hint_;
};

/// Recipe or CLI problem. For recipes the message starts with "file:line:column: key.path: ".
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// SQLite store problem (open, migrate, ingest, query).
class StoreError : public Error {
 public:
  using Error::Error;
};

/// Executor problem: a job could not be launched, or failed.
class ClusterError : public Error {
 public:
  using Error::Error;
};

/// A program could not be started (core/process.h): not found, not executable, fork failed.
class ProcessError : public Error {
 public:
  using Error::Error;
};

/// A stage failed on its inputs: a corrupt checkpoint, a shard that does not parse, shapes that
/// differ.
class StageError : public Error {
 public:
  using Error::Error;
};

/// A bug in upcycle. Not derived from Error, so the CLI reports it as internal (exit 2).
class InternalError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

}  // namespace upcycle
