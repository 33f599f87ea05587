#include "core/tensorboard.h"

#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "core/error.h"
#include "core/host.h"

namespace upcycle::core {
namespace {

constexpr std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;  // reflected Castagnoli
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kCrcTable = make_crc_table();

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

// Protobuf wire format: a field key is (number << 3) | wire type.
void put_bytes_field(std::string& out, int field, const std::string& bytes) {
  put_varint(out, (uint64_t(field) << 3) | 2);
  put_varint(out, bytes.size());
  out += bytes;
}

std::string event_header(double wall_time, int64_t step) {
  std::string e;
  uint64_t bits;
  std::memcpy(&bits, &wall_time, 8);
  put_varint(e, (1 << 3) | 1);  // wall_time: double
  put_le(e, bits, 8);
  put_varint(e, 2 << 3);  // step: int64 (varint; two's complement for negatives)
  put_varint(e, static_cast<uint64_t>(step));
  return e;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

uint32_t crc32c(const std::string& data) {
  uint32_t c = 0xffffffffu;
  for (unsigned char b : data) c = kCrcTable[(c ^ b) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

uint32_t masked_crc32c(const std::string& data) {
  const uint32_t c = crc32c(data);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

std::string tfrecord(const std::string& data) {
  std::string len;
  put_le(len, data.size(), 8);
  std::string out = len;
  put_le(out, masked_crc32c(len), 4);
  out += data;
  put_le(out, masked_crc32c(data), 4);
  return out;
}

std::string scalar_event(double wall_time, int64_t step,
                         const std::map<std::string, double>& values) {
  std::string summary;
  for (const auto& [tag, v] : values) {
    std::string value;
    put_bytes_field(value, 1, tag);  // Summary.Value.tag
    const float f = static_cast<float>(v);
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    put_varint(value, (2 << 3) | 5);  // Summary.Value.simple_value: float
    put_le(value, bits, 4);
    put_bytes_field(summary, 1, value);  // Summary.value
  }
  std::string e = event_header(wall_time, step);
  put_bytes_field(e, 5, summary);  // Event.summary
  return e;
}

TensorBoardSink::~TensorBoardSink() {
  if (file_) std::fclose(file_);
}

void TensorBoardSink::write(const std::string& record) {
  if (!file_) {
    static std::atomic<int> files{0};  // two sinks of one process in one second: two files
    const double t = now_s();
    path_ = dir_ + "/events.out.tfevents." + std::to_string(static_cast<int64_t>(t)) + "." +
            host_name() + "." + std::to_string(::getpid()) + "." + std::to_string(files++);
    file_ = std::fopen(path_.c_str(), "ab");
    if (!file_) throw Error(path_ + ": cannot create the event file: " + std::strerror(errno));
    std::string version = event_header(t, 0);
    put_bytes_field(version, 3, "brain.Event:2");  // Event.file_version, the first record
    write(tfrecord(version));
  }
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size() ||
      std::fflush(file_) != 0)
    throw Error(path_ + ": cannot write the event file: " + std::strerror(errno));
}

void TensorBoardSink::log(int64_t step, const std::map<std::string, double>& values) {
  if (!values.empty()) write(tfrecord(scalar_event(now_s(), step, values)));
}

std::string eval_tag(const EvalRow& row) {
  return "eval/" + row.model + "/" + row.task + "/" + row.metric +
         (row.filter == "none" ? "" : "/" + row.filter);
}

void write_eval_events(const std::string& dir, const std::vector<EvalRow>& rows) {
  std::map<std::string, double> values;
  for (const auto& r : rows) values[eval_tag(r)] = r.value;
  TensorBoardSink(dir).log(0, values);
}

}  // namespace upcycle::core
