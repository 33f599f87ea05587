// Fuzzes the job-result reader (result.json: what the runner ingests). Bad input, an edited result
// and a digest that does not match must end in upcycle::Error; a result it accepts must survive a
// round trip through write_job_result unchanged.
#include <string>

#include "core/error.h"
#include "core/job_files.h"
#include "tests/fuzz/fuzz_support.h"

using namespace upcycle;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = fuzz::scratch_dir();
  fuzz::write_text(dir + "/" + core::kResultFile,
                   std::string(reinterpret_cast<const char*>(data), size));
  std::optional<core::JobResult> r;
  try {
    r = core::read_job_result(dir);
  } catch (const Error&) {
    return 0;
  }
  if (!r) fuzz::fail("result.json is present but read as absent");
  try {
    core::write_job_result(dir, *r);
  } catch (const Error& e) {
    fuzz::fail(std::string("result accepted, but it cannot be written again: ") + e.what());
  }
  std::optional<core::JobResult> again;
  try {
    again = core::read_job_result(dir);
  } catch (const Error& e) {
    fuzz::fail(std::string("a rewritten result is rejected: ") + e.what());
  }
  if (!again || core::to_json(*again) != core::to_json(*r))
    fuzz::fail("a result changes in a round trip");
  return 0;
}
