#!/usr/bin/env bash
# The whole test suite, in the order that fails fastest. Assumes the system packages are there
# (tests/dev.sh test installs them first). Any failure fails the run.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
fuzz_seconds=${VIREO_FUZZ_SECONDS:-60}
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

# Nightly is needed by cargo-fuzz's sanitizer flags; the stable toolchain can stand in.
fuzz() {
    local dir=$1 target=$2
    if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
        (cd "$dir" && cargo +nightly fuzz run "$target" -- -max_total_time="$fuzz_seconds")
    else
        (cd "$dir" && RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time="$fuzz_seconds")
    fi
}

step "rustfmt" cargo fmt --all --check
step "clippy" cargo clippy --workspace --all-targets -- -D warnings
step "data validators" tests/validate-data.sh
step "build" cargo build --workspace --bins
step "unit and integration tests" cargo test --workspace --no-fail-fast
for target in $(cd src/domain/fuzz 2>/dev/null && cargo fuzz list 2>/dev/null); do
    step "fuzz domain/$target (${fuzz_seconds}s)" fuzz src/domain/fuzz "$target"
done
for target in $(cd vmm/fuzz 2>/dev/null && cargo fuzz list 2>/dev/null); do
    step "fuzz vmm/$target (${fuzz_seconds}s)" fuzz vmm/fuzz "$target"
done

if [ "${#failed[@]}" -gt 0 ]; then
    printf '\nFAILED steps:\n'
    printf '  %s\n' "${failed[@]}"
    exit 1
fi
printf '\nall steps passed\n'
