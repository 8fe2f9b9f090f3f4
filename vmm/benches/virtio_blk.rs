//! virtio-blk figures (printed, never asserted), two parts:
//!
//! 1. Device model on this host: 4 KiB sequential and random reads/writes through the
//!    transport and worker with the test driver (no guest, no KVM): the cost of our queue
//!    handling + backend per request, raw vs qcow2.
//! 2. In the rig, beside QEMU in the same run: the stock kernel's `dd` on /dev/vda (4 KiB
//!    sequential write/read with O_DIRECT, one request in flight, so the 4 KiB rows are IOPS
//!    per request cost; busybox has no random-I/O tool and on a tmpfs image the offsets do not
//!    matter) under vireo-vmm on both machines (virtio-mmio; virtio-pci with MSI-X on pc) and
//!    under `qemu-system-x86_64 -M pc -drive if=virtio` (virtio-pci) on the same kind of image. Nested KVM under TCG: compare the two
//!    VMMs with each other, not with bare metal. Both use the host page cache (L1's /tmp is a
//!    tmpfs, where QEMU's cache=none cannot open the image). Skip part 2 with
//!    `VIREO_BENCH_NO_RIG=1`.
//!
//! Run: `cargo bench -p vireo-vmm --bench virtio_blk`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use vireo_rig::initramfs::{concat, Initramfs};
use vireo_rig::l2::{shell_quote as q, GuestImage, DEFAULT_CMDLINE};
use vireo_vmm::virtio::block::image::{DiskFormat, ImageOptions};
use vireo_vmm::virtio::block::Block;
use vireo_vmm::virtio::mmio::MmioTransport;
use vireo_vmm::virtio::testing::*;
use vm_memory::{Bytes, GuestAddress};

const N: u32 = 20_000;

fn device_model(path: PathBuf, format: DiskFormat, label: &str) {
    let mem = guest_memory();
    let opts = ImageOptions {
        path,
        format,
        read_only: false,
        shareable: false,
        backing: Vec::new(),
    };
    let block = Block::new(&opts, "bench").expect("open image");
    let mut t = MmioTransport::new(
        Box::new(block),
        mem.clone(),
        Box::new(CountingIrq::default()),
    )
    .expect("transport");
    let (_, mut qs) = init_device(&mut t, !0, &[256]).expect("init");
    let q = &mut qs[0];
    let capacity_blocks: u64 = (64 << 20) / 4096;
    for (name, kind, random) in [
        ("seq write", 1u32, false),
        ("seq read", 0, false),
        ("rand write", 1, true),
        ("rand read", 0, true),
    ] {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let start = Instant::now();
        let mut done = 0u32;
        while done < N {
            // 64 requests in flight per notification, as a guest with a deep queue would.
            let batch = 64u16;
            for i in 0..batch {
                let blk = if random {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed % capacity_blocks
                } else {
                    u64::from(done + u32::from(i)) % capacity_blocks
                };
                let base = DATA_START + u64::from(i) * 0x2000;
                let mut hdr = [0u8; 16];
                hdr[0..4].copy_from_slice(&kind.to_le_bytes());
                hdr[8..16].copy_from_slice(&(blk * 8).to_le_bytes());
                mem.write_slice(&hdr, GuestAddress(base)).unwrap();
                let d = i * 3;
                let data_flag = if kind == 0 { F_WRITE } else { 0 };
                q.set_desc(&mem, d, base, 16, F_NEXT, d + 1);
                q.set_desc(&mem, d + 1, base + 0x1000, 4096, data_flag | F_NEXT, d + 2);
                q.set_desc(&mem, d + 2, base + 0x20, 1, F_WRITE, 0);
                q.publish(&mem, d);
            }
            notify(&mut t, 0);
            let want = q.last_used.wrapping_add(batch);
            assert!(wait_for(10_000, || q.used_idx(&mem) == want));
            while q.pop_used(&mem).is_some() {}
            done += u32::from(batch);
        }
        let el = start.elapsed();
        println!(
            "device model {label:6} 4 KiB {name:10}: {:8.0} IOPS {:7.1} MiB/s ({:.1} us/request)",
            f64::from(N) / el.as_secs_f64(),
            f64::from(N) * 4096.0 / el.as_secs_f64() / (1 << 20) as f64,
            el.as_secs_f64() * 1e6 / f64::from(N)
        );
    }
}

const GUEST: &str = r#"
vireo_wait_for /dev/vda 20
t() { cut -d' ' -f1 /proc/uptime; }
a=$(t); dd if=/dev/zero of=/dev/vda bs=4096 count=8192 oflag=direct 2>/dev/null; b=$(t)
echo "BENCH seq-write-4k-32MiB $a $b"
a=$(t); dd if=/dev/vda of=/dev/null bs=4096 count=8192 iflag=direct 2>/dev/null; b=$(t)
echo "BENCH seq-read-4k-32MiB $a $b"
a=$(t); dd if=/dev/vda of=/dev/null bs=1M count=64 iflag=direct 2>/dev/null; b=$(t)
echo "BENCH seq-read-1M-64MiB $a $b"
"#;

fn rig_compare() {
    let image = GuestImage::stock().expect("rig guest image");
    let dir = vireo_rig::debian::cache_dir()
        .expect("rig cache")
        .join("virtio-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let extra = dir.join("scenario.cpio");
    let mut img = Initramfs::new();
    img.file("scenario.sh", 0o755, GUEST);
    img.write(&extra).unwrap();
    let initrd = dir.join("initrd.cpio");
    concat(&[&image.base_initrd, &extra], &initrd).unwrap();
    let cfg = |machine: &str| {
        serde_json::json!({
            "name": "virtio-bench",
            "machine": machine,
            "memory_mib": 512,
            "vcpus": 1,
            "kernel": image.vmlinux,
            "initrd": initrd,
            "cmdline": DEFAULT_CMDLINE,
            "serial": { "log": "/tmp/vb/vmm.serial" },
            "disks": [{ "path": "/tmp/vb/vmm.raw", "format": "raw" }],
        })
        .to_string()
    };
    let vmm = PathBuf::from(env!("CARGO_BIN_EXE_vireo-vmm"));
    let script = format!(
        "rm -rf /tmp/vb; mkdir -p /tmp/vb; truncate -s 128M /tmp/vb/vmm.raw; truncate -s 128M /tmp/vb/qemu.raw\n\
         for m in microvm pc; do\n\
           if [ $m = pc ]; then printf '%s' {pc} > /tmp/vb/vmm.json; else printf '%s' {mmio} > /tmp/vb/vmm.json; fi\n\
           : > /tmp/vb/vmm.serial\n\
           timeout -s KILL 300 {vmm} --config /tmp/vb/vmm.json >/dev/null 2>&1\n\
           sed \"s/^/vmm-$m: /\" /tmp/vb/vmm.serial | grep BENCH\n\
         done\n\
         timeout -s KILL 300 qemu-system-x86_64 -M pc -enable-kvm -cpu host -m 512 -nodefaults \
           -display none -no-reboot -serial stdio -kernel {k} -initrd {i} -append {c} \
           -drive file=/tmp/vb/qemu.raw,if=virtio,format=raw \
           | sed 's/^/qemu: /' | grep BENCH\n",
        mmio = q(&cfg("microvm")),
        pc = q(&cfg("pc")),
        vmm = q(&vmm.display().to_string()),
        k = q(&image.kernel.display().to_string()),
        i = q(&initrd.display().to_string()),
        c = q(DEFAULT_CMDLINE),
    );
    let out = vireo_rig::run_command(&script, Duration::from_secs(900)).expect("rig");
    for line in out.text().lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() == 5 && f[1] == "BENCH" {
            let (a, b): (f64, f64) = (f[3].parse().unwrap_or(0.0), f[4].parse().unwrap_or(0.0));
            let mib = if f[2].ends_with("64MiB") { 64.0 } else { 32.0 };
            let iops = if f[2].contains("-4k-") {
                format!("{:8.0} IOPS", 8192.0 / (b - a).max(0.001))
            } else {
                String::new()
            };
            println!(
                "rig (nested, TCG L1) {:9} {:22}: {:6.2} s  {:7.2} MiB/s {iops}",
                f[0].trim_end_matches(':'),
                f[2],
                b - a,
                mib / (b - a).max(0.001)
            );
        }
    }
}

fn main() {
    // Before any thread exists, as the VMM does (see malloc_single_arena).
    vireo_vmm::virtio::malloc_single_arena();
    let dir = std::env::temp_dir().join(format!("vireo-virtio-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let raw = dir.join("d.raw");
    std::fs::File::create(&raw)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    device_model(raw, DiskFormat::Raw, "raw");
    let qcow = dir.join("d.qcow2");
    let st = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&qcow)
        .arg("64M")
        .status()
        .expect("qemu-img");
    assert!(st.success());
    device_model(qcow, DiskFormat::Qcow2, "qcow2");
    let _ = std::fs::remove_dir_all(&dir);
    if std::env::var_os("VIREO_BENCH_NO_RIG").is_none() {
        rig_compare();
    }
}
