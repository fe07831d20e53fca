#!/usr/bin/env bash
# ssd-walk-ab: one device call that checks candidate SSD variants and times them against the
# default, alternated in the same call (these GPUs are shared: only same-call ratios mean much).
#
#   scripts/ssd-walk-ab.sh VARIANT... [-- BUILD_DIR]
#     VARIANT: a value of SSMKIT_SSD_WALK (e.g. v10), or knob settings NAME=VALUE joined by
#              commas (e.g. SSMKIT_SSD_DIAG=prep or SSMKIT_SSD_WALK=v10,SSMKIT_SSD_PREP_HEADS=8);
#              prefixed with "perf:", a variant is only timed (no test steps)
#   env: ROUNDS (2), PERF_SECONDS (0.2), TILES ("32 64": forced head_dim tiles for the tests),
#        STEP_TIMEOUT (240 s per step: a walk that hangs on its mbarriers fails instead)
#
# Runs a build carried as .probe/build.tgz (scripts/pack-gpu-carry.sh). Steps, for each variant:
# test-ops test on the chunked path (automatic tile, then each of TILES, then 16 prep heads),
# test-ops check of the carried golden files; then ROUNDS rounds of test-ops perf on the issue-6
# shapes, the default then each variant. Logs under $OUT (or ./ssd-ab-out); a summary of
# PASS/FAIL and the perf rows last.
set -u
cd "$(dirname "$0")/.."
VARIANTS=()
BUILD=build
while [ $# -gt 0 ]; do
    if [ "$1" = "--" ]; then BUILD=${2:-build}; break; fi
    VARIANTS+=("$1"); shift
done
[ ${#VARIANTS[@]} -gt 0 ] || { echo "usage: ssd-walk-ab.sh VARIANT... [-- BUILD_DIR]" >&2; exit 2; }
OUT=${OUT:-$PWD/ssd-ab-out}
mkdir -p "$OUT"
. scripts/lib/carried-build.sh
carried_test_ops "$BUILD" .probe/build.tgz ssd-walk-ab
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"

# the env assignments of a variant: "v10" -> SSMKIT_SSD_WALK=v10; "A=1,B=2" -> A=1 B=2
variant_env() { set -- "${1#perf:}"; case "$1" in *=*) echo "${1//,/ }" ;; *) echo "SSMKIT_SSD_WALK=$1" ;; esac; }
tag() { echo "${1#perf:}" | tr -c 'A-Za-z0-9_\n' '_' | sed 's/SSMKIT_SSD_//g'; }

fails=0
run() {  # run NAME LOG CMD...
    local name=$1 log=$2; shift 2
    if timeout "${STEP_TIMEOUT:-240}" "$@" > "$OUT/$log" 2>&1; then echo "PASS  $name"; else echo "FAIL  $name (log $log)"; fails=$((fails + 1)); fi
    tail -2 "$OUT/$log"
}
GOLD=$(ls .golden/*/*/*.gguf 2>/dev/null)
for v in "${VARIANTS[@]}"; do
    case "$v" in perf:*) continue ;; esac
    E=$(variant_env "$v"); T=$(tag "$v")
    # shellcheck disable=SC2086
    run "test chunked, $v" "test-$T.log" env $E "$TO" test -b cuda -o SSM_SCAN --scan-path chunked
    for t in ${TILES:-32 64}; do
        # shellcheck disable=SC2086
        run "test chunked, $v, tile $t" "test-$T-tile$t.log" env $E SSMKIT_SSD_TILE="$t" \
            "$TO" test -b cuda -o SSM_SCAN --scan-path chunked
    done
    # shellcheck disable=SC2086
    run "test chunked, $v, prep 16 heads" "test-$T-prep16.log" env SSMKIT_SSD_PREP_HEADS=16 $E \
        "$TO" test -b cuda -o SSM_SCAN --scan-path chunked
    if [ -n "$GOLD" ]; then
        # shellcheck disable=SC2086
        run "golden, $v" "golden-$T.log" env $E "$TO" check $GOLD -b cuda --scan-path chunked
    fi
done
SHAPES='d_state=128,head_dim=(64|80).*n_seq_tokens=(512|4096),'
for r in $(seq 1 "${ROUNDS:-2}"); do
    for v in default "${VARIANTS[@]}"; do
        E=$([ "$v" = default ] && echo "SSMKIT_SSD_WALK=" || variant_env "$v"); T=$(tag "$v")
        # shellcheck disable=SC2086
        timeout "${STEP_TIMEOUT:-240}" env $E "$TO" perf -b cuda -o SSM_SCAN -p "$SHAPES" \
            --seconds "${PERF_SECONDS:-0.2}" > "$OUT/perf-$T-$r.log" 2>&1
        echo "-- round $r, $v"
        grep -E "us/run|SSM_SCAN|copy" "$OUT/perf-$T-$r.log" | head -12
    done
done
echo "ssd-walk-ab: $fails failed step(s)"
exit $((fails > 0))
