#include "stages/command/command.h"

#include <stdexcept>

#include "core/error.h"
#include "core/process.h"

namespace upcycle::stages {

const std::vector<std::string>& command_placeholders() {
  static const std::vector<std::string> kNames = {"checkpoint", "model_dir", "model",  "hf",
                                                  "out",        "data_dir",  "threads"};
  return kNames;
}

std::string expand_template(const std::string& text,
                            const std::map<std::string, std::string>& vars) {
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
      if (it == vars.end())
        throw std::invalid_argument("unknown placeholder {" + name + "} in '" + text + "'");
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
  core::SpawnOptions o;
  o.argv = spec.argv;
  o.env = spec.env;
  o.cwd = spec.cwd;
  try {
    return core::wait_process(core::spawn_process(o));
  } catch (const ProcessError& e) {
    throw StageError(std::string("command: ") + e.what());
  }
}

}  // namespace upcycle::stages
