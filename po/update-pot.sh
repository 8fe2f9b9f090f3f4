#!/bin/sh
# Regenerates po/vireo.pot from the files in po/POTFILES.in and merges it into every
# translation listed in po/LINGUAS. Needs gettext (xgettext, msgmerge, msgcat).
#
#   po/update-pot.sh            # from anywhere inside the source tree
set -eu

top=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
cd "$top"

files=$(grep -v -e '^#' -e '^[[:space:]]*$' po/POTFILES.in)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

common="--from-code=UTF-8 --add-location=file --add-comments=Translators --package-name=vireo --package-version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1) --msgid-bugs-address=https://gitlab.gnome.org/World/vireo/-/issues"

rust=$(printf '%s\n' $files | grep '\.rs$' || true)
ui=$(printf '%s\n' $files | grep '\.ui$' || true)
desktop=$(printf '%s\n' $files | grep '\.desktop\.in$' || true)
xml=$(printf '%s\n' $files | grep -e '\.metainfo\.xml\.in$' -e '\.gschema\.xml$' || true)

# xgettext (0.21) has no Rust parser; its C parser reads our gettext("...") calls as long as
# the msgid is a plain string literal. Rust lifetimes ('static) look like unterminated C
# character constants to it, so they are removed from a copy first. Locations name the file
# only, so moving a string within its file does not make the template stale.
for f in $rust; do
    mkdir -p "$tmp/rs/$(dirname "$f")"
    sed "s/'\([A-Za-z_][A-Za-z0-9_]*\)\([^A-Za-z0-9_']\)/\1\2/g" "$f" > "$tmp/rs/$f"
done
# shellcheck disable=SC2086
(cd "$tmp/rs" && xgettext $common --language=C --keyword= --keyword=gettext --keyword=gettext_f:1 \
    -o "$tmp/rust.pot" $rust)
# shellcheck disable=SC2086
xgettext $common -o "$tmp/ui.pot" $ui
# shellcheck disable=SC2086
xgettext $common --language=Desktop -o "$tmp/desktop.pot" $desktop
for f in $xml; do
    case "$f" in
    *.metainfo.xml.in) its=metainfo ;;
    *.gschema.xml) its=gschema ;;
    esac
    rules=$(ls /usr/share/gettext/its/$its.its /usr/share/gettext-*/its/$its.its 2>/dev/null | head -n 1)
    xgettext $common --its="$rules" -o "$tmp/$(basename "$f").pot" "$f"
done

msgcat --use-first --add-location=file -o po/vireo.pot "$tmp"/*.pot
# Keep the header of a real template (msgcat drops the charset placeholder otherwise).
sed -i 's/^"Content-Type: text\/plain; charset=CHARSET\\n"/"Content-Type: text\/plain; charset=UTF-8\\n"/' po/vireo.pot

for lang in $(sed 's/#.*//' po/LINGUAS); do
    msgmerge --quiet --add-location=file --update --backup=none --previous "po/$lang.po" po/vireo.pot
done
echo "po/vireo.pot: $(grep -c '^msgid ' po/vireo.pot) entries (including the header)"
