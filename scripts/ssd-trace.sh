#!/usr/bin/env bash
# ssd-trace: where each warp of the SSD walk spends its cycles, on the GPU, in one call.
#
#   scripts/ssd-trace.sh [BUILD_DIR]     (default build-trace)
#
# BUILD_DIR is a build configured with -DCMAKE_CUDA_FLAGS=-DSSMKIT_SSD_TRACE (a diagnostic
# build: the walk adds up clock64() per phase and prints it from two blocks of the fifth launch;
# never the default). Made here and carried as .probe/trace.tgz:
#   cmake -S . -B build-trace -G Ninja -DCMAKE_CUDA_FLAGS=-DSSMKIT_SSD_TRACE
#   cmake --build build-trace --target test-ops && tar -czf .probe/trace.tgz build-trace/bin/test-ops
# Runs test-ops perf once per issue-6 shape (SSD_TRACE_SHAPES: space-separated -p patterns), with
# the knob settings in SSD_TRACE_ENV (e.g. SSMKIT_SSD_WALK=v9), and keeps the trace lines under
# $OUT (or ./ssd-trace-out).
set -u
set -f   # the shape patterns hold regex stars, not globs
cd "$(dirname "$0")/.."
BUILD=${1:-build-trace}
OUT=${OUT:-$PWD/ssd-trace-out}
mkdir -p "$OUT"
. scripts/lib/carried-build.sh
carried_test_ops "$BUILD" .probe/trace.tgz ssd-trace
SHAPES=${SSD_TRACE_SHAPES:-'head_dim=64,.*n_seq_tokens=4096,n_seqs=1, head_dim=64,.*n_seq_tokens=512,n_seqs=1, head_dim=64,.*n_seq_tokens=512,n_seqs=8,'}
for shape in $SHAPES; do
    name=$(echo "$shape" | tr -c 'A-Za-z0-9\n' '_')
    # shellcheck disable=SC2086
    timeout 120 env ${SSD_TRACE_ENV:-} "$TO" perf -b cuda -o SSM_SCAN -p "d_state=128,$shape" --seconds 0.05 \
        > "$OUT/trace-$name.log" 2>&1
    echo "== $shape"
    grep -E "ssd-trace" "$OUT/trace-$name.log" | sort -t' ' -k6,6n -k8,8n | head -40
    # the timeline of the traced launch, us from the moment the first ssd_prep block passed its
    # wait on the previous kernel: min / mean / max over the blocks of each kind (v8: z = 0 the
    # C B^T blocks, "middle" = B/C tile written; z > 0 the head blocks, "middle" = cum/delta and
    # tables written, before the diagonal rows; v10: every z a prep_wm block, "middle" = C B^T
    # staged, before the masked tiles)
    awk '
        function add(k, v) { v = (v - ref) / 1000; n[k]++; sum[k] += v; if (!(k in mn) || v < mn[k]) mn[k] = v; if (!(k in mx) || v > mx[k]) mx[k] = v }
        $1 == "ssd-tl" { line[NR] = $0; if ($2 == "prep" && (ref == 0 || $7 < ref)) ref = $7 }
        END {
            for (i in line) { split(line[i], f, " ")
                if (f[2] == "prep") { k = (f[5] == 0 ? "prep z=0" : "prep z>0"); add(k " launched", f[6]); add(k " waited", f[7]); add(k " loaded", f[9]); add(k " middle step", f[10]); add(k " ended", f[8]) }
                else { add("walk launched", f[5]); add("walk passed pdl wait", f[6]); add("walk stage 0 landed", f[7]); add("walk loop done", f[8]); add("walk ended", f[9]) } }
            for (k in n) printf "%f  %-30s %5d blocks  min %8.2f  mean %8.2f  max %8.2f us\n", sum[k] / n[k], k, n[k], mn[k], sum[k] / n[k], mx[k]
        }' "$OUT/trace-$name.log" | sort -n | cut -d' ' -f2-
    grep -E "us/run" "$OUT/trace-$name.log" | head -2
done
