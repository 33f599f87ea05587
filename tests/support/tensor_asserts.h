// expect_tensor_near: element-wise |a-b| <= atol + rtol*|b|, printing the max difference.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace upcycle::testing {

inline ::testing::AssertionResult tensors_near(const at::Tensor& a, const at::Tensor& b,
                                               double atol, double rtol = 0.0) {
  if (a.sizes() != b.sizes()) {
    return ::testing::AssertionFailure() << "shape " << a.sizes() << " vs " << b.sizes();
  }
  auto diff = (a.to(at::kDouble) - b.to(at::kDouble)).abs();
  auto tol = atol + rtol * b.to(at::kDouble).abs();
  double max_diff = diff.max().item<double>();
  if ((diff > tol).any().item<bool>()) {
    return ::testing::AssertionFailure() << "max |a-b| = " << max_diff << " > atol " << atol;
  }
  return ::testing::AssertionSuccess() << "max |a-b| = " << max_diff;
}

}  // namespace upcycle::testing
