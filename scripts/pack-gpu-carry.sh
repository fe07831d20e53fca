#!/usr/bin/env bash
# pack-gpu-carry: prepares what a device call carries, so that scripts/gpu-check.sh runs a build
# made here (the GPU machine has nvcc but none of libhwy, GoogleTest or CLI11, and building the
# CUDA kernels there would spend device time).
#
#   scripts/pack-gpu-carry.sh [BUILD_DIR] [GOLDEN_PART]     (defaults: build, all)
#
# Writes, all git-ignored:
#   .probe/build.tgz   test-ops, the two test binaries registered with the "cuda" label, and the
#                      CTest files that ctest -L cuda reads (gpu-check unpacks it)
#   .probe/lib/        libhwy, which the binaries link dynamically
#   .golden/           the shared golden files: GOLDEN_PART "small" (all but the three largest,
#                      ~29 MB), "large" (those three, ~49 MB) or "all" (78 MB: over the 64 MiB a
#                      call carries together with the binaries)
# Then carry ".probe" and ".golden" and run: scripts/gpu-check.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
PART=${2:-all}
GOLDEN_SRC=${SSMKIT_GOLDEN_DIR:-../shared/golden}

for f in test-ops ops_property_test golden_test; do
    [ -x "$BUILD/bin/$f" ] || { echo "pack-gpu-carry: $BUILD/bin/$f is missing: build first" >&2; exit 1; }
done
grep -q cuda "$BUILD/tests/CTestTestfile.cmake" || {
    echo "pack-gpu-carry: $BUILD has no cuda-labelled tests (configured without CUDA?)" >&2; exit 1; }

mkdir -p .probe/lib
cp -L "$(ldconfig -p | awk '/libhwy\.so\.1 /{print $NF; exit}')" .probe/lib/libhwy.so.1
tar -czf .probe/build.tgz "$BUILD/bin/test-ops" "$BUILD/bin/ops_property_test" "$BUILD/bin/golden_test" \
    "$BUILD/CMakeCache.txt" "$BUILD/CTestTestfile.cmake" "$BUILD"/tests/CTestTestfile.cmake \
    "$BUILD"/tests/*_include.cmake "$BUILD"/tests/*_tests.cmake

rm -rf .golden
mkdir -p .golden
largest=$(cd "$GOLDEN_SRC" && ls -S ssm_*/*.gguf | head -3)
(cd "$GOLDEN_SRC" && ls ssm_*/*.gguf) | while read -r f; do
    is_large=0
    for l in $largest; do [ "$f" = "$l" ] && is_large=1; done
    case "$PART" in
        small) [ $is_large = 1 ] && continue ;;
        large) [ $is_large = 0 ] && continue ;;
        all) ;;
        *) echo "pack-gpu-carry: GOLDEN_PART is small, large or all" >&2; exit 2 ;;
    esac
    mkdir -p ".golden/$PART/$(dirname "$f")"
    cp "$GOLDEN_SRC/$f" ".golden/$PART/$f"
done
du -sh .probe .golden
