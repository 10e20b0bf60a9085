#!/usr/bin/env bash
# ThreadSanitizer over the multi-threaded code: the OpenMP forward pass (attention, golden logits
# and greedy runs, thread-count invariance), the batched GEMM kernels and the quantizer's worker
# threads, each with several OpenMP threads. Build directory: $TSAN_BUILD_DIR (build-tsan).
#
# Why clang + LLVM's libomp: GCC's libgomp is not built with TSan, so TSan cannot see its
# barriers and reports every parallel region as a race. libomp ships Archer (libarcher.so), an
# OpenMP tool that tells TSan about fork, join, barriers and tasks; its own unannotated internals
# are skipped with ignore_noninstrumented_modules=1. That leaves no false reports, so there is no
# suppressions file: any report is a real race and fails the run.
# Needs clang and libomp-14-dev (or the libomp-dev of the installed clang).
set -uo pipefail
cd "$(dirname "$0")/.."
build=${TSAN_BUILD_DIR:-build-tsan}
threads=${TSAN_THREADS:-4}
filter='Attention.*:*GoldenLogits.*:*GoldenGreedy.*:*GoldenQuantized.*:Limits/ThreadCounts.*:Gemm.*:QuantizeGolden.*:QuantizeDriver.*'
start=$(date +%s)
say() { echo "tsan-test [$(( $(date +%s) - start ))s]: $*"; }

say "configure + build qllm_tests in $build (clang, -fsanitize=thread)"
CC=${CC:-clang} CXX=${CXX:-clang++} cmake -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQLLM_TSAN=ON >/dev/null \
  || { say "FAILED: configure"; exit 1; }
cmake --build "$build" -j"${JOBS:-$(nproc)}" --target qllm_tests || { say "FAILED: build"; exit 1; }

archer=$(dirname "$(readlink -f "$(command -v "${CXX:-clang++}")")")/../lib/libarcher.so
if [ -f "$archer" ]; then
  export OMP_TOOL_LIBRARIES=$archer
else
  say "warning: $archer not found: OpenMP synchronization is only seen through pthread calls"
fi

say "run with OMP_NUM_THREADS=$threads: $filter"
OMP_NUM_THREADS=$threads TSAN_OPTIONS="halt_on_error=1 exitcode=66 ignore_noninstrumented_modules=1 ${TSAN_OPTIONS:-}" \
  "$build/tests/qllm_tests" --gtest_brief=1 --gtest_filter="$filter"
rc=$?
if [ $rc -ne 0 ]; then
  say "FAILED (exit $rc; 66 = ThreadSanitizer report)"
  exit 1
fi
say "no data race in $(( $(date +%s) - start ))s"
