#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang with ASan + UBSan), writes their seed corpora and
# runs each one for SECONDS: first over its seeds and the corpus saved by earlier runs (the
# replay), then mutating. Stops a target at its first crash, hang (-timeout) or sanitizer report
# and leaves the input in $FUZZ_BUILD_DIR/fuzz-artifacts/TARGET/. Exit 1 if any target failed.
#   tools/fuzz.sh SECONDS [TARGET...]      e.g. tools/fuzz.sh 60, tools/fuzz.sh 600 fuzz_gguf
# Needs clang, libclang-rt-14-dev (libFuzzer) and libomp-14-dev (OpenMP for clang).
# Seeds are generated in the build directory; files from ../shared ($QLLM_SHARED_DIR) are
# copied there too, never into the source tree.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${1:?usage: tools/fuzz.sh SECONDS [TARGET...]}
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_gguf fuzz_tokenizer fuzz_kernels fuzz_quantize fuzz_sampler)
build=${FUZZ_BUILD_DIR:-build-fuzz}
shared=${QLLM_SHARED_DIR:-$root/../shared}
start=$(date +%s)
say() { echo "fuzz [$(( $(date +%s) - start ))s]: $*"; }

say "configure + build in $build (clang, -fsanitize=fuzzer,address,undefined)"
CC=${CC:-clang} CXX=${CXX:-clang++} cmake -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQLLM_FUZZ=ON \
  -DQLLM_BUILD_TESTS=OFF >/dev/null || { say "FAILED: configure"; exit 1; }
cmake --build "$build" -j"${JOBS:-$(nproc)}" --target fuzzers || { say "FAILED: build"; exit 1; }

say "seed corpora in $build/fuzz-seeds"
seeds=$build/fuzz-seeds
rm -rf "$seeds"
"$build/fuzz/make_seeds" "$seeds" || { say "FAILED: seed generator"; exit 1; }
# Real models: stories260K and small files of each format and architecture (bigger ones only
# slow every execution down; the loader reads the same structures in all of them).
if [ -d "$shared/golden" ]; then
  for f in models/stories260K.gguf golden/stories260K/{F16,BF16,Q2_K,Q4_K_M,Q6_K}.gguf \
           golden/synth-b-f32/{Q4_0,Q4_1,Q5_0,Q2_K,Q3_K_S,Q5_K_M}.gguf golden/arch-*/Q4_K_M.gguf; do
    [ -f "$shared/$f" ] && cp "$shared/$f" "$seeds/fuzz_gguf/shared-$(echo "$f" | tr / -)"
  done
  [ -f "$shared/golden/prompt.txt" ] && { printf '\0'; cat "$shared/golden/prompt.txt"; } >"$seeds/fuzz_tokenizer/prompt"
else
  say "note: $shared/golden not found: GGUF seeds are the generated ones only"
fi

export OMP_NUM_THREADS=1  # the forward passes in fuzz_gguf: one thread, one job
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
results=()
failed=0
for t in "${targets[@]}"; do
  corpus=$build/fuzz-corpus/$t
  artifacts=$build/fuzz-artifacts/$t
  log=$build/fuzz-logs/$t.log
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  extra=()
  [ -f "fuzz/${t#fuzz_}.dict" ] && extra+=("-dict=fuzz/${t#fuzz_}.dict")
  say "run $t for ${seconds}s (log: $log)"
  t0=$(date +%s)
  "$build/fuzz/$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "${extra[@]}" "$corpus" "$seeds/$t" >"$log" 2>&1
  rc=$?
  stat() { grep -m1 "^stat::$1:" "$log" | awk '{print $2}'; }
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  line=$(printf '%-15s %9s execs %7s exec/s  cov %5s  corpus %5s files  rss %5s MB  %4ss' "$t" \
    "$(stat number_of_executed_units)" "$(stat average_exec_per_sec)" "${cov:-?}" \
    "$(find "$corpus" -type f | wc -l)" "$(stat peak_rss_mb)" "$(( $(date +%s) - t0 ))")
  if [ $rc -ne 0 ]; then
    failed=1
    results+=("FAIL  $line  (exit $rc; input: $(ls -t "$artifacts" | head -1))")
    grep -m1 -E 'ERROR: |fuzz check failed|runtime error' "$log"
    tail -n 40 "$log"
  else
    results+=("ok    $line")
  fi
done

echo
echo "=== fuzzing, ${seconds}s per target, in $(( $(date +%s) - start ))s ==="
printf '  %s\n' "${results[@]}"
if [ $failed -ne 0 ]; then
  echo "fuzz: FAILED (reproduce: $build/fuzz/TARGET INPUT)"
  exit 1
fi
echo "fuzz: no crash, hang or sanitizer report"
