#include "runner/progress.h"

#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/job_files.h"
#include "core/log.h"
#include "runner/plan.h"

namespace upcycle::runner {
namespace {

// The last complete line of a file that may be large and still growing.
std::string last_line(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return "";
  const std::streamoff size = in.tellg();
  const std::streamoff from = size > 65536 ? size - 65536 : 0;
  in.seekg(from);
  std::string tail(static_cast<size_t>(size - from), '\0');
  in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  size_t end = tail.rfind('\n');
  if (end == std::string::npos || end == 0) return "";
  size_t start = tail.rfind('\n', end - 1);
  return tail.substr(start == std::string::npos ? 0 : start + 1,
                     end - (start == std::string::npos ? 0 : start + 1));
}

}  // namespace

std::string job_progress(const std::string& dir) {
  try {
    const nlohmann::json spec = core::read_json_file(dir + "/" + core::kSpecFile);
    if (!spec.contains("tokens")) return "";
    const nlohmann::json m =
        nlohmann::json::parse(last_line(dir + "/" + core::kMetricsFile)).at("values");
    const double total = spec.at("tokens").get<double>(), done = m.value("tokens", 0.0);
    const double tps = m.value("tokens_per_s", 0.0), loss = m.value("loss", 0.0);
    char buf[160];
    std::snprintf(buf, sizeof(buf), "%s/%s tokens (%.0f%%), loss %.3f, %s tok/s",
                  format_si(done, "").c_str(), format_si(total, "").c_str(),
                  total > 0 ? 100 * done / total : 0.0, loss, format_si(tps, "").c_str());
    std::string out = buf;
    if (tps > 0 && total > done)
      out += ", ETA " + std::to_string(static_cast<long long>((total - done) / tps)) + " s";
    return out;
  } catch (const std::exception&) {
    return "";  // nothing logged yet, or a line being written: no progress to show
  }
}

LiveView::LiveView() {
  if (!core::footer_enabled()) return;
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      changed_ = false;
      lock.unlock();
      draw();
      lock.lock();
      wake_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_ || changed_; });
    }
  });
}

LiveView::~LiveView() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
  core::set_footer("");
}

// Each change redraws at once (the thread wakes), not a second later.
void LiveView::started(const std::string& label, const std::string& dir) {
  std::lock_guard<std::mutex> lock(mu_);
  running_[label] = dir;
  changed_ = true;
  wake_.notify_all();
}

void LiveView::finished(const std::string& label) {
  std::lock_guard<std::mutex> lock(mu_);
  running_.erase(label);
  changed_ = true;
  wake_.notify_all();
}

void LiveView::set_running(std::map<std::string, std::string> running) {
  std::lock_guard<std::mutex> lock(mu_);
  running_ = std::move(running);
  changed_ = true;
  wake_.notify_all();
}

void LiveView::draw() {
  std::map<std::string, std::string> running;
  {
    std::lock_guard<std::mutex> lock(mu_);
    running = running_;
  }
  std::string text;
  for (const auto& [label, dir] : running) {
    const std::string p = job_progress(dir);
    text += "  > " + label + (p.empty() ? "  running" : "  " + p) + "\n";
  }
  core::set_footer(text);
}

}  // namespace upcycle::runner
