#!/bin/sh
# Runs the vireo-domain fuzz targets for a bounded time each (default 60 s):
#   src/domain/fuzz/run.sh [SECONDS] [TARGET...]
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`). Seeds
# come from the libvirt corpus when the corpus test has cached it.
set -eu
cd "$(dirname "$0")"
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-"roundtrip validate_edit translate osinfo"}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
toolchain=+nightly
cargo +nightly --version >/dev/null 2>&1 || { toolchain=; export RUSTC_BOOTSTRAP=1; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/vireo-domain-fuzz-target}
seeds=${XDG_CACHE_HOME:-$HOME/.cache}/vireo-test/libvirt/x/libvirt-9.0.0/tests
for t in $targets; do
    mkdir -p "corpus/$t"
    if [ -d "$seeds" ] && [ -z "$(ls -A "corpus/$t")" ]; then
        for d in genericxml2xmlindata qemuxml2xmloutdata; do
            cp -L "$seeds/$d/"*.xml "corpus/$t/" 2>/dev/null || true
        done
    fi
    # shellcheck disable=SC2086
    cargo $toolchain fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -dict=xml.dict \
        -max_len=65536 -rss_limit_mb=2048
done
