//! `cargo bench -p vireo-vmm --bench boot`: prints (does not assert)
//! 1. start of `vireo-vmm` to control socket ready: wall ms and the process's CPU ms (from
//!    `status`), median of 20 starts, tiny guest on the local /dev/kvm;
//! 2. VMM resident memory beyond touched guest memory (from /proc/PID/smaps), for the tiny guest
//!    and for Debian's stock kernel booted to its initramfs;
//! 3. start to the guest's boot marker / first initramfs line on serial, Debian's stock kernel +
//!    the rig's initramfs, vireo-vmm (with the bzImage, and with its payload unpacked ahead of
//!    time as the driver does from a machine's second start), on the microvm and the pc
//!    machine, beside QEMU `-M microvm`, `-M pc` and `-M q35`, in one rig run (L1 is QEMU TCG,
//!    so absolute times are slow; compare the columns).
//!
//! `VIREO_BENCH_SKIP_RIG=1` prints only 1 and 2 (no nested boots).

#[path = "../tests/tiny/mod.rs"]
mod tiny;

use serde_json::json;
use std::time::{Duration, Instant};
use vireo_rig::initramfs::{concat, Initramfs};
use vireo_rig::{debian, GuestImage};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Sum of Rss over mappings, split into the guest RAM mapping(s) and everything else.
fn smaps_split(pid: u32, guest_bytes: u64) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let (mut guest, mut other) = (0u64, 0u64);
    let mut is_guest = false;
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            let mut it = first.split('-');
            let a = u64::from_str_radix(it.next().unwrap_or("0"), 16).unwrap_or(0);
            let b = u64::from_str_radix(it.next().unwrap_or("0"), 16).unwrap_or(0);
            is_guest = b - a == guest_bytes;
        } else if let Some(v) = line.strip_prefix("Rss:") {
            let kib: u64 = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
            if is_guest {
                guest += kib;
            } else {
                other += kib;
            }
        }
    }
    (guest, other)
}

fn local_start_to_ready() {
    let guest = [tiny::asm::print("up\n"), tiny::asm::spin()].concat();
    let (mut wall, mut cpu, mut rss_other, mut rss_guest) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..20 {
        let vm = tiny::Vmm::start("bench", &guest, |c| c["memory_mib"] = json!(256));
        let t0 = vm.started;
        let mut c = tiny::Client::connect(&vm.control, Duration::from_secs(10));
        wall.push(t0.elapsed().as_secs_f64() * 1000.0);
        let st = c.execute("status", json!({}));
        cpu.push(st["return"]["process"]["cpu_ms"].as_f64().unwrap_or(-1.0));
        vm.wait_serial(b"up\n", Duration::from_secs(10));
        let (g, o) = smaps_split(vm.child.id(), 256 << 20);
        rss_guest.push(g as f64);
        rss_other.push(o as f64);
        c.execute("quit", json!({}));
    }
    println!("vireo-vmm start -> control socket ready (tiny guest, local /dev/kvm, median of 20):");
    println!(
        "  wall {:.2} ms, VMM CPU {:.2} ms",
        median(&mut wall),
        median(&mut cpu)
    );
    println!(
        "  RSS beyond guest memory: {:.0} KiB (guest RAM resident: {:.0} KiB; Firecracker's budget 5120 KiB)",
        median(&mut rss_other),
        median(&mut rss_guest)
    );
}

const DRIVER_PY: &str = r#"
import os, re, subprocess, sys, time, json
kernel, initrd, vmm, work, runs, unpacked = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
cmdline = "console=ttyS0 reboot=k panic=-1 mitigations=off"
def qemu(machine):
    return ["qemu-system-x86_64", "-M", machine, "-enable-kvm", "-cpu", "host", "-m", "512", "-smp", "1",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-serial", "file:" + work + "/serial.log",
            "-kernel", kernel, "-initrd", initrd, "-append", cmdline]
def vireo(vmlinux=None, machine=None):
    cfg = {"name": "bench", "memory_mib": 512, "vcpus": 1, "kernel": kernel, "initrd": initrd,
           "cmdline": cmdline, "serial": {"log": work + "/serial.log"}}
    if vmlinux: cfg["kernel_unpacked"] = vmlinux
    if machine: cfg["machine"] = machine
    open(work + "/vm.json", "w").write(json.dumps(cfg))
    return [vmm, "--config", work + "/vm.json", "--control", work + "/ctl.sock"]
def smaps(pid, guest):
    g = o = 0; isg = False
    try:
        for line in open("/proc/%d/smaps" % pid):
            f = line.split()
            if f and "-" in f[0] and not f[0].endswith(":"):
                a, b = (int(x, 16) for x in f[0].split("-")); isg = (b - a == guest)
            elif line.startswith("Rss:"):
                k = int(f[1]); g, o = (g + k, o) if isg else (g, o + k)
    except OSError: pass
    return g, o
for name, mk in [("vireo-vmm", vireo), ("vireo-vmm unpacked", lambda: vireo(unpacked)),
                 ("vireo-vmm pc", lambda: vireo(machine="pc")), ("vireo-vmm pc unpacked", lambda: vireo(unpacked, "pc")),
                 ("qemu -M microvm", lambda: qemu("microvm")), ("qemu -M pc", lambda: qemu("pc")), ("qemu -M q35", lambda: qemu("q35"))]:
    for r in range(runs):
        try: os.unlink(work + "/serial.log")
        except OSError: pass
        open(work + "/serial.log", "w").close()
        t0 = time.time()
        p = subprocess.Popen(mk(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        init_t = None; rss = None
        while p.poll() is None and time.time() - t0 < 240:
            s = open(work + "/serial.log", "rb").read()
            if init_t is None and b"VIREO-L2-INIT" in s:
                init_t = time.time() - t0
                if name.startswith("vireo-vmm"): rss = smaps(p.pid, 512 << 20)
            time.sleep(0.02)
        if p.poll() is None: p.kill()
        err = p.stderr.read().decode("latin1")
        m = re.search(r"boot marker 0x42 at ([0-9.]+) ms", err)
        s = open(work + "/serial.log", "rb").read().decode("latin1")
        up = re.search(r"VIREO-L2-INIT uptime=([0-9.]+)", s)
        print("BENCH " + json.dumps({"launcher": name, "run": r, "init_line_s": init_t,
              "marker_ms": float(m.group(1)) if m else None, "guest_uptime_s": float(up.group(1)) if up else None,
              "total_s": time.time() - t0, "rc": p.returncode, "rss": rss}), flush=True)
"#;

fn rig_side_by_side() {
    let image = match GuestImage::stock() {
        Ok(i) => i,
        Err(e) => {
            println!("rig comparison not run: {e}");
            return;
        }
    };
    let cache = debian::cache_dir().expect("rig cache");
    let dir = cache
        .join("runs")
        .join(format!("vmm-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut extra = Initramfs::new();
    // The boot marker: port 0x3f0 through /dev/port (vireo-vmm logs it; QEMU has no such
    // device, its column uses the init line instead).
    extra.file(
        "scenario.sh",
        0o644,
        "printf '\\102' | dd of=/dev/port bs=1 seek=1008 count=1 2>/dev/null\n",
    );
    let extra_path = dir.join("scenario.cpio");
    extra.write(&extra_path).unwrap();
    let initrd = dir.join("initrd.cpio");
    concat(&[&image.base_initrd, &extra_path], &initrd).unwrap();
    let vmm = env!("CARGO_BIN_EXE_vireo-vmm");
    // What the driver boots from a machine's second start on: the payload unpacked on the host.
    let unpacked = match vireo_driver::unpack::unpack(&image.kernel, &dir.join("kernels")) {
        Ok(Some(p)) => p,
        other => {
            println!("rig comparison not run: the kernel was not unpacked: {other:?}");
            return;
        }
    };
    let script = format!(
        "W=/tmp/vireo-bench; rm -rf $W; mkdir -p $W\ncat > $W/d.py <<'VIREO_EOF'\n{DRIVER_PY}\nVIREO_EOF\n\
         python3 $W/d.py {k} {i} {vmm} $W 2 {u}\n",
        k = image.kernel.display(),
        i = initrd.display(),
        u = unpacked.display()
    );
    let t = Instant::now();
    let out = match vireo_rig::run_command(&script, Duration::from_secs(1800)) {
        Ok(o) => o,
        Err(e) => {
            println!("rig comparison failed: {e}");
            return;
        }
    };
    println!(
        "\nDebian stock kernel + rig initramfs, L2 in the nested rig (L1 = QEMU TCG -cpu EPYC), 512 MiB, 1 vCPU ({:.0} s):",
        t.elapsed().as_secs_f64()
    );
    println!(
        "  {:<22} {:>4} {:>16} {:>14} {:>16} {:>9} {:>4}",
        "launcher", "run", "start->marker ms", "start->init s", "guest uptime s", "total s", "rc"
    );
    for line in out.text().lines() {
        let Some(j) = line.find("BENCH ").map(|i| &line[i + 6..]) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(j) else {
            continue;
        };
        let f = |k: &str| v[k].as_f64().map_or("-".to_string(), |x| format!("{x:.2}"));
        println!(
            "  {:<22} {:>4} {:>16} {:>14} {:>16} {:>9} {:>4}",
            v["launcher"].as_str().unwrap_or("?"),
            v["run"],
            f("marker_ms"),
            f("init_line_s"),
            f("guest_uptime_s"),
            f("total_s"),
            v["rc"]
        );
        if let Some(r) = v["rss"].as_array() {
            println!(
                "  {:<22}      RSS at init: guest RAM {} KiB touched, VMM beyond it {} KiB",
                "", r[0], r[1]
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    local_start_to_ready();
    if std::env::var_os("VIREO_BENCH_SKIP_RIG").is_none() {
        rig_side_by_side();
    }
}
