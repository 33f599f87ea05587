// Inside tracking/ only: SQLite's exceptions as StoreError with the store's path and what was being
// done.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include <SQLiteCpp/SQLiteCpp.h>

#include <sqlite3.h>

#include "core/error.h"

namespace upcycle::tracking {

// SQLite's message, with the operating system's reason for an I/O error: "disk I/O error" alone
// does not say that the disk is full or a file-size limit was reached.
inline std::string sqlite_reason(const SQLite::Exception& e, SQLite::Database* db) {
  std::string out = e.what();
  const int code = e.getErrorCode();
  if (db && (code == SQLITE_IOERR || code == SQLITE_FULL || code == SQLITE_CANTOPEN)) {
    if (int err = sqlite3_system_errno(db->getHandle()); err != 0)
      out += " (" + std::string(std::strerror(err)) + ")";
  }
  return out;
}

// Runs `fn` and rethrows SQLite exceptions as StoreError with `what` and the store path for
// context.
template <typename Fn>
auto guarded(const std::string& path, SQLite::Database* db, const std::string& what, Fn&& fn)
    -> decltype(fn()) {
  try {
    return fn();
  } catch (const SQLite::Exception& e) {
    throw StoreError(path + ": " + what + ": " + sqlite_reason(e, db));
  }
}

// Binds `v` at `at`, or NULL when it is empty.
template <typename T>
void bind_optional(SQLite::Statement& st, int at, const std::optional<T>& v) {
  if (v)
    st.bind(at, *v);
  else
    st.bind(at);
}

// The id of the job `key`; StoreError "PATH: WHAT of unknown job KEY" when there is none.
inline int64_t job_id_of(SQLite::Database& db, const std::string& path, const std::string& key,
                         const std::string& what) {
  SQLite::Statement id(db, "SELECT id FROM jobs WHERE key = ?");
  id.bind(1, key);
  if (!id.executeStep()) throw StoreError(path + ": " + what + " of unknown job " + key);
  return id.getColumn(0).getInt64();
}

}  // namespace upcycle::tracking
