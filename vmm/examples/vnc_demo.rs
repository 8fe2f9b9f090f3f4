//! A VNC server over a synthetic screen, for trying clients by hand:
//!
//! ```text
//! cargo run -p vireo-vmm --example vnc_demo -- --unix /tmp/demo.sock [--tcp 5959 --password pw]
//!     [--size 1280x800] [--content text|noise] [--animate]
//! ```
//! Keys that reach the "guest" are printed as set-1 scancode bytes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use vireo_vmm::vnc::{self, synthetic, MemFramebuffer, PointerEvent, VncConfig, XtKey};

struct Printer;

impl vnc::InputSink for Printer {
    fn key(&self, key: XtKey, down: bool) {
        let hex: Vec<String> = key.bytes(down).iter().map(|b| format!("{b:02x}")).collect();
        println!(
            "key {} {}",
            if down { "down" } else { "up  " },
            hex.join(" ")
        );
    }
    fn pointer(&self, e: PointerEvent) {
        println!("pointer {} {} buttons {:#04x}", e.x, e.y, e.buttons);
    }
}

fn main() {
    let mut cfg = VncConfig {
        name: "vireo demo".into(),
        ..VncConfig::default()
    };
    let (mut w, mut h) = (1280u32, 800u32);
    let mut content = "text".to_string();
    let mut animate = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--unix" => cfg.unix_path = Some(PathBuf::from(val())),
            "--tcp" => {
                let port: u16 = val().parse().unwrap_or_else(|_| usage("bad port"));
                cfg.tcp = Some(([127, 0, 0, 1], port).into());
            }
            "--password" => cfg.password = Some(val()),
            "--size" => {
                let v = val();
                let (a, b) = v.split_once('x').unwrap_or_else(|| usage("--size WxH"));
                w = a.parse().unwrap_or_else(|_| usage("bad width"));
                h = b.parse().unwrap_or_else(|_| usage("bad height"));
            }
            "--content" => content = val(),
            "--animate" => animate = true,
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let fb = Arc::new(MemFramebuffer::new(w, h));
    let draw = |seed: u64| {
        fb.update(|px, w, h| match content.as_str() {
            "noise" => synthetic::noise(px, seed),
            _ => synthetic::text_like(px, w as usize, h as usize, seed),
        })
    };
    draw(1);
    let server = match vnc::start(cfg, fb.clone(), Arc::new(Printer), None) {
        Ok(s) => s,
        Err(e) => usage(&e.to_string()),
    };
    println!("serving: {:?}", server.info());
    let mut seed = 1;
    loop {
        std::thread::sleep(Duration::from_secs(1));
        if animate {
            seed += 1;
            draw(seed);
        }
    }
}

fn usage(msg: &str) -> ! {
    eprintln!("vnc_demo: {msg}");
    eprintln!("usage: vnc_demo --unix PATH [--tcp PORT --password PW] [--size WxH] [--content text|noise] [--animate]");
    std::process::exit(2);
}
