//! The VNC server's client side: the message parser on raw bytes, and a whole session
//! (handshake with and without a password, then messages) fed in arbitrary chunks.
//! Neither may panic, loop or allocate beyond the limits whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vireo_vmm::vnc::proto::parse_client_message;
use vireo_vmm::vnc::session::{Session, SessionEvent};

fuzz_target!(|data: &[u8]| {
    // Parser alone: walk messages until it needs more or fails.
    let mut rest = data;
    while let Ok(Some((_, used))) = parse_client_message(rest) {
        assert!(used > 0 && used <= rest.len());
        rest = &rest[used..];
    }

    // Whole sessions: the first byte picks password and chunking.
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let password: Option<&[u8]> = if mode & 1 == 1 { Some(b"pw") } else { None };
    let mut s = Session::new(password, [mode; 16]);
    let chunk = usize::from(mode >> 1).max(1);
    for part in body.chunks(chunk) {
        match s.feed(part) {
            Ok(events) => {
                for e in events {
                    if let SessionEvent::Message(m) = e {
                        // Semantic checks the server applies must be total too.
                        if let vireo_vmm::vnc::proto::ClientMessage::SetPixelFormat(pf) = m {
                            if pf.validate().is_ok() {
                                let w = vireo_vmm::vnc::pixel::PixelWriter::new(pf);
                                let mut out = Vec::new();
                                w.put(&mut out, 0x123456);
                                w.put_cpixel(&mut out, 0x123456);
                                w.put_tpixel(&mut out, 0x123456);
                            }
                        }
                    }
                }
            }
            Err(_) => break,
        }
        let _ = s.take_output();
    }
});
