// core/process.h, the one way the suite starts programs: exec failures come back as errors naming
// the program, the environment and directory reach the child, output is captured, time limits hold.
#include "core/process.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include "core/atomic_file.h"
#include "core/error.h"

namespace upcycle::core {
namespace {

TEST(ProcessTest, OutputAndExitCodesAreCaptured) {
  const ProcessResult r = run_process({"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
  EXPECT_EQ(run_process({"sh", "-c", "kill -9 $$"}).exit_code, 128 + 9);
}

TEST(ProcessTest, AProgramThatCannotRunIsAnErrorNamingIt) {
  try {
    run_process({"/nonexistent/upcycle-no-such-program"});
    ADD_FAILURE() << "no error";
  } catch (const ProcessError& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "/nonexistent/upcycle-no-such-program: cannot run: No such file"),
              std::string::npos)
        << e.what();
  }
  SpawnOptions o;
  o.argv = {"true"};
  o.cwd = "/nonexistent-dir";
  EXPECT_THROW(spawn_process(o), ProcessError);
}

TEST(ProcessTest, EnvironmentDirectoryAndDescriptorsReachTheChild) {
  char dir[] = "/tmp/upcycle-process-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string out = std::string(dir) + "/out.txt";
  const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  SpawnOptions o;
  o.argv = {"sh", "-c", "echo \"$UPCYCLE_X $(pwd)\"; [ \"$(ps -o pgid= $$ | tr -d ' ')\" = $$ ]"};
  o.env = {{"UPCYCLE_X", "it's \"quoted\""}};
  o.cwd = dir;
  o.stdout_fd = fd;
  o.own_process_group = true;
  EXPECT_EQ(wait_process(spawn_process(o)), 0);
  ::close(fd);
  EXPECT_EQ(read_file(out), std::string("it's \"quoted\" ") + dir + "\n");
  std::remove(out.c_str());
  ::rmdir(dir);
}

TEST(ProcessTest, ATimeLimitKillsTheChild) {
  const ProcessResult r = run_process({"sleep", "30"}, 0.2);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.exit_code, 124);
}

TEST(ProcessTest, ShellQuoteMakesOneWord) {
  EXPECT_EQ(shell_quote("a b"), "'a b'");
  EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
  const ProcessResult r = run_process({"sh", "-c", "printf %s " + shell_quote("$(id) ; 'x'")});
  EXPECT_EQ(r.out, "$(id) ; 'x'");
}

}  // namespace
}  // namespace upcycle::core
