#!/usr/bin/env bash
# The whole test suite, in the order that fails fastest. Assumes the system packages are there
# (tests/dev.sh test installs them first). Any failure fails the run.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
fuzz_seconds=${VIREO_FUZZ_SECONDS:-45}
failed=()

step() {
    local name=$1
    shift
    printf '\n==> %s\n' "$name"
    local start=$SECONDS
    if "$@"; then
        printf '==> %s: ok (%ss)\n' "$name" "$((SECONDS - start))"
    else
        printf '==> %s: FAILED (%ss)\n' "$name" "$((SECONDS - start))"
        failed+=("$name")
    fi
}

# cargo-fuzz needs nightly for its sanitizer flags; the stable toolchain can stand in.
fuzz() {
    local dir=$1 target=$2
    local toolchain=()
    if cargo +nightly --version >/dev/null 2>&1; then
        toolchain=(+nightly)
    else
        export RUSTC_BOOTSTRAP=1
    fi
    (cd "$dir" && CARGO_TARGET_DIR="$here/target/fuzz" cargo "${toolchain[@]}" fuzz run "$target" -- \
        -max_total_time="$fuzz_seconds" -rss_limit_mb=2048)
}

step "rustfmt" cargo fmt --all --check
step "clippy" cargo clippy --workspace --all-targets -- -D warnings
step "data validators" tests/validate-data.sh
step "build" cargo build --workspace --bins
step "unit and integration tests" cargo test --workspace --no-fail-fast
# The targets are named here, not discovered, so a broken fuzz project fails instead of
# silently running nothing.
step "fuzz domain (${fuzz_seconds}s per target)" src/domain/fuzz/run.sh "$fuzz_seconds" roundtrip validate_edit
for target in virtqueue virtio_blk_request rfb_client; do
    step "fuzz vmm/$target (${fuzz_seconds}s)" fuzz vmm/fuzz "$target"
done

if [ "${#failed[@]}" -gt 0 ]; then
    printf '\nFAILED steps:\n'
    printf '  %s\n' "${failed[@]}"
    exit 1
fi
printf '\nall steps passed\n'
