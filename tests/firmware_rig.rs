//! Firmware boot and the CD-ROM drive end to end through the nested-KVM rig (directly on a
//! host with hardware KVM), with boot media built at test time from Debian packages
//! (`vireo_rig::fixtures`):
//! - a grub-mkrescue ISO attached with `vireoctl create --machine pc --cdrom` sits in a CD-ROM
//!   drive on virtio-scsi, behind an empty disk in the boot order (`--boot hd,cdrom,menu=on`),
//!   on the pc machine with its standard VGA (SeaBIOS's stdvga ROM, real VGA text mode):
//!   SeaBIOS offers its boot menu on the screen, tries the disk, finds no boot loader and falls
//!   through to the CD (its log says all three); GRUB's menu is read off `vireoctl screenshot`
//!   (both entries, the first highlighted; the screen reader matches the VGA font of Debian's
//!   SeaVGABIOS); Down and Return pressed over VNC pick the second entry, whose command line the
//!   guest prints; the guest finds the ISO it came from on /dev/sr0 and prints the sha256 of a
//!   file on it. Linux's `bochs` DRM driver binds the VGA (/sys/class/drm/card0) and sets the
//!   EDID's preferred mode, the definition's `<resolution>`: a VNC viewer connected since the
//!   GRUB menu gets that size as a desktop resize, and a line written to /dev/tty0 is read off
//!   the screen (the Linux console);
//! - a disk without a boot loader leaves SeaBIOS's "No bootable device" on the screen and in
//!   the machine's log, on Vireo's own machine (`--machine vireo`: virtio-mmio, ramfb); the
//!   other machines are pc, the default for a firmware boot;
//! - an El Torito-only ISO (no MBR, no partition table: only a firmware that boots CDs starts
//!   it) boots from the CD-ROM drive: its GRUB prints a line it read off the disc;
//! - the ISO's system on a machine without a screen (GRUB's menu answered on the serial
//!   console) writes 2 MiB of random data to a `bus='scsi'` qcow2 data disk (put into the
//!   definition's XML: `vireoctl create` puts a `--disk` on virtio-blk and refuses `bus=scsi`);
//!   the guest's own `reboot` and `vireoctl reboot` go back through the firmware (GRUB's menu
//!   comes back: a direct kernel boot has none); after both, the system boots again and reads
//!   the same sum back;
//! - a Debian disk with GRUB (`--import`, qcow2) boots to multi-user, sees the machine's UUID in
//!   /sys/class/dmi/id/product_uuid (SMBIOS type 1). Its machine also has a CD-ROM drive on
//!   virtio-scsi with a data ISO in it (`--disk PATH,device=cdrom`). Debian's stock kernel sees
//!   the drive (/sys/block/sr0/device/type is 5), mounts it and reads a file with the ISO's
//!   sum; while it is mounted (the sr driver locks the tray) `vireoctl change-media --eject` is
//!   refused with a line about the lock and the medium stays, `--force` ejects it; `--insert`
//!   of the second data ISO: the guest mounts it and reads its file without a reboot, and
//!   `vireoctl domblklist` shows it; the guest's own `eject` empties the drive (domblklist
//!   follows). Then `vireoctl shutdown` ends the machine cleanly through ACPI.
//!
//! A boot from shut off that the nested rig loses to a triple fault (see `run_in_rig`) is
//! started once more in place (`booted`), and written down as a rerun.
//!
//! Only the machines whose screen is checked have one (`--graphics none` for the others): the
//! nested rig loses firmware boots to triple faults (and once took L1 down with one), most often
//! while SeaVGABIOS draws text into ramfb's framebuffer (the microvm machine's display), which
//! it does through the BIOS's protected-mode block move, thousands of mode switches per screen.
//! The pc machine's VGA has real text mode and none of that: its GRUB menu is on the screen
//! seconds after the serial console has it, where ramfb took 40 s to past 300 s.
//!
//! The events of the whole run are checked in order. One script, one fresh L1, seven L2 boots:
//! the ISO machine's (to Linux), a blank disk's, the El Torito ISO's, three of the ISO's system
//! for the reboots and the SCSI disk (two to Linux, the guest's reboot to GRUB's menu), and one
//! of the Debian disk, the slowest by far (systemd under nested emulation, minutes): the reboots
//! are the small system's, not the Debian disk's.
//!
//! Needs: `cargo build --workspace --bins` (vireoctl, vireo-vmm and vireo-rig, whose
//! `screen-text` reads the screenshots in L1), QEMU, mmdebstrap, grub-pc-bin, xorriso, seabios,
//! apt access (the fixtures are cached in the target dir's `vireo-fixtures/`), python3.

mod vireoctl_support;

use std::path::PathBuf;
use vireo_rig::fixtures::{
    self, DiskLayout, MenuTimeout, DISK_MARKER, ELTORITO_GRUB, ISO_MENU_ENTRIES,
};
use vireoctl_support::rig_script::{lifecycle_events, run_in_rig, shell_helpers};

/// The UUID the Debian disk's machine is created with and must see.
const UUID: &str = "5c0ffee0-1234-4abc-8def-0123456789ab";
/// The ISO machine's display size: neither SeaBIOS's text mode nor GRUB's 1024x768, so only the
/// KMS driver, reading it from the EDID, sets it.
const KMS_SIZE: (u32, u32) = (1152, 864);

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
    /// The ISO's kernel, whose console font the screen reader takes for the Linux console.
    iso_kernel: String,
    disk: String,
    eltorito: String,
    eltorito_marker: String,
    /// The data ISOs: path, file on it, its sha256.
    data: [(String, &'static str, String); 2],
    /// The install flow's ISO and the sum its installed system prints.
    installer: String,
    installed_sum: String,
}

/// Defines `guest_ready` in a script (uses `type_line` and `wait_serial`).
const GUEST_READY: &str = r#"# guest_ready: the root shell on the serial console answers (its getty may start after the
# multi-user marker and flush what came before), and keeps kernel messages below errors off
# the console so they do not split the lines the script waits for.
# Any answer will do: a line typed while the getty starts is flushed, one typed later answers
# late under a loaded rig.
guest_ready() {
    for n in 1 2 3 4 5 6 7 8 9 10 11 12; do
        type_line "dmesg -n 4; echo VIREO-SH-\$(( 40 + $n ))"
        wait_serial "VIREO-SH-[0-9]" 10 && return 0
    done
    return 1
}
"#;

/// `first_entry`: GRUB's menu is on the serial console; Return boots the first entry. In the rig
/// GRUB takes about 40 s to finish drawing its menu after the entry's name shows and some 20 s
/// more to print its boot line (each character costs it a few mode switches, slow under nested
/// TCG); the Return waits in the UART meanwhile. Only a Return without a boot line after 120 s
/// is sent again, and said so.
fn first_entry_fn() -> String {
    let [e1, _] = ISO_MENU_ENTRIES;
    format!(
        r#"first_entry() {{
    wait_serial '{e1}' 240 || return 1
    for try in 1 2 3; do
        printf '\r' | v 60 console $M >/dev/null || return 1
        wait_serial "VIREO-GRUB-BOOT.*entry=first" 120 && break
        echo "GRUB-RETURN-UNANSWERED $M in step $STEP (Return number $try)"
        [ $try -eq 3 ] && return 1
    done
    wait_serial "VIREO-ISO-READY entry=first" 300
}}
"#
    )
}

fn script(i: &Inputs) -> String {
    let helpers = shell_helpers("fi", &i.vireoctl, &i.vmm);
    let first_entry = first_entry_fn();
    let [e1, e2] = ISO_MENU_ENTRIES;
    format!(
        r#"{helpers}
check() {{ timeout -k 5 120 /usr/bin/python3 {check} "$@"; }}
# machine NAME: the helpers' machine is NAME from here on.
machine() {{ M=$1; R=$X/r/vireo/$M; S=$R/serial.log; }}
# wait_screen SECONDS CHECKS...: screenshots until `vireo-rig screen-text` finds the checks
# (--expect/--highlighted/--plain TEXT) on the screen; prints the last screen on failure.
wait_screen() {{
    secs=$1; shift
    end=$(( $(date +%s) + secs ))
    while [ $(date +%s) -lt $end ]; do
        if v 30 screenshot $M $X/screen.png >$X/shot.txt 2>&1; then
            timeout 60 {rig} screen-text $X/screen.png "$@" >$X/screen.txt 2>&1 && return 0
        fi
        unexpected && {{ echo "stopped waiting for the screen to show $*: the machine triple-faulted"; return 1; }}
        sleep 1
    done
    echo "waited $secs s for the screen to show: $*"; cat $X/shot.txt $X/screen.txt; return 1
}}
keys() {{ check keys "$(v 30 vncsocket $M)" "$@" || fail "pressing $* over VNC"; }}
# in_order FILE TEXT...: each TEXT is in FILE on a line after the previous one's.
in_order() {{
    f=$1; shift; at=0
    for p in "$@"; do
        l=$(awk -v s=$at -v p="$p" 'NR > s && index($0, p) {{ print NR; exit }}' "$f")
        [ -n "$l" ] || {{ echo "'$p' is not in $f after line $at"; return 1; }}
        at=$l
    done
}}
# blk TARGET: the source `vireoctl domblklist` shows for TARGET.
blk() {{ v 30 domblklist $M | awk -v t="$1" '$1 == t {{ print $2 }}'; }}
# target_of SOURCE: the target of the drive or disk whose source is SOURCE.
target_of() {{ v 30 domblklist $M | awk -v p="$1" '$2 == p {{ print $1 }}'; }}
{GUEST_READY}
step iso-create
qemu-img create -q -f qcow2 $X/empty.qcow2 1G || fail "qemu-img create"
v 60 create --name $M --machine pc --memory 512 --network none --disk path=$X/empty.qcow2,format=qcow2 --cdrom {iso} --boot hd,cdrom,menu=on || fail "create with an empty disk and the CD"
v 30 dumpxml $M > $X/$M.xml
grep -q "device='cdrom'" $X/$M.xml || fail "no cdrom disk in the definition"
grep -q "<target dev='sd[a-z]*' bus='scsi'/>" $X/$M.xml || fail "the CD-ROM drive is not on SCSI: $(grep -A4 "device='cdrom'" $X/$M.xml)"
grep -q "<controller type='scsi'[^>]* model='virtio-scsi'" $X/$M.xml || fail "no virtio-scsi controller: $(grep controller $X/$M.xml)"
tr -d '\n' < $X/$M.xml | grep -q "<boot dev='hd'/> *<boot dev='cdrom'/>" || fail "boot order hd, cdrom not in the definition: $(grep boot $X/$M.xml)"
grep -q "<bootmenu enable='yes'" $X/$M.xml || fail "no boot menu in the definition"
grep -q "<model type='vga'" $X/$M.xml || fail "the pc machine's video is not the standard VGA: $(grep -A2 '<video' $X/$M.xml)"
# Long enough for screenshots to catch SeaBIOS's prompt under nested emulation; a display size
# neither the BIOS nor GRUB sets, which only Linux's KMS driver takes (from the EDID).
sed -i "s|<bootmenu enable='yes'[^>]*/>|<bootmenu enable='yes' timeout='15000'/>|; s|<model type='vga'\([^/]*\)/>|<model type='vga'\1><resolution x='{kms_w}' y='{kms_h}'/></model>|" $X/$M.xml
v 30 define $X/$M.xml || fail "define with a boot menu timeout and a display size"
step iso-menu
iso_boot() {{
    rm -f "$S"
    v 120 start $M || return 1
    wait_screen 60 --expect 'Press ESC for boot menu' || return 1
    wait_serial VIREO-GRUB-MENU 240 || return 1
    # GRUB draws through the BIOS, a few port writes per character: seconds in the rig.
    wait_screen 120 --expect 'GNU GRUB' --highlighted '{e1}' --plain '{e2}'
}}
booted iso_boot || fail "no SeaBIOS boot menu prompt on the screen, or GRUB's menu with the first entry highlighted did not follow from the CD"
cat $X/screen.txt
# The empty disk comes first: the firmware tried it, found no boot loader and went on to the CD.
in_order $R/vmm.log 'firmware: Booting from Hard Disk' 'firmware: Boot failed: not a bootable disk' 'firmware: Booting from DVD/CD' || fail "the firmware did not fall through from the empty disk to the CD: $(grep -e 'firmware: Boot' $R/vmm.log)"
step iso-second-entry
# A viewer connected from the GRUB menu on: the guest's mode changes reach it as desktop
# resizes, up to the KMS driver's mode. A boot the rig loses takes the viewer's server with
# it: the retried boot gets a viewer of its own (iso_boot_watched).
watch_resize() {{
    check resize "$(v 30 vncsocket $M)" {kms_w}x{kms_h} 400 > $X/resize.txt 2>&1 &
    resize_pid=$!
}}
iso_boot_watched() {{
    kill $resize_pid 2>/dev/null; wait $resize_pid 2>/dev/null
    iso_boot && watch_resize
}}
watch_resize
second_entry() {{
    keys Down
    wait_screen 120 --highlighted '{e2}' --plain '{e1}' || {{ echo "Down over VNC did not move GRUB's highlight"; return 1; }}
    keys Return
    wait_serial "VIREO-ISO-ENTRY entry=second" 300
}}
booted second_entry iso_boot_watched || fail "the second entry did not boot"
wait_serial "VIREO-ISO-READ dev=/dev/sr0 sha256={iso_sum}" 120 || fail "the guest did not read the ISO it booted from in the CD-ROM drive: $(grep VIREO-ISO $S)"
wait_serial "VIREO-ISO-READY entry=second" 60 || fail "no ready line"
step iso-kms
type_line 'echo VIREO-DRM $(ls /sys/class/drm | tr "\n" " ") driver=$(basename $(readlink /sys/class/drm/card0/device/driver)) preferred=$(head -n 1 /sys/class/drm/card0-*/modes)'
wait_serial "VIREO-DRM card0 .*driver=bochs-drm preferred={kms_w}x{kms_h}" 60 || fail "the KMS driver did not bind the VGA with the EDID's mode: $(grep -a VIREO-DRM $S | tail -n 1)"
wait $resize_pid || fail "no desktop resize to {kms_w}x{kms_h}: $(cat $X/resize.txt)"
cat $X/resize.txt
type_line 'echo VIREO-ON-THE-LINUX-CONSOLE > /dev/tty0'
wait_screen 60 --kernel {iso_kernel} --expect VIREO-ON-THE-LINUX-CONSOLE || fail "the Linux console's line is not on the screen"
state_is "running (booted)"
v 60 destroy $M || fail "destroy"

# A disk without a boot loader: the firmware says so on the screen and in the machine's log.
step not-bootable
machine fn
qemu-img create -q -f qcow2 $X/blank.qcow2 1G || fail "qemu-img create"
# Vireo's own machine (virtio-mmio, ramfb): firmware boots there too.
v 60 create --name $M --machine vireo --memory 256 --network none --import --disk path=$X/blank.qcow2,format=qcow2 || fail "create --import with a blank disk"
blank_boot() {{ v 120 start $M && wait_screen 120 --expect 'No bootable device'; }}
booted blank_boot || fail "SeaBIOS's 'No bootable device' is not on the screen"
grep -q 'firmware: No bootable device' $R/vmm.log || fail "the firmware's message is not in the machine's log: $(grep firmware: $R/vmm.log | tail -n 5)"
v 60 destroy $M || fail "destroy"

# An ISO with no MBR: only El Torito boots it, from a CD-ROM drive; on the pc machine, whose
# SeaBIOS finds the drive behind a virtio-scsi PCI function.
step eltorito
machine fe
v 60 create --name $M --machine pc --memory 256 --network none --graphics none --cdrom {eltorito} || fail "create with the El Torito ISO on the pc machine"
eltorito_boot() {{ rm -f "$S"; v 120 start $M && wait_serial "{eltorito_marker}" 180; }}
booted eltorito_boot || fail "the El Torito ISO did not boot from the CD-ROM drive: $(grep -e 'firmware: Boot' $R/vmm.log)"
grep -q {ELTORITO_GRUB} $S || fail "no GRUB line before the one read off the disc"
grep -q 'firmware: Booting from DVD/CD' $R/vmm.log || fail "the firmware's log does not say it booted the CD"
v 60 destroy $M || fail "destroy"

# Reboots go back through the firmware (GRUB's menu comes back: a direct kernel boot has none;
# the firmware's log says it booted the CD again), and a SCSI disk keeps what the guest wrote
# across them: the ISO's system again, on a machine without a screen, its GRUB menu answered on
# the serial console. The guest finds the disk by its size, writes 2 MiB past its own cache, and
# reads them back after the guest's reboot (to GRUB's menu) and `vireoctl reboot`.
step scsi-disk-write
machine fs
v 60 create --name $M --memory 256 --network none --graphics none --cdrom {iso} || fail "create with the ISO"
v 30 dumpxml $M > $X/$M.xml
qemu-img create -q -f qcow2 $X/data.qcow2 64M || fail "qemu-img create"
sed -i "s|</devices>|<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$X/data.qcow2'/><target dev='sdb' bus='scsi'/></disk></devices>|" $X/$M.xml
v 30 define $X/$M.xml || fail "define with a SCSI data disk"
[ "$(blk sdb)" = "$X/data.qcow2" ] || fail "domblklist does not show the SCSI data disk: $(v 30 domblklist $M)"
# first_entry: see first_entry_fn.
{first_entry}serial_boot() {{ rm -f "$S"; v 120 start $M && first_entry; }}
booted serial_boot || fail "the ISO's first entry did not boot on a machine without a screen"
find_disk='for n in $(seq 30); do for d in /sys/block/sd*; do [ "$(cat $d/size 2>/dev/null)" = 131072 ] && D=/dev/${{d##*/}}; done; [ -n "$D" ] && break; sleep 1; done'
type_line "$find_disk; echo VIREO-DATA-DISK=\$D"
wait_serial "VIREO-DATA-DISK=/dev/sd[a-z]" 60 || fail "the guest does not see the 64 MiB SCSI disk: $(grep VIREO-DATA-DISK $S)"
type_line 'dd if=/dev/urandom of=$D bs=1048576 count=2 2>/dev/null && sync && echo 3 > /proc/sys/vm/drop_caches && echo VIREO-DATA-WRITTEN $(head -c 2097152 $D | sha256sum | cut -c1-64)'
wait_serial "VIREO-DATA-WRITTEN [0-9a-f]\{{64\}}" 120 || fail "writing to the SCSI disk: $(grep VIREO-DATA $S)"
sum=$(grep -o "VIREO-DATA-WRITTEN [0-9a-f]\{{64\}}" $S | head -n 1 | cut -d' ' -f2)
[ ${{#sum}} -eq 64 ] || fail "no sum of what was written: $(grep VIREO-DATA $S)"
# cd_boots N: the firmware's log says it booted the CD N times.
cd_boots() {{ [ "$(grep -c 'firmware: Booting from DVD/CD' $R/vmm.log)" -eq "$1" ] || fail "the firmware booted the CD $(grep -c 'firmware: Booting from DVD/CD' $R/vmm.log) times, not $1"; }}
cd_boots 1
step iso-guest-reboot
: > "$S"
type_line 'reboot -f'
wait_serial '{e1}' 240 || fail "GRUB's menu did not come back after the guest's reboot"
cd_boots 2
step scsi-disk-reboot
: > "$S"
v 120 reboot $M || fail "vireoctl reboot"
first_entry || fail "the first entry did not boot again after vireoctl reboot"
cd_boots 3
type_line "$find_disk; echo VIREO-DATA-READ \$(head -c 2097152 \$D | sha256sum | cut -c1-64)"
wait_serial "VIREO-DATA-READ $sum" 60 || fail "what the guest wrote to the SCSI disk did not survive the reboot (written $sum): $(grep VIREO-DATA $S)"
v 60 destroy $M || fail "destroy"

# The install flow: the installer ISO (labelled as Debian 11's netinst) with a new, empty disk,
# as the wizard and `create --cdrom --disk size=` make it. The installer writes a system onto
# the disk and reboots; the machine must then boot the disk, with the ISO ejected.
step install
machine fx
# The database load is slow under L1's emulation (37-52 s in a debug build).
v 180 create --name $M --memory 256 --network none --graphics none --cdrom {installer} --disk size=1 --osinfo detect=on,require=on || fail "create the install machine"
v 30 dumpxml $M > $X/$M.xml
grep -q "<libosinfo:os id='http://debian.org/debian/11'/>" $X/$M.xml || fail "the installer ISO was not detected as Debian 11: $(grep -A3 '<metadata' $X/$M.xml)"
grep -q "<vireo:install-cdrom>sda</vireo:install-cdrom>" $X/$M.xml || fail "the machine is not marked as installing"
install_boot() {{ rm -f "$S"; v 120 start $M && wait_serial VIREO-INSTALLER-DONE 300; }}
booted install_boot || fail "the installer did not write the disk: $(grep -a VIREO-INSTALLER $S)"
wait_serial "VIREO-GRUB-BOOT entry=installed" 300 || fail "after the installer's reboot the machine did not boot from the disk: $(grep -a -e VIREO $S | tail -n 5; grep 'firmware: Boot' $R/vmm.log)"
wait_serial "VIREO-ISO-READ dev=/dev/vda sha256={installed_sum}" 300 || fail "the installed system did not read its own disk: $(grep -a VIREO-ISO $S)"
[ "$(grep -c VIREO-INSTALLER-INIT $S)" -eq 1 ] || fail "the installer ran again after its reboot"
in_order $R/vmm.log 'firmware: Booting from DVD/CD' 'the installer rebooted' 'firmware: Booting from Hard Disk' || fail "the firmware's log: $(grep -e 'firmware: Boot' -e installer $R/vmm.log)"
[ "$(blk sda)" = "-" ] || fail "the ISO is still in the running machine's drive: $(v 30 domblklist $M)"
state_is "running (booted)"
v 30 dumpxml --inactive $M > $X/$M.xml
grep -q install-cdrom $X/$M.xml && fail "the definition still says the machine is installing"
grep -q "{installer}" $X/$M.xml && fail "the definition still has the ISO: $(grep -B2 -A3 cdrom $X/$M.xml)"
tr -d '\n' < $X/$M.xml | grep -q "<boot dev='hd'/> *<boot dev='cdrom'/>" || fail "the definition does not boot the disk first: $(grep boot $X/$M.xml)"
v 60 destroy $M || fail "destroy"

step disk
machine fd
cp {disk} $X/debian.qcow2 || fail "copying the Debian disk"
v 60 create --name $M --uuid {UUID} --memory 512 --network none --graphics none --import --disk path=$X/debian.qcow2,format=qcow2 --disk path={data1},device=cdrom || fail "create --import with a CD-ROM drive"
v 30 domblklist --details $M
CD=$(target_of {data1})
[ -n "$CD" ] || fail "domblklist does not show the data ISO"
disk_boot() {{ rm -f "$S"; v 120 start $M && wait_serial VIREO-GRUB-DISK 240 && wait_serial "{DISK_MARKER}" 600; }}
booted disk_boot || fail "GRUB did not start from the disk, or the Debian disk did not reach multi-user"
grep -q "{DISK_MARKER} uuid={UUID}" $S || fail "the guest's product_uuid is not the machine's: $(grep {DISK_MARKER} $S)"
guest_ready || fail "no shell on the serial console"
# Where the boot's time went (for the note on the rig's cost; not checked).
type_line 'systemd-analyze time | sed "s/^/VIREO-BOOT-TIME /"; systemd-analyze blame --no-pager | head -n 8 | sed "s/^/VIREO-BOOT-TIME /"; echo VIREO-BOOT-TIME-DONE-$((1 + 1))'
wait_serial VIREO-BOOT-TIME-DONE-2 60 && grep "^VIREO-BOOT-TIME " $S

# Debian's stock kernel and the CD-ROM drive: the sr driver, a mount, a file's sum.
step cd-read
type_line 'for n in $(seq 30); do [ -e /sys/block/sr0 ] && break; sleep 1; done; echo VIREO-SR0-TYPE=$(cat /sys/block/sr0/device/type)'
wait_serial VIREO-SR0-TYPE=5 60 || fail "the guest has no CD-ROM drive at /dev/sr0: $(grep VIREO-SR0 $S)"
type_line 'mkdir -p /mnt/cd && mount -t iso9660 -o ro /dev/sr0 /mnt/cd; echo VIREO-CD1 $(sha256sum < /mnt/cd/{file1})'
wait_serial "VIREO-CD1 {sum1}" 60 || fail "the guest did not read the data ISO's file: $(grep VIREO-CD1 $S)"

# Mounted, the medium is locked in: a plain eject is refused, a forced one goes through. A
# refused eject also asks the guest to let go of the medium (an eject request, as a drive's
# button does), and Debian's udev answers one by ejecting the CD itself (cdrom_id
# --eject-media), racing the --force below; with the kernel's media polling off for sr0 the
# guest does not see the request.
step cd-locked-eject
type_line 'echo 0 > /sys/block/sr0/events_poll_msecs; echo VIREO-POLL=$(cat /sys/block/sr0/events_poll_msecs)'
wait_serial VIREO-POLL=0 60 || fail "turning off the guest's media polling: $(grep VIREO-POLL $S)"
v 30 change-media $M $CD --eject >$X/eject.txt 2>&1 && fail "an eject of the mounted CD was not refused: $(cat $X/eject.txt)"
cat $X/eject.txt
grep -qi 'lock' $X/eject.txt || fail "the refused eject does not say the tray is locked: $(cat $X/eject.txt)"
[ "$(blk $CD)" = "{data1}" ] || fail "the refused eject changed the medium: $(v 30 domblklist $M)"
v 30 change-media $M $CD --eject --force || fail "a forced eject"
[ "$(blk $CD)" = "-" ] || fail "domblklist after the forced eject: $(v 30 domblklist $M)"
type_line 'umount /mnt/cd; echo VIREO-UMOUNT rc=$?'
wait_serial "VIREO-UMOUNT rc=0" 60 || fail "the guest could not unmount the ejected CD: $(grep VIREO-UMOUNT $S)"

# Another medium while the machine runs: the guest reads it without a reboot.
step cd-insert
v 30 change-media $M $CD {data2} --insert || fail "inserting the second data ISO"
[ "$(blk $CD)" = "{data2}" ] || fail "domblklist does not show the new medium: $(v 30 domblklist $M)"
type_line 'for n in $(seq 20); do mount -t iso9660 -o ro /dev/sr0 /mnt/cd 2>/dev/null && break; sleep 1; done; echo VIREO-CD2 $(ls /mnt/cd) $(sha256sum < /mnt/cd/{file2})'
wait_serial "VIREO-CD2 README.txt {file2} {sum2}" 90 || fail "the guest did not read the new medium: $(grep VIREO-CD2 $S)"

# The guest's own eject (START STOP UNIT) empties the drive.
step cd-guest-eject
type_line 'umount /mnt/cd && eject /dev/sr0; echo VIREO-EJECT rc=$?'
wait_serial "VIREO-EJECT rc=0" 60 || fail "eject in the guest: $(grep VIREO-EJECT $S)"
n=0; while [ "$(blk $CD)" != "-" ] && [ $n -lt 20 ]; do sleep 0.5; n=$((n + 1)); done
[ "$(blk $CD)" = "-" ] || fail "domblklist after the guest's eject: $(v 30 domblklist $M)"

step disk-shutdown
v 300 shutdown --timeout 240 $M || fail "graceful shutdown"
state_is "shut off (shutdown)"
grep -q "reboot: Power down" $S || fail "the guest did not power itself down"

echo EVENTS-BEGIN
for m in fi fn fe fs fx fd; do v 30 event --all --domain $m --timeout 0; done
echo EVENTS-END
step done
"#,
        check = i.check,
        rig = i.rig,
        iso = i.iso,
        iso_sum = i.iso_sum,
        iso_kernel = i.iso_kernel,
        kms_w = KMS_SIZE.0,
        kms_h = KMS_SIZE.1,
        disk = i.disk,
        eltorito = i.eltorito,
        eltorito_marker = i.eltorito_marker,
        data1 = i.data[0].0,
        file1 = i.data[0].1,
        sum1 = i.data[0].2,
        data2 = i.data[1].0,
        file2 = i.data[1].1,
        sum2 = i.data[1].2,
        installer = i.installer,
        installed_sum = i.installed_sum,
    )
}

/// The UEFI machines on their own L1: the ISO as a CD under OVMF (GRUB reports platform=efi),
/// and a Debian disk with an EFI system partition booted by OVMF to multi-user, where
/// efibootmgr adds a boot entry that is still there after destroy + start. L1 runs on the
/// rig's own QEMU build: Debian's aborts under OVMF guests (tests/rig/README.md).
fn uefi_script(vireoctl: &str, vmm: &str, iso: &str, disk: &str) -> String {
    let helpers = shell_helpers("fu", vireoctl, vmm);
    let first_entry = first_entry_fn();
    format!(
        r#"{helpers}
machine() {{ M=$1; R=$X/r/vireo/$M; S=$R/serial.log; }}
{first_entry}{GUEST_READY}
# OVMF's console is the screen and the serial port at once, and GRUB writes to both: its lines
# reach the serial log twice, word by word interleaved, hence the patterns with '.*'.
step uefi-iso
machine fu
v 60 create --name $M --boot uefi --memory 512 --network none --graphics none --cdrom {iso} || fail "create a UEFI machine with the ISO"
v 30 dumpxml $M > $X/$M.xml
grep -q "firmware='efi'" $X/$M.xml || fail "no firmware='efi' in the definition: $(grep '<os' $X/$M.xml)"
grep -q "machine='pc'" $X/$M.xml || fail "the UEFI machine is not a pc machine: $(grep '<type' $X/$M.xml)"
uefi_boot() {{ rm -f "$S"; v 120 start $M && wait_serial 'VIREO-GRUB-MENU.*platform=efi' 300 && echo "GRUB-MENU +$(( $(date +%s) - T0 ))s" && first_entry; }}
booted uefi_boot || fail "OVMF did not boot the ISO's first entry from the CD: $(grep -a -e VIREO-GRUB -e BdsDxe $S | tail -n 5)"
v 60 destroy $M || fail "destroy"

step uefi-disk
machine fk
cp {disk} $X/efi.qcow2 || fail "copying the EFI Debian disk"
v 60 create --name $M --boot uefi --memory 512 --network none --graphics none --import --disk path=$X/efi.qcow2,format=qcow2 || fail "create --boot uefi --import"
disk_boot() {{ rm -f "$S"; v 120 start $M && wait_serial VIREO-GRUB-DISK 300 && wait_serial "{DISK_MARKER}" 600; }}
booted disk_boot || fail "OVMF did not boot the disk's EFI system partition to multi-user: $(grep -a -e VIREO -e BdsDxe $S | tail -n 5)"
echo "DISK-MULTIUSER +$(( $(date +%s) - T0 ))s"
guest_ready || fail "no shell on the serial console"
VARS=$(find $X -name "${{M}}_VARS.fd" | head -n 1)
[ -n "$VARS" ] || fail "no variable store was made for the machine"
type_line "efibootmgr --create --disk /dev/vda --part 1 --label VireoDisk --loader '\EFI\BOOT\BOOTX64.EFI' >/dev/null; echo VIREO-EFIBOOT rc=\$?; efibootmgr | sed 's/^/VIREO-ENTRIES /'"
wait_serial "VIREO-EFIBOOT rc=0" 60 || fail "efibootmgr --create: $(grep -a VIREO-EFIBOOT $S)"
grep -a "VIREO-ENTRIES Boot" $S

step uefi-disk-power-cycle
v 60 destroy $M || fail "destroy"
python3 -c "import sys; sys.exit(0 if 'VireoDisk'.encode('utf-16-le') in open('$VARS', 'rb').read() else 1)" || fail "the guest's boot entry is not in the variable store file $VARS"
booted disk_boot || fail "the UEFI disk did not boot again after destroy"
guest_ready || fail "no shell on the serial console after the power cycle"
type_line "efibootmgr | grep -q VireoDisk && echo VIREO-EFIBOOT-KEPT"
wait_serial VIREO-EFIBOOT-KEPT 60 || fail "the efibootmgr entry did not survive destroy + start: $(grep -a VIREO-ENTRIES $S)"
v 60 destroy $M || fail "destroy"

echo EVENTS-BEGIN
for m in fu fk; do v 30 event --all --domain $m --timeout 0; done
echo EVENTS-END
step done
"#
    )
}

/// The events of the six machines, machine by machine.
fn expected_events(data1: &str, data2: &str, installer: &str) -> Vec<String> {
    let mut all = lifecycle_events(
        "fi",
        &[
            "Defined Added",
            "Defined Updated", // the boot menu's timeout
            "Started Booted",
            "Stopped Destroyed",
        ],
    );
    all.extend(lifecycle_events(
        "fn",
        &["Defined Added", "Started Booted", "Stopped Destroyed"],
    ));
    all.extend(lifecycle_events(
        "fe",
        &["Defined Added", "Started Booted", "Stopped Destroyed"],
    ));
    all.extend(lifecycle_events(
        "fs",
        &[
            "Defined Added",
            "Defined Updated", // the SCSI data disk
            "Started Booted",
            "reboot", // the guest's reboot, on_reboot=restart
            "Started Booted",
            "reboot", // vireoctl reboot
            "Started Booted",
            "Stopped Destroyed",
        ],
    ));
    all.extend(lifecycle_events("fx", &["Defined Added", "Started Booted"]));
    all.push(format!(
        "event 'disk-change' for domain 'fx' disk sda: {installer} -> <null>: installed"
    ));
    all.extend(lifecycle_events(
        "fx",
        &[
            "Defined Updated", // the install phase's end, in the definition
            "reboot",          // the installer's
            "Started Booted",
            "Stopped Destroyed",
        ],
    ));
    all.extend(lifecycle_events("fd", &["Defined Added", "Started Booted"]));
    // The forced eject, the insert, the guest's own eject; the refused eject changed nothing.
    let media = |from: &str, to: &str, how: &str| {
        format!("event 'disk-change' for domain 'fd' disk sda: {from} -> {to}: {how}")
    };
    all.push(media(data1, "<null>", "changed"));
    all.push(media("<null>", data2, "changed"));
    all.push(media(data2, "<null>", "guest-eject"));
    all.extend(lifecycle_events(
        "fd",
        &["Shutdown Finished", "Stopped Shutdown"],
    ));
    all
}

#[test]
fn isos_and_disks_boot_through_the_firmware_in_the_rig() {
    let iso = fixtures::boot_iso(MenuTimeout::WaitForKey)
        .unwrap_or_else(|e| panic!("building the boot ISO: {e}"));
    let disk = fixtures::debian_disk().unwrap_or_else(|e| panic!("building the Debian disk: {e}"));
    let cd = fixtures::cd_media().unwrap_or_else(|e| panic!("building the CD media: {e}"));
    let installer =
        fixtures::installer_iso().unwrap_or_else(|e| panic!("building the installer ISO: {e}"));
    eprintln!(
        "fixtures: ISO {:?}, Debian disk {:?}, CD media {:?}, installer {:?}",
        iso.provenance, disk.provenance, cd.provenance, installer.provenance
    );
    let data = |d: &fixtures::DataIso| (d.path.display().to_string(), d.file, d.sha256.clone());
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
        iso_kernel: vireo_rig::debian::kernel()
            .unwrap_or_else(|e| panic!("the ISO's kernel: {e}"))
            .vmlinuz
            .display()
            .to_string(),
        disk: disk.qcow2.display().to_string(),
        eltorito: cd.eltorito.path.display().to_string(),
        eltorito_marker: cd.eltorito.marker.clone(),
        data: [data(&cd.data[0]), data(&cd.data[1])],
        installer: installer.path.display().to_string(),
        installed_sum: installer.marker_sha256,
    };
    let events = expected_events(&inputs.data[0].0, &inputs.data[1].0, &inputs.installer);
    run_in_rig("firmware rig", &script(&inputs), &events, 2700);
}

#[test]
fn uefi_boots_the_iso_and_an_esp_disk_whose_boot_entry_survives_a_power_cycle_in_the_rig() {
    let iso = fixtures::boot_iso(MenuTimeout::WaitForKey)
        .unwrap_or_else(|e| panic!("building the boot ISO: {e}"));
    let disk = fixtures::debian_disk_for(DiskLayout::Uefi)
        .unwrap_or_else(|e| panic!("building the EFI Debian disk: {e}"));
    eprintln!(
        "fixtures: ISO {:?}, EFI Debian disk {:?}",
        iso.provenance, disk.provenance
    );
    let script = uefi_script(
        &vireoctl_support::vireoctl().display().to_string(),
        &vireoctl_support::vmm().display().to_string(),
        &iso.path.display().to_string(),
        &disk.qcow2.display().to_string(),
    );
    let mut events = lifecycle_events(
        "fu",
        &["Defined Added", "Started Booted", "Stopped Destroyed"],
    );
    events.extend(lifecycle_events(
        "fk",
        &[
            "Defined Added",
            "Started Booted",
            "Stopped Destroyed",
            "Started Booted",
            "Stopped Destroyed",
        ],
    ));
    run_in_rig("UEFI rig", &script, &events, 2400);
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
        iso_kernel: "/x/vmlinuz".into(),
        disk: "/x/disk.qcow2".into(),
        eltorito: "/x/eltorito.iso".into(),
        eltorito_marker: "VIREO-ELTORITO-READ 0".into(),
        data: [
            ("/x/data1.iso".into(), "one.bin", "1".repeat(64)),
            ("/x/data2.iso".into(), "two.bin", "2".repeat(64)),
        ],
        installer: "/x/installer.iso".into(),
        installed_sum: "3".repeat(64),
    });
    for text in [
        &s,
        &uefi_script("/x/vireoctl", "/x/vireo-vmm", "/x/boot.iso", "/x/efi.qcow2"),
    ] {
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", text])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sh -n: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for step in [
        "iso-menu",
        "iso-second-entry",
        "iso-guest-reboot",
        "not-bootable",
        "eltorito",
        "disk",
        "cd-read",
        "cd-locked-eject",
        "cd-insert",
        "cd-guest-eject",
        "scsi-disk-write",
        "scsi-disk-reboot",
        "install",
        "disk-shutdown",
        "done",
    ] {
        assert!(s.contains(&format!("\nstep {step}")), "no step {step}");
    }
}

/// A retried boot's crash and start leave the events; a crash without its retry stays in them.
#[test]
fn a_retried_boot_leaves_only_its_own_crash_out_of_the_events() {
    use vireoctl_support::rig_script::without_retried_boots;
    let seen = [
        lifecycle_events(
            "fd",
            &["Started Booted", "Crashed Panicked", "Stopped Crashed"],
        ),
        lifecycle_events("fd", &["Started Booted", "Shutdown Finished"]),
        lifecycle_events(
            "fe",
            &["Crashed Panicked", "Stopped Crashed", "Started Booted"],
        ),
    ]
    .concat();
    assert_eq!(
        without_retried_boots(seen.clone(), &["fd".into()]),
        [
            lifecycle_events("fd", &["Started Booted", "Shutdown Finished"]),
            lifecycle_events(
                "fe",
                &["Crashed Panicked", "Stopped Crashed", "Started Booted"]
            ),
        ]
        .concat()
    );
    assert_eq!(without_retried_boots(seen.clone(), &[]), seen);
    // A second retry of fd finds no second crash to take out.
    assert_eq!(
        without_retried_boots(seen.clone(), &["fd".into(), "fd".into()]).len(),
        seen.len() - 3
    );
}
