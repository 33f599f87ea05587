#include "stages/command/command.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "core/error.h"

namespace upcycle::stages {

const std::vector<std::string>& command_placeholders() {
  static const std::vector<std::string> kNames = {"checkpoint", "model_dir", "model", "hf", "out",
                                                  "data_dir", "threads"};
  return kNames;
}

std::string expand_template(const std::string& text, const std::map<std::string, std::string>& vars) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if ((c == '{' || c == '}') && i + 1 < text.size() && text[i + 1] == c) {
      out += c;
      ++i;
    } else if (c == '{') {
      size_t end = text.find('}', i);
      if (end == std::string::npos) throw std::invalid_argument("unclosed '{' in '" + text + "'");
      std::string name = text.substr(i + 1, end - i - 1);
      auto it = vars.find(name);
      if (it == vars.end()) throw std::invalid_argument("unknown placeholder {" + name + "} in '" + text + "'");
      out += it->second;
      i = end;
    } else if (c == '}') {
      throw std::invalid_argument("unmatched '}' in '" + text + "' (write }} for a literal brace)");
    } else {
      out += c;
    }
  }
  return out;
}

int run_command(const CommandSpec& spec) {
  if (spec.argv.empty()) throw StageError("command: empty argv");
  std::vector<std::string> args = spec.argv;
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  int err_pipe[2];  // reports an exec failure to the parent (closed on a successful exec)
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) throw StageError(std::string("command: pipe: ") + std::strerror(errno));
  pid_t pid = ::fork();
  if (pid < 0) throw StageError(std::string("command: fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::close(err_pipe[0]);
    for (const auto& [k, v] : spec.env) ::setenv(k.c_str(), v.c_str(), 1);
    if (!spec.cwd.empty() && ::chdir(spec.cwd.c_str()) != 0) {
      int e = errno;
      (void)!::write(err_pipe[1], &e, sizeof(e));
      ::_exit(127);
    }
    ::execvp(cargs[0], cargs.data());
    int e = errno;
    (void)!::write(err_pipe[1], &e, sizeof(e));
    ::_exit(127);
  }
  ::close(err_pipe[1]);
  int child_errno = 0;
  ssize_t got = ::read(err_pipe[0], &child_errno, sizeof(child_errno));
  ::close(err_pipe[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (got == static_cast<ssize_t>(sizeof(child_errno))) {
    throw StageError("command: cannot run '" + spec.argv[0] + "': " + std::strerror(child_errno));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace upcycle::stages
