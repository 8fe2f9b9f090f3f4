//! vnc-rs (the GUI's client) against our server over a unix socket and loopback TCP, for
//! every encoding; pixels are compared with the source exactly (all encodings are lossless).

mod vnc_common;

use std::time::Duration;
use tokio::net::{TcpStream, UnixStream};
use vnc::{PixelFormat, VncConnector, VncEncoding, VncEvent, X11Event};
use vnc_common::{diff, paint, start};

struct View {
    w: usize,
    h: usize,
    px: Vec<u32>,
    copies: usize,
    cursor: bool,
}

impl View {
    fn apply(&mut self, ev: VncEvent) {
        match ev {
            VncEvent::SetResolution(s) => {
                self.w = s.width as usize;
                self.h = s.height as usize;
                self.px = vec![0; self.w * self.h];
            }
            VncEvent::RawImage(r, data) => {
                let (x0, y0, rw) = (r.x as usize, r.y as usize, r.width as usize);
                for (i, c) in data.chunks_exact(4).enumerate() {
                    let (x, y) = (x0 + i % rw, y0 + i / rw);
                    self.px[y * self.w + x] = u32::from_le_bytes([c[0], c[1], c[2], 0]);
                }
            }
            VncEvent::Copy(dst, src) => {
                self.copies += 1;
                let old = self.px.clone();
                for y in 0..dst.height as usize {
                    for x in 0..dst.width as usize {
                        self.px[(dst.y as usize + y) * self.w + dst.x as usize + x] =
                            old[(src.y as usize + y) * self.w + src.x as usize + x];
                    }
                }
            }
            VncEvent::SetCursor(..) => self.cursor = true,
            VncEvent::Error(e) => panic!("vnc-rs reported an error: {e}"),
            _ => {}
        }
    }
}

/// Applies every event already queued, without waiting.
async fn drain(client: &vnc::VncClient, view: &mut View) {
    while let Ok(Some(ev)) = client.poll_event().await {
        view.apply(ev);
    }
}

/// Receives events until the view equals `want` (or fails after 20 s). With `ask`, requests
/// another incremental update after each batch, as a viewer's frame clock would (vnc-rs has
/// no end-of-update marker).
async fn sync_to(client: &vnc::VncClient, view: &mut View, want: &[u32], what: &str, ask: bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        drain(client, view).await;
        if view.px.len() == want.len() && diff(&view.px, want) == 0 {
            return;
        }
        if ask {
            client.input(X11Event::Refresh).await.unwrap();
        }
        match tokio::time::timeout_at(deadline, client.recv_event()).await {
            Ok(Ok(ev)) => view.apply(ev),
            Ok(Err(e)) => panic!("{what}: vnc-rs failed: {e}"),
            Err(_) => panic!(
                "{what}: view still differs from the source in {} pixels after 20 s",
                if view.px.len() == want.len() {
                    diff(&view.px, want)
                } else {
                    usize::MAX
                }
            ),
        }
    }
}

async fn exercise<S>(
    stream: S,
    encodings: &[VncEncoding],
    t: &vnc_common::TestServer,
    pw: Option<&str>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + Sync + 'static,
{
    let what = format!("{encodings:?}");
    let password = pw.unwrap_or("").to_string();
    let mut c = VncConnector::new(stream)
        .set_auth_method(async move { Ok(password) })
        .allow_shared(true)
        .set_pixel_format(PixelFormat::bgra());
    for e in encodings {
        c = c.add_encoding(*e);
    }
    let client = c
        .add_encoding(VncEncoding::DesktopSizePseudo)
        .add_encoding(VncEncoding::CursorPseudo)
        .build()
        .unwrap()
        .try_start()
        .await
        .unwrap()
        .finish()
        .unwrap();
    let (w, h, want) = t.fb.snapshot();
    let mut view = View {
        w: w as usize,
        h: h as usize,
        px: vec![0; (w * h) as usize],
        copies: 0,
        cursor: false,
    };
    client.input(X11Event::FullRefresh).await.unwrap();
    sync_to(
        &client,
        &mut view,
        &want,
        &format!("{what} first frame"),
        false,
    )
    .await;

    // A new screen: the incremental update must carry exactly the changes.
    t.fb.update(|px, w, h| paint(px, w, h, 2));
    let (_, _, want) = t.fb.snapshot();
    sync_to(
        &client,
        &mut view,
        &want,
        &format!("{what} incremental"),
        true,
    )
    .await;

    // Scroll by 16 rows: with CopyRect the client must get a copy, and still exact pixels.
    t.fb.update(|px, w, _| {
        let w = w as usize;
        px.copy_within(16 * w.., 0);
    });
    let (_, _, want) = t.fb.snapshot();
    sync_to(&client, &mut view, &want, &format!("{what} scroll"), true).await;
    if encodings.contains(&VncEncoding::CopyRect) {
        assert!(
            view.copies > 0,
            "{what}: a scroll was sent without CopyRect"
        );
    } else {
        assert_eq!(view.copies, 0);
    }
    let _ = client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vncrs_unix_socket_every_encoding_is_exact() {
    for encodings in [
        vec![VncEncoding::Raw],
        vec![VncEncoding::Zrle],
        vec![VncEncoding::Tight],
        vec![VncEncoding::CopyRect, VncEncoding::Tight],
        vec![VncEncoding::CopyRect, VncEncoding::Zrle, VncEncoding::Raw],
    ] {
        let t = start("vncrs", 1280, 800, None);
        let s = UnixStream::connect(&t.socket).await.unwrap();
        exercise(s, &encodings, &t, None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vncrs_tcp_with_password() {
    let t = start("vncrs-tcp", 640, 480, Some("s3cret"));
    let s = TcpStream::connect(("127.0.0.1", t.tcp_port()))
        .await
        .unwrap();
    exercise(s, &[VncEncoding::Zrle], &t, Some("s3cret")).await;

    // A wrong password is refused.
    let s = TcpStream::connect(("127.0.0.1", t.tcp_port()))
        .await
        .unwrap();
    let r = VncConnector::new(s)
        .set_auth_method(async move { Ok("wrong".to_string()) })
        .add_encoding(VncEncoding::Raw)
        .build()
        .unwrap()
        .try_start()
        .await;
    assert!(r.is_err(), "a wrong password was accepted");
}
