#!/usr/bin/env bash
# Fails unless the build in BUILD_DIR (default ./build) is the CUDA configuration: upcycle-job and the
# GPU tests link LibTorch's CUDA libraries (not dropped by --as-needed), and the binary reports a CUDA
# LibTorch, c10d NCCL and Gloo, and grouped GEMM. CI runs it as the check_cuda_build test
# (UPCYCLE_REQUIRE_CUDA, on with the PyPI wheel); there is no GPU there, so this is compile and link.
set -euo pipefail
BUILD="${1:-build}"
fail=0
for bin in "$BUILD/bin/upcycle-job" "$BUILD/bin/gpu_tests"; do
  [ -x "$bin" ] || { echo "check_cuda_build: $bin is not built"; exit 1; }
  needed="$(readelf -d "$bin" | grep NEEDED || true)"
  for lib in libtorch_cuda.so libc10_cuda.so; do
    if ! grep -q "\[$lib\]" <<<"$needed"; then
      echo "check_cuda_build: $bin does not link $lib"
      fail=1
    fi
  done
done
info="$("$BUILD/bin/upcycle-job" build-info)"
echo "build-info: $info"
for feature in cuda_build gloo nccl grouped_mm; do
  if ! grep -q "\"$feature\":true" <<<"$info"; then
    echo "check_cuda_build: upcycle-job build-info has no $feature"
    fail=1
  fi
done
exit "$fail"
