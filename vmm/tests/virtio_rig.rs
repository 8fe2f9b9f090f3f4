//! virtio devices under Debian's stock kernel, booted by vireo-vmm inside the nested rig (or
//! directly on a host with hardware KVM). Each test runs one shell script where the real KVM is:
//! it makes the disk images with qemu-img, boots L2 under `vireo-vmm` with a JSON config naming
//! them, then boots again to check what the first boot wrote. L2 runs the rig's initramfs
//! (busybox and the virtio modules) with our scenario appended; results come back as
//! `VIREO-RESULT` lines on its serial console.

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

/// [`boot`] with a watchdog of `secs` seconds.
fn boot_for(tag: &str, cfg: &str, secs: u32) -> String {
    let c = format!("/tmp/vt/{tag}.json");
    let log = format!("/tmp/vt/{tag}.serial");
    format!(
        "printf '%s' {cfg} > {c}\n\
         : > {log}\n\
         timeout -s KILL {secs} {vmm} --config {c} > /tmp/vt/{tag}.vmm 2>&1; echo \"VMM-EXIT {tag} $?\"\n\
         sed 's/^/{tag}: /' {log}\n\
         sed 's/^/{tag}-vmm: /' /tmp/vt/{tag}.vmm\n",
        cfg = q(cfg),
        vmm = q(&vmm_binary().display().to_string()),
    )
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
        assert!(
            *passed,
            "{tag}: {name} failed: {detail}\n--- output ---\n{out}"
        );
    }
    for n in names {
        assert!(
            r.iter().any(|(name, _, _)| name == n),
            "{tag}: no result {n}\n--- output ---\n{out}"
        );
    }
}

fn run(script: &str, minutes: u64) -> String {
    let out = vireo_rig::run_command(script, Duration::from_secs(minutes * 60))
        .unwrap_or_else(|e| panic!("rig: {e}"));
    let text = out.text();
    assert!(out.success(), "rig script failed ({}):\n{text}", out.status);
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
        "qemu-img check failed:\n{out}"
    );
    // 0x56 is 'V', the first byte the guest wrote at sector 4096 (2 MiB).
    assert!(
        out.contains("QCOW2-QEMU-READ-OK"),
        "qemu-io does not see the guest's write:\n{out}"
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
        assert!(out.contains(needle), "L1 check {needle:?} missing:\n{out}");
    }
}

const NET: &str = r#"
vireo_wait_for /sys/class/net/eth0 20
cat > /tmp/udhcpc.sh <<'EOS'
#!/bin/sh
case "$1" in
  bound|renew)
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route add default via "$router"
    echo "$router" > /tmp/router ;;
esac
EOS
chmod +x /tmp/udhcpc.sh
ip link set lo up
ip link set eth0 up
vireo_check mac sh -c 'test "$(cat /sys/class/net/eth0/address)" = 52:54:00:12:34:56'
vireo_check dhcp udhcpc -i eth0 -n -q -t 10 -s /tmp/udhcpc.sh
router=$(cat /tmp/router)
vireo_check wget-through-nat sh -c "wget -q -T 10 -O - http://$router:18000/hello.txt | grep VIREO-HTTP-OK"
mkdir -p /www && echo VIREO-GUEST-OK > /www/guest.txt
httpd -p 8080 -h /www
vireo_check forward-done sh -c 'timeout 100 nc -l -p 8081 | grep -q done'
"#;

#[test]
#[ignore = "passt cannot sandbox itself inside the rig's L1 chroot (\"Couldn't create user \
            namespace: Operation not permitted\"); needs the rig to run the VMM outside its chroot. \
            The same flows pass on the host in tests/virtio_net.rs"]
fn user_networking_under_the_stock_kernel() {
    let image = GuestImage::stock().expect("rig guest image");
    let kernel = vireo_rig::debian::kernel().expect("rig kernel");
    let dummy = kernel.modules_dir.join("kernel/drivers/net/dummy.ko");
    let dir = work_dir("net");
    let i1 = initrd(&image, &dir, "net", NET);
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
    // L1 has no network at all; passt needs an interface with a default route to take its
    // addresses from, so give it a dummy one. Nothing leaves L1: the guest talks to the gateway
    // address, which passt maps to L1's own loopback.
    let script = format!(
        "set -u\nrm -rf /tmp/vt; mkdir -p /tmp/vt /tmp/www\n\
         ip link set lo up; busybox insmod {dummy}; ip link add dummy0 type dummy\n\
         ip addr add 10.0.2.15/24 dev dummy0; ip link set dummy0 up\n\
         ip route add default via 10.0.2.2 dev dummy0\n\
         echo VIREO-HTTP-OK > /tmp/www/hello.txt\n\
         busybox httpd -p 127.0.0.1:18000 -h /tmp/www\n\
         ( for i in $(seq 1 120); do\n\
             if busybox wget -q -T 5 -O - http://127.0.0.1:18080/guest.txt 2>/dev/null | grep -q VIREO-GUEST-OK; then\n\
               echo HOST-FORWARD-OK; echo done | busybox nc 127.0.0.1 18081; break; fi; sleep 1; done ) &\n\
         {}\
         wait\n",
        boot("net", &cfg),
        dummy = q(&dummy.display().to_string()),
    );
    let out = run(&script, 8);
    expect_pass(
        &out,
        "net",
        &["mac", "dhcp", "wget-through-nat", "forward-done"],
    );
    assert!(
        out.contains("HOST-FORWARD-OK"),
        "port forward host->guest failed:\n{out}"
    );
}
