//! `cargo bench -p vireo-vmm --bench firmware_boot`: prints (does not assert), from one rig run
//! (L2 in the nested rig, or directly on a host with hardware KVM), for vireo-vmm with Debian's
//! SeaBIOS `bios-256k.bin` + ramfb beside QEMU `-M pc` with the same image and display, booting
//! the same media (`vireo_rig::fixtures`):
//! - the boot ISO (GRUB menu timeout 0): start → GRUB (its `VIREO-GRUB-MENU` serial line, the
//!   boot loader's first output, drawn on the screen at the same moment) and start → the
//!   initramfs's init (`VIREO-ISO-INIT`);
//! - the Debian disk (qcow2): start → GRUB (`VIREO-GRUB-DISK`), start → the initramfs's init
//!   (the kernel's "Run /init") and start → multi-user (the disk's marker);
//!
//! each the median of `VIREO_BENCH_FW_RUNS` runs (default 2), and the ratio vireo-vmm / QEMU.
//! `VIREO_BENCH_FW_MEDIA=iso` or `=disk` runs one of the two. The disk boots without a display
//! under both VMMs (see the driver for why).
//! L1 is QEMU TCG, so absolute times are slow; compare the columns.
//!
//! `VIREO_BENCH_FW_QEMU_ON_HOST=1` runs only the QEMU side, on this host under TCG (for when
//! the VMM side cannot run yet, or to check the fixtures).

use std::time::{Duration, Instant};
use vireo_rig::fixtures::{self, MenuTimeout, DISK_MARKER};

const DRIVER_PY: &str = r#"
import json, os, shutil, subprocess, sys, time
vmm, work, iso, disk, runs, accel, launchers, which = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6], sys.argv[7].split(","), sys.argv[8].split(",")
bios, vga = "/usr/share/seabios/bios-256k.bin", "/usr/share/seabios/vgabios-ramfb.bin"
media = {
    "iso": (iso, "raw", True, [("loader", b"VIREO-GRUB-MENU"), ("init", b"VIREO-ISO-INIT")]),
    "disk": (disk, "qcow2", False, [("loader", b"VIREO-GRUB-DISK"), ("init", b"Run /init as init process"),
                                    ("multi-user", b"@DISK_MARKER@")]),
}
media = {k: v for k, v in media.items() if k in which}
# The disk boots without a display under both VMMs: with one, SeaVGABIOS draws GRUB and the
# kernel's console through int 15h/87h mode switches, more than ten minutes under the nested
# rig, and the one bench run that reached that boot with a display lost L1 during it.
display = {"iso": True, "disk": False}
def qemu(path, fmt, ro):
    accel_args = ["-enable-kvm", "-cpu", "host"] if accel == "kvm" else ["-accel", "tcg"]
    return ["qemu-system-x86_64", "-M", "pc", *accel_args, "-m", "512", "-smp", "1", "-nodefaults",
            "-no-user-config", "-display", "none", "-bios", bios, *(["-device", "ramfb"] if display[what] else []), "-vga", "none",
            "-serial", "file:" + work + "/serial.log",
            "-drive", "file=%s,if=none,id=d0,format=%s%s" % (path, fmt, ",readonly=on" if ro else ""),
            "-device", "virtio-blk-pci,drive=d0,bootindex=0"]
def vireo(path, fmt, ro):
    cfg = {"name": "fwbench", "memory_mib": 512, "vcpus": 1,
           "firmware": {"loader": bios, "boot_order": [{"disk": {"index": 0}}]},
           "serial": {"log": work + "/serial.log"},
           "disks": [{"path": path, "format": fmt, "readonly": ro, "cdrom": ro}]}
    if display[what]:
        cfg["firmware"]["vga_rom"] = vga
        cfg["display"] = {"width": 1024, "height": 768, "vnc": {"unix_socket": work + "/vnc.sock"}}
    open(work + "/vm.json", "w").write(json.dumps(cfg))
    return [vmm, "--config", work + "/vm.json", "--control", work + "/ctl.sock"]
makers = {"vireo-vmm": vireo, "qemu -M pc": qemu}
for what, (path, fmt, ro, marks) in media.items():
    for name in launchers:
        for r in range(runs):
            for f in ("serial.log", "vnc.sock", "ctl.sock"):
                try: os.unlink(os.path.join(work, f))
                except OSError: pass
            open(work + "/serial.log", "w").close()
            if not ro:
                shutil.copyfile(path, work + "/disk.qcow2")  # the cached image stays pristine
                use = work + "/disk.qcow2"
            else:
                use = path
            t0 = time.time()
            p = subprocess.Popen(makers[name](use, fmt, ro), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            got = {}
            while p.poll() is None and time.time() - t0 < 600 and len(got) < len(marks):
                s = open(work + "/serial.log", "rb").read()
                for key, m in marks:
                    if key not in got and m in s:
                        got[key] = time.time() - t0
                time.sleep(0.02)
            if p.poll() is None: p.kill()
            p.wait()
            err = p.stderr.read().decode("latin1").strip().splitlines()[-3:]
            print("FWBENCH " + json.dumps({"media": what, "launcher": name, "run": r, "got": got,
                  "rc": p.returncode, "stderr": err}), flush=True)
"#;

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[v.len() / 2])
}

fn main() {
    let on_host = std::env::var_os("VIREO_BENCH_FW_QEMU_ON_HOST").is_some();
    let runs: u32 = std::env::var("VIREO_BENCH_FW_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let t = Instant::now();
    let (iso, disk) = match (
        fixtures::boot_iso(MenuTimeout::Seconds(0)),
        fixtures::debian_disk(),
    ) {
        (Ok(i), Ok(d)) => (i, d),
        (Err(e), _) | (_, Err(e)) => {
            println!("firmware boot bench not run: fixtures: {e}");
            return;
        }
    };
    println!(
        "fixtures in {:.1} s (ISO {:?}, Debian disk {:?})",
        t.elapsed().as_secs_f64(),
        iso.provenance,
        disk.provenance
    );
    let vmm = env!("CARGO_BIN_EXE_vireo-vmm");
    let (accel, launchers) = if on_host {
        ("tcg", "qemu -M pc")
    } else {
        ("kvm", "vireo-vmm,qemu -M pc")
    };
    let driver = DRIVER_PY.replace("@DISK_MARKER@", DISK_MARKER);
    let which = std::env::var("VIREO_BENCH_FW_MEDIA").unwrap_or_else(|_| "iso,disk".into());
    if which.split(',').any(|m| m != "iso" && m != "disk") {
        println!("VIREO_BENCH_FW_MEDIA={which:?}: give iso, disk or iso,disk");
        return;
    }
    let script = format!(
        "W=/tmp/vireo-fwbench; rm -rf $W; mkdir -p $W\ncat > $W/d.py <<'VIREO_EOF'\n{driver}\nVIREO_EOF\n\
         python3 $W/d.py {vmm} $W {iso} {disk} {runs} {accel} '{launchers}' {which}\nrc=$?; rm -rf $W; exit $rc\n",
        iso = iso.path.display(),
        disk = disk.qcow2.display(),
    );
    let t = Instant::now();
    let out = if on_host {
        vireo_rig::run_direct(&script, Duration::from_secs(3600))
    } else {
        vireo_rig::run_command(&script, Duration::from_secs(3600))
    };
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            println!("firmware boot bench failed: {e}");
            return;
        }
    };
    let place = if on_host {
        "on this host under TCG"
    } else {
        "L2 in the nested rig (L1 = QEMU TCG -cpu EPYC)"
    };
    println!(
        "\nFirmware boot (SeaBIOS bios-256k.bin; the ISO with ramfb, the disk without a display), {place}, 512 MiB, 1 vCPU, median of {runs} ({:.0} s):",
        t.elapsed().as_secs_f64()
    );
    let rows: Vec<serde_json::Value> = out
        .text()
        .lines()
        .filter_map(|l| l.find("FWBENCH ").map(|i| l[i + 8..].to_owned()))
        .filter_map(|j| serde_json::from_str(&j).ok())
        .collect();
    for r in &rows {
        if r["got"].as_object().is_none_or(|g| g.is_empty()) {
            println!(
                "  {} {} run {}: no marker; rc {}, stderr {}",
                r["media"], r["launcher"], r["run"], r["rc"], r["stderr"]
            );
        }
    }
    let med = |media: &str, launcher: &str, key: &str| {
        median(
            rows.iter()
                .filter(|r| r["media"] == media && r["launcher"] == launcher)
                .filter_map(|r| r["got"][key].as_f64())
                .collect(),
        )
    };
    let s = |v: Option<f64>| v.map_or("-".to_owned(), |x| format!("{x:.2}"));
    println!(
        "  {:<6} {:<12} {:>12} {:>12} {:>8}",
        "media", "start ->", "vireo-vmm s", "qemu -M pc s", "ratio"
    );
    for (media, keys) in [
        ("iso", &["loader", "init"][..]),
        ("disk", &["loader", "init", "multi-user"][..]),
    ] {
        for key in keys {
            let (v, q) = (med(media, "vireo-vmm", key), med(media, "qemu -M pc", key));
            let ratio = match (v, q) {
                (Some(v), Some(q)) if q > 0.0 => format!("{:.2}", v / q),
                _ => "-".to_owned(),
            };
            println!(
                "  {:<6} {:<12} {:>12} {:>12} {:>8}",
                media,
                key,
                s(v),
                s(q),
                ratio
            );
        }
    }
}
