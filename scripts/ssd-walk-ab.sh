#!/usr/bin/env bash
# ssd-walk-ab: one device call that checks a candidate SSD walk and times it against the default
# walk, alternated in the same call (these GPUs are shared: only same-call ratios mean much).
#
#   scripts/ssd-walk-ab.sh WALK [BUILD_DIR]      (WALK: a value of SSMKIT_SSD_WALK, e.g. v10)
#   env: ROUNDS (2), PERF_SECONDS (0.2), TILES ("32 64": forced head_dim tiles for the tests),
#        STEP_TIMEOUT (240 s per step: a walk that hangs on its mbarriers fails instead)
#
# Runs a build carried as .probe/build.tgz (scripts/pack-gpu-carry.sh). Steps: test-ops test on
# the chunked path with WALK (automatic tile, then each of TILES), test-ops check of the carried
# golden files with WALK, then ROUNDS rounds of test-ops perf on the issue-6 shapes, default walk
# then WALK. Logs under $OUT (or ./ssd-ab-out); a summary of PASS/FAIL and the perf rows last.
set -u
cd "$(dirname "$0")/.."
WALK=${1:?usage: ssd-walk-ab.sh WALK [BUILD_DIR]}
BUILD=${2:-build}
OUT=${OUT:-$PWD/ssd-ab-out}
mkdir -p "$OUT"
[ -d .probe/lib ] && export LD_LIBRARY_PATH="$PWD/.probe/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
TO="$BUILD/bin/test-ops"
if [ ! -x "$TO" ] && [ -f .probe/build.tgz ]; then tar -xzf .probe/build.tgz; fi
[ -x "$TO" ] || { echo "ssd-walk-ab: no $TO (pack a build with scripts/pack-gpu-carry.sh)" >&2; exit 2; }
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"

fails=0
run() {  # run NAME LOG CMD...
    local name=$1 log=$2; shift 2
    if timeout "${STEP_TIMEOUT:-240}" "$@" > "$OUT/$log" 2>&1; then echo "PASS  $name"; else echo "FAIL  $name (log $log)"; fails=$((fails + 1)); fi
    tail -2 "$OUT/$log"
}
run "test chunked, walk $WALK" test.log env SSMKIT_SSD_WALK="$WALK" "$TO" test -b cuda -o SSM_SCAN --scan-path chunked
for t in ${TILES:-32 64}; do
    run "test chunked, walk $WALK, tile $t" "test-$t.log" env SSMKIT_SSD_WALK="$WALK" SSMKIT_SSD_TILE="$t" \
        "$TO" test -b cuda -o SSM_SCAN --scan-path chunked
done
run "test chunked, walk $WALK, prep 16 heads" test-prep16.log env SSMKIT_SSD_WALK="$WALK" SSMKIT_SSD_PREP_HEADS=16 \
    "$TO" test -b cuda -o SSM_SCAN --scan-path chunked
GOLD=$(ls .golden/*/*/*.gguf 2>/dev/null)
if [ -n "$GOLD" ]; then
    run "golden, walk $WALK" golden.log env SSMKIT_SSD_WALK="$WALK" "$TO" check $GOLD -b cuda --scan-path chunked
fi
SHAPES='d_state=128,head_dim=(64|80).*n_seq_tokens=(512|4096),'
for r in $(seq 1 "${ROUNDS:-2}"); do
    for w in default "$WALK"; do
        timeout "${STEP_TIMEOUT:-240}" env SSMKIT_SSD_WALK="$([ "$w" = default ] && echo "" || echo "$w")" "$TO" perf -b cuda -o SSM_SCAN -p "$SHAPES" \
            --seconds "${PERF_SECONDS:-0.2}" > "$OUT/perf-$w-$r.log" 2>&1
        echo "-- round $r, walk $w"
        grep -E "us/run|SSM_SCAN|copy" "$OUT/perf-$w-$r.log" | head -12
    done
done
echo "ssd-walk-ab: $fails failed step(s)"
exit $((fails > 0))
