//! The console's VNC guard (src/gui/vnc_session/guard.rs) on arbitrary server bytes,
//! interleaved with the client moves vnc-rs can make. It may refuse anything, but never
//! panic, loop, or let a screen past its limits; a refusal is final.
//!
//! The first byte picks one of two ways to read the rest. Records: a tag below 0xF0 is a
//! server chunk of tag + 1 bytes; the tags above are client moves (a version, a security
//! choice, an auth answer, ClientInit, a pixel format, an encoding list, ordinary messages,
//! or raw bytes), so handshakes in any order get explored. Or straight to the messages: a
//! canonical handshake with the screen size from the next four bytes, then everything else as
//! server bytes in chunks of a size the first byte sets.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../vnc_session/guard.rs"]
#[allow(dead_code)]
mod guard;

use guard::{Guard, GuardError, MAX_DIMENSION, MAX_SCREEN_BYTES};

const BGRA: [u8; 16] = [32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0];
const COLOUR_MAP_8: [u8; 16] = [8, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
const RGB565: [u8; 16] = [16, 16, 0, 1, 0, 31, 0, 63, 0, 31, 11, 5, 0, 0, 0, 0];
/// Everything the guard knows, and one encoding (TRLE) it does not.
const ALL: &[i32] = &[7, 16, 1, 0, -223, -224, -239, -308, 15];
/// What the console asks for.
const CONSOLE: &[i32] = &[7, 16, 1, 0, -223];

fn set_pixel_format(pf: [u8; 16]) -> Vec<u8> {
    let mut m = vec![0, 0, 0, 0];
    m.extend(pf);
    m
}

fn set_encodings(list: &[i32]) -> Vec<u8> {
    let mut m = vec![2, 0];
    m.extend((list.len() as u16).to_be_bytes());
    for e in list {
        m.extend(e.to_be_bytes());
    }
    m
}

/// Checks what must hold after every call, whatever the bytes.
struct Checked {
    g: Guard,
    refused: Option<GuardError>,
}

impl Checked {
    fn check(&mut self, result: Result<(), GuardError>) {
        let (w, h) = self.g.screen();
        assert!(w <= MAX_DIMENSION && h <= MAX_DIMENSION);
        assert!(u64::from(w) * u64::from(h) * 4 <= MAX_SCREEN_BYTES);
        match (&self.refused, result) {
            (Some(first), Err(again)) => assert_eq!(*first, again, "a refusal changed"),
            (Some(_), Ok(())) => panic!("the guard let bytes through after refusing"),
            (None, Err(e)) => self.refused = Some(e),
            (None, Ok(())) => {}
        }
    }

    fn server(&mut self, bytes: &[u8]) {
        let r = self.g.server_sent(bytes);
        self.check(r);
    }

    fn client(&mut self, bytes: &[u8]) {
        let r = self.g.client_sent(bytes);
        self.check(r);
    }
}

fn records(c: &mut Checked, mut rest: &[u8]) {
    while let Some((&tag, tail)) = rest.split_first() {
        rest = tail;
        if tag < 0xf0 {
            let n = (usize::from(tag) + 1).min(rest.len());
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            c.server(chunk);
            continue;
        }
        let client: Vec<u8> = match tag {
            0xf0 => b"RFB 003.003\n".to_vec(),
            0xf1 => b"RFB 003.007\n".to_vec(),
            0xf2 => b"RFB 003.008\n".to_vec(),
            0xf3 => vec![1],
            0xf4 => vec![2],
            0xf5 => vec![0; 16],
            0xf6 => vec![1],
            0xf7 => set_pixel_format(BGRA),
            0xf8 => set_pixel_format(COLOUR_MAP_8),
            0xf9 => set_pixel_format(RGB565),
            0xfa => set_encodings(ALL),
            0xfb => set_encodings(CONSOLE),
            0xfc => vec![3, 1, 0, 0, 0, 0, 0, 64, 0, 48],
            0xfd => vec![6, 0, 0, 0, 0, 0, 0, 2, b'h', b'i'],
            0xfe => {
                let mut m = vec![251, 0, 0, 64, 0, 48, 1, 0];
                m.extend([0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 48, 0, 0, 0, 0]);
                m
            }
            _ => {
                let n = rest.first().map_or(0, |&n| usize::from(n));
                let n = n.min(rest.len().saturating_sub(1));
                let bytes = rest.get(1..1 + n).unwrap_or_default().to_vec();
                rest = rest.get(1 + n..).unwrap_or_default();
                bytes
            }
        };
        c.client(&client);
    }
}

fn messages(c: &mut Checked, mode: u8, rest: &[u8]) {
    let Some((size, rest)) = rest.split_first_chunk::<4>() else {
        return;
    };
    c.server(b"RFB 003.008\n");
    c.client(b"RFB 003.008\n");
    c.server(&[1, 1]);
    c.client(&[1]);
    c.server(&[0, 0, 0, 0]);
    c.client(&[1]);
    let mut init = size.to_vec();
    init.extend(BGRA);
    init.extend([0, 0, 0, 0]);
    c.server(&init);
    c.client(&set_pixel_format(match mode & 6 {
        0 => COLOUR_MAP_8,
        2 => RGB565,
        _ => BGRA,
    }));
    c.client(&set_encodings(if mode & 8 == 0 { ALL } else { CONSOLE }));
    for chunk in rest.chunks(usize::from(mode >> 4) + 1) {
        c.server(chunk);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut c = Checked {
        g: Guard::new(),
        refused: None,
    };
    if mode & 1 == 0 {
        records(&mut c, rest);
    } else {
        messages(&mut c, mode, rest);
    }
});
