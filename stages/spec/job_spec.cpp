#include "stages/spec/job_spec.h"

#include <algorithm>

#include "core/sha256.h"

namespace upcycle::stages {

const std::vector<std::string>& envelope_fields() {
  static const std::vector<std::string> kFields = {"kind",       "version", "key",    "stage",
                                                   "input_keys", "threads", "device", "world_size"};
  return kFields;
}

void write_envelope(nlohmann::json& j, const JobHeader& h, const JobRuntime& r) {
  j["kind"] = h.kind;
  j["version"] = h.version;
  j["key"] = h.key;
  j["stage"] = h.stage;
  j["input_keys"] = h.inputs;
  j["threads"] = r.threads;
  j["device"] = r.device;
  j["world_size"] = r.world_size;
}

JobHeader read_header(const SpecReader& s) {
  JobHeader h;
  h.kind = s.value<std::string>("kind");
  h.version = s.value<int>("version");
  h.key = s.value<std::string>("key");
  h.stage = s.value<std::string>("stage", "");
  h.inputs = s.value<std::vector<std::string>>("input_keys", {});
  check(h.key.size() == 64 &&
            std::all_of(h.key.begin(), h.key.end(), [](char c) { return std::isxdigit(c); }),
        "key", "expected a sha256 (64 hex digits)");
  return h;
}

JobRuntime read_runtime(const SpecReader& s) {
  JobRuntime r;
  r.threads = s.value<int>("threads", r.threads);
  r.device = s.value<std::string>("device", r.device);
  r.world_size = s.value<int>("world_size", r.world_size);
  check(r.threads >= 1 && r.threads <= 4096, "threads", "must be in [1, 4096]");
  check_choice(r.device, "device", {"cpu", "cuda"});
  check(r.world_size >= 1 && r.world_size <= 65536, "world_size", "must be in [1, 65536]");
  return r;
}

nlohmann::json numerics_of(const JobRuntime& r) {
  // Not the world size: a train job's checkpoint resumes on any number of ranks, so a job moved
  // to more or fewer nodes is the same job, continued (stages/train/train_checkpoint.h).
  nlohmann::json j = {{"device", r.device}};
  if (r.device == "cpu")
    j["threads"] = r.threads;  // GPU kernels do not split reductions by host threads
  return j;
}

std::string content_key(const std::string& kind, int version, const nlohmann::json& material,
                        const std::vector<std::string>& input_keys) {
  // nlohmann::json keeps object keys sorted and dump() is compact: the serialisation is canonical.
  nlohmann::json j = {
      {"kind", kind}, {"version", version}, {"spec", material}, {"inputs", input_keys}};
  return core::sha256_hex(j.dump());
}

void expect_fields(const SpecReader& s, std::initializer_list<const char*> own) {
  for (const auto& [k, v] : s.json().items()) {
    bool known =
        std::find(envelope_fields().begin(), envelope_fields().end(), k) != envelope_fields().end();
    for (const char* o : own) known = known || k == o;
    if (!known) throw core::FieldError(s.path(k), "unknown field");
  }
}

}  // namespace upcycle::stages
