# Sourced by the device-call scripts (ssd-walk-ab.sh, ssd-trace.sh): find test-ops in a build
# carried from a machine without a GPU (scripts/pack-gpu-carry.sh), unpacking it when needed.
#   carried_test_ops BUILD_DIR TGZ SCRIPT_NAME   -> sets TO (the test-ops binary) or exits 2
carried_test_ops() {
    local build=$1 tgz=$2 name=$3
    # libraries the GPU image may lack travel in .probe/lib
    [ -d .probe/lib ] && export LD_LIBRARY_PATH="$PWD/.probe/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    TO="$build/bin/test-ops"
    if [ ! -x "$TO" ] && [ -f "$tgz" ]; then tar -xzf "$tgz"; fi
    [ -x "$TO" ] || { echo "$name: no $TO (pack a build with scripts/pack-gpu-carry.sh, or see the script's header)" >&2; exit 2; }
}
