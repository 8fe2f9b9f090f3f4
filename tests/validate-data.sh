#!/bin/sh
# Runs every validator over Vireo's data files; exits non-zero on the first failure.
# Needs: desktop-file-utils, appstream, libglib2.0-bin, yelp-tools, gettext, libxml2-utils.
#
#   tests/validate-data.sh
set -eu

top=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
cd "$top"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
app_id=org.vireo.Vireo

step() { printf '== %s\n' "$*"; }

step "msgfmt --check on every .po"
for po in po/*.po; do
    msgfmt --check --check-compatibility -o /dev/null "$po"
done

step "every language in LINGUAS is complete (no untranslated or fuzzy messages)"
for lang in $(sed 's/#.*//' po/LINGUAS); do
    [ -f "po/$lang.po" ] || { echo "po/LINGUAS names $lang, but po/$lang.po is missing" >&2; exit 1; }
    left=$(msgattrib --untranslated --no-obsolete "po/$lang.po" | grep -c '^msgid ' || true)
    fuzzy=$(msgattrib --only-fuzzy --no-obsolete "po/$lang.po" | grep -c '^msgid ' || true)
    if [ "$left" -gt 0 ] || [ "$fuzzy" -gt 0 ]; then
        echo "po/$lang.po: $left untranslated and $fuzzy fuzzy messages" >&2
        exit 1
    fi
done

step "po/vireo.pot and the translations are up to date with the sources"
# Regenerate in a copy of the tree, so that this check never changes the work tree.
mkdir -p "$tmp/tree/src"
cp -R po data ui Cargo.toml "$tmp/tree/"
cp -R src/gui "$tmp/tree/src/"
grep -v '^#' po/POTFILES.in | while read -r f; do
    [ -n "$f" ] || continue
    [ -f "$f" ] || { echo "po/POTFILES.in lists $f, which does not exist" >&2; exit 1; }
done
sh "$tmp/tree/po/update-pot.sh" >/dev/null 2>"$tmp/xgettext.log" || { cat "$tmp/xgettext.log" >&2; exit 1; }
for f in po/vireo.pot po/*.po; do
    if ! diff -q -I '^"POT-Creation-Date' "$f" "$tmp/tree/$f" >/dev/null; then
        diff -u -I '^"POT-Creation-Date' "$f" "$tmp/tree/$f" | head -n 40 >&2
        echo "$f is stale: run po/update-pot.sh, translate and commit" >&2
        exit 1
    fi
done

step "every translatable string in the sources is listed in POTFILES.in"
for f in $(grep -l -e 'gettext(' -e 'gettext_f(' src/gui/*.rs src/gui/*/*.rs src/main.rs 2>/dev/null) $(grep -l 'translatable="yes"' ui/*.ui); do
    case "$f" in src/gui/i18n.rs) continue ;; esac
    grep -qx "$f" po/POTFILES.in || { echo "$f has translatable strings but is not in po/POTFILES.in" >&2; exit 1; }
done

step "every gettext() literal in the Rust sources made it into po/vireo.pot"
# xgettext reads Rust with its C parser; this catches a string it might have misread.
msgcat --no-wrap po/vireo.pot | sed -n 's/^msgid "\(.*\)"$/\1/p' > "$tmp/msgids"
perl -0777 -ne 'while (/\bgettext(?:_f)?\(\s*"((?:[^"\\]|\\.)*)"/g) { print "$1\n" }' \
    src/main.rs src/gui/*.rs src/gui/*/*.rs | sort -u | while IFS= read -r id; do
    grep -qxF -- "$id" "$tmp/msgids" || { echo "“$id” is missing from po/vireo.pot" >&2; exit 1; }
done

step "glib-compile-schemas --strict --dry-run"
glib-compile-schemas --strict --dry-run data/

step "desktop-file-validate (after merging translations)"
sed "s|@bindir@|/usr/bin|g" "data/$app_id.desktop.in" > "$tmp/$app_id.desktop.in"
msgfmt --desktop -d po --template "$tmp/$app_id.desktop.in" -o "$tmp/$app_id.desktop"
desktop-file-validate "$tmp/$app_id.desktop"

step "appstreamcli validate --no-net (after merging translations)"
msgfmt --xml -d po --template "data/$app_id.metainfo.xml.in" -o "$tmp/$app_id.metainfo.xml"
appstreamcli validate --no-net "$tmp/$app_id.metainfo.xml"
grep -q "data/screenshots/main.png" "$tmp/$app_id.metainfo.xml"
[ -s data/screenshots/main.png ] || { echo "data/screenshots/main.png is missing" >&2; exit 1; }

step "yelp-check validate help/C/*.page"
yelp-check validate help/C/*.page

step "well-formed .ui, icons and GResource description"
xmllint --noout ui/*.ui data/resources.gresource.xml \
    data/icons/hicolor/scalable/apps/$app_id.svg \
    data/icons/hicolor/symbolic/apps/$app_id-symbolic.svg

echo "All data validators passed."
