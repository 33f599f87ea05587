#include "stages/spec/import.h"

namespace upcycle::stages {

void validate(const ImportJobSpec& s) {
  check(!s.path.empty() && s.path[0] == '/', "path", "must be an absolute directory path");
  check(s.fingerprint.size() == 64, "fingerprint", "must be a sha256 (64 hex digits)");
  check(s.seq_len >= 0 && s.seq_len <= (int64_t(1) << 24), "seq_len", "must be in [0, 2^24] (0: the checkpoint's)");
}

nlohmann::json to_json(const ImportJobSpec& s) {
  return {{"path", s.path}, {"fingerprint", s.fingerprint}, {"seq_len", s.seq_len}};
}

void read_spec(const SpecReader& r, ImportJobSpec& s) {
  expect_fields(r, {"path", "fingerprint", "seq_len"});
  s.path = r.value<std::string>("path");
  s.fingerprint = r.value<std::string>("fingerprint");
  s.seq_len = r.value("seq_len", s.seq_len);
  validate(s);
}

nlohmann::json key_material(const ImportJobSpec& s, const JobRuntime&) {
  return {{"fingerprint", s.fingerprint}, {"seq_len", s.seq_len}};
}

}  // namespace upcycle::stages
