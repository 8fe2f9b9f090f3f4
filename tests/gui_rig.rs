//! The real app inside the nested-KVM rig: L1 reads the host's /usr over 9p, so Xvfb, D-Bus and
//! `vireo` (the debug build of this tree) run there, on a KVM that boots firmware. The app is
//! started with the firmware tests' boot ISO on its command line (as a file manager opens a
//! file with it): the wizard opens on it, Create makes and starts the machine and opens its
//! console; the
//! console then shows GRUB's menu as the guest's standard VGA draws it, read off a screenshot of
//! the console window (`vireo-rig screen-text`, the VGA font matched glyph by glyph), and Down
//! pressed in the console window moves GRUB's highlight: the keyboard reaches the boot loader.
//!
//! The console is set to show the guest's screen at its actual size (a setting): text is read
//! pixel for pixel, which a scaled picture would not allow; the screen is cut out of the
//! window's screenshot by its black background. Needs what `firmware_rig` needs,
//! plus the GUI tests' tools (Xvfb, xdotool, ImageMagick's import) on the host.

mod vireoctl_support;

use std::path::PathBuf;
use vireo_rig::fixtures::{self, MenuTimeout, ISO_MENU_ENTRIES};
use vireoctl_support::rig_script::{lifecycle_events, run_in_rig, shell_helpers};

fn sibling(name: &str) -> String {
    let p: PathBuf = vireoctl_support::vireoctl().with_file_name(name);
    assert!(
        p.is_file(),
        "{} is missing: build it first (cargo build --workspace --bins)",
        p.display()
    );
    p.display().to_string()
}

fn script(vireoctl: &str, vmm: &str, vireo: &str, rig: &str, iso: &str) -> String {
    let helpers = shell_helpers("machine", vireoctl, vmm);
    let [e1, e2] = ISO_MENU_ENTRIES;
    format!(
        r#"{helpers}
step gui-start
mkdir -p $X/c/glib-2.0/settings $X/home
printf "[org/vireo/Vireo]\nconsole-scaling='actual'\n" > $X/c/glib-2.0/settings/keyfile
Xvfb :5 -screen 0 1600x1000x24 -nolisten tcp > $X/xvfb.log 2>&1 &
for i in $(seq 150); do [ -e /tmp/.X11-unix/X5 ] && break; sleep 0.2; done
[ -e /tmp/.X11-unix/X5 ] || fail "Xvfb did not start: $(tail -n 5 $X/xvfb.log)"
# No session bus: L1's dbus-daemon accepts connections and never answers (its clients time
# out after 25 s), so the app runs without one, as a non-unique application, and the ISO is
# given on its command line, as a file manager opens a file with it.
export DBUS_SESSION_BUS_ADDRESS=unix:path=$X/no-bus DISPLAY=:5 GDK_BACKEND=x11 GSK_RENDERER=cairo
export GTK_A11Y=none GSETTINGS_BACKEND=keyfile LANG=C.UTF-8 HOME=$X/home
export VIREO_SUPERVISOR={vireoctl} VIREO_TRACE_WIZARD=1
{vireo} '{iso}' > $X/vireo.log 2>&1 &
APP=$!
# wait_window TITLE SECONDS: sets W to the window's id.
wait_window() {{
    end=$(( $(date +%s) + $2 ))
    while [ $(date +%s) -lt $end ]; do
        W=$(xdotool search --name "^$1\$" 2>/dev/null | head -n 1)
        [ -n "$W" ] && return 0
        sleep 0.5
    done
    echo "no window '$1' after $2 s; the app said: $(tail -n 20 $X/vireo.log)"; return 1
}}
wait_log() {{
    end=$(( $(date +%s) + $2 ))
    while [ $(date +%s) -lt $end ]; do grep -q "$1" $X/vireo.log && return 0; sleep 0.5; done
    echo "'$1' not in the app's output after $2 s: $(tail -n 20 $X/vireo.log)"; return 1
}}
press() {{ xdotool windowfocus --sync "$1" && sleep 0.3 && xdotool key --clearmodifiers "$2"; }}
wait_window Vireo 600 || fail "the app did not show its window"
echo "APP-WINDOW +$(( $(date +%s) - T0 ))s"

step gui-create
wait_window "New Machine" 300 || fail "no wizard for the ISO the app was opened with"
wait_log "vireo-trace: detected boot.iso os=" 300 || fail "no detection"
echo "DETECTED +$(( $(date +%s) - T0 ))s"
sleep 2
press $W alt+c || fail "pressing Create"
wait_window "machine – Console" 600 || fail "no console after Create"
echo "CONSOLE-WINDOW +$(( $(date +%s) - T0 ))s"
CW=$W
v 30 dumpxml --inactive machine | grep -q "<vireo:install-cdrom>" || fail "the wizard's machine is not installing from the ISO"

step gui-console-grub
# shot_reads SECONDS CHECKS...: console screenshots until the screen reader finds the checks.
shot_reads() {{
    secs=$1; shift
    end=$(( $(date +%s) + secs ))
    while [ $(date +%s) -lt $end ]; do
        # The guest's screen is the window's only area of pure black (GRUB's and the BIOS's
        # background; the window's own text is dark grey): its bounding box is the screen,
        # cut out so the reader sees the screen alone.
        if import -window $CW -type TrueColor png24:$X/window.png 2>$X/import.txt; then
            box=$(convert $X/window.png -fill white +opaque black -trim -format '%wx%h%O' info: 2>>$X/import.txt)
            convert $X/window.png -crop "$box" +repage -type TrueColor png24:$X/console.png 2>>$X/import.txt \
                && timeout 120 {rig} screen-text $X/console.png "$@" > $X/screen.txt 2>&1 && return 0
        fi
        sleep 2
    done
    echo "the console never showed: $*"; cat $X/import.txt $X/screen.txt; return 1
}}
grub() {{ shot_reads 400 --expect 'GNU GRUB' --highlighted '{e1}' --plain '{e2}'; }}
# A boot the nested rig loses is started again (the console reconnects by itself).
start_again() {{ v 120 start machine; }}
booted grub start_again || fail "GRUB's menu is not in the console window"
cat $X/screen.txt
echo "GRUB-IN-CONSOLE +$(( $(date +%s) - T0 ))s"

step gui-console-keys
press $CW Down || fail "pressing Down"
shot_reads 120 --highlighted '{e2}' --plain '{e1}' || fail "Down in the console window did not move GRUB's highlight"
v 60 destroy machine || fail "destroy"
kill $APP

echo EVENTS-BEGIN
v 30 event --all --domain machine --timeout 0
echo EVENTS-END
step done
"#
    )
}

#[test]
fn the_app_in_the_rig_installs_from_an_iso_and_its_console_shows_grub_and_takes_keys() {
    let iso = fixtures::boot_iso(MenuTimeout::WaitForKey)
        .unwrap_or_else(|e| panic!("building the boot ISO: {e}"));
    let script = script(
        &vireoctl_support::vireoctl().display().to_string(),
        &vireoctl_support::vmm().display().to_string(),
        &sibling("vireo"),
        &sibling("vireo-rig"),
        &iso.path.display().to_string(),
    );
    let events = lifecycle_events(
        "machine",
        &["Defined Added", "Started Booted", "Stopped Destroyed"],
    );
    run_in_rig("GUI rig", &script, &events, 2400);
}

/// The script is valid shell (`sh -n`).
#[test]
fn the_gui_rig_script_parses() {
    let s = script(
        "/x/vireoctl",
        "/x/vireo-vmm",
        "/x/vireo",
        "/x/vireo-rig",
        "/x/boot.iso",
    );
    let out = std::process::Command::new("sh")
        .args(["-n", "-c", &s])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sh -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
