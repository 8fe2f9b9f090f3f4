#!/usr/bin/env bash
# The developer's front door: `tests/dev.sh run` installs what is missing and starts Vireo from the
# build tree; `tests/dev.sh test` installs what is missing and runs the whole test suite, the way CI
# does. Works as root (containers) and as a normal user with sudo.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'dev.sh: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root for: $* (install sudo or run as root)"
    fi
}

# Packages needed to build and run the app.
app_packages=(
    build-essential pkg-config gettext
    libgtk-4-dev libadwaita-1-dev libglib2.0-bin libglib2.0-dev-bin
    librsvg2-common gtk-update-icon-cache
    dbus yelp busybox-static qemu-system-x86 passt osinfo-db
)
# Packages the test suite needs on top: validators, Xvfb and screenshot tools for GUI tests,
# libvirt's schemas and test driver for the domain library, QEMU and Debian tooling for the
# nested-KVM rig, SeaBIOS and the tools that build the firmware tests' boot media (a GRUB ISO,
# a Debian disk made with mmdebstrap; uidmap lets a normal user run it), what builds the rig's
# own L1 QEMU from Debian's source (tests/rig/src/fixtures/qemu.sh), VNC peers for the VNC
# server's interoperability tests.
test_packages=(
    desktop-file-utils appstream yelp-tools itstool libxml2-utils
    xvfb xauth dbus-x11 xdotool xclip imagemagick x11-utils x11-xserver-utils openbox bsdutils util-linux
    libvirt-clients libvirt0
    cpio xz-utils zstd dpkg-dev e2fsprogs procps
    seabios ovmf grub-pc-bin grub-efi-amd64-bin grub-common xorriso mtools fdisk mmdebstrap uidmap
    meson ninja-build libglib2.0-dev libpixman-1-dev zlib1g-dev libfdt-dev libcap-ng-dev libattr1-dev
    gvncviewer tigervnc-standalone-server tigervnc-viewer tigervnc-tools
    python3 python3-pip python3-venv
)

missing_packages() {
    local p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            printf '%s\n' "$p"
        fi
    done
}

install_packages() {
    local missing
    mapfile -t missing < <(missing_packages "$@")
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
    # qemu-system-x86 from bookworm replaces a newer qemu-utils backport if one was installed;
    # put bookworm's back so qemu-img stays available.
    if ! command -v qemu-img >/dev/null 2>&1; then
        log "installing qemu-utils (qemu-img)"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-utils
    fi
}

check_rust() {
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust 1.83 or newer with rustup (https://rustup.rs)"
    local v
    v=$(rustc --version | awk '{print $2}')
    case "$v" in
        1.[0-7][0-9].*|1.8[0-2].*) die "Rust $v is too old: Vireo needs 1.83 or newer (rustup update)" ;;
    esac
}

# Tools for the suite's bounded fuzzing runs.
ensure_fuzz_tools() {
    if ! cargo fuzz --version >/dev/null 2>&1; then
        log "installing cargo-fuzz"
        cargo install cargo-fuzz --locked
    fi
}

ensure_python_tools() {
    # vncdotool is a peer for the VNC server's tests; it comes from PyPI, in a venv of our own.
    local venv="${XDG_CACHE_HOME:-$HOME/.cache}/vireo-test/venv"
    if [ ! -x "$venv/bin/vncdo" ]; then
        log "installing vncdotool into $venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q vncdotool
    fi
    export PATH="$venv/bin:$PATH"
}

# The quick machine boots this computer's kernel. A container has none in /boot: unpack Debian's
# into a cache (no install, no initramfs hooks) and point the driver at it.
ensure_quick_kernel() {
    if compgen -G '/boot/vmlinuz-*' >/dev/null || [ -n "${VIREO_QUICK_KERNEL:-}" ]; then
        return
    fi
    local dir="${XDG_CACHE_HOME:-$HOME/.cache}/vireo/kernel"
    if ! compgen -G "$dir/boot/vmlinuz-*" >/dev/null; then
        local pkg
        pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
        [ -n "$pkg" ] || die "cannot find Debian's kernel package (apt-get update first?)"
        log "no kernel in /boot: unpacking $pkg into $dir for the quick machine"
        local tmp
        tmp=$(mktemp -d)
        (cd "$tmp" && apt-get download "$pkg" >/dev/null) || die "apt-get download $pkg failed"
        mkdir -p "$dir"
        dpkg -x "$tmp"/"$pkg"_*.deb "$dir"
        rm -rf "$tmp"
    fi
    VIREO_QUICK_KERNEL=$(compgen -G "$dir/boot/vmlinuz-*" | sort -V | tail -n 1)
    export VIREO_QUICK_KERNEL
}

cmd_run() {
    install_packages "${app_packages[@]}"
    check_rust
    ensure_quick_kernel
    log "building and starting Vireo"
    cargo build --release --workspace --bins
    exec "$here/target/release/vireo" "$@"
}

cmd_test() {
    install_packages "${app_packages[@]}" "${test_packages[@]}"
    check_rust
    ensure_fuzz_tools
    ensure_python_tools
    exec "$here/tests/suite.sh" "$@"
}

case "${1:-}" in
    run) shift; cmd_run "$@" ;;
    test) shift; cmd_test "$@" ;;
    deps) shift; install_packages "${app_packages[@]}" "${test_packages[@]}"; check_rust ;;
    *) die "usage: tests/dev.sh run|test|deps" ;;
esac
