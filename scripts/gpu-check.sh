#!/usr/bin/env bash
# gpu-check: everything the CUDA backend must pass on a GPU machine, in one run.
#
#   scripts/gpu-check.sh [BUILD_DIR]     (default build-cuda)
#
# Uses BUILD_DIR/bin/test-ops when it is already there (a build carried from a machine without a
# GPU), else configures and builds it for sm_90. Then: ctest -L cuda, test-ops test and check on
# the cuda backend (both scan paths), the .probe driver when carried, compute-sanitizer memcheck
# and racecheck on a test subset, and test-ops perf. Logs go under $OUT (or ./gpu-check-out); the
# last thing printed is a summary table, perf against the issue-5 targets included.
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-build-cuda}
OUT=${OUT:-$PWD/gpu-check-out}
TOP=$OUT
OUT="$TOP/logs"  # every log here; packed into logs.tar.gz at the end (the device returns few files)
mkdir -p "$OUT"
# Libraries a carried build needs that the GPU image may lack (libhwy, a newer libstdc++).
[ -d .probe/lib ] && export LD_LIBRARY_PATH="$PWD/.probe/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
step() {  # step NAME LOGFILE CMD...: runs, records status and seconds
    local name=$1 log=$2; shift 2
    local t0=$SECONDS
    "$@" > "$OUT/$log" 2>&1
    local rc=$?
    local verdict=$([ $rc -eq 0 ] && echo PASS || echo "FAIL(rc=$rc)")
    printf '%-34s %-12s %4ds  %s\n' "$name" "$verdict" $((SECONDS - t0)) "$log" >> "$SUMMARY"
    echo "== $name: $verdict ($((SECONDS - t0))s, log $log)"
    tail -3 "$OUT/$log"
    return $rc
}
skip() { printf '%-34s %-12s %4s   %s\n' "$1" SKIP - "$2" >> "$SUMMARY"; }

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv \
    > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"

TO="$BUILD/bin/test-ops"
if [ ! -x "$TO" ]; then
    step "configure (sm_90)" build.log cmake -S . -B "$BUILD" -G Ninja -DSSMKIT_CUDA=ON -DSSMKIT_MODEL=OFF \
        "-DCMAKE_CUDA_ARCHITECTURES=90-real;90-virtual" &&
    step "build" build2.log cmake --build "$BUILD" -j "$(nproc)"
fi

# A build carried from another machine records that machine's source path: point it here.
SRC_RECORDED=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$BUILD/CMakeCache.txt" 2>/dev/null)
if [ -n "$SRC_RECORDED" ] && [ ! -e "$SRC_RECORDED" ]; then
    mkdir -p "$(dirname "$SRC_RECORDED")" && ln -s "$PWD" "$SRC_RECORDED"
fi
BUILD_RECORDED=$(sed -n 's/^CMAKE_CACHEFILE_DIR:INTERNAL=//p' "$BUILD/CMakeCache.txt" 2>/dev/null)
export SSMKIT_GOLDEN_DIR="$PWD/.golden"
if [ -f "$BUILD/CTestTestfile.cmake" ] && grep -rqs cuda "$BUILD"/tests/CTestTestfile.cmake; then
    step "ctest -L cuda" ctest.log ctest --test-dir "${BUILD_RECORDED:-$BUILD}" -L cuda --output-on-failure
else
    skip "ctest -L cuda" "no cuda-labelled tests in $BUILD"
fi

if [ -x "$TO" ]; then
    step "test-ops test -b cuda" test.log "$TO" test -b cuda
    step "test (scan sequential path)" test-seq.log "$TO" test -b cuda -o SSM_SCAN --scan-path sequential
    GOLD=$(ls .golden/*/*/*.gguf 2>/dev/null)
    # Files first: -b takes every value up to the next option.
    if [ -n "$GOLD" ]; then step "check golden -b cuda" check.log "$TO" check $GOLD -b cuda
    else skip "check golden" "no .golden/*/*/*.gguf carried"; fi
else
    skip "test-ops" "not built"
fi
if [ -x .probe/probe ]; then step "probe (ids, alignment, graphs)" probe.log .probe/probe
else skip "probe" "no .probe/probe"; fi

# Sanitizers on the cases that stay quick under instrumentation (the 256+ token scans and
# 515-token convs only repeat the same kernels on more data).
SUBSET='ne_b=\[[0-9],(1|7|1024),|n_seq_tokens=([0-9]|13|32|64),'
if command -v compute-sanitizer > /dev/null && [ -x "$TO" ]; then
    step "memcheck (test subset)" memcheck.log compute-sanitizer --tool memcheck --error-exitcode 3 \
        "$TO" test -b cuda -p "$SUBSET"
    step "racecheck (test subset)" racecheck.log compute-sanitizer --tool racecheck --error-exitcode 3 \
        "$TO" test -b cuda -p "$SUBSET"
    # racecheck is not known to model named barriers (bar.sync 1, 256), which the chunked scan
    # runs only when K > 1: the same scans with K = 1 use plain __syncthreads alone.
    step "racecheck (scans, K=1)" racecheck-k1.log compute-sanitizer --tool racecheck --error-exitcode 3 \
        "$TO" test -b cuda -o SSM_SCAN -p 'n_seq_tokens=([0-9]|13|32|64),.*K=1[,)]'
    step "synccheck (test subset)" synccheck.log compute-sanitizer --tool synccheck --error-exitcode 3 \
        "$TO" test -b cuda -p "$SUBSET"
    [ -x .probe/probe ] && step "memcheck (probe)" memcheck-probe.log compute-sanitizer --tool memcheck \
        --error-exitcode 3 .probe/probe quick
else
    skip "compute-sanitizer" "not found or no test-ops"
fi

if [ -x "$TO" ]; then
    step "perf -b cuda" perf.log env SSMKIT_LOG=1 "$TO" perf -b cuda --seconds "${PERF_SECONDS:-0.3}" --json "$OUT/perf.json"
    step "perf granite 512 (sequential)" perf-seq.log "$TO" perf -b cuda --scan-path sequential \
        --seconds "${PERF_SECONDS:-0.3}" -p 'd_state=128,head_dim=64.*n_seq_tokens=512,n_seqs=1,'
fi

# Measurement knobs of the kernels (VARIANTS=1): conv channels per block, decode rows per thread.
if [ "${VARIANTS:-0}" = 1 ] && [ -x "$TO" ]; then
    for cc in 16 32; do
        step "perf conv cc=$cc" "perf-conv-cc$cc.log" env SSMKIT_CUDA_CONV_CC=$cc "$TO" perf -b cuda -p 'ne_a=\[(515|4099),' \
            --seconds "${PERF_SECONDS:-0.3}"
    done
    step "perf conv tile order" "perf-conv-tiles.log" env SSMKIT_CUDA_CONV_ORDER=tiles "$TO" perf -b cuda \
        -p 'ne_a=\[(515|4099),' --seconds "${PERF_SECONDS:-0.3}"
    for rpt in 1 2; do
        step "perf decode rpt=$rpt" "perf-dec-rpt$rpt.log" env SSMKIT_CUDA_DECODE_RPT=$rpt "$TO" perf -b cuda -o SSM_SCAN \
            -p 'n_seq_tokens=1,' --seconds "${PERF_SECONDS:-0.3}"
    done
fi

echo
echo "================ gpu-check summary ($(head -2 "$OUT/gpu.txt" | tail -1)) ================"
cat "$SUMMARY"
if [ -f "$OUT/perf.log" ]; then
    echo
    echo "perf vs issue-5 targets (us; H100):"
    # case-name pattern | label | ggml us | target us
    while IFS='|' read -r pat label ggml target file; do
        line=$(grep -E "$pat" "$OUT/$file" 2>/dev/null | head -1)
        us=$(echo "$line" | sed -nE 's/.* - ([0-9.]+) us\/run.*/\1/p')
        pct=$(echo "$line" | sed -nE 's/.* - ([0-9.]+)% of BW.*/\1/p')
        verdict=$(awk -v u="${us:-0}" -v t="$target" 'BEGIN{ if (u == 0) print "n/a"; else if (u <= t) print "MET"; else print "MISSED" }')
        printf '  %-34s %8s us  %5s%% BW  ggml %7s  target <= %6s  %s\n' "$label" "${us:--}" "${pct:--}" "$ggml" "$target" "$verdict"
    done <<'TARGETS'
^  SSM_CONV\(.*ne_a=\[515,3328,1,1\]|conv [515,3328,1] w4|10.03|5.5|perf.log
^  SSM_CONV\(.*ne_a=\[4099,3328,1,1\]|conv [4099,3328,1]|70.25|40|perf.log
^  SSM_CONV\(.*ne_a=\[515,3328,8,1\]|conv [515,3328,8]|72.98|42|perf.log
^  SSM_CONV\(.*ne_a=\[4,3328,1,1\]|conv decode [4,3328,1]|4.77|3.0|perf.log
^  SSM_CONV_BIAS_SILU\(.*ne_a=\[515,3328,1,1\]|conv+bias+SiLU [515,3328,1]|8.51|5.5|perf.log
d_state=128,head_dim=64,n_head=48,.*n_seq_tokens=1,n_seqs=1,|granite decode 1x1|3.62|2.5|perf.log
d_state=128,head_dim=64,n_head=48,.*n_seq_tokens=1,n_seqs=64,|granite decode 1x64|88.56|68|perf.log
d_state=16,head_dim=1,n_head=8192,.*n_seq_tokens=512,|Mamba-1 8192ch 512 tok|429.96|200|perf.log
d_state=16,head_dim=1,n_head=8192,.*n_seq_tokens=1,|Mamba-1 decode|5.08|3.0|perf.log
d_state=128,head_dim=64,n_head=48,.*n_seq_tokens=512,n_seqs=1,|granite 512x1 sequential|115.40|100|perf-seq.log
TARGETS
    grep -h "ceiling" "$OUT/perf.log" | head -1
fi
if [ "${VARIANTS:-0}" = 1 ]; then
    echo
    echo "variants (us/run):"
    for f in "$OUT"/perf-conv-*.log "$OUT"/perf-dec-rpt*.log; do
        [ -f "$f" ] || continue
        grep "us/run" "$f" | sed -E "s/^  ([^:]*): [0-9]+ runs - ([0-9.]+) us\/run.* - ([0-9.]+)% of BW.*/  $(basename "$f" .log)  \2 us  \3% BW  \1/" | cut -c1-150
    done
fi
cp "$SUMMARY" "$OUT/perf.log" "$OUT/perf.json" "$TOP/" 2>/dev/null
tar -C "$TOP" -czf "$TOP/logs.tar.gz" logs && rm -rf "$OUT"
