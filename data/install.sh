#!/bin/sh
# Installs Vireo where GNOME looks for it, or removes it again.
#
#   data/install.sh [--prefix DIR] [--destdir DIR] [--debug] [--no-build] [--uninstall]
#
#   --prefix DIR   install under DIR (default: ~/.local for a normal user, /usr/local for root)
#   --destdir DIR  stage into DIR/PREFIX for packaging; caches are then left to the package
#   --debug        install the debug build instead of the release build
#   --no-build     do not run cargo; use the binaries already built
#   --uninstall    remove what an installation with the same --prefix put there
#
# Files: PREFIX/bin/{vireo,vireoctl,vireo-vmm}, share/applications/org.vireo.Vireo.desktop,
# share/metainfo/org.vireo.Vireo.metainfo.xml, share/icons/hicolor/{scalable,symbolic}/apps/,
# share/glib-2.0/schemas/org.vireo.Vireo.gschema.xml (+ compiled), share/locale/*/LC_MESSAGES/
# vireo.mo and share/help/*/vireo/. The installed vireo finds all of them relative to its own
# location, so any prefix works; help:vireo resolves through XDG_DATA_DIRS, which vireo extends
# for yelp when the prefix is not in it.
set -eu

top=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
app_id=org.vireo.Vireo
binaries="vireo vireoctl vireo-vmm"

if [ "$(id -u)" = 0 ]; then prefix=/usr/local; else prefix="$HOME/.local"; fi
destdir=
profile=release
build=yes
action=install

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "install.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
    --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    --destdir) [ $# -ge 2 ] || die "--destdir needs a directory"; destdir=$2; shift 2 ;;
    --destdir=*) destdir=${1#--destdir=}; shift ;;
    --debug) profile=debug; shift ;;
    --no-build) build=no; shift ;;
    --uninstall) action=uninstall; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
done

case "$prefix" in /*) ;; *) die "--prefix must be an absolute path, not $prefix" ;; esac
root="$destdir$prefix"
share="$root/share"

refresh_caches() {
    # Packagers (--destdir) run these in their triggers instead.
    [ -z "$destdir" ] || return 0
    if command -v glib-compile-schemas >/dev/null 2>&1 &&
        ls "$share/glib-2.0/schemas/"*.gschema.xml >/dev/null 2>&1; then
        glib-compile-schemas "$share/glib-2.0/schemas"
    fi
    if command -v gtk-update-icon-cache >/dev/null 2>&1 && [ -f "$share/icons/hicolor/index.theme" ]; then
        gtk-update-icon-cache -q -t -f "$share/icons/hicolor" || true
    fi
    if command -v update-desktop-database >/dev/null 2>&1 && [ -d "$share/applications" ]; then
        update-desktop-database -q "$share/applications" || true
    fi
}

languages() { sed 's/#.*//' "$top/po/LINGUAS"; }

if [ "$action" = uninstall ]; then
    for b in $binaries; do rm -f "$root/bin/$b"; done
    rm -f "$share/applications/$app_id.desktop" \
        "$share/metainfo/$app_id.metainfo.xml" \
        "$share/icons/hicolor/scalable/apps/$app_id.svg" \
        "$share/icons/hicolor/symbolic/apps/$app_id-symbolic.svg" \
        "$share/glib-2.0/schemas/$app_id.gschema.xml"
    for lang in $(languages); do rm -f "$share/locale/$lang/LC_MESSAGES/vireo.mo"; done
    for dir in "$share"/help/*/vireo; do [ -d "$dir" ] && rm -rf "$dir"; done
    # A schema directory without schemas must not keep a stale compiled file.
    if [ -f "$share/glib-2.0/schemas/gschemas.compiled" ] &&
        ! ls "$share/glib-2.0/schemas/"*.gschema.xml >/dev/null 2>&1; then
        rm -f "$share/glib-2.0/schemas/gschemas.compiled"
    fi
    refresh_caches
    echo "Vireo removed from $root"
    exit 0
fi

for tool in msgfmt install; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (apt-get install gettext coreutils)"
done

target_dir=${CARGO_TARGET_DIR:-$top/target}
if [ "$build" = yes ]; then
    command -v cargo >/dev/null 2>&1 || die "cargo is missing; install Rust or use --no-build"
    if [ "$profile" = release ]; then
        (cd "$top" && cargo build --release -p vireo -p vireo-vmm)
    else
        (cd "$top" && cargo build -p vireo -p vireo-vmm)
    fi
fi
for b in $binaries; do
    [ -x "$target_dir/$profile/$b" ] || die "$target_dir/$profile/$b is not built (run without --no-build)"
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# Binaries
install -d "$root/bin"
for b in $binaries; do install -m 755 "$target_dir/$profile/$b" "$root/bin/$b"; done

# Desktop entry and metainfo with their translations merged in
sed "s|@bindir@|$prefix/bin|g" "$top/data/$app_id.desktop.in" > "$tmp/$app_id.desktop.in"
msgfmt --desktop -d "$top/po" --template "$tmp/$app_id.desktop.in" -o "$tmp/$app_id.merged"
# Notes for translators are of no use in the installed file.
grep -v '^# Translators:' "$tmp/$app_id.merged" > "$tmp/$app_id.desktop"
install -D -m 644 "$tmp/$app_id.desktop" "$share/applications/$app_id.desktop"
msgfmt --xml -d "$top/po" --template "$top/data/$app_id.metainfo.xml.in" -o "$tmp/$app_id.metainfo.xml"
install -D -m 644 "$tmp/$app_id.metainfo.xml" "$share/metainfo/$app_id.metainfo.xml"

# Icons
install -D -m 644 "$top/data/icons/hicolor/scalable/apps/$app_id.svg" \
    "$share/icons/hicolor/scalable/apps/$app_id.svg"
install -D -m 644 "$top/data/icons/hicolor/symbolic/apps/$app_id-symbolic.svg" \
    "$share/icons/hicolor/symbolic/apps/$app_id-symbolic.svg"

# Settings schema
install -D -m 644 "$top/data/$app_id.gschema.xml" "$share/glib-2.0/schemas/$app_id.gschema.xml"

# Translations
for lang in $(languages); do
    install -d "$share/locale/$lang/LC_MESSAGES"
    msgfmt --check -o "$share/locale/$lang/LC_MESSAGES/vireo.mo" "$top/po/$lang.po"
done

# Help (Mallard pages are installed as they are; yelp reads them directly)
for dir in "$top"/help/*/; do
    lang=$(basename "$dir")
    install -d "$share/help/$lang/vireo"
    cp -R "$dir". "$share/help/$lang/vireo/"
done

refresh_caches
echo "Vireo installed into $root"
case ":${PATH:-}:" in
*":$prefix/bin:"*) ;;
*) echo "Note: $prefix/bin is not in PATH; start Vireo from the desktop or as $prefix/bin/vireo" ;;
esac
