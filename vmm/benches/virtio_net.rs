//! virtio-net throughput guest -> host, printed, never asserted: the stock kernel in the rig
//! sends 16 MiB with busybox `nc` to a receiver on L1's loopback (through the NAT: the guest
//! connects to its gateway address), once under vireo-vmm + passt, then in the same L1 under
//! QEMU's `-netdev user` (slirp) and QEMU + passt (`-netdev stream`), all with a virtio NIC.
//! The receiver times from the first byte to the last, so guest boot and DHCP are not counted.
//! Nested KVM under TCG: compare the launchers with each other, not with bare metal.
//!
//! Everything runs in its own network namespace in L1 (loopback + a dummy default route for
//! passt), so no packet can leave. Run: `cargo bench -p vireo-vmm --bench virtio_net`.

use std::path::PathBuf;
use std::time::Duration;

use vireo_rig::initramfs::{concat, Initramfs};
use vireo_rig::l2::{shell_quote as q, GuestImage, DEFAULT_CMDLINE};

/// Bytes each run sends (about 0.3-0.7 MiB/s in the nested rig: half a minute each).
const BYTES: u64 = 16 << 20;
const PORT: u16 = 19000;

/// Receiver on 127.0.0.1: per connection, reads `BYTES` (or until EOF), then prints the label
/// found in /tmp/vnb/label, the byte count and the seconds from first to last byte.
const RECEIVER: &str = r#"
import socket, sys, time
port, want = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(4)
print("RECV-READY", flush=True)
while True:
    c, _ = s.accept()
    label = open("/tmp/vnb/label").read().strip()
    got, first = 0, None
    while got < want:
        b = c.recv(1 << 16)
        if not b:
            break
        if first is None:
            first = time.monotonic()
        got += len(b)
    secs = time.monotonic() - first if first is not None else 0.0
    c.close()
    print("NETBENCH", label, got, "%.3f" % secs, flush=True)
"#;

/// Guest side: DHCP, then the transfer to the gateway (which passt and slirp map to L1's
/// loopback).
fn guest_script() -> String {
    format!(
        r#"
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
vireo_check dhcp udhcpc -i eth0 -n -q -t 10 -s /tmp/udhcpc.sh
router=$(cat /tmp/router)
# nc must stay until the receiver has everything and closes: if it quit at the end of its
# input, the power-off after the scenario would drop what is still in the socket buffer.
mkfifo /tmp/feed
nc "$router" {PORT} < /tmp/feed > /dev/null & ncpid=$!
{{ dd if=/dev/zero bs=65536 count={blocks} 2>/dev/null; sleep 600; }} > /tmp/feed & feeder=$!
wait $ncpid
kill $feeder 2>/dev/null
vireo_result sent pass ""
"#,
        blocks = BYTES / 65536,
    )
}

fn main() {
    let image = GuestImage::stock().expect("rig guest image");
    let kernel = vireo_rig::debian::kernel().expect("rig kernel");
    let dummy = kernel.modules_dir.join("kernel/drivers/net/dummy.ko");
    let dir = vireo_rig::debian::cache_dir()
        .expect("rig cache")
        .join("virtio-net-bench");
    std::fs::create_dir_all(&dir).expect("bench dir");
    let extra = dir.join("scenario.cpio");
    let mut img = Initramfs::new();
    img.file("scenario.sh", 0o755, guest_script());
    img.write(&extra).expect("scenario archive");
    let initrd = dir.join("initrd.cpio");
    concat(&[&image.base_initrd, &extra], &initrd).expect("initrd");
    let cfg = serde_json::json!({
        "name": "virtio-net-bench",
        "memory_mib": 512,
        "vcpus": 1,
        "kernel": image.vmlinux,
        "initrd": initrd,
        "cmdline": DEFAULT_CMDLINE,
        "serial": { "log": "/tmp/vnb/vmm.serial" },
        "nets": [{
            "mac": "52:54:00:12:34:58",
            "backend": { "user_net": { "port_forwards": [] } },
        }],
    })
    .to_string();
    let vmm = PathBuf::from(env!("CARGO_BIN_EXE_vireo-vmm"));
    let qemu = |netdev: &str| {
        format!(
            "timeout -s KILL 300 qemu-system-x86_64 -M pc -enable-kvm -cpu host -m 512 -nodefaults \
             -display none -no-reboot -serial stdio -kernel {k} -initrd {i} -append {c} \
             -netdev {netdev} -device virtio-net-pci,netdev=n0,romfile=,mac=52:54:00:12:34:59",
            k = q(&image.vmlinux.display().to_string()),
            i = q(&initrd.display().to_string()),
            c = q(DEFAULT_CMDLINE),
        )
    };
    let inner = format!(
        "ip link set lo up\n\
         ip link add dummy0 type dummy 2>/dev/null || {{ busybox insmod {dummy}; ip link add dummy0 type dummy; }}\n\
         ip addr add 10.0.2.15/24 dev dummy0; ip link set dummy0 up\n\
         ip route add default via 10.0.2.2 dev dummy0\n\
         python3 -u /tmp/vnb/recv.py {PORT} {BYTES} > /tmp/vnb/recv.log 2>&1 & recv=$!\n\
         for i in $(seq 1 50); do grep -q RECV-READY /tmp/vnb/recv.log && break; sleep 0.2; done\n\
         echo vireo-vmm+passt > /tmp/vnb/label\n\
         printf '%s' {cfg} > /tmp/vnb/vmm.json; : > /tmp/vnb/vmm.serial\n\
         timeout -s KILL 300 {vmm} --config /tmp/vnb/vmm.json > /tmp/vnb/vmm.err 2>&1\n\
         sed 's/^/vireo-vmm: /' /tmp/vnb/vmm.serial | grep VIREO-RESULT\n\
         echo qemu-user > /tmp/vnb/label\n\
         {qemu_user} | sed 's/^/qemu-user: /' | grep VIREO-RESULT\n\
         echo qemu+passt > /tmp/vnb/label\n\
         passt -f -q -1 -s /tmp/vnb/passt.sock > /tmp/vnb/passt.log 2>&1 &\n\
         for i in $(seq 1 50); do [ -S /tmp/vnb/passt.sock ] && break; sleep 0.2; done\n\
         {qemu_passt} | sed 's/^/qemu-passt: /' | grep VIREO-RESULT\n\
         kill $recv\n\
         cat /tmp/vnb/recv.log\n\
         grep -h passt /tmp/vnb/vmm.err | sed 's/^/vireo-vmm stderr: /'\n\
         sed 's/^/qemu passt: /' /tmp/vnb/passt.log\n",
        dummy = q(&dummy.display().to_string()),
        cfg = q(&cfg),
        vmm = q(&vmm.display().to_string()),
        qemu_user = qemu("user,id=n0"),
        qemu_passt = qemu("stream,id=n0,server=off,addr.type=unix,addr.path=/tmp/vnb/passt.sock"),
    );
    let script = format!(
        "rm -rf /tmp/vnb; mkdir -p /tmp/vnb; chmod 1777 /tmp/vnb\n\
         printf '%s' {recv} > /tmp/vnb/recv.py\n\
         printf '%s' {inner} > /tmp/vnb/inner.sh\n\
         unshare --net --mount sh /tmp/vnb/inner.sh\n",
        recv = q(RECEIVER),
        inner = q(&inner),
    );
    let out = vireo_rig::run_command(&script, Duration::from_secs(1200)).expect("rig");
    let text = out.text();
    let mut seen = 0;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(at) = f.iter().position(|w| *w == "NETBENCH") else {
            continue;
        };
        let (Some(label), Some(bytes), Some(secs)) = (f.get(at + 1), f.get(at + 2), f.get(at + 3))
        else {
            continue;
        };
        let (bytes, secs): (f64, f64) = (bytes.parse().unwrap_or(0.0), secs.parse().unwrap_or(0.0));
        seen += 1;
        // Seen in the rig with passt behind either VMM: the connection ends early (passt gives up
        // on the slow nested guest); the rate over what did arrive is still printed.
        let short = if bytes < BYTES as f64 {
            " (connection ended early)"
        } else {
            ""
        };
        println!(
            "rig (nested, TCG L1) guest->host TCP {label:16}: {:5.1} MiB in {secs:6.2} s = {:7.2} MiB/s{short}",
            bytes / f64::from(1 << 20),
            bytes / f64::from(1 << 20) / secs.max(0.001)
        );
    }
    for line in text.lines().filter(|l| l.contains("passt: ")) {
        println!("{line}");
    }
    if seen < 3 {
        eprintln!("virtio_net bench: only {seen} of 3 transfers reported; rig output:\n{text}");
    }
}
