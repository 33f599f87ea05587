#include "core/metric_sink.h"

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"

namespace upcycle::core {

void JsonlMetricSink::log(int64_t step, const std::map<std::string, double>& values) {
  nlohmann::json vals = nlohmann::json::object();
  for (const auto& [k, v] : values) {
    if (std::isfinite(v)) {
      vals[k] = v;
    } else {
      vals[k] =
          nullptr;  // JSON has no NaN/Inf; a null marks a non-finite value (e.g. a diverged loss)
    }
  }
  double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  nlohmann::json line = {{"step", step}, {"time", now}, {"values", vals}};
  append_line(path_, line.dump());
}

}  // namespace upcycle::core
