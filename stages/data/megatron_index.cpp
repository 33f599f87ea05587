#include "stages/data/megatron_index.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"
#include "stages/data/token_shard.h"

namespace upcycle::stages {
namespace {

constexpr char kMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', 0, 0};
constexpr size_t kHeaderBytes = 9 + 8 + 1 + 8 + 8;

const char* dtype_of_code(uint8_t code) {
  switch (code) {
    case 1:
      return "uint8";
    case 3:
      return "int16";
    case 4:
      return "int32";
    case 5:
      return "int64";
    case 8:
      return "uint16";
    default:
      return nullptr;  // 2 int8, 6 float64, 7 float32: not token types
  }
}

uint8_t code_of_dtype(const std::string& dtype) {
  for (uint8_t c = 1; c <= 8; ++c) {
    const char* d = dtype_of_code(c);
    if (d && dtype == d) return c;
  }
  return 0;
}

template <class T>
T read_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // the index is little-endian, as is every machine we run on
  return v;
}

}  // namespace

std::string megatron_prefix(const std::string& path) {
  std::error_code ec;
  for (const char* ext : {".idx", ".bin"}) {
    const std::string e = ext;
    if (path.size() > e.size() && path.compare(path.size() - e.size(), e.size(), e) == 0) {
      const std::string prefix = path.substr(0, path.size() - e.size());
      return std::filesystem::is_regular_file(prefix + ".idx", ec) ? prefix : "";
    }
  }
  return std::filesystem::is_regular_file(path + ".idx", ec) ? path : "";
}

MegatronIndex::MegatronIndex(const std::string& prefix) : prefix_(prefix) {
  const std::string idx = prefix + ".idx", bin = prefix + ".bin";
  auto fail = [&](const std::string& why) {
    throw StageError(idx + ": " + why,
                     "a Megatron index is written by Megatron-LM's "
                     "tools/preprocess_data.py (or `upcycle` from jsonl)");
  };
  const int fd = ::open(idx.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw StageError(idx + ": cannot open the index: " + std::strerror(errno));
  struct stat st;
  ::fstat(fd, &st);
  bytes_ = static_cast<size_t>(st.st_size);
  if (bytes_ >= kHeaderBytes) {
    void* m = ::mmap(nullptr, bytes_, PROT_READ, MAP_PRIVATE, fd, 0);
    map_ = m == MAP_FAILED ? nullptr : static_cast<const uint8_t*>(m);
  }
  ::close(fd);
  if (bytes_ < kHeaderBytes) fail("too short for a header (" + std::to_string(bytes_) + " bytes)");
  if (!map_) fail(std::string("mmap failed: ") + std::strerror(errno));
  try {
    if (std::memcmp(map_, kMagic, sizeof(kMagic)) != 0) fail("not a Megatron index (bad magic)");
    const uint64_t version = read_le<uint64_t>(map_ + 9);
    if (version != 1) fail("index version " + std::to_string(version) + " (only 1 is known)");
    const uint8_t code = map_[17];
    const char* dtype = dtype_of_code(code);
    if (!dtype) fail("dtype code " + std::to_string(code) + " is not an integer token type");
    dtype_ = dtype;
    width_ = token_width(dtype_);
    const uint64_t s = read_le<uint64_t>(map_ + 18), d = read_le<uint64_t>(map_ + 26);
    const uint64_t want = kHeaderBytes + s * 4 + s * 8 + d * 8;
    if (s > (uint64_t(1) << 40) || d > (uint64_t(1) << 40) || want != bytes_)
      fail(std::to_string(s) + " sequences and " + std::to_string(d) + " document indices need " +
           std::to_string(want) + " bytes; the file has " + std::to_string(bytes_));
    if (d < 1) fail("no document indices (there must be at least the leading 0)");
    sequences_ = int64_t(s);
    documents_ = int64_t(d) - 1;
    const uint8_t* lengths = map_ + kHeaderBytes;
    // int64 arrays at 8-byte alignment? Only when S is even; read_le copes with either.
    pointers_ = reinterpret_cast<const int64_t*>(lengths + s * 4);
    doc_index_ = reinterpret_cast<const int64_t*>(lengths + s * 12);
    int64_t expected = 0;
    for (int64_t i = 0; i < sequences_; ++i) {
      const int32_t len = read_le<int32_t>(lengths + i * 4);
      const int64_t ptr = read_le<int64_t>(reinterpret_cast<const uint8_t*>(pointers_ + i));
      if (len < 0) fail("sequence " + std::to_string(i) + " has a negative length");
      if (ptr != expected)
        fail("sequence " + std::to_string(i) + " starts at byte " + std::to_string(ptr) + ", not " +
             std::to_string(expected) + " (sequences must be contiguous in .bin)");
      expected += int64_t(len) * width_;
    }
    for (int64_t k = 0; k <= documents_; ++k) {
      const int64_t at = read_le<int64_t>(reinterpret_cast<const uint8_t*>(doc_index_ + k));
      const int64_t before =
          k == 0 ? 0 : read_le<int64_t>(reinterpret_cast<const uint8_t*>(doc_index_ + k - 1));
      if ((k == 0 && at != 0) || at < before || at > sequences_ ||
          (k == documents_ && at != sequences_))
        fail("document index " + std::to_string(k) + " (" + std::to_string(at) +
             ") is out of order or range (0 first, " + std::to_string(sequences_) + " last)");
    }
    tokens_ = expected / width_;
    std::error_code ec;
    const auto bin_bytes = std::filesystem::file_size(bin, ec);
    if (ec) throw StageError(bin + ": cannot read beside its index: " + ec.message());
    if (int64_t(bin_bytes) != expected)
      throw StageError(bin + ": " + std::to_string(bin_bytes) + " bytes, its index " + idx +
                       " describes " + std::to_string(expected) + " (" + std::to_string(tokens_) +
                       " " + dtype_ +
                       " tokens); the pair does not belong together or is truncated");
  } catch (...) {
    ::munmap(const_cast<uint8_t*>(map_), bytes_);
    throw;
  }
}

MegatronIndex::~MegatronIndex() {
  if (map_) ::munmap(const_cast<uint8_t*>(map_), bytes_);
}

int64_t MegatronIndex::doc_start(int64_t d) const {
  const int64_t seq = read_le<int64_t>(reinterpret_cast<const uint8_t*>(doc_index_ + d));
  if (seq == sequences_) return tokens_;
  return read_le<int64_t>(reinterpret_cast<const uint8_t*>(pointers_ + seq)) / width_;
}

MegatronWriter::MegatronWriter(const std::string& prefix, const std::string& dtype)
    : prefix_(prefix), dtype_(dtype) {
  if (dtype != "uint16" && dtype != "int32")
    throw StageError(prefix + ": a Megatron dataset is written as uint16 or int32, not " + dtype);
  bin_ = std::make_unique<core::AtomicFileWriter>(prefix + ".bin");
}

MegatronWriter::~MegatronWriter() = default;

void MegatronWriter::add_document(const std::vector<uint32_t>& tokens) {
  const bool narrow = dtype_ == "uint16";
  for (uint32_t t : tokens) {
    if (narrow) {
      if (t > 0xFFFF) throw StageError(prefix_ + ": token " + std::to_string(t) + " needs int32");
      const uint16_t v = uint16_t(t);
      buffer_.append(reinterpret_cast<const char*>(&v), 2);
    } else {
      const int32_t v = int32_t(t);
      buffer_.append(reinterpret_cast<const char*>(&v), 4);
    }
  }
  lengths_.push_back(int32_t(tokens.size()));
  tokens_ += int64_t(tokens.size());
  if (buffer_.size() >= (size_t(4) << 20)) {
    bin_->write(buffer_.data(), buffer_.size());
    buffer_.clear();
  }
}

void MegatronWriter::finish() {
  bin_->write(buffer_.data(), buffer_.size());
  buffer_.clear();
  const uint64_t s = lengths_.size();
  std::string idx(kMagic, sizeof(kMagic));
  auto put = [&idx](const auto& v) { idx.append(reinterpret_cast<const char*>(&v), sizeof(v)); };
  put(uint64_t(1));
  put(code_of_dtype(dtype_));
  put(s);
  put(s + 1);  // one sequence per document
  idx.append(reinterpret_cast<const char*>(lengths_.data()), s * 4);
  int64_t offset = 0;
  const int64_t width = token_width(dtype_);
  for (int32_t len : lengths_) {
    put(offset);
    offset += int64_t(len) * width;
  }
  for (uint64_t k = 0; k <= s; ++k) put(int64_t(k));
  bin_->commit();
  core::write_file_atomic(prefix_ + ".idx", idx);
}

}  // namespace upcycle::stages
