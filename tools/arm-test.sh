#!/usr/bin/env bash
# Cross-builds the kernels and their tests for aarch64 (tests/arm/CMakeLists.txt) and runs them
# under qemu-user:
#   1. QLLM_ISA=neon on a CPU with every extension (-cpu max): all kernel tests, which compare
#      the NEON table with the scalar reference, plus the golden quantization vectors;
#   2. QLLM_ISA=scalar: the same binary with the reference table active (without the long
#      random-dot sweep, which compares the tables directly whatever the active one is);
#   3. a CPU without dotprod (-cpu cortex-a72): dispatch must fall back to the reference.
# Installs nothing; needs the Debian packages g++-aarch64-linux-gnu qemu-user cmake
# libgtest-dev libfmt-dev nlohmann-json3-dev. Build directory: $ARM_BUILD_DIR (build-arm).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${ARM_BUILD_DIR:-build-arm}
start=$(date +%s)
say() { echo "arm-test [$(( $(date +%s) - start ))s]: $*"; }

missing=()
command -v aarch64-linux-gnu-g++ >/dev/null || missing+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
command -v cmake >/dev/null || missing+=(cmake)
[ -f /usr/src/googletest/CMakeLists.txt ] || missing+=(libgtest-dev)
[ -f /usr/include/fmt/format.h ] || missing+=(libfmt-dev)
[ -f /usr/include/nlohmann/json.hpp ] || missing+=(nlohmann-json3-dev)
if [ ${#missing[@]} -gt 0 ]; then
  say "FAILED: missing packages: ${missing[*]}"
  exit 1
fi

say "configure + build in $build"
cmake -S tests/arm -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE="$root/cmake/aarch64-toolchain.cmake" >/dev/null \
  || { say "FAILED: configure"; exit 1; }
cmake --build "$build" -j"$(nproc)" || { say "FAILED: build"; exit 1; }

results=()
failed=0
# run NAME CPU VAR=VALUE... -- GTEST_ARGS...: one qemu run of the test binary.
run() {
  local name=$1 cpu=$2 envs=() log rc t0
  shift 2
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  say "run: $name"
  t0=$(date +%s)
  log=$(mktemp)
  env "${envs[@]}" qemu-aarch64 -cpu "$cpu" -L /usr/aarch64-linux-gnu "$build/qllm_kernel_tests" \
    --gtest_brief=1 "$@" >"$log" 2>&1
  rc=$?
  cat "$log"
  local counts
  counts=$(grep -E '^\[  (PASSED|SKIPPED|FAILED)  ?\] [0-9]+ test' "$log" | sed -E 's/^\[  ([A-Z]+) *\] ([0-9]+) tests?.*/\2 \L\1/' | paste -sd, -)
  if [ $rc -ne 0 ] || ! grep -q '^\[  PASSED  \]' "$log"; then
    failed=1
    results+=("FAIL  $name: ${counts:-no result} (exit $rc, $(( $(date +%s) - t0 ))s)")
  else
    results+=("ok    $name: $counts ($(( $(date +%s) - t0 ))s)")
  fi
  rm -f "$log"
}

run "QLLM_ISA=neon, -cpu max" max QLLM_ISA=neon QLLM_EXPECT_ISA=neon --
run "QLLM_ISA=scalar, -cpu max" max QLLM_ISA=scalar QLLM_EXPECT_ISA=neon -- \
  --gtest_filter=-KernelVariants.VecDotWithinToleranceOfReference
run "no dotprod, -cpu cortex-a72" cortex-a72 QLLM_EXPECT_ISA=scalar -- \
  --gtest_filter='Quant/QuantGoldenTest.*:IsaKernels.*'

echo
echo "=== ARM (aarch64 under qemu) in $(( $(date +%s) - start ))s ==="
printf '  %s\n' "${results[@]}"
if [ $failed -ne 0 ]; then
  echo "arm-test: FAILED"
  exit 1
fi
echo "arm-test: all runs passed"
