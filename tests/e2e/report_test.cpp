// The HTML report in a real browser: `upcycle run` on recipes/ci/tiny.yaml ends by writing
// ROOT/report/tiny/report.html and ROOT/report/index.html; headless Chromium (Debian's chromium,
// with every host name unresolvable, so nothing can come from a network) loads it from the file
// alone, every embedded plot decodes (the page counts the images whose naturalWidth > 0), the
// tables and provenance are there, the page logs nothing to the console, it fits a 1280x800 window
// without scrolling sideways (the page's scrollWidth, as the page measures it), and a screenshot of
// it is a real picture.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "core/atomic_file.h"
#include "tests/support/run_binary.h"
#include "tests/support/temp_dir.h"

namespace upcycle {
namespace {

using testing::run_binary;

std::string find_chromium() {
  for (const char* p :
       {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"}) {
    if (std::filesystem::exists(p)) return p;
  }
  return "";
}

TEST(ReportBrowserTest, TheReportOfATinyRunRendersOfflineInChromium) {
  const std::string chromium = find_chromium();
  ASSERT_FALSE(chromium.empty())
      << "headless Chromium is needed (scripts/setup.sh installs Debian's chromium)";
  testing::TempDir dir;
  auto run =
      run_binary({UPCYCLE_BINARY, "run", UPCYCLE_SOURCE_DIR "/recipes/ci/tiny.yaml"}, dir.path());
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const std::string html_path = dir / "runs/report/tiny/report.html";
  EXPECT_NE(run.output.find("report: runs/report/tiny/report.html"), std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("all runs: runs/report/index.html"), std::string::npos) << run.output;
  const std::string index = core::read_file(dir / "runs/report/index.html");
  EXPECT_NE(index.find("<a href=\"tiny/report.html\">report</a>"), std::string::npos) << index;
  ASSERT_TRUE(std::filesystem::exists(html_path));
  const std::string html = core::read_file(html_path);
  // Self-contained: no reference to anything outside the file.
  EXPECT_FALSE(
      std::regex_search(html, std::regex(R"re((src|href)\s*=\s*["']?(https?:|//|file:))re")))
      << "external reference";
  EXPECT_EQ(html.find("url("), std::string::npos);

  auto browse = [&](const std::vector<std::string>& what) {
    std::vector<std::string> argv = {chromium,
                                     "--headless",
                                     "--no-sandbox",
                                     "--disable-gpu",
                                     "--disable-dev-shm-usage",
                                     "--host-resolver-rules=MAP * ~NOTFOUND",
                                     "--virtual-time-budget=10000",
                                     "--enable-logging=stderr",
                                     "--v=0",
                                     "--user-data-dir=" + (dir / "chromium-profile")};
    argv.push_back("--window-size=1280,800");  // a screenshot's own size comes after, and wins
    argv.insert(argv.end(), what.begin(), what.end());
    argv.push_back("file://" + html_path);
    return run_binary(argv, dir.path());
  };
  auto dom = browse({"--dump-dom"});
  ASSERT_EQ(dom.exit_code, 0) << dom.output;
  // Chromium logs every console message and uncaught exception of the page as INFO:CONSOLE.
  EXPECT_EQ(dom.output.find(":CONSOLE"), std::string::npos) << "console output from the page:\n"
                                                            << dom.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      dom.output, m, std::regex(R"re(<body data-images="(\d+)" data-images-ok="(\d+)")re")))
      << "the page's load handler did not run:\n"
      << dom.output.substr(0, 2000);
  EXPECT_EQ(m[1], "4") << "loss, loss-flops, ppl and expert-util";
  EXPECT_EQ(m[2], m[1]) << "every embedded plot decodes";
  ASSERT_TRUE(std::regex_search(
      dom.output, m, std::regex(R"re(data-scroll-width="(\d+)" data-client-width="(\d+)")re")));
  EXPECT_LE(std::stoi(m[1]), 1280) << "the page is wider than a 1280 px window";
  EXPECT_EQ(m[1], m[2]) << "nothing scrolls sideways: scrollWidth = clientWidth";
  for (const char* part :
       {"Perplexity per domain (BAM Table 1 (590M seed) layout)", "Downstream tasks",
        "Final validation loss", "BAM DM (Expert KV)", "<h3>Provenance</h3>",
        "runner binary sha256", "resolved recipe", "<td>bam_dm</td>"}) {
    EXPECT_NE(dom.output.find(part), std::string::npos) << part;
  }
  // A screenshot: the page renders to pixels (a blank page is a few kB; this one has tables and
  // plots).
  auto shot = browse({"--screenshot=" + (dir / "report.png"), "--window-size=1280,2400"});
  ASSERT_EQ(shot.exit_code, 0) << shot.output;
  const std::string png = core::read_file(dir / "report.png");
  EXPECT_EQ(png.substr(1, 3), "PNG");
  EXPECT_GT(png.size(), 50u << 10) << "a nearly empty screenshot";
  // The plots' sources are beside the report for reuse in a paper.
  int svgs = 0;
  int pdfs = 0;
  for (const auto& e :
       std::filesystem::recursive_directory_iterator(dir / "runs/report/tiny/plots")) {
    svgs += e.path().extension() == ".svg";
    pdfs += e.path().extension() == ".pdf" && core::read_file(e.path()).rfind("%PDF-", 0) == 0;
  }
  EXPECT_EQ(svgs, 4);
  EXPECT_EQ(pdfs, 4) << "a PDF of every plot, for papers";
}

}  // namespace
}  // namespace upcycle
