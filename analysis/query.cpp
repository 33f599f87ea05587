#include "analysis/query.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include "core/error.h"
#include "core/suggest.h"

namespace upcycle::analysis {
namespace {

// Evaluation results with their run's status and tags; the query's WHERE applies to this.
const char* kBase =
    "SELECT r.name AS run, e.name AS experiment, rj.stage AS stage, er.model, er.task, er.metric, "
    "er.filter, er.value, er.stderr, er.n, er.n_shot, r.status, r.tags, r.id AS run_id, er.rowid "
    "AS result_id "
    "FROM eval_results er JOIN jobs j ON j.id = er.job_id JOIN run_jobs rj ON rj.job_id = j.id "
    "JOIN runs r ON r.id = rj.run_id JOIN experiments e ON e.id = r.experiment_id";

const std::vector<std::string> kColumns = {"run",    "experiment", "stage", "model",  "task",
                                           "metric", "filter",     "value", "stderr", "n",
                                           "n_shot", "status",     "tags"};

struct Token {
  enum Kind { kWord, kString, kNumber, kOp, kLParen, kRParen, kComma, kEnd } kind;
  std::string text;
  size_t column;  ///< 1-based
};

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

ConfigError error_at(size_t column, const std::string& msg) {
  return ConfigError(
      "--where: column " + std::to_string(column) + ": " + msg,
      "fields: run, experiment, stage, model, task, metric, filter, value, stderr, n, n_shot, "
      "status, "
      "tags, params.<key>, metrics.<key>; operators: = != < <= > >= LIKE IN, AND OR NOT");
}

// A finite decimal literal: [+-] digits [. digits] [e [+-] digits]. Not strtod's set, which also
// takes "nan", "inf", "0x10" and "1e999" (that matched every row or none).
bool is_decimal(const std::string& w) {
  size_t i = 0, digits = 0;
  auto run = [&] {
    size_t n = 0;
    for (; i < w.size() && std::isdigit(static_cast<unsigned char>(w[i])); ++i) ++n;
    return n;
  };
  if (i < w.size() && (w[i] == '+' || w[i] == '-')) ++i;
  digits += run();
  if (i < w.size() && w[i] == '.') {
    ++i;
    digits += run();
  }
  if (digits == 0) return false;
  if (i < w.size() && (w[i] == 'e' || w[i] == 'E')) {
    ++i;
    if (i < w.size() && (w[i] == '+' || w[i] == '-')) ++i;
    if (run() == 0) return false;
  }
  return i == w.size() && std::isfinite(std::strtod(w.c_str(), nullptr));
}

std::vector<Token> tokenize(const std::string& s) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    size_t col = i + 1;
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (c == '(' || c == ')' || c == ',') {
      out.push_back({c == '('   ? Token::kLParen
                     : c == ')' ? Token::kRParen
                                : Token::kComma,
                     {c},
                     col});
      ++i;
    } else if (c == '\'' || c == '"') {
      size_t end = s.find(c, i + 1);
      if (end == std::string::npos) throw error_at(col, "unterminated string");
      out.push_back({Token::kString, s.substr(i + 1, end - i - 1), col});
      i = end + 1;
    } else if (c == '=' || c == '!' || c == '<' || c == '>') {
      std::string op(1, c);
      if (i + 1 < s.size() && s[i + 1] == '=') op += '=';
      if (op == "!") throw error_at(col, "'!' must be followed by '='");
      out.push_back({Token::kOp, op, col});
      i += op.size();
    } else {
      size_t j = i;
      while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j])) &&
             std::string("()=,!<>'\"").find(s[j]) == std::string::npos) {
        ++j;
      }
      std::string w = s.substr(i, j - i);
      out.push_back({is_decimal(w) ? Token::kNumber : Token::kWord, w, col});
      i = j;
    }
  }
  out.push_back({Token::kEnd, "", s.size() + 1});
  return out;
}

class Parser {
 public:
  Parser(std::vector<Token> tokens, std::vector<std::string>& binds)
      : t_(std::move(tokens)), binds_(binds) {}

  std::string parse() {
    std::string sql = expr();
    if (peek().kind != Token::kEnd)
      throw error_at(peek().column, "unexpected '" + peek().text + "'");
    return sql;
  }

 private:
  int depth_ = 0;
  const Token& peek() const { return t_[pos_]; }
  Token next() { return t_[pos_++]; }
  bool keyword(const char* k) const {
    return peek().kind == Token::kWord && upper(peek().text) == k;
  }

  // A chain "a AND b AND c" is written flat, in one pair of parentheses: nesting each operator
  // would exceed SQLite's parser stack (about 100 levels) on long chains.
  std::string expr() {
    std::string sql = term();
    bool chain = false;
    while (keyword("OR")) {
      next();
      sql += " OR " + term();
      chain = true;
    }
    return chain ? "(" + sql + ")" : sql;
  }

  std::string term() {
    std::string sql = factor();
    bool chain = false;
    while (keyword("AND")) {
      next();
      sql += " AND " + factor();
      chain = true;
    }
    return chain ? "(" + sql + ")" : sql;
  }

  // Parentheses and NOT nest by recursion: bounded, so 12,000 '(' is an error, not a stack
  // overflow. SQLite's parser gives up near 32 nested parentheses ("parser stack overflow"); each
  // level here can add one, and the query around the filter a few.
  static constexpr int kMaxDepth = 24;

  std::string factor() {
    if (++depth_ > kMaxDepth) {
      throw error_at(peek().column, "nested deeper than " + std::to_string(kMaxDepth) + " levels");
    }
    struct Leave {
      int& d;
      ~Leave() { --d; }
    } leave{depth_};
    if (keyword("NOT")) {  // NOT binds tighter than AND and OR in SQL too; a chain of NOTs is its
                           // parity
      bool negate = false;
      while (keyword("NOT")) {
        next();
        negate = !negate;
      }
      return (negate ? "NOT " : "") + factor();
    }
    if (peek().kind == Token::kLParen) {
      next();
      std::string sql = expr();
      if (peek().kind != Token::kRParen) throw error_at(peek().column, "expected ')'");
      next();
      return sql;
    }
    return comparison();
  }

  // A literal: its bound text and whether it is numeric (numbers compare numerically).
  std::pair<std::string, bool> value() {
    Token v = next();
    if (v.kind == Token::kString || v.kind == Token::kWord) return {v.text, false};
    if (v.kind == Token::kNumber) return {v.text, true};
    throw error_at(v.column, "expected a value");
  }

  // A value compared with a numeric field must be a finite decimal number.
  std::pair<std::string, bool> value_for(bool text_field, const std::string& field) {
    const size_t column = peek().column;
    auto v = value();
    if (!text_field && !v.second) {
      throw error_at(column, "'" + field + "' is numeric: expected a finite decimal number, got '" +
                                 v.first + "'");
    }
    return v;
  }

  std::string comparison() {
    Token f = next();
    if (f.kind != Token::kWord) throw error_at(f.column, "expected a field name");
    // The SQL of the field, with its own bound key placed before the comparison's values.
    std::string lhs;
    std::vector<std::string> field_binds;
    bool text_field = true;
    if (f.text.rfind("params.", 0) == 0 && f.text.size() > 7) {
      lhs = "(SELECT p.value FROM params p WHERE p.run_id = base.run_id AND p.key = ?)";
      field_binds.push_back(f.text.substr(7));
    } else if (f.text.rfind("metrics.", 0) == 0 && f.text.size() > 8) {
      lhs =
          "(SELECT m.value FROM metrics m JOIN run_jobs rj2 ON rj2.job_id = m.job_id "
          "WHERE rj2.run_id = base.run_id AND rj2.stage = base.model AND m.key = ? "
          "ORDER BY m.step DESC LIMIT 1)";
      field_binds.push_back(f.text.substr(8));
      text_field = false;
    } else if (std::find(kColumns.begin(), kColumns.end(), f.text) != kColumns.end()) {
      lhs = "base." + f.text;
      text_field = f.text != "value" && f.text != "stderr" && f.text != "n" && f.text != "n_shot";
    } else {
      std::string guess = core::closest_match(f.text, kColumns);
      throw error_at(f.column, "unknown field '" + f.text + "'" +
                                   (guess.empty() ? "" : "; did you mean '" + guess + "'?"));
    }
    bool negate = false;
    if (keyword("NOT")) {
      next();
      negate = true;
      if (!keyword("IN")) throw error_at(peek().column, "expected IN after NOT");
    }
    if (keyword("IN")) {
      next();
      if (peek().kind != Token::kLParen) throw error_at(peek().column, "expected '(' after IN");
      next();
      std::vector<std::pair<std::string, bool>> values{value_for(text_field, f.text)};
      while (peek().kind == Token::kComma) {
        next();
        values.push_back(value_for(text_field, f.text));
      }
      if (peek().kind != Token::kRParen) throw error_at(peek().column, "expected ')' closing IN");
      next();
      std::string sql = "(";
      for (size_t i = 0; i < values.size(); ++i) {
        sql += (i ? " OR " : "") + compare(lhs, field_binds, "=", values[i], text_field);
      }
      sql += ")";
      return negate ? "(NOT " + sql + ")" : sql;
    }
    Token op = next();
    std::string sql_op;
    if (op.kind == Token::kOp) {
      sql_op = op.text;
    } else if (op.kind == Token::kWord && upper(op.text) == "LIKE") {
      sql_op = "LIKE";
    } else {
      throw error_at(op.column,
                     "expected an operator (= != < <= > >= LIKE IN) after '" + f.text + "'");
    }
    return compare(lhs, field_binds, sql_op,
                   sql_op == "LIKE" ? value() : value_for(text_field, f.text), text_field);
  }

  // Numbers compare numerically even against text columns (params are stored as text).
  std::string compare(const std::string& lhs, const std::vector<std::string>& field_binds,
                      const std::string& op, const std::pair<std::string, bool>& v,
                      bool text_field) {
    binds_.insert(binds_.end(), field_binds.begin(), field_binds.end());
    binds_.push_back(v.first);
    if (op == "LIKE") return "(" + lhs + " LIKE ?)";
    if (v.second) return "(CAST(" + lhs + " AS REAL) " + op + " CAST(? AS REAL))";
    if (!text_field) return "(" + lhs + " " + op + " CAST(? AS REAL))";
    return "(" + lhs + " " + op + " ?)";
  }

  std::vector<Token> t_;
  size_t pos_ = 0;
  std::vector<std::string>& binds_;
};

}  // namespace

CompiledQuery compile_query(const std::string& where, const std::string& run) {
  CompiledQuery q;
  std::string filter = "1";
  if (where.find_first_not_of(" \t") != std::string::npos)
    filter = Parser(tokenize(where), q.binds).parse();
  if (!run.empty()) {
    filter = "(" + filter + ") AND base.run = ?";
    q.binds.push_back(run);
  }
  q.sql = std::string(
              "SELECT run, stage, model, task, metric, filter, value, stderr, n, n_shot FROM (") +
          kBase + ") AS base WHERE " + filter + " ORDER BY run_id, result_id";
  return q;
}

}  // namespace upcycle::analysis
