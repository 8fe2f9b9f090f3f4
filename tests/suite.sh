#!/usr/bin/env bash
# The whole test suite, in the order that fails fastest. Assumes the system packages are there
# (tests/dev.sh test installs them first). Any failure fails the run.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# The rig echoes every line of its L1 commands as they arrive; a failed test would show
# thousands of them before its panic message. Its errors and the tests' messages carry the
# telling lines, and the tests save whole outputs under target/rig-logs/.
export VIREO_RIG_QUIET=${VIREO_RIG_QUIET-1}
# Nineteen fuzz targets beside the firmware and CD-ROM rig tests: 10 s each keeps the whole run
# under an hour on 2 cores (a CI-like run with 15 s took 59 min before installing anything;
# longer local runs: VIREO_FUZZ_SECONDS, or each fuzz crate's own instructions).
fuzz_seconds=${VIREO_FUZZ_SECONDS:-10}
failed=()
# CI shows only the last few hundred bytes of a run, so the long outputs go to logs and the end
# of the run names what failed and why.
logs="$here/target/suite-logs"
mkdir -p "$logs"
# Every rerun the rig makes (a lost L2 boot, a dead L1) is written down here; more than the
# budget fails the run, so a bug that crashes one boot in three cannot pass on reruns. The
# suite boots about 60 L2 machines and the nested rig loses about one in 50 on its own (see
# tests/rig/README.md): CI and CI-like runs in December 2026 lost 1, 1 and 2, so a budget of 2 failed
# about one clean run in six; 3 fails about one in twenty, and a bug that crashes one boot in
# three still loses some twenty.
# L1's own deaths (its kernel panicking or freezing under QEMU's emulation: seen in a KVM vCPU
# thread's exception entry, in nanosleep, in a read of a tmpfs file) are written down apart
# (L1-RERUN) and held to a budget of their own: each of the last four runs that reached the rig
# had one, and sharing one budget with the lost L2 boots failed a 67-minute CI run (its ledger
# is not in the part of the output CI keeps).
export VIREO_RIG_RERUN_LEDGER="$logs/rig-reruns.log"
rerun_budget=${VIREO_RIG_RERUN_BUDGET:-3}
l1_rerun_budget=${VIREO_RIG_L1_RERUN_BUDGET:-3}
: >"$VIREO_RIG_RERUN_LEDGER"

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

# cargo-fuzz needs nightly for its sanitizer flags; the stable toolchain can stand in. The
# project is named by --fuzz-dir (cargo-fuzz would look for a "fuzz" beside the nearest
# crate, which src/gui has not); a TARGET.dict beside it is used when there is one.
fuzz() {
    local dir=$1 target=$2
    local toolchain=() dict=()
    if cargo +nightly --version >/dev/null 2>&1; then
        toolchain=(+nightly)
    else
        export RUSTC_BOOTSTRAP=1
    fi
    [ -f "$dir/$target.dict" ] && dict=(-dict="$target.dict")
    (cd "$dir" && CARGO_TARGET_DIR="$here/target/fuzz" cargo "${toolchain[@]}" fuzz run --fuzz-dir . "$target" -- \
        -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 "${dict[@]}")
}

# A fuzzer run, whose output is long and only matters when it fails: kept in a log, with only
# libFuzzer's run counts shown.
logged() {
    local log="$logs/$1.log"
    shift
    if "$@" >"$log" 2>&1; then
        grep -E '^Done [0-9]+ runs' "$log" || true
    else
        tail -n 40 "$log"
        return 1
    fi
}

# Every test binary's output, in full, goes to the log as well as the terminal.
tests() {
    cargo test --workspace --no-fail-fast 2>&1 | tee "$logs/tests.log"
}

# Lists every rerun of the run and fails when more than the budget were counted (a test of the
# rerun machinery marks its own as EXPECTED-RERUN, which do not count).
reruns_within_budget() {
    local counted l1
    counted=$(grep -c '^RERUN	' "$VIREO_RIG_RERUN_LEDGER" || true)
    l1=$(grep -c '^L1-RERUN	' "$VIREO_RIG_RERUN_LEDGER" || true)
    if [ -s "$VIREO_RIG_RERUN_LEDGER" ]; then
        sed 's/^/  /' "$VIREO_RIG_RERUN_LEDGER"
    fi
    printf '%s counted reruns, budget %s; %s after L1 failures, budget %s\n' \
        "$counted" "$rerun_budget" "$l1" "$l1_rerun_budget"
    [ "$counted" -le "$rerun_budget" ] && [ "$l1" -le "$l1_rerun_budget" ]
}

# One line per failed test (binary, test, first line of its panic) and per test binary that died.
test_failures() {
    awk '
        /^ *Running .*\(.*\)$/ { bin = $NF; gsub(/[()]/, "", bin); sub(/.*\//, "", bin); sub(/-[0-9a-f]+$/, "", bin) }
        /^test .* \.\.\. FAILED$/ { name = $2; order[++n] = name; where[name] = bin }
        /^thread .* panicked at / {
            t = $0; sub(/^thread \x27/, "", t); sub(/\x27.*/, "", t); want = t; next
        }
        want != "" { if (!(want in why)) why[want] = substr($0, 1, 160); want = "" }
        /process didn.t exit successfully/ { died[++d] = bin ": " substr($0, 1, 200) }
        END {
            for (i = 1; i <= n; i++) printf "  %s::%s: %s\n", where[order[i]], order[i], why[order[i]]
            for (i = 1; i <= d; i++) printf "  %s\n", died[i]
        }
    ' "$logs/tests.log" | head -n 12
}

step "rustfmt" cargo fmt --all --check
step "clippy" cargo clippy --workspace --all-targets -- -D warnings
step "data validators" tests/validate-data.sh
step "build" cargo build --workspace --bins
step "unit and integration tests" tests
step "rig reruns within budget ($rerun_budget, L1 $l1_rerun_budget)" reruns_within_budget
# The targets are named here, not discovered, so a broken fuzz project fails instead of
# silently running nothing.
step "fuzz domain (${fuzz_seconds}s per target)" logged fuzz-domain src/domain/fuzz/run.sh "$fuzz_seconds" roundtrip validate_edit translate osinfo
for target in virtqueue virtio_blk_request virtio_scsi_request virtio_mmio control_json rfb_client qcow2_open fw_cfg ramfb_config scsi_cdb pci pflash vga; do
    step "fuzz vmm/$target (${fuzz_seconds}s)" logged "fuzz-$target" fuzz vmm/fuzz "$target"
done
for target in vnc_guard serial_terminal; do
    step "fuzz gui/$target (${fuzz_seconds}s)" logged "fuzz-$target" fuzz src/gui/fuzz "$target"
done

if [ "${#failed[@]}" -gt 0 ]; then
    printf '\nFAILED steps:\n'
    printf '  %s\n' "${failed[@]}"
    if [ -s "$logs/tests.log" ] && grep -q 'unit and integration tests' <<<"${failed[*]}"; then
        printf 'FAILED tests (full output in %s):\n' "$logs/tests.log"
        test_failures
    fi
    exit 1
fi
printf '\nall steps passed\n'
