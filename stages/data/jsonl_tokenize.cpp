#include "stages/data/jsonl_tokenize.h"

#include <zlib.h>
#ifdef UPCYCLE_HAVE_ZSTD
#include <zstd.h>
#endif

#include <atomic>
#include <cstdio>
#include <cstring>
#include <exception>
#include <thread>

#include "core/error.h"
#include "core/strings.h"
#include "stages/data/documents.h"
#include "stages/data/megatron_index.h"

namespace upcycle::stages {

// Fills a buffer with the next decompressed bytes; 0 at the end.
struct LineReader::Source {
  virtual ~Source() = default;
  virtual size_t read(char* out, size_t n) = 0;
};

namespace {

constexpr size_t kChunk = size_t(1) << 20;

struct GzipSource : LineReader::Source {  // zlib reads plain files through the same calls
  gzFile f;
  std::string path;
  explicit GzipSource(const std::string& p) : f(gzopen(p.c_str(), "rb")), path(p) {
    if (!f) throw StageError(p + ": cannot open: " + std::strerror(errno));
    gzbuffer(f, 1 << 18);
  }
  ~GzipSource() override { gzclose(f); }
  size_t read(char* out, size_t n) override {
    const int got = gzread(f, out, unsigned(n));
    if (got < 0) {
      int err = 0;
      throw StageError(path + ": cannot decompress: " + gzerror(f, &err));
    }
    return size_t(got);
  }
};

#ifdef UPCYCLE_HAVE_ZSTD
struct ZstdSource : LineReader::Source {
  std::FILE* f;
  ZSTD_DStream* z = ZSTD_createDStream();
  std::string path, in;
  ZSTD_inBuffer ib{nullptr, 0, 0};
  bool frame_open = false;
  explicit ZstdSource(const std::string& p)
      : f(std::fopen(p.c_str(), "rb")), path(p), in(kChunk, 0) {
    if (!f) throw StageError(p + ": cannot open: " + std::strerror(errno));
    ZSTD_initDStream(z);
  }
  ~ZstdSource() override {
    ZSTD_freeDStream(z);
    std::fclose(f);
  }
  size_t read(char* out, size_t n) override {
    ZSTD_outBuffer ob{out, n, 0};
    while (ob.pos == 0) {
      if (ib.pos == ib.size) {
        ib = {in.data(), std::fread(in.data(), 1, in.size(), f), 0};
        if (ib.size == 0) {
          if (frame_open) throw StageError(path + ": the zstd stream is truncated");
          return 0;
        }
      }
      const size_t r = ZSTD_decompressStream(z, &ob, &ib);
      if (ZSTD_isError(r)) throw StageError(path + ": cannot decompress: " + ZSTD_getErrorName(r));
      frame_open = r != 0;
    }
    return ob.pos;
  }
};
#endif

}  // namespace

bool is_jsonl_file(const std::string& path) {
  return core::ends_with(path, ".jsonl") || core::ends_with(path, ".jsonl.gz") ||
         core::ends_with(path, ".jsonl.zst");
}

LineReader::LineReader(const std::string& path) {
  if (core::ends_with(path, ".zst")) {
#ifdef UPCYCLE_HAVE_ZSTD
    src_ = std::make_unique<ZstdSource>(path);
#else
    throw StageError(path + ": this build of upcycle has no zstd (libzstd-dev at build time)");
#endif
  } else {
    src_ = std::make_unique<GzipSource>(path);
  }
}

LineReader::~LineReader() = default;

bool LineReader::next(std::string& line) {
  for (;;) {
    const size_t nl = buf_.find('\n', at_);
    if (nl != std::string::npos) {
      line.assign(buf_, at_, nl - at_);
      at_ = nl + 1;
      return true;
    }
    if (eof_) {
      if (at_ >= buf_.size()) return false;
      line.assign(buf_, at_, std::string::npos);  // a last line without '\n'
      at_ = buf_.size();
      return true;
    }
    buf_.erase(0, at_);  // keep the partial line, read more behind it
    at_ = 0;
    const size_t old = buf_.size();
    buf_.resize(old + kChunk);
    const size_t got = src_->read(buf_.data() + old, kChunk);
    buf_.resize(old + got);
    bytes_ += int64_t(got);
    eof_ = got == 0;
  }
}

JsonlTokenized tokenize_jsonl(const std::string& path, const std::string& text_field,
                              const Tokenizer& tok, const std::string& prefix) {
  JsonlTokenized out;
  MegatronWriter writer(prefix, tok.vocab_size() <= 65536 ? "uint16" : "int32");
  LineReader lines(path);
  std::string line, text;
  for (int64_t n = 1; lines.next(line); ++n) {
    if (!jsonl_text(line, text_field, path, n, text)) continue;
    std::vector<uint32_t> ids = tok.encode(text);
    ids.push_back(tok.eos_id());
    writer.add_document(ids);
    ++out.documents;
    out.tokens += int64_t(ids.size());
    out.text_bytes += int64_t(text.size());
  }
  if (out.documents == 0) throw StageError(path + ": no documents (every line is blank)");
  writer.finish();
  return out;
}

std::vector<JsonlTokenized> tokenize_jsonl_files(const std::vector<std::string>& paths,
                                                 const std::vector<std::string>& prefixes,
                                                 const std::string& text_field,
                                                 const Tokenizer& tok, int threads) {
  std::vector<JsonlTokenized> out(paths.size());
  std::vector<std::exception_ptr> errors(paths.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next++) < paths.size();) {
      try {
        out[i] = tokenize_jsonl(paths[i], text_field, tok, prefixes[i]);
      } catch (...) {
        errors[i] = std::current_exception();
        next = paths.size();  // stop taking files
      }
    }
  };
  std::vector<std::thread> pool;
  const size_t n = std::min<size_t>(std::max(threads, 1), paths.size());
  for (size_t t = 1; t < n; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  for (const auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
  return out;
}

}  // namespace upcycle::stages
