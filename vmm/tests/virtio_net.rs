//! virtio-net over a real passt, on loopback only: DHCP, ARP, UDP from the guest through the NAT
//! to a host socket on 127.0.0.1 (passt maps the gateway address to the host's loopback), a host
//! connection through a port forward reaching the guest as a SYN, start-up errors, and passt's
//! lifetime. Frames are crafted here the way a guest's stack would send them.

use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use vireo_vmm::virtio::mmio::MmioTransport;
use vireo_vmm::virtio::net::{Net, NET_HDR_LEN};
use vireo_vmm::virtio::passt::{Forward, ForwardProtocol, PasstError, PasstOptions};
use vireo_vmm::virtio::testing::*;
use vireo_vmm::virtio::{GuestMemory, VIRTIO_F_VERSION_1};
use vm_memory::{Bytes, GuestAddress};

const V1: u64 = 1 << VIRTIO_F_VERSION_1;
const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const RX_BUF: u64 = DATA_START;
const RX_LEN: u32 = 2048;
const TX_BUF: u64 = DATA_START + 0x20_0000;

struct Nic {
    t: MmioTransport,
    mem: GuestMemory,
    rx: DriverQueue,
    tx: DriverQueue,
}

impl Nic {
    fn new(net: Net) -> Nic {
        let mem = guest_memory();
        let mut t =
            MmioTransport::new(Box::new(net), mem.clone(), Box::new(CountingIrq::default()))
                .unwrap();
        let (_, mut qs) = init_device(&mut t, V1 | (1 << 5) | (1 << 16), &[256, 256]).unwrap();
        let tx = qs.remove(1);
        let mut rx = qs.remove(0);
        for i in 0..128u16 {
            rx.set_desc(&mem, i, RX_BUF + u64::from(i) * 4096, RX_LEN, F_WRITE, 0);
            rx.publish(&mem, i);
        }
        notify(&mut t, 0);
        Nic { t, mem, rx, tx }
    }

    fn send(&mut self, frame: &[u8]) {
        let slot = self.tx.avail_idx % 256;
        let addr = TX_BUF + u64::from(slot) * 4096;
        let mut buf = vec![0u8; NET_HDR_LEN];
        buf.extend_from_slice(frame);
        self.mem.write_slice(&buf, GuestAddress(addr)).unwrap();
        self.tx
            .set_desc(&self.mem, slot, addr, buf.len() as u32, 0, 0);
        self.tx.publish(&self.mem, slot);
        notify(&mut self.t, 1);
        let want = self.tx.avail_idx;
        let (mem, tx) = (&self.mem, &self.tx);
        assert!(
            wait_for(5000, || tx.used_idx(mem) == want),
            "frame not sent"
        );
        self.tx.last_used = want;
    }

    /// Next received frame matching `pred` (others are skipped), recycling buffers.
    fn recv(&mut self, what: &str, pred: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let end = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            while let Some((id, len)) = self.rx.pop_used(&self.mem) {
                let mut buf = vec![0u8; len as usize];
                let addr = RX_BUF + u64::from(id) * 4096;
                self.mem.read_slice(&mut buf, GuestAddress(addr)).unwrap();
                self.rx.publish(&self.mem, id as u16);
                notify(&mut self.t, 0);
                assert!(buf.len() >= NET_HDR_LEN);
                let frame = buf[NET_HDR_LEN..].to_vec();
                if pred(&frame) {
                    return frame;
                }
            }
            assert!(std::time::Instant::now() < end, "no {what} received");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from(c[0]) << 8
        };
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn eth(dst: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn ipv4_udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let total = 20 + udp_len;
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut udp = Vec::new();
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut pseudo = src.octets().to_vec();
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
    pseudo.extend_from_slice(&udp);
    let uc = checksum(&pseudo);
    udp[6..8].copy_from_slice(&(if uc == 0 { 0xffff } else { uc }).to_be_bytes());
    ip.extend_from_slice(&udp);
    ip
}

fn dhcp_discover() -> Vec<u8> {
    let mut b = vec![0u8; 240];
    b[0] = 1; // BOOTREQUEST
    b[1] = 1; // Ethernet
    b[2] = 6;
    b[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    b[10] = 0x80; // broadcast flag
    b[28..34].copy_from_slice(&MAC);
    b[236..240].copy_from_slice(&[99, 130, 83, 99]);
    b.extend_from_slice(&[53, 1, 1, 55, 2, 1, 3, 255]);
    let ip = ipv4_udp(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, 68, 67, &b);
    eth([0xff; 6], 0x0800, &ip)
}

fn is_udp_to(frame: &[u8], port: u16) -> bool {
    frame.len() > 42
        && frame[12..14] == [8, 0]
        && frame[23] == 17
        && u16::from_be_bytes([frame[36], frame[37]]) == port
}

/// Returns (our address, router) from a DHCP offer.
fn parse_offer(frame: &[u8]) -> (Ipv4Addr, Ipv4Addr) {
    let bootp = &frame[42..];
    assert_eq!(bootp[0], 2, "BOOTREPLY");
    assert_eq!(&bootp[28..34], &MAC, "offer for our MAC");
    let yiaddr = Ipv4Addr::new(bootp[16], bootp[17], bootp[18], bootp[19]);
    let mut opts = &bootp[240..];
    let mut msg_type = 0;
    let mut router = None;
    while opts.len() >= 2 && opts[0] != 255 {
        let (code, len) = (opts[0], usize::from(opts[1]));
        let val = &opts[2..2 + len];
        match code {
            53 => msg_type = val[0],
            3 => router = Some(Ipv4Addr::new(val[0], val[1], val[2], val[3])),
            _ => {}
        }
        opts = &opts[2 + len..];
    }
    assert_eq!(msg_type, 2, "DHCPOFFER");
    (yiaddr, router.expect("router option"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn dhcp_arp_and_udp_through_the_nat_to_host_loopback() {
    let net = Net::with_passt(MAC, &PasstOptions::default()).expect("start passt");
    let mut nic = Nic::new(net);

    nic.send(&dhcp_discover());
    let offer = nic.recv("DHCP offer", |f| is_udp_to(f, 68));
    let (me, router) = parse_offer(&offer);
    assert_ne!(me, Ipv4Addr::UNSPECIFIED);

    // ARP for the router.
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
    arp.extend_from_slice(&MAC);
    arp.extend_from_slice(&me.octets());
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&router.octets());
    nic.send(&eth([0xff; 6], 0x0806, &arp));
    let reply = nic.recv("ARP reply", |f| {
        f.len() >= 42 && f[12..14] == [8, 6] && f[21] == 2
    });
    assert_eq!(&reply[28..32], &router.octets(), "reply is for the router");
    let router_mac: [u8; 6] = reply[22..28].try_into().unwrap();

    // UDP to the router's address arrives at a socket on the host's 127.0.0.1.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = sock.local_addr().unwrap().port();
    let ip = ipv4_udp(me, router, 40000, port, b"hello from the guest");
    nic.send(&eth(router_mac, 0x0800, &ip));
    let mut buf = [0u8; 64];
    let (n, from) = sock
        .recv_from(&mut buf)
        .expect("datagram through passt's NAT");
    assert_eq!(&buf[..n], b"hello from the guest");
    assert!(from.ip().is_loopback());

    // And the answer comes back to the guest.
    sock.send_to(b"hello guest", from).unwrap();
    let back = nic.recv("UDP reply", |f| is_udp_to(f, 40000));
    assert_eq!(&back[42..], b"hello guest");
}

#[test]
fn port_forward_reaches_the_guest() {
    let host_port = free_port();
    let opts = PasstOptions {
        forwards: vec![Forward {
            protocol: ForwardProtocol::Tcp,
            host_address: "127.0.0.1".parse().unwrap(),
            host_port,
            guest_port: 8080,
        }],
        ..PasstOptions::default()
    };
    let net = Net::with_passt(MAC, &opts).expect("start passt");
    let mut nic = Nic::new(net);
    // passt learns the guest's MAC and address from its traffic.
    nic.send(&dhcp_discover());
    nic.recv("DHCP offer", |f| is_udp_to(f, 68));
    let _client = std::thread::spawn(move || TcpStream::connect(("127.0.0.1", host_port)));
    let syn = nic.recv("TCP SYN to guest port 8080", |f| {
        f.len() >= 54
            && f[12..14] == [8, 0]
            && f[23] == 6
            && u16::from_be_bytes([f[36], f[37]]) == 8080
            && f[47] & 0x02 != 0
    });
    assert_eq!(&syn[0..6], &MAC);
}

#[test]
fn passt_start_up_errors_are_reported() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let opts = PasstOptions {
        forwards: vec![Forward {
            protocol: ForwardProtocol::Tcp,
            host_address: "127.0.0.1".parse().unwrap(),
            host_port: port,
            guest_port: 22,
        }],
        ..PasstOptions::default()
    };
    match Net::with_passt(MAC, &opts) {
        Err(PasstError::Exited { messages, .. }) => {
            assert!(
                messages.contains(&port.to_string()),
                "message names the port: {messages}"
            )
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("passt started although the port is taken"),
    }
    let missing = PasstOptions {
        binary: "/nonexistent/passt".into(),
        ..PasstOptions::default()
    };
    assert!(matches!(
        Net::with_passt(MAC, &missing),
        Err(PasstError::Spawn { .. })
    ));
}

#[test]
fn passt_ends_with_the_device() {
    let net = Net::with_passt(MAC, &PasstOptions::default()).expect("start passt");
    let pid = net.passt_pid().unwrap();
    let proc_dir = format!("/proc/{pid}");
    assert!(std::path::Path::new(&proc_dir).exists());
    let nic = Nic::new(net);
    drop(nic);
    assert!(
        wait_for(5000, || !std::path::Path::new(&proc_dir).exists()),
        "passt {pid} still running after the device was dropped"
    );
}
