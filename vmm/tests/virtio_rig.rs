//! virtio devices under Debian's stock kernel, booted by vireo-vmm inside the nested rig (or
//! directly on a host with hardware KVM). Each test runs one shell script where the real KVM is:
//! it makes the disk images with qemu-img, boots L2 under `vireo-vmm` with a JSON config naming
//! them, then boots again to check what the first boot wrote. L2 runs the rig's initramfs
//! (busybox and the virtio modules) with our scenario appended, or (root disk test) an
//! initramfs of our own that mounts the root disk; results come back as `VIREO-RESULT` lines on
//! its serial console.
//!
//! - `disks_rng_and_input_...`: raw, qcow2 and CD-ROM disks at block level, rng, keyboard, tablet.
//! - `ext4_on_raw_and_qcow2_...`: ext4 made in the guest, read back after a power-off, checked by
//!   e2fsck in L1; an ext4 read-only disk.
//! - `user_networking_...`: passt: DHCP, DNS, wget/nc through the NAT, host->guest forwards.
//! - `qcow2_root_disk_...`: root=/dev/vda on a qemu-img qcow2 with network, data kept across a
//!   guest reboot.
//! - `the_pc_machine_...`: the same devices on the `pc` machine: virtio-pci on bus 0 behind
//!   the i440FX, MSI-X vectors, then the same disk over INTx with MSI turned off in the guest;
//!   PIIX4's PM timer and power-off.
//!
//! Each test's script runs on an L1 of its own, and once more when the nested rig lost an L2
//! boot (see [`run`]). A failure message keeps the telling lines of the output; the whole
//! output is saved under the target dir's `rig-logs/`.
//!
//! The network tests run in a network namespace of their own (see [`isolated_net`]): their
//! traffic reaches only L1's loopback.

use std::path::{Path, PathBuf};
use std::time::Duration;

use vireo_rig::initramfs::{concat, Initramfs};
use vireo_rig::l2::{parse_line, shell_quote as q, GuestImage, Marker, DEFAULT_CMDLINE};
use vireo_rig::modules::{Module, ModuleIndex};

fn vmm_binary() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_BIN_EXE_vireo-vmm"));
    assert!(p.is_file(), "{} missing", p.display());
    p
}

/// Work directory in the rig cache (shared with L1 at the same path, read-only there).
fn work_dir(name: &str) -> PathBuf {
    let d = vireo_rig::debian::cache_dir()
        .expect("rig cache")
        .join("virtio-tests")
        .join(name);
    std::fs::create_dir_all(&d).expect("create work dir");
    d
}

/// The rig's L2 initramfs with `scenario` appended as /scenario.sh.
fn initrd(image: &GuestImage, dir: &Path, tag: &str, scenario: &str) -> PathBuf {
    initrd_with(image, dir, tag, scenario, |_| {})
}

/// [`initrd`] with more files (modules, tools) that `add` puts into the appended archive.
fn initrd_with(
    image: &GuestImage,
    dir: &Path,
    tag: &str,
    scenario: &str,
    add: impl Fn(&mut Initramfs),
) -> PathBuf {
    let extra = dir.join(format!("{tag}-scenario.cpio"));
    let mut img = Initramfs::new();
    add(&mut img);
    img.file("scenario.sh", 0o755, scenario);
    img.write(&extra).expect("write scenario archive");
    let out = dir.join(format!("{tag}-initrd.cpio"));
    concat(&[&image.base_initrd, &extra], &out).expect("concatenate initramfs");
    out
}

/// A VmConfig as JSON, with `extra` merged in (disks, nets, rng, input ...).
fn vm_config(image: &GuestImage, initrd: &Path, log: &str, extra: serde_json::Value) -> String {
    let mut cfg = serde_json::json!({
        "name": "virtio-rig",
        "memory_mib": 512,
        "vcpus": 1,
        "kernel": image.vmlinux,
        "initrd": initrd,
        "cmdline": DEFAULT_CMDLINE,
        "serial": { "log": log },
    });
    if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    cfg.to_string()
}

/// Shell lines that boot one L2 with config text `cfg` and print its serial log with a prefix.
fn boot(tag: &str, cfg: &str) -> String {
    boot_for(tag, cfg, 150)
}

/// [`boot`] with a watchdog of `secs` seconds. A run that crashed or hung before the guest's
/// init printed anything (`VIREO-L2-INIT`, `VIREO-INITRAMFS`) is retried once, its console kept
/// under `TAG-try1:` (nested KVM under TCG loses about one boot in 65, see the rig notes);
/// nothing the scenario does can have happened yet, so the retry changes no result.
fn boot_for(tag: &str, cfg: &str, secs: u32) -> String {
    let c = format!("/tmp/vt/{tag}.json");
    let log = format!("/tmp/vt/{tag}.serial");
    format!(
        "printf '%s' {cfg} > {c}\n\
         for try in 1 2; do\n\
           : > {log}\n\
           timeout -s KILL {secs} {vmm} --config {c} > /tmp/vt/{tag}.vmm 2>&1; rc=$?\n\
           if [ $try = 1 ] && {{ [ $rc = 3 ] || [ $rc = 137 ]; }} && ! grep -q -e VIREO-L2-INIT -e VIREO-INITRAMFS {log}; then\n\
             echo \"VMM-RETRY {tag} rc=$rc\"\n\
             tail -n 15 {log} | sed 's/^/{tag}-try1: /'; tail -n 3 /tmp/vt/{tag}.vmm | sed 's/^/{tag}-try1-vmm: /'\n\
             continue\n\
           fi\n\
           break\n\
         done\n\
         echo \"VMM-EXIT {tag} $rc\"\n\
         sed 's/^/{tag}: /' {log}\n\
         sed 's/^/{tag}-vmm: /' /tmp/vt/{tag}.vmm\n",
        cfg = q(cfg),
        vmm = q(&vmm_binary().display().to_string()),
    )
}

/// A `VMM-EXIT tag rc` line of [`boot_for`] for a guest that triple-faulted (3) or was killed
/// by the watchdog (137).
fn lost_boot(line: &str) -> bool {
    line.strip_prefix("VMM-EXIT ")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .is_some_and(|rc| rc == "3" || rc == "137")
}

/// Results of boot `tag`: (name, passed, detail).
fn results(out: &str, tag: &str) -> Vec<(String, bool, String)> {
    let prefix = format!("{tag}: ");
    out.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(parse_line)
        .filter_map(|m| match m {
            Marker::Result(r) => Some((r.name, r.passed, r.detail)),
            _ => None,
        })
        .collect()
}

fn expect_pass(out: &str, tag: &str, names: &[&str]) {
    let r = results(out, tag);
    for (name, passed, detail) in &r {
        assert!(*passed, "{tag}: {name} failed: {detail}\n{}", report(out));
    }
    for n in names {
        assert!(
            r.iter().any(|(name, _, _)| name == n),
            "{tag}: no result {n}\n{}",
            report(out)
        );
    }
}

/// For failure messages: the lines of a script's output that tell what went wrong (the whole
/// output is saved under the target dir's `rig-logs/`).
fn report(out: &str) -> String {
    vireo_rig::report::digest_for_test(out)
}

/// Runs `script` where the real KVM is, on an L1 of its own (an L1 that has run many L2 boots
/// was seen to corrupt itself; see the rig's README). When an L2 crashed or hung after its init
/// had started (the case [`boot_for`] cannot retry, as the scenario may have done something),
/// the whole script runs once more on a fresh L1; a failure of the second run stands.
fn run(script: &str, minutes: u64) -> String {
    let out = vireo_rig::run_command_fresh_again_if_lost(
        script,
        Duration::from_secs(minutes * 60),
        |out| {
            out.lines
                .iter()
                .filter(|l| lost_boot(&l.text))
                .map(|l| l.text.clone())
                .collect()
        },
    )
    .unwrap_or_else(|e| panic!("rig: {e}"));
    let text = out.text();
    // boot_for's own second boot of a guest lost before its init ran.
    for l in text.lines().filter(|l| l.starts_with("VMM-RETRY ")) {
        vireo_rig::reruns::note("an L2 boot", l);
    }
    assert!(
        out.success(),
        "rig script failed ({}):\n{}",
        out.status,
        report(&text)
    );
    text
}

const WRITE: &str = r#"
vireo_wait_for /dev/vda 20
vireo_wait_for /dev/vdb 20
vireo_wait_for /dev/vdc 20
vireo_check vda-size sh -c 'test "$(cat /sys/block/vda/size)" = 131072'
vireo_check vdb-size sh -c 'test "$(cat /sys/block/vdb/size)" = 131072'
vireo_check vda-serial sh -c 'test "$(cat /sys/block/vda/serial)" = vireo-raw-disk'
vireo_check raw-write sh -c 'test -b /dev/vda && printf VIREO-PERSIST-RAW | dd of=/dev/vda bs=512 seek=2048 conv=sync,fsync 2>&1'
vireo_check qcow2-write sh -c 'test -b /dev/vdb && printf VIREO-PERSIST-QCOW2 | dd of=/dev/vdb bs=512 seek=4096 conv=sync,fsync 2>&1'
vireo_check qcow2-big-write sh -c 'test -b /dev/vdb && dd if=/dev/urandom of=/tmp/blob bs=1M count=4 2>/dev/null && dd if=/tmp/blob of=/dev/vdb bs=1M seek=8 conv=fsync 2>&1 && md5sum /tmp/blob | cut -d" " -f1 > /tmp/sum && dd if=/dev/vdb bs=1M skip=8 count=4 2>/dev/null | md5sum | cut -d" " -f1 | cmp - /tmp/sum'
vireo_check ro-flag sh -c 'test "$(cat /sys/block/vdc/ro)" = 1'
vireo_check ro-read sh -c 'dd if=/dev/vdc bs=7 count=1 2>/dev/null | grep -q RO-DATA'
vireo_check ro-write-refused sh -c '! dd if=/dev/zero of=/dev/vdc bs=512 count=1 conv=fsync 2>/dev/null'
vireo_check hwrng sh -c 'test "$(head -c 64 /dev/hwrng | wc -c)" = 64'
vireo_check rng-driver sh -c 'grep -q virtio /sys/class/misc/hw_random/rng_current'
vireo_check input-devices sh -c 'grep -q "Vireo virtio keyboard" /proc/bus/input/devices'
vireo_check input-node sh -c 'ls /dev/input/event*'
vireo_check tablet sh -c 'grep -A12 "Vireo virtio tablet" /proc/bus/input/devices | grep -q "B: ABS=3"'
sync
"#;

const READ: &str = r#"
vireo_wait_for /dev/vda 20
vireo_wait_for /dev/vdb 20
vireo_check raw-read-back sh -c 'dd if=/dev/vda bs=512 skip=2048 count=1 2>/dev/null | grep -q VIREO-PERSIST-RAW'
vireo_check qcow2-read-back sh -c 'dd if=/dev/vdb bs=512 skip=4096 count=1 2>/dev/null | grep -q VIREO-PERSIST-QCOW2'
"#;

#[test]
fn disks_rng_and_input_under_the_stock_kernel() {
    let image = GuestImage::stock().expect("rig guest image");
    let dir = work_dir("disks");
    let i1 = initrd(&image, &dir, "write", WRITE);
    let i2 = initrd(&image, &dir, "read", READ);
    let disks = serde_json::json!({
        "disks": [
            { "path": "/tmp/vt/d.raw", "format": "raw", "serial": "vireo-raw-disk" },
            { "path": "/tmp/vt/d.qcow2", "format": "qcow2" },
            { "path": "/tmp/vt/ro.iso", "format": "raw", "cdrom": true },
        ],
        "rng": true,
        "input": { "keyboard": true, "tablet": true },
        "display": { "width": 640, "height": 480 },
    });
    let c1 = vm_config(&image, &i1, "/tmp/vt/write.serial", disks.clone());
    let c2 = vm_config(&image, &i2, "/tmp/vt/read.serial", disks);
    let script = format!(
        "set -u\nrm -rf /tmp/vt; mkdir -p /tmp/vt\n\
         qemu-img create -q -f qcow2 /tmp/vt/d.qcow2 64M\n\
         truncate -s 64M /tmp/vt/d.raw\n\
         truncate -s 1M /tmp/vt/ro.iso; printf RO-DATA | dd of=/tmp/vt/ro.iso conv=notrunc 2>/dev/null\n\
         {}{}\
         qemu-img check /tmp/vt/d.qcow2 && echo QCOW2-CHECK-OK\n\
         qemu-io -c 'read -P 0x56 2M 1' /tmp/vt/d.qcow2 >/dev/null 2>&1 && echo QCOW2-QEMU-READ-OK\n",
        boot("write", &c1),
        boot("read", &c2)
    );
    let out = run(&script, 12);
    expect_pass(
        &out,
        "write",
        &[
            "vda-size",
            "vdb-size",
            "vda-serial",
            "raw-write",
            "qcow2-write",
            "qcow2-big-write",
            "ro-flag",
            "ro-read",
            "ro-write-refused",
            "hwrng",
            "rng-driver",
            "input-devices",
            "input-node",
            "tablet",
        ],
    );
    expect_pass(&out, "read", &["raw-read-back", "qcow2-read-back"]);
    assert!(
        out.contains("QCOW2-CHECK-OK"),
        "qemu-img check failed:\n{}",
        report(&out)
    );
    // 0x56 is 'V', the first byte the guest wrote at sector 4096 (2 MiB).
    assert!(
        out.contains("QCOW2-QEMU-READ-OK"),
        "qemu-io does not see the guest's write:\n{}",
        report(&out)
    );
}

/// The ext4 driver and what it needs, from the same Debian kernel package as the guest, in load
/// order. The package has no modules.dep; the rig reads the dependencies from each module's
/// .modinfo (ext4 -> mbcache, jbd2, crc16). crc32c_generic is a soft dependency: ext4 and jbd2
/// ask the crypto API for "crc32c" at mount time (metadata_csum), which nothing would load.
fn ext4_modules() -> Vec<Module> {
    let kernel = vireo_rig::debian::kernel().expect("rig kernel");
    let cache = vireo_rig::debian::cache_dir().expect("rig cache");
    let index = ModuleIndex::new(
        &kernel.modules_dir,
        &cache.join("modules").join(&kernel.release),
    )
    .expect("index the kernel's modules");
    index
        .resolve(&["crc32c_generic", "ext4"])
        .expect("resolve ext4 and its dependencies")
}

/// Where [`add_ext4`] puts the modules, and the file listing their load order.
const FS_MODULE_DIR: &str = "lib/vireo-fs";
const FS_MODULE_ORDER: &str = "etc/vireo/fs-modules";

/// Scenario lines that load the modules [`add_ext4`] packed.
const LOAD_EXT4: &str = r#"
while read -r m; do
  out=$(insmod "/lib/vireo-fs/$m.ko" 2>&1) || vireo_result "insmod-$m" fail "$out"
done < /etc/vireo/fs-modules
vireo_check ext4-driver grep -qw ext4 /proc/filesystems
"#;

/// Adds the ext4 modules and the host's mke2fs (as /usr/sbin/mkfs.ext4, a name that makes it
/// choose ext4) with the shared libraries `ldd` names, so the guest makes a real ext4 (journal,
/// extents, metadata checksums) instead of busybox's ext2.
fn add_ext4(img: &mut Initramfs) {
    let mut order = String::new();
    for m in ext4_modules() {
        img.host_file(&format!("{FS_MODULE_DIR}/{}.ko", m.name), 0o644, &m.path);
        order.push_str(&m.name);
        order.push('\n');
    }
    img.file(FS_MODULE_ORDER, 0o644, order);
    let mke2fs = Path::new("/usr/sbin/mke2fs");
    img.host_file("usr/sbin/mkfs.ext4", 0o755, mke2fs);
    img.host_file("etc/mke2fs.conf", 0o644, "/etc/mke2fs.conf");
    for lib in shared_libraries(mke2fs) {
        let inside = lib.display().to_string();
        img.host_file(&inside, 0o755, &lib);
    }
}

/// The shared libraries and the loader of a dynamically linked host program, as `ldd` lists them.
fn shared_libraries(program: &Path) -> Vec<PathBuf> {
    let out = std::process::Command::new("ldd")
        .arg(program)
        .output()
        .unwrap_or_else(|e| panic!("ldd {}: {e}", program.display()));
    assert!(out.status.success(), "ldd {} failed", program.display());
    let libs: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.trim(),
                None => l,
            };
            let path = path.split(" (").next()?.trim();
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect();
    assert!(
        libs.iter()
            .any(|l| l.to_string_lossy().contains("ld-linux")),
        "ldd {} names no loader: {libs:?}",
        program.display()
    );
    libs
}

/// Runs a host tool, panicking with its stderr when it fails.
fn host_tool(cmd: &mut std::process::Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (e2fsprogs / qemu-utils installed?)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const FS_WRITE: &str = r#"
vireo_wait_for /dev/vda 20
vireo_wait_for /dev/vdb 20
vireo_wait_for /dev/vdc 20
mkdir -p /mnt/raw /mnt/qcow2 /mnt/ro
for d in raw:vda qcow2:vdb; do
  n=${d%%:*}; dev=/dev/${d#*:}
  vireo_check "mkfs-$n" mkfs.ext4 -q -F -L "vireo-$n" "$dev"
  vireo_check "mount-$n" mount -t ext4 "$dev" "/mnt/$n"
  vireo_check "is-ext4-$n" sh -c "grep \"^$dev /mnt/$n ext4 rw\" /proc/mounts"
  vireo_check "write-$n" sh -c "echo VIREO-FS-$n > /mnt/$n/hello.txt && mkdir -p /mnt/$n/a/b/c && echo deep > /mnt/$n/a/b/c/file && dd if=/dev/urandom of=/mnt/$n/blob bs=64k count=64 2>/dev/null && md5sum /mnt/$n/blob | cut -d' ' -f1 > /mnt/$n/blob.md5 && sync"
  vireo_check "umount-$n" umount "/mnt/$n"
done
vireo_check ro-getro sh -c 'test "$(blockdev --getro /dev/vdc)" = 1'
vireo_check ro-mount mount -t ext4 -o ro /dev/vdc /mnt/ro
vireo_check ro-read grep -q VIREO-RO-FILE /mnt/ro/ro.txt
vireo_check ro-write-refused sh -c '! touch /mnt/ro/new 2>/dev/null'
umount /mnt/ro
vireo_check ro-rw-mount-stays-ro sh -c 'if mount -t ext4 /dev/vdc /mnt/ro 2>/dev/null; then grep "^/dev/vdc /mnt/ro ext4 ro" /proc/mounts && ! touch /mnt/ro/new 2>/dev/null; fi'
umount /mnt/ro 2>/dev/null
vireo_check ro-device-write-refused sh -c '! dd if=/dev/zero of=/dev/vdc bs=4096 count=1 conv=fsync 2>/dev/null'
sync
"#;

const FS_READ: &str = r#"
vireo_wait_for /dev/vda 20
vireo_wait_for /dev/vdb 20
mkdir -p /mnt/raw /mnt/qcow2
for d in raw:vda qcow2:vdb; do
  n=${d%%:*}; dev=/dev/${d#*:}
  vireo_check "remount-$n" mount -t ext4 "$dev" "/mnt/$n"
  vireo_check "read-back-$n" grep -q "VIREO-FS-$n" "/mnt/$n/hello.txt"
  vireo_check "tree-$n" grep -q deep "/mnt/$n/a/b/c/file"
  vireo_check "blob-$n" sh -c "md5sum /mnt/$n/blob | cut -d' ' -f1 | cmp - /mnt/$n/blob.md5"
  vireo_check "second-write-$n" sh -c "echo boot2 > /mnt/$n/second.txt && sync"
  vireo_check "umount-again-$n" umount "/mnt/$n"
done
"#;

#[test]
fn ext4_on_raw_and_qcow2_disks_persists_across_boots() {
    let image = GuestImage::stock().expect("rig guest image");
    let dir = work_dir("ext4");
    let s1 = format!("{LOAD_EXT4}{FS_WRITE}");
    let s2 = format!("{LOAD_EXT4}{FS_READ}");
    let i1 = initrd_with(&image, &dir, "fs-write", &s1, add_ext4);
    let i2 = initrd_with(&image, &dir, "fs-read", &s2, add_ext4);
    // The read-only disk carries a filesystem made on the host (mke2fs -d fills it without
    // mounting anything).
    let ro_tree = dir.join("ro-tree");
    let _ = std::fs::remove_dir_all(&ro_tree);
    std::fs::create_dir_all(&ro_tree).expect("create ro tree");
    std::fs::write(ro_tree.join("ro.txt"), "VIREO-RO-FILE\n").expect("write ro.txt");
    let ro_img = dir.join("ro.ext4");
    let _ = std::fs::remove_file(&ro_img);
    host_tool(
        std::process::Command::new("mke2fs")
            .args(["-q", "-t", "ext4", "-L", "vireo-ro", "-d"])
            .arg(&ro_tree)
            .arg(&ro_img)
            .arg("8M"),
    );
    let disks = serde_json::json!({
        "disks": [
            { "path": "/tmp/vt/fs.raw", "format": "raw" },
            { "path": "/tmp/vt/fs.qcow2", "format": "qcow2" },
            { "path": "/tmp/vt/ro.ext4", "format": "raw", "readonly": true },
        ],
    });
    let c1 = vm_config(&image, &i1, "/tmp/vt/fs-write.serial", disks.clone());
    let c2 = vm_config(&image, &i2, "/tmp/vt/fs-read.serial", disks);
    // After both boots L1 checks the images with e2fsprogs itself: a clean filesystem holding
    // what the guest wrote (the qcow2 one through qemu-img's own reading of the format).
    let script = format!(
        "set -u\nexport PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH\n\
         rm -rf /tmp/vt; mkdir -p /tmp/vt\n\
         qemu-img create -q -f qcow2 /tmp/vt/fs.qcow2 64M\n\
         truncate -s 64M /tmp/vt/fs.raw\n\
         cp {ro} /tmp/vt/ro.ext4\n\
         {}{}\
         qemu-img check /tmp/vt/fs.qcow2 && echo QCOW2-CHECK-OK\n\
         qemu-img convert -f qcow2 -O raw /tmp/vt/fs.qcow2 /tmp/vt/fs-from-qcow2.raw\n\
         for f in fs.raw fs-from-qcow2.raw; do\n\
           e2fsck -fn /tmp/vt/$f >/tmp/vt/$f.fsck 2>&1 && echo \"FSCK-CLEAN $f\" || sed \"s/^/fsck $f: /\" /tmp/vt/$f.fsck\n\
           echo \"L1-READS $f $(debugfs -R 'cat /hello.txt' /tmp/vt/$f 2>/dev/null) $(debugfs -R 'cat /second.txt' /tmp/vt/$f 2>/dev/null)\"\n\
         done\n\
         cmp -s {ro} /tmp/vt/ro.ext4 && echo RO-IMAGE-UNCHANGED\n",
        boot("fs-write", &c1),
        boot("fs-read", &c2),
        ro = q(&ro_img.display().to_string()),
    );
    let out = run(&script, 12);
    let mut write = vec!["ro-getro", "ro-mount", "ro-read", "ro-write-refused"];
    write.extend([
        "ext4-driver",
        "ro-rw-mount-stays-ro",
        "ro-device-write-refused",
    ]);
    let per_disk = |names: &[&str]| -> Vec<String> {
        names
            .iter()
            .flat_map(|n| ["raw", "qcow2"].map(|d| format!("{n}-{d}")))
            .collect()
    };
    let w = per_disk(&["mkfs", "mount", "is-ext4", "write", "umount"]);
    write.extend(w.iter().map(String::as_str));
    expect_pass(&out, "fs-write", &write);
    let r = per_disk(&[
        "remount",
        "read-back",
        "tree",
        "blob",
        "second-write",
        "umount-again",
    ]);
    let mut read: Vec<&str> = r.iter().map(String::as_str).collect();
    read.push("ext4-driver");
    expect_pass(&out, "fs-read", &read);
    for needle in [
        "QCOW2-CHECK-OK",
        "FSCK-CLEAN fs.raw",
        "FSCK-CLEAN fs-from-qcow2.raw",
        "L1-READS fs.raw VIREO-FS-raw boot2",
        "L1-READS fs-from-qcow2.raw VIREO-FS-qcow2 boot2",
        "RO-IMAGE-UNCHANGED",
    ] {
        assert!(
            out.contains(needle),
            "L1 check {needle:?} missing:\n{}",
            report(&out)
        );
    }
}

/// A tiny DNS server for L1's loopback: answers `vireo-dns.test` A with 192.0.2.53 (TEST-NET-1),
/// anything else with an empty answer (AAAA) or NXDOMAIN. passt hands the guest its gateway as
/// resolver when the host's resolv.conf names a loopback address, and relays the queries here.
const DNS_SERVER: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
print("DNS-READY", flush=True)
while True:
    q, peer = s.recvfrom(512)
    if len(q) < 17:
        continue
    i, labels = 12, []
    while i < len(q) and q[i] != 0 and len(labels) < 32:
        labels.append(q[i + 1:i + 1 + q[i]].decode("ascii", "replace").lower())
        i += 1 + q[i]
    end = i + 5
    if end > len(q):
        continue
    name, qtype = ".".join(labels), q[i + 1:i + 3]
    question = q[12:end]
    if name == "vireo-dns.test" and qtype == b"\x00\x01":
        answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes([192, 0, 2, 53])
        head = b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"
    elif name == "vireo-dns.test":
        answer, head = b"", b"\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00"
    else:
        answer, head = b"", b"\x81\x83\x00\x01\x00\x00\x00\x00\x00\x00"
    print("DNS-QUERY", name, qtype.hex(), flush=True)
    s.sendto(q[:2] + head + question + answer, peer)
"#;

/// Runs `body` (POSIX sh) in a network and mount namespace of its own: only loopback plus a
/// dummy interface with a default route (passt takes its addresses from the interface with the
/// default route; nothing can leave through it), resolv.conf naming 127.0.0.1 with the DNS
/// server above behind it, and an HTTP server on 127.0.0.1:18000 serving hello.txt. So the
/// guest's traffic reaches only L1's loopback, and on a host with hardware KVM (no L1) the
/// host's own network is never touched.
fn isolated_net(body: &str) -> String {
    let kernel = vireo_rig::debian::kernel().expect("rig kernel");
    let dummy = kernel.modules_dir.join("kernel/drivers/net/dummy.ko");
    let inner = format!(
        "set -u\n\
         ip link set lo up\n\
         ip link add dummy0 type dummy 2>/dev/null || {{ busybox insmod {dummy}; ip link add dummy0 type dummy; }}\n\
         ip addr add 10.0.2.15/24 dev dummy0; ip link set dummy0 up\n\
         ip route add default via 10.0.2.2 dev dummy0\n\
         echo 'nameserver 127.0.0.1' > /tmp/vt/resolv.conf\n\
         mount --bind /tmp/vt/resolv.conf /etc/resolv.conf\n\
         printf '%s' {dns} > /tmp/vt/dns.py\n\
         python3 -u /tmp/vt/dns.py > /tmp/vt/dns.log 2>&1 & dns=$!\n\
         mkdir -p /tmp/vt/www; echo VIREO-HTTP-OK > /tmp/vt/www/hello.txt\n\
         busybox httpd -f -p 127.0.0.1:18000 -h /tmp/vt/www & httpd=$!\n\
         for i in $(seq 1 50); do grep -q DNS-READY /tmp/vt/dns.log && break; sleep 0.2; done\n\
         {body}\n\
         kill $dns $httpd\n\
         sed 's/^/l1-dns: /' /tmp/vt/dns.log\n",
        dummy = q(&dummy.display().to_string()),
        dns = q(DNS_SERVER),
    );
    format!(
        "printf '%s' {inner} > /tmp/vt/netns.sh\n\
         unshare --net --mount sh /tmp/vt/netns.sh\n",
        inner = q(&inner)
    )
}

/// The udhcpc hook both guests use: address, default route, resolv.conf from the lease.
const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
case "$1" in
  bound|renew)
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route add default via "$router"
    echo "$router" > /tmp/router
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done ;;
esac
"#;

/// /init of the root-disk guest's initramfs: what Debian's initramfs does for a virtio root
/// disk, minus udev: load the block and filesystem modules, wait for root=, mount it and
/// switch_root to its /sbin/init. The stock kernel has virtio_blk and ext4 only as modules, so
/// a root=/dev/vda boot needs this step.
const ROOT_INITRAMFS_INIT: &str = r#"#!/bin/busybox sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() { echo "VIREO-RESULT name=initramfs status=fail detail=$*"; poweroff -f; }
while read -r m; do
  insmod "/lib/vireo-modules/$m.ko" || fail "insmod $m"
done < /etc/vireo/modules
root=; mode=ro
for a in $(cat /proc/cmdline); do
  case "$a" in root=*) root=${a#root=} ;; rw) mode=rw ;; esac
done
[ -n "$root" ] || fail "no root= on the command line"
i=0
while [ ! -b "$root" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
mkdir -p /newroot
mount -t ext4 -o "$mode" "$root" /newroot || fail "mount $root"
echo "VIREO-INITRAMFS root=$root mode=$mode"
umount /proc /sys /dev
exec switch_root /newroot /sbin/init
"#;

/// /sbin/init on the root disk: network from DHCP, DNS, an HTTP fetch through the NAT, then a
/// boot counter on the root filesystem. First boot: reboot; later boots: power off.
const ROOT_INIT: &str = r#"#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
res() { echo "VIREO-RESULT name=$1 status=$2 detail=$3"; }
chk() {
  _n=$1; shift
  if _o=$("$@" 2>&1); then res "$_n" pass "$(echo "$_o" | tail -n 1)"
  else res "$_n" fail "$(echo "$_o" | tail -n 3 | tr '\n' '|')"; fi
}
echo "VIREO-ROOT-INIT uptime=$(cut -d' ' -f1 /proc/uptime)"
chk root-is-vda sh -c 'grep "^/dev/vda / ext4 rw" /proc/mounts'
rel=$(uname -r)
while read -r m; do
  [ -d "/sys/module/$m" ] || insmod "/lib/modules/$rel/vireo/$m.ko" || res "insmod-$m" fail ""
done < "/lib/modules/$rel/vireo/order"
ip link set lo up
i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
ip link set eth0 up
chk dhcp udhcpc -i eth0 -n -q -t 10 -s /etc/udhcpc.script
router=$(cat /tmp/router 2>/dev/null)
chk dns-from-dhcp grep -q nameserver /etc/resolv.conf
chk dns-lookup sh -c 'nslookup vireo-dns.test 2>&1 | grep 192.0.2.53'
chk wget-through-nat sh -c "timeout 20 wget -q -O - http://$router:18000/hello.txt | grep VIREO-HTTP-OK"
mkdir -p /var/lib/vireo
n=$(cat /var/lib/vireo/boots 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > /var/lib/vireo/boots
echo "boot $n" >> /var/lib/vireo/log
sync
res "boots-$n" pass "$(tr '\n' ' ' < /var/lib/vireo/log)"
chk log-has-every-boot sh -c "test \$(wc -l < /var/lib/vireo/log) = $n"
mount -o remount,ro /
if [ "$n" -lt 2 ]; then echo VIREO-REBOOT; reboot -f; else echo VIREO-POWEROFF; poweroff -f; fi
"#;

/// A qcow2 root disk the way a user would make one without root: a directory tree (busybox
/// userland, the network modules from the guest kernel's package, /sbin/init) put into an ext4
/// image by `mke2fs -d`, then `qemu-img convert -O qcow2`. Returns the qcow2 image.
fn root_disk(dir: &Path, release: &str, net_modules: &[Module]) -> PathBuf {
    let tree = dir.join("root-tree");
    let _ = std::fs::remove_dir_all(&tree);
    let busybox = vireo_rig::debian::busybox().expect("busybox-static");
    let mk = |p: &Path| std::fs::create_dir_all(p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "var/lib",
    ] {
        mk(&tree.join(d));
    }
    std::fs::copy(&busybox, tree.join("bin/busybox")).expect("copy busybox");
    let applets = std::process::Command::new(&busybox)
        .arg("--list-full")
        .output()
        .expect("busybox --list-full");
    for applet in String::from_utf8_lossy(&applets.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "bin/busybox" || applet == "sbin/init" {
            continue;
        }
        let link = tree.join(applet);
        if let Some(parent) = link.parent() {
            mk(parent);
        }
        let _ = std::os::unix::fs::symlink("/bin/busybox", &link);
    }
    let write = |rel: &str, text: &str, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        let p = tree.join(rel);
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{p:?}: {e}"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("{p:?}: {e}"));
    };
    write("sbin/init", ROOT_INIT, 0o755);
    write("etc/udhcpc.script", UDHCPC_SCRIPT, 0o755);
    let mods = tree.join("lib/modules").join(release).join("vireo");
    mk(&mods);
    let mut order = String::new();
    for m in net_modules {
        std::fs::copy(&m.path, mods.join(format!("{}.ko", m.name))).expect("copy module");
        order.push_str(&m.name);
        order.push('\n');
    }
    std::fs::write(mods.join("order"), order).expect("write module order");
    let raw = dir.join("root.raw");
    let qcow2 = dir.join("root.qcow2");
    let _ = std::fs::remove_file(&raw);
    let _ = std::fs::remove_file(&qcow2);
    host_tool(
        std::process::Command::new("mke2fs")
            .args(["-q", "-t", "ext4", "-L", "vireo-root", "-d"])
            .arg(&tree)
            .arg(&raw)
            .arg("64M"),
    );
    host_tool(
        std::process::Command::new("qemu-img")
            .args(["convert", "-q", "-f", "raw", "-O", "qcow2"])
            .arg(&raw)
            .arg(&qcow2),
    );
    let _ = std::fs::remove_file(&raw);
    qcow2
}

/// The issue's "done means": a qcow2 root disk made by qemu-img, the stock kernel from the
/// config booting with root=/dev/vda, network, and data kept across a guest reboot (the VMM
/// exits with 2 on reboot; like the driver, the script starts it again).
#[test]
fn qcow2_root_disk_boots_with_network_and_keeps_data_across_reboot() {
    let image = GuestImage::stock().expect("rig guest image");
    let kernel = vireo_rig::debian::kernel().expect("rig kernel");
    let cache = vireo_rig::debian::cache_dir().expect("rig cache");
    let index = ModuleIndex::new(
        &kernel.modules_dir,
        &cache.join("modules").join(&kernel.release),
    )
    .expect("index the kernel's modules");
    let boot_mods = index
        .resolve(&[
            "virtio",
            "virtio_ring",
            "virtio_mmio",
            "virtio_blk",
            "crc32c_generic",
            "ext4",
        ])
        .expect("resolve the root disk's modules");
    let net_mods = index.resolve(&["virtio_net"]).expect("resolve virtio_net");
    let dir = work_dir("root");
    let disk = root_disk(&dir, &kernel.release, &net_mods);
    let mut initramfs = Initramfs::new();
    initramfs.skeleton();
    initramfs
        .busybox(&vireo_rig::debian::busybox().expect("busybox-static"))
        .expect("busybox in the initramfs");
    initramfs.modules(&boot_mods);
    initramfs.init(ROOT_INITRAMFS_INIT);
    let initrd = dir.join("root-initrd.cpio");
    initramfs.write(&initrd).expect("write the initramfs");
    let cfg = |tag: &str| {
        serde_json::json!({
            "name": "virtio-rig-root",
            "memory_mib": 512,
            "vcpus": 1,
            // The bzImage as Debian ships it, as a user's config would name it.
            "kernel": image.kernel,
            "initrd": initrd,
            "cmdline": format!("{DEFAULT_CMDLINE} root=/dev/vda rw"),
            "serial": { "log": format!("/tmp/vt/{tag}.serial") },
            "disks": [{ "path": "/tmp/vt/root.qcow2", "format": "qcow2" }],
            "nets": [{
                "mac": "52:54:00:12:34:57",
                "backend": { "user_net": { "port_forwards": [] } },
            }],
        })
        .to_string()
    };
    let body = format!(
        "cp {disk} /tmp/vt/root.qcow2\n{}{}\
         qemu-img check /tmp/vt/root.qcow2 && echo QCOW2-CHECK-OK\n\
         qemu-img convert -f qcow2 -O raw /tmp/vt/root.qcow2 /tmp/vt/root.raw\n\
         e2fsck -fn /tmp/vt/root.raw > /tmp/vt/root.fsck 2>&1 && echo FSCK-CLEAN || sed 's/^/fsck: /' /tmp/vt/root.fsck\n\
         echo \"L1-READS boots=$(debugfs -R 'cat /var/lib/vireo/boots' /tmp/vt/root.raw 2>/dev/null)\"\n",
        boot_for("root1", &cfg("root1"), 200),
        boot_for("root2", &cfg("root2"), 200),
        disk = q(&disk.display().to_string()),
    );
    let script = format!(
        "set -u\nexport PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH\n\
         rm -rf /tmp/vt; mkdir -p /tmp/vt\n{}",
        isolated_net(&body)
    );
    let out = run(&script, 12);
    let net = [
        "root-is-vda",
        "dhcp",
        "dns-from-dhcp",
        "dns-lookup",
        "wget-through-nat",
    ];
    let mut first = net.to_vec();
    first.extend(["boots-1", "log-has-every-boot"]);
    expect_pass(&out, "root1", &first);
    let mut second = net.to_vec();
    second.extend(["boots-2", "log-has-every-boot"]);
    expect_pass(&out, "root2", &second);
    for needle in [
        "VMM-EXIT root1 2",
        "VMM-EXIT root2 0",
        "root1: VIREO-INITRAMFS root=/dev/vda mode=rw",
        "QCOW2-CHECK-OK",
        "FSCK-CLEAN",
        "L1-READS boots=2",
    ] {
        assert!(
            out.contains(needle),
            "{needle:?} missing:\n{}",
            report(&out)
        );
    }
}

const NET: &str = r#"
vireo_wait_for /sys/class/net/eth0 20
ip link set lo up
ip link set eth0 up
vireo_check mac sh -c 'test "$(cat /sys/class/net/eth0/address)" = 52:54:00:12:34:56'
vireo_check dhcp udhcpc -i eth0 -n -q -t 10 -s /etc/udhcpc.script
router=$(cat /tmp/router)
vireo_check dns-from-dhcp grep nameserver /etc/resolv.conf
vireo_check dns-lookup sh -c 'nslookup vireo-dns.test 2>&1 | grep 192.0.2.53'
# Debian's busybox 1.35 wget segfaults with -T: bound it with timeout instead.
vireo_check wget-through-nat sh -c "timeout 20 wget -q -O - http://$router:18000/hello.txt | grep VIREO-HTTP-OK"
# Checked on the L1 side: busybox nc exits non-zero when -w expires after the send.
echo VIREO-NC-FROM-GUEST | nc -w 5 "$router" 18002
mkdir -p /www && echo VIREO-GUEST-OK > /www/guest.txt
httpd -p 8080 -h /www
vireo_check forward-done sh -c 'timeout 100 nc -l -p 8081 | grep -q done'
"#;

#[test]
fn user_networking_under_the_stock_kernel() {
    let image = GuestImage::stock().expect("rig guest image");
    let dir = work_dir("net");
    let i1 = initrd_with(&image, &dir, "net", NET, |img| {
        img.file("etc/udhcpc.script", 0o755, UDHCPC_SCRIPT);
    });
    let cfg = vm_config(
        &image,
        &i1,
        "/tmp/vt/net.serial",
        serde_json::json!({
            "nets": [{
                "mac": "52:54:00:12:34:56",
                "backend": { "user_net": { "port_forwards": [
                    { "protocol": "tcp", "host_port": 18080, "guest_port": 8080 },
                    { "protocol": "tcp", "host_port": 18081, "guest_port": 8081 },
                ] } },
            }],
        }),
    );
    // The guest reaches L1's loopback through the gateway address (passt maps it); L1 reaches
    // the guest through the forwarded ports: the guest's httpd on 8080, then its `nc -l` on 8081.
    let body = format!(
        "busybox nc -l -p 18002 > /tmp/vt/nc.got & ncpid=$!\n\
         ( for i in $(seq 1 120); do\n\
             if timeout 10 busybox wget -q -O - http://127.0.0.1:18080/guest.txt 2>/dev/null | grep -q VIREO-GUEST-OK; then\n\
               echo HOST-FORWARD-OK; echo done | busybox nc 127.0.0.1 18081; break; fi; sleep 1; done ) & fwd=$!\n\
         {}\
         wait $fwd; kill $ncpid 2>/dev/null\n\
         echo \"L1-NC-GOT $(cat /tmp/vt/nc.got)\"\n",
        boot("net", &cfg),
    );
    let script = format!(
        "set -u\nrm -rf /tmp/vt; mkdir -p /tmp/vt\n{}",
        isolated_net(&body)
    );
    let out = run(&script, 8);
    expect_pass(
        &out,
        "net",
        &[
            "mac",
            "dhcp",
            "dns-from-dhcp",
            "dns-lookup",
            "wget-through-nat",
            "forward-done",
        ],
    );
    for needle in ["HOST-FORWARD-OK", "L1-NC-GOT VIREO-NC-FROM-GUEST"] {
        assert!(
            out.contains(needle),
            "{needle:?} missing:\n{}",
            report(&out)
        );
    }
}

/// The `pc` machine, first boot: PCI, MSI-X for every virtio device, a DHCP lease and disk
/// writes that need their interrupts, the PM timer, ACPI power-off (the VMM's exit code 0).
const PC_MSIX: &str = r#"
vireo_wait_for /dev/vda 20
vireo_wait_for /sys/class/net/eth0 20
vireo_check host-bridge sh -c 'test "$(cat /sys/bus/pci/devices/0000:00:00.0/vendor):$(cat /sys/bus/pci/devices/0000:00:00.0/device)" = 0x8086:0x1237'
vireo_check pm-function sh -c 'test "$(cat /sys/bus/pci/devices/0000:00:01.3/device)" = 0x7113'
vireo_check blk-at-03 sh -c 'test "$(cat /sys/bus/pci/devices/0000:00:03.0/device)" = 0x1042'
vireo_check net-at-04 sh -c 'test "$(cat /sys/bus/pci/devices/0000:00:04.0/device)" = 0x1041'
vireo_check virtio-pci-driver sh -c 'for d in 03 04 05; do readlink /sys/bus/pci/devices/0000:00:$d.0/driver | grep -q virtio-pci || exit 1; done'
vireo_check no-virtio-mmio sh -c '! ls /sys/bus/platform/devices | grep -q LNRO0005'
ip link set lo up
ip link set eth0 up
vireo_check dhcp udhcpc -i eth0 -n -q -t 10 -s /etc/udhcpc.script
vireo_check disk-write sh -c 'printf VIREO-PC-PERSIST | dd of=/dev/vda bs=512 seek=100 conv=sync,fsync 2>&1'
vireo_check disk-big sh -c 'dd if=/dev/urandom of=/tmp/blob bs=1M count=8 2>/dev/null && dd if=/tmp/blob of=/dev/vda bs=1M seek=4 conv=fsync 2>&1 && echo 3 > /proc/sys/vm/drop_caches && dd if=/dev/vda bs=1M skip=4 count=8 2>/dev/null | cmp - /tmp/blob'
vireo_check hwrng sh -c 'test "$(head -c 64 /dev/hwrng | wc -c)" = 64'
cat /proc/interrupts | sed 's/^/PC-IRQ /'
vireo_check msix-blk sh -c 'grep PCI-MSI /proc/interrupts | grep -q "virtio0-req"'
vireo_check msix-net sh -c 'grep PCI-MSI /proc/interrupts | grep -q "virtio1-input"'
vireo_check msix-counts sh -c 'test "$(grep virtio0-req /proc/interrupts | awk "{s=0; for (i=2; i<=NF; i++) if (\$i ~ /^[0-9]+$/) s+=\$i; print s}")" -gt 0'
vireo_check acpi-pm-timer grep -qw acpi_pm /sys/devices/system/clocksource/clocksource0/available_clocksource
"#;

/// Second boot with `pci=nomsi`: the drivers fall back to INTx, routed by the DSDT's `_PRT`
/// to level-triggered IOAPIC pins; the disk still works and keeps the first boot's data.
const PC_INTX: &str = r#"
vireo_wait_for /dev/vda 20
vireo_check read-back sh -c 'dd if=/dev/vda bs=512 skip=100 count=1 2>/dev/null | grep -q VIREO-PC-PERSIST'
vireo_check intx-io sh -c 'dd if=/dev/urandom of=/tmp/blob bs=1M count=8 2>/dev/null && dd if=/tmp/blob of=/dev/vda bs=1M seek=16 conv=fsync 2>&1 && echo 3 > /proc/sys/vm/drop_caches && dd if=/dev/vda bs=1M skip=16 count=8 2>/dev/null | cmp - /tmp/blob'
cat /proc/interrupts | sed 's/^/PC-IRQ /'
vireo_check no-msi sh -c '! grep -q PCI-MSI /proc/interrupts'
vireo_check intx-line sh -c 'grep IO-APIC /proc/interrupts | grep fasteoi | grep -q virtio'
"#;

#[test]
fn the_pc_machine_puts_virtio_on_pci_with_msix_and_intx() {
    let image = GuestImage::stock().expect("rig guest image");
    let dir = work_dir("pc");
    let with_dhcp = |img: &mut Initramfs| {
        img.file("etc/udhcpc.script", 0o755, UDHCPC_SCRIPT);
    };
    let i1 = initrd_with(&image, &dir, "pc-msix", PC_MSIX, with_dhcp);
    let i2 = initrd(&image, &dir, "pc-intx", PC_INTX);
    let devices = serde_json::json!({
        "machine": "pc",
        "disks": [{ "path": "/tmp/vt/pc.qcow2", "format": "qcow2" }],
        "nets": [{ "mac": "52:54:00:12:34:57", "backend": { "user_net": {} } }],
        "rng": true,
    });
    let c1 = vm_config(&image, &i1, "/tmp/vt/pc-msix.serial", devices.clone());
    let mut c2: serde_json::Value =
        serde_json::from_str(&vm_config(&image, &i2, "/tmp/vt/pc-intx.serial", devices))
            .expect("config JSON");
    c2["cmdline"] = format!("{DEFAULT_CMDLINE} pci=nomsi").into();
    let body = format!(
        "qemu-img create -q -f qcow2 /tmp/vt/pc.qcow2 64M\n{}{}\
         qemu-img check /tmp/vt/pc.qcow2 && echo PC-QCOW2-CHECK-OK\n",
        boot("pc-msix", &c1),
        boot("pc-intx", &c2.to_string()),
    );
    let script = format!(
        "set -u\nrm -rf /tmp/vt; mkdir -p /tmp/vt\n{}",
        isolated_net(&body)
    );
    let out = run(&script, 10);
    expect_pass(
        &out,
        "pc-msix",
        &[
            "host-bridge",
            "pm-function",
            "blk-at-03",
            "net-at-04",
            "virtio-pci-driver",
            "no-virtio-mmio",
            "dhcp",
            "disk-write",
            "disk-big",
            "hwrng",
            "msix-blk",
            "msix-net",
            "msix-counts",
            "acpi-pm-timer",
        ],
    );
    expect_pass(
        &out,
        "pc-intx",
        &["read-back", "intx-io", "no-msi", "intx-line"],
    );
    // `poweroff -f` at the end of each boot went through PIIX4's PM block: a clean power-off.
    for tag in ["pc-msix", "pc-intx"] {
        assert!(
            out.contains(&format!("VMM-EXIT {tag} 0")),
            "{tag} did not power off cleanly:\n{}",
            report(&out)
        );
    }
    assert!(
        out.contains("PC-QCOW2-CHECK-OK"),
        "qemu-img check failed:\n{}",
        report(&out)
    );
}

#[test]
fn lost_boots_are_told_from_finished_ones() {
    assert!(lost_boot("VMM-EXIT root1 3"));
    assert!(lost_boot("VMM-EXIT net 137"));
    assert!(!lost_boot("VMM-EXIT root1 2"));
    assert!(!lost_boot("VMM-EXIT root2 0"));
    assert!(!lost_boot("root1: VMM-EXIT root1 3"));
    assert!(!lost_boot("VMM-EXIT"));
}
