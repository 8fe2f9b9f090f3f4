//! The console's picture of the guest's screen: a paintable that shows each new frame the way
//! the window's renderer draws it cheapest.
//!
//! With the GL renderer a frame is a memory texture, which GL uploads as it is. The cairo
//! renderer of GTK 4.8 converts every texture it draws through floats, four divisions per pixel
//! (half the console's CPU at 1280x800); there a frame is a cairo image surface over buffers
//! that are used again once the renderer lets go of them, painted (and scaled) by pixman.

use gtk::prelude::*;
use gtk::subclass::prelude::*;
use gtk::{cairo, gdk, glib, graphene};
use std::cell::{Cell, RefCell};
use std::sync::{Arc, Mutex};

/// Frame buffers handed back by the surfaces that held them (at most a few: the frame on
/// screen, the one being drawn, the next).
#[derive(Clone, Default)]
struct Pool(Arc<Mutex<Vec<Vec<u8>>>>);

/// A buffer that goes back to its pool when cairo frees the surface over it.
struct Pooled {
    pixels: Vec<u8>,
    pool: Pool,
}

impl AsMut<[u8]> for Pooled {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.pixels
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Ok(mut pool) = self.pool.0.lock() {
            if pool.len() < 4 {
                pool.push(std::mem::take(&mut self.pixels));
            }
        }
    }
}

enum Frame {
    Texture(gdk::Texture),
    Surface(cairo::ImageSurface),
}

mod imp {
    use super::*;

    #[derive(Default)]
    pub struct ConsoleScreen {
        pub(super) frame: RefCell<Option<Frame>>,
        pub(super) size: Cell<(i32, i32)>,
        pub(super) cairo: Cell<bool>,
        pub(super) pool: Pool,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for ConsoleScreen {
        const NAME: &'static str = "VireoConsoleScreen";
        type Type = super::ConsoleScreen;
        type Interfaces = (gdk::Paintable,);
    }

    impl ObjectImpl for ConsoleScreen {}

    impl PaintableImpl for ConsoleScreen {
        fn intrinsic_width(&self) -> i32 {
            self.size.get().0
        }

        fn intrinsic_height(&self) -> i32 {
            self.size.get().1
        }

        fn snapshot(&self, snapshot: &gdk::Snapshot, width: f64, height: f64) {
            let Some(snapshot) = snapshot.downcast_ref::<gtk::Snapshot>() else {
                return;
            };
            let bounds = graphene::Rect::new(0.0, 0.0, width as f32, height as f32);
            match self.frame.borrow().as_ref() {
                None => {}
                Some(Frame::Texture(texture)) => snapshot.append_texture(texture, &bounds),
                Some(Frame::Surface(surface)) => {
                    let (fw, fh) = (f64::from(surface.width()), f64::from(surface.height()));
                    let cr = snapshot.append_cairo(&bounds);
                    let (sx, sy) = (width / fw, height / fh);
                    cr.scale(sx, sy);
                    if cr.set_source_surface(surface, 0.0, 0.0).is_err() {
                        return;
                    }
                    // 1:1 is a plain copy; a scaled screen is filtered as GTK filters textures.
                    let exact = (sx - 1.0).abs() < 1e-6 && (sy - 1.0).abs() < 1e-6;
                    cr.source().set_filter(if exact {
                        cairo::Filter::Fast
                    } else {
                        cairo::Filter::Good
                    });
                    let _ = cr.paint();
                }
            }
        }
    }
}

glib::wrapper! {
    pub struct ConsoleScreen(ObjectSubclass<imp::ConsoleScreen>) @implements gdk::Paintable;
}

impl Default for ConsoleScreen {
    fn default() -> Self {
        glib::Object::new()
    }
}

impl ConsoleScreen {
    /// Draws frames as cairo surfaces (for the cairo renderer) instead of textures.
    pub fn set_cairo(&self, cairo: bool) {
        self.imp().cairo.set(cairo);
    }

    /// The frame's size, once there is one.
    pub fn size(&self) -> Option<(i32, i32)> {
        self.imp()
            .frame
            .borrow()
            .as_ref()
            .map(|_| self.imp().size.get())
    }

    /// Shows a new frame of `width` x `height` B8G8R8A8 pixels whose alpha is 0xFF.
    pub fn set_frame(&self, pixels: &[u8], width: usize, height: usize) {
        let imp = self.imp();
        let (Ok(w), Ok(h), Ok(stride)) = (
            i32::try_from(width),
            i32::try_from(height),
            i32::try_from(width * 4),
        ) else {
            return;
        };
        let Some(pixels) = pixels.get(..width * height * 4) else {
            return;
        };
        let frame = if imp.cairo.get() {
            let mut buffer = imp
                .pool
                .0
                .lock()
                .ok()
                .and_then(|mut pool| pool.pop())
                .unwrap_or_default();
            buffer.clear();
            buffer.extend_from_slice(pixels);
            let data = Pooled {
                pixels: buffer,
                pool: imp.pool.clone(),
            };
            // Cairo's ARGB32 is premultiplied B8G8R8A8 in memory on little-endian machines,
            // and with every alpha at 0xFF these pixels are premultiplied as they stand.
            match cairo::ImageSurface::create_for_data(data, cairo::Format::ARgb32, w, h, stride) {
                Ok(surface) => Frame::Surface(surface),
                Err(_) => return,
            }
        } else {
            // Every alpha byte is 0xFF, so the pixels are premultiplied as they stand; said
            // so, GTK has no alpha to multiply in and GL can take them as BGRA as they are.
            let bytes = glib::Bytes::from(pixels);
            let texture = gdk::MemoryTexture::new(
                w,
                h,
                gdk::MemoryFormat::B8g8r8a8Premultiplied,
                &bytes,
                width * 4,
            );
            Frame::Texture(texture.upcast())
        };
        imp.frame.replace(Some(frame));
        if imp.size.replace((w, h)) != (w, h) {
            self.invalidate_size();
        }
        self.invalidate_contents();
    }

    /// The frame on screen as a texture (for a screenshot).
    pub fn texture(&self) -> Option<gdk::Texture> {
        match self.imp().frame.borrow().as_ref()? {
            Frame::Texture(texture) => Some(texture.clone()),
            Frame::Surface(surface) => {
                surface.flush();
                let (w, h, stride) = (surface.width(), surface.height(), surface.stride());
                let mut pixels = vec![0u8; usize::try_from(stride * h).ok()?];
                let copied = surface.with_data(|data| {
                    let n = pixels.len().min(data.len());
                    pixels[..n].copy_from_slice(&data[..n]);
                });
                copied.ok()?;
                let bytes = glib::Bytes::from_owned(pixels);
                Some(
                    gdk::MemoryTexture::new(
                        w,
                        h,
                        gdk::MemoryFormat::B8g8r8a8Premultiplied,
                        &bytes,
                        usize::try_from(stride).ok()?,
                    )
                    .upcast(),
                )
            }
        }
    }
}
