// Fuzzes the `--where` query language: whatever compiles must be SQL that SQLite prepares and runs
// against a real store with every value bound. A compiled query that SQLite rejects is a finding.
#include <memory>
#include <string>

#include "analysis/query.h"
#include "core/error.h"
#include "tests/fuzz/fuzz_support.h"
#include "tracking/store.h"

using namespace upcycle;

static tracking::Store& store() {
  static std::unique_ptr<tracking::Store> s = [] {
    auto st = std::make_unique<tracking::Store>(fuzz::scratch_dir() + "/store.sqlite");
    tracking::RunInfo run;
    run.key = "k1";
    run.name = "r1";
    run.experiment = "fuzz";
    int64_t id = st->upsert_run(run);
    st->record_params(id, {{"seed", "1"}, {"stages.seed.optim.lr", "0.001"}});
    return st;
  }();
  return *s;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string where(reinterpret_cast<const char*>(data), size);
  analysis::CompiledQuery q;
  try {
    q = analysis::compile_query(where, size % 2 ? "r1" : "");
  } catch (const ConfigError&) {
    return 0;  // rejected with a message naming the column
  }
  try {
    (void)store().select(q.sql, q.binds);
  } catch (const Error& e) {
    fuzz::fail(std::string("compiled query fails in SQLite: ") + e.what() + "\nSQL: " + q.sql);
  }
  return 0;
}
