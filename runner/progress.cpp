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

double JobProgress::eta_s() const {
  return tokens_per_s > 0 && total > tokens ? (total - tokens) / tokens_per_s : -1;
}

std::optional<JobProgress> read_job_progress(const std::string& dir) {
  try {
    const nlohmann::json spec = core::read_json_file(dir + "/" + core::kSpecFile);
    if (!spec.contains("tokens")) return std::nullopt;
    const nlohmann::json m =
        nlohmann::json::parse(last_line(dir + "/" + core::kMetricsFile)).at("values");
    JobProgress p;
    p.total = spec.at("tokens").get<double>();
    p.tokens = m.value("tokens", 0.0);
    p.tokens_per_s = m.value("tokens_per_s", 0.0);
    p.loss = m.value("loss", 0.0);
    return p;
  } catch (const std::exception&) {
    return std::nullopt;  // nothing logged yet, or a line being written: no progress to show
  }
}

std::string job_progress(const std::string& dir) {
  const std::optional<JobProgress> p = read_job_progress(dir);
  if (!p) return "";
  char buf[160];
  std::snprintf(buf, sizeof(buf), "%s/%s tokens (%.0f%%), loss %.3f, %s tok/s",
                format_si(p->tokens, "").c_str(), format_si(p->total, "").c_str(),
                p->total > 0 ? 100 * p->tokens / p->total : 0.0, p->loss,
                format_si(p->tokens_per_s, "").c_str());
  std::string out = buf;
  if (p->eta_s() >= 0) out += ", ETA " + std::to_string(static_cast<long long>(p->eta_s())) + " s";
  return out;
}

std::string progress_line(const std::string& label, const std::optional<JobProgress>& p) {
  if (!p) return "progress stage=" + label + " running";
  char buf[224];
  const double eta = p->eta_s();
  std::snprintf(buf, sizeof(buf),
                " tokens=%.0f/%.0f pct=%.1f loss=%.4f tok_s=%.0f eta_s=", p->tokens, p->total,
                p->total > 0 ? 100 * p->tokens / p->total : 0.0, p->loss, p->tokens_per_s);
  return "progress stage=" + label + buf +
         (eta >= 0 ? std::to_string(static_cast<long long>(eta)) : std::string("-"));
}

LiveView::LiveView(int every_s) {
  const bool tty = core::footer_enabled();
  if (!tty && every_s <= 0) return;
  const auto period = std::chrono::seconds(tty ? 1 : every_s);
  thread_ = std::thread([this, tty, period] {
    std::unique_lock<std::mutex> lock(mu_);
    auto next = std::chrono::steady_clock::now() + period;
    while (!stop_) {
      if (tty) {  // on a terminal each change redraws at once
        changed_ = false;
        lock.unlock();
        draw();
        lock.lock();
        wake_.wait_for(lock, period, [this] { return stop_ || changed_; });
      } else {  // in a log: lines at a steady period, whatever starts and finishes
        wake_.wait_until(lock, next, [this] { return stop_; });
        if (stop_) break;
        next += period;
        lock.unlock();
        print_lines();
        lock.lock();
      }
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
  core::set_footer("");  // nothing off a terminal
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

std::map<std::string, std::string> LiveView::running() {
  std::lock_guard<std::mutex> lock(mu_);
  return running_;
}

void LiveView::draw() {
  std::string text;
  for (const auto& [label, dir] : running()) {
    const std::string p = job_progress(dir);
    text += "  > " + label + (p.empty() ? "  running" : "  " + p) + "\n";
  }
  core::set_footer(text);
}

void LiveView::print_lines() {
  for (const auto& [label, dir] : running())
    core::log_info(progress_line(label, read_job_progress(dir)));
}

}  // namespace upcycle::runner
