#include "stages/data/math_problems.h"

#include <numeric>
#include <random>
#include <sstream>

#include "core/sha256.h"

namespace upcycle::stages {
namespace {

using Rng = std::mt19937_64;

int64_t uniform(Rng& rng, int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}

std::string addition(Rng& rng) {
  int64_t a = uniform(rng, 10, 99999), b = uniform(rng, 10, 99999);
  std::ostringstream s;
  s << "Problem: Compute " << a << " + " << b
    << ".\nSolution: Add column by column from the right.\n";
  int64_t carry = 0, x = a, y = b, place = 1;
  while (x > 0 || y > 0 || carry > 0) {
    int64_t dx = x % 10, dy = y % 10, sum = dx + dy + carry;
    s << "  " << dx << " + " << dy << (carry ? " + 1 (carry)" : "") << " = " << sum << ", write "
      << sum % 10 << (sum >= 10 ? ", carry 1" : "") << " in the " << place << "s place.\n";
    carry = sum / 10;
    x /= 10;
    y /= 10;
    place *= 10;
  }
  s << "Answer: " << a + b << "\n";
  return s.str();
}

std::string multiplication(Rng& rng) {
  int64_t a = uniform(rng, 12, 9999), b = uniform(rng, 12, 999);
  std::ostringstream s;
  s << "Problem: Compute " << a << " * " << b << ".\nSolution: Multiply " << a
    << " by each digit of " << b << " and add the shifted partial products.\n";
  int64_t y = b, place = 1, total = 0;
  while (y > 0) {
    int64_t d = y % 10, partial = a * d * place;
    s << "  " << a << " * " << d * place << " = " << partial << "\n";
    total += partial;
    y /= 10;
    place *= 10;
  }
  s << "  Sum of partial products = " << total << "\nAnswer: " << a * b << "\n";
  return s.str();
}

std::string division(Rng& rng) {
  int64_t d = uniform(rng, 2, 97), q = uniform(rng, 10, 9999), r = uniform(rng, 0, d - 1);
  int64_t n = d * q + r;
  std::ostringstream s;
  s << "Problem: Divide " << n << " by " << d << ".\nSolution: Long division, digit by digit.\n";
  std::string digits = std::to_string(n);
  int64_t rem = 0;
  for (char c : digits) {
    int64_t cur = rem * 10 + (c - '0');
    s << "  bring down " << c << ": " << cur << " / " << d << " = " << cur / d << " remainder "
      << cur % d << "\n";
    rem = cur % d;
  }
  s << "Answer: " << n << " = " << d << " * " << q << " + " << r << ", so the quotient is " << q
    << " and the remainder is " << r << ".\n";
  return s.str();
}

std::string order_of_operations(Rng& rng) {
  int64_t a = uniform(rng, 2, 50), b = uniform(rng, 2, 20), c = uniform(rng, 2, 20),
          e = uniform(rng, 1, 99);
  std::ostringstream s;
  s << "Problem: Evaluate " << a << " + " << b << " * (" << c << " - " << e << ").\n"
    << "Solution: Parentheses first: " << c << " - " << e << " = " << c - e << ".\n"
    << "  Then multiplication: " << b << " * " << c - e << " = " << b * (c - e) << ".\n"
    << "  Then addition: " << a << " + " << b * (c - e) << " = " << a + b * (c - e) << ".\n"
    << "Answer: " << a + b * (c - e) << "\n";
  return s.str();
}

std::string fractions(Rng& rng) {
  int64_t a = uniform(rng, 1, 12), b = uniform(rng, 2, 15), c = uniform(rng, 1, 12),
          d = uniform(rng, 2, 15);
  int64_t num = a * d + c * b, den = b * d, g = std::gcd(num, den);
  std::ostringstream s;
  s << "Problem: Add the fractions " << a << "/" << b << " and " << c << "/" << d << ".\n"
    << "Solution: The common denominator is " << b << " * " << d << " = " << den << ".\n"
    << "  " << a << "/" << b << " = " << a * d << "/" << den << " and " << c << "/" << d << " = "
    << c * b << "/" << den << ".\n"
    << "  Sum: " << num << "/" << den << ". The greatest common divisor of " << num << " and "
    << den << " is " << g << ".\n"
    << "Answer: " << num / g << "/" << den / g << "\n";
  return s.str();
}

std::string linear_equation(Rng& rng) {
  int64_t a = uniform(rng, 2, 19), x = uniform(rng, -50, 50), b = uniform(rng, -99, 99);
  int64_t c = a * x + b;
  std::ostringstream s;
  s << "Problem: Solve for x: " << a << "x " << (b < 0 ? "- " : "+ ") << std::llabs(b) << " = " << c
    << ".\nSolution: " << (b < 0 ? "Add " : "Subtract ") << std::llabs(b) << " on both sides: " << a
    << "x = " << c - b << ".\n  Divide both sides by " << a << ": x = " << c - b << " / " << a
    << " = " << x << ".\n  Check: " << a << " * " << x << (b < 0 ? " - " : " + ") << std::llabs(b)
    << " = " << c << ".\nAnswer: x = " << x << "\n";
  return s.str();
}

}  // namespace

std::vector<Document> generate_math_documents(uint64_t seed, int64_t target_bytes) {
  using Gen = std::string (*)(Rng&);
  static constexpr Gen kGenerators[] = {addition,  multiplication, division, order_of_operations,
                                        fractions, linear_equation};
  Rng rng(seed ^ 0x6d617468ULL);  // "math"
  std::vector<Document> docs;
  int64_t bytes = 0;
  while (bytes < target_bytes) {
    std::string text;
    int64_t problems = uniform(rng, 3, 8);
    for (int64_t i = 0; i < problems; ++i) {
      text += kGenerators[uniform(rng, 0, std::size(kGenerators) - 1)](rng);
      text += "\n";
    }
    bytes += static_cast<int64_t>(text.size());
    docs.push_back({text, "generator:math", core::sha256_hex(text)});
  }
  return docs;
}

}  // namespace upcycle::stages
