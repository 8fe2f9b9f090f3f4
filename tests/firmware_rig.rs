//! Firmware boot end to end through the nested-KVM rig (directly on a host with hardware KVM),
//! with boot media built at test time from Debian packages (`vireo_rig::fixtures`):
//! - a grub-mkrescue ISO attached with `vireoctl create --cdrom` boots through SeaBIOS; GRUB's
//!   menu is read off `vireoctl screenshot` (both entries, the first highlighted; the screen
//!   reader matches the VGA font of Debian's SeaVGABIOS); Down and Return pressed over VNC pick
//!   the second entry, whose command line the guest prints; the guest finds the ISO it came
//!   from and prints the sha256 of a file on it;
//! - the machine has an empty disk and the CD, booted CD first (`--boot cdrom,hd,menu=on`):
//!   SeaBIOS offers its boot menu on the screen and follows the order. (Falling through from an
//!   empty disk to the CD needs a CD-ROM drive: SeaBIOS boots only its first hard disk, and an
//!   ISO on virtio-blk is a hard disk to it);
//! - the guest's own `reboot` and `vireoctl reboot` go back through the firmware (GRUB's menu
//!   comes back: a direct kernel boot has none);
//! - a disk without a boot loader leaves SeaBIOS's "No bootable device" on the screen and in
//!   the machine's log;
//! - a Debian disk with GRUB (`--import`, qcow2) boots to multi-user, sees the machine's UUID in
//!   /sys/class/dmi/id/product_uuid (SMBIOS type 1), and `vireoctl shutdown` ends it cleanly
//!   through ACPI.
//!
//! The events of the whole run are checked in order. One script, one fresh L1, five L2 boots
//! (three of the ISO machine, of which only the first boots Linux, a blank disk's and the Debian
//! disk's).
//!
//! Needs: `cargo build --workspace --bins` (vireoctl, vireo-vmm and vireo-rig, whose
//! `screen-text` reads the screenshots in L1), QEMU, mmdebstrap, grub-pc-bin, xorriso, seabios,
//! apt access (the fixtures are cached in the target dir's `vireo-fixtures/`), python3.

mod vireoctl_support;

use std::path::PathBuf;
use vireo_rig::fixtures::{self, MenuTimeout, DISK_MARKER, ISO_MENU_ENTRIES};
use vireoctl_support::rig_script::{lifecycle_events, run_in_rig, shell_helpers};

/// The UUID the Debian disk's machine is created with and must see.
const UUID: &str = "5c0ffee0-1234-4abc-8def-0123456789ab";

/// The vireo-rig binary (for `screen-text` in L1), built beside vireoctl.
fn rig_binary() -> PathBuf {
    let p = vireoctl_support::vireoctl().with_file_name("vireo-rig");
    assert!(
        p.is_file(),
        "{} is missing: build it first (cargo build --workspace --bins)",
        p.display()
    );
    p
}

struct Inputs {
    vireoctl: String,
    vmm: String,
    rig: String,
    check: &'static str,
    iso: String,
    iso_sum: String,
    disk: String,
}

fn script(i: &Inputs) -> String {
    let helpers = shell_helpers("fi", &i.vireoctl, &i.vmm);
    let [e1, e2] = ISO_MENU_ENTRIES;
    format!(
        r#"{helpers}
check() {{ timeout -k 5 120 /usr/bin/python3 {check} "$@"; }}
# machine NAME: the helpers' machine is NAME from here on.
machine() {{ M=$1; R=$X/r/vireo/$M; S=$R/serial.log; }}
# wait_screen SECONDS CHECKS...: screenshots until `vireo-rig screen-text` finds the checks
# (--expect/--highlighted/--plain TEXT) on the screen; prints the last screen on failure.
wait_screen() {{
    t=$1; shift
    end=$(( $(date +%s) + t ))
    while [ $(date +%s) -lt $end ]; do
        if v 30 screenshot $M $X/screen.png >$X/shot.txt 2>&1; then
            timeout 60 {rig} screen-text $X/screen.png "$@" >$X/screen.txt 2>&1 && return 0
        fi
        sleep 1
    done
    echo "waited $t s for the screen to show: $*"; cat $X/shot.txt $X/screen.txt; return 1
}}
keys() {{ check keys "$(v 30 vncsocket $M)" "$@" || fail "pressing $* over VNC"; }}

step iso-create
qemu-img create -q -f qcow2 $X/empty.qcow2 1G || fail "qemu-img create"
v 60 create --name $M --memory 512 --network none --disk path=$X/empty.qcow2,format=qcow2 --cdrom {iso} --boot cdrom,hd,menu=on || fail "create with the CD first and an empty disk"
v 30 dumpxml $M > $X/$M.xml
grep -q "device='cdrom'" $X/$M.xml || fail "no cdrom disk in the definition"
tr -d '\n' < $X/$M.xml | grep -q "<boot dev='cdrom'/> *<boot dev='hd'/>" || fail "boot order cdrom, hd not in the definition: $(grep boot $X/$M.xml)"
grep -q "<bootmenu enable='yes'" $X/$M.xml || fail "no boot menu in the definition"
# Long enough for screenshots to catch SeaBIOS's prompt under nested emulation.
sed -i "s|<bootmenu enable='yes'[^>]*/>|<bootmenu enable='yes' timeout='15000'/>|" $X/$M.xml
v 30 define $X/$M.xml || fail "define with a boot menu timeout"
step iso-menu
v 120 start $M || fail "start"
wait_screen 60 --expect 'Press ESC for boot menu' || fail "SeaBIOS's boot menu prompt is not on the screen"
# The CD comes first although the disk is the machine's first: the firmware follows the order.
wait_serial VIREO-GRUB-MENU 240 || fail "GRUB did not start from the CD"
wait_screen 120 --expect 'GNU GRUB' --highlighted '{e1}' --plain '{e2}' || fail "GRUB's menu with the first entry highlighted is not on the screen"
cat $X/screen.txt
step iso-second-entry
keys Down
wait_screen 60 --highlighted '{e2}' --plain '{e1}' || fail "Down over VNC did not move GRUB's highlight"
keys Return
wait_serial "VIREO-ISO-ENTRY entry=second" 300 || fail "the second entry did not boot"
wait_serial "VIREO-ISO-READ dev=/dev/vd[a-z]* sha256={iso_sum}" 120 || fail "the guest did not read the ISO it booted from"
wait_serial "VIREO-ISO-READY entry=second" 60 || fail "no ready line"
state_is "running (booted)"

# A reboot goes back through the firmware: GRUB's menu comes back (a direct kernel boot has
# none), and the firmware's own log says it booted again.
step iso-guest-reboot
: > "$S"
type_line 'reboot -f'
wait_serial VIREO-GRUB-MENU 240 || fail "GRUB did not come back after the guest's reboot"
wait_screen 120 --highlighted '{e1}' --plain '{e2}' || fail "GRUB's menu is not on the screen after the guest's reboot"
step iso-vireoctl-reboot
: > "$S"
v 120 reboot $M || fail "vireoctl reboot"
wait_serial VIREO-GRUB-MENU 240 || fail "GRUB did not come back after vireoctl reboot"
v 60 destroy $M || fail "destroy"

# A disk without a boot loader: the firmware says so on the screen and in the machine's log.
step not-bootable
machine fn
qemu-img create -q -f qcow2 $X/blank.qcow2 1G || fail "qemu-img create"
v 60 create --name $M --memory 256 --network none --import --disk path=$X/blank.qcow2,format=qcow2 || fail "create --import with a blank disk"
v 120 start $M || fail "start"
wait_screen 120 --expect 'No bootable device' || fail "SeaBIOS's 'No bootable device' is not on the screen"
grep -q 'firmware: No bootable device' $R/vmm.log || fail "the firmware's message is not in the machine's log: $(grep firmware: $R/vmm.log | tail -n 5)"
v 60 destroy $M || fail "destroy"

step disk
machine fd
cp {disk} $X/debian.qcow2 || fail "copying the Debian disk"
v 60 create --name $M --uuid {UUID} --memory 512 --network none --import --disk path=$X/debian.qcow2,format=qcow2 || fail "create --import"
v 120 start $M || fail "start"
wait_serial VIREO-GRUB-DISK 240 || fail "GRUB did not start from the disk"
wait_serial "{DISK_MARKER}" 600 || fail "the Debian disk did not reach multi-user"
grep -q "{DISK_MARKER} uuid={UUID}" $S || fail "the guest's product_uuid is not the machine's: $(grep {DISK_MARKER} $S)"
step disk-shutdown
v 300 shutdown --timeout 240 $M || fail "graceful shutdown"
state_is "shut off (shutdown)"
grep -q "reboot: Power down" $S || fail "the guest did not power itself down"

echo EVENTS-BEGIN
for m in fi fn fd; do v 30 event --all --domain $m --timeout 0; done
echo EVENTS-END
step done
"#,
        check = i.check,
        rig = i.rig,
        iso = i.iso,
        iso_sum = i.iso_sum,
        disk = i.disk,
    )
}

/// The events of the three machines, machine by machine.
fn expected_events() -> Vec<String> {
    let mut all = lifecycle_events(
        "fi",
        &[
            "Defined Added",
            "Defined Updated",
            "Started Booted",
            "reboot", // the guest's reboot, on_reboot=restart
            "Started Booted",
            "reboot", // vireoctl reboot
            "Started Booted",
            "Stopped Destroyed",
        ],
    );
    all.extend(lifecycle_events(
        "fn",
        &["Defined Added", "Started Booted", "Stopped Destroyed"],
    ));
    all.extend(lifecycle_events(
        "fd",
        &[
            "Defined Added",
            "Started Booted",
            "Shutdown Finished",
            "Stopped Shutdown",
        ],
    ));
    all
}

#[test]
fn isos_and_disks_boot_through_the_firmware_in_the_rig() {
    let iso = fixtures::boot_iso(MenuTimeout::WaitForKey)
        .unwrap_or_else(|e| panic!("building the boot ISO: {e}"));
    let disk = fixtures::debian_disk().unwrap_or_else(|e| panic!("building the Debian disk: {e}"));
    eprintln!(
        "fixtures: ISO {:?}, Debian disk {:?}",
        iso.provenance, disk.provenance
    );
    let inputs = Inputs {
        vireoctl: vireoctl_support::vireoctl().display().to_string(),
        vmm: vireoctl_support::vmm().display().to_string(),
        rig: rig_binary().display().to_string(),
        check: concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vireoctl_support/vnc_check.py"
        ),
        iso: iso.path.display().to_string(),
        iso_sum: iso.marker_sha256,
        disk: disk.qcow2.display().to_string(),
    };
    run_in_rig("firmware rig", &script(&inputs), &expected_events(), 2700);
}

/// The script is valid shell with any paths (`sh -n`): a quoting slip fails here, in seconds,
/// not after the fixtures and an L1 boot.
#[test]
fn the_firmware_script_parses() {
    let s = script(&Inputs {
        vireoctl: "/x/vireoctl".into(),
        vmm: "/x/vireo-vmm".into(),
        rig: "/x/vireo-rig".into(),
        check: "/x/vnc_check.py",
        iso: "/x/boot.iso".into(),
        iso_sum: "0".repeat(64),
        disk: "/x/disk.qcow2".into(),
    });
    let out = std::process::Command::new("sh")
        .args(["-n", "-c", &s])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sh -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "iso-menu",
        "iso-second-entry",
        "iso-guest-reboot",
        "iso-vireoctl-reboot",
        "not-bootable",
        "disk-shutdown",
        "done",
    ] {
        assert!(s.contains(&format!("\nstep {step}")), "no step {step}");
    }
}
