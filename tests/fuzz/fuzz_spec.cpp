// Fuzzes the job-spec decoder (`upcycle stage --spec`): JSON, the envelope, and every kind's reader
// and validation. Each input goes through all five readers (a spec is valid for at most one). A
// spec one accepts must survive a round trip: to_json, read again, the same JSON.
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/job_files.h"
#include "stages/spec/command.h"
#include "stages/spec/eval.h"
#include "stages/spec/prepare.h"
#include "stages/spec/train.h"
#include "stages/spec/upcycle.h"
#include "tests/fuzz/fuzz_support.h"

using namespace upcycle;
using namespace upcycle::stages;

template <typename Spec>
static void decode(const SpecReader& r) {
  Spec s;
  try {
    read_spec(r, s);
  } catch (const core::FieldError&) {
    return;
  }
  const nlohmann::json once = to_json(s);
  Spec again;
  try {
    read_spec(SpecReader(once), again);
  } catch (const core::FieldError& e) {
    fuzz::fail(std::string(Spec::kKind) +
               " spec accepted, but its to_json is rejected: " + e.what());
  }
  if (to_json(again) != once)
    fuzz::fail(std::string(Spec::kKind) + " spec changes in a round trip");
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = fuzz::scratch_dir() + "/spec.json";
  fuzz::write_text(path, std::string(reinterpret_cast<const char*>(data), size));
  nlohmann::json j;
  try {
    j = core::read_json_file(path);  // as `upcycle stage --spec` reads it
  } catch (const Error&) {
    return 0;
  }
  try {
    const SpecReader r(j);
    try {
      (void)read_header(r);
      (void)read_runtime(r);
    } catch (const core::FieldError&) {
    }
    decode<PrepareJobSpec>(r);
    decode<TrainJobSpec>(r);
    decode<UpcycleJobSpec>(r);
    decode<EvalJobSpec>(r);
    decode<CommandJobSpec>(r);
  } catch (const core::FieldError&) {
    // not an object
  }
  return 0;
}
