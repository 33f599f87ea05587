// Fuzzes the Hugging Face config.json reader (`upcycle import`, the import stage, plan time): JSON,
// every architecture's keys and the model they describe. Bad input must end in upcycle::Error; a
// config it accepts must describe a valid model whose parameters and FLOPs count without overflow.
#include <string>

#include "core/atomic_file.h"
#include "core/error.h"
#include "stages/arch/accounting.h"
#include "stages/arch/hf_config.h"
#include "tests/fuzz/fuzz_support.h"

using namespace upcycle;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = fuzz::scratch_dir() + "/hf";
  static const bool made = (core::make_dirs(dir), true);
  (void)made;
  fuzz::write_text(dir + "/config.json", std::string(reinterpret_cast<const char*>(data), size));
  stages::HfModel m;
  try {
    m = stages::read_hf_model(dir, std::nullopt);
  } catch (const Error&) {
    return 0;
  }
  try {
    m.model.validate();
  } catch (const core::FieldError& e) {
    fuzz::fail(std::string("config accepted, but its model is not valid: ") + e.what());
  }
  (void)stages::count_params(m.model);
  (void)stages::count_flops(m.model);
  return 0;
}
