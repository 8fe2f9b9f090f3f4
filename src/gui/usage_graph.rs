//! A small line graph of the last minute of one measurement (CPU or memory use), drawn with
//! cairo into the widget's snapshot. Values are fractions of a maximum the owner chooses
//! (0.0 = empty, 1.0 = full height); the newest sample is at the right edge.

use adw::subclass::prelude::*;
use gtk::prelude::*;
use gtk::{gdk, glib, graphene};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

/// Samples kept: one a second for a minute.
pub const CAPACITY: usize = 60;

mod imp {
    use super::*;

    #[derive(Debug)]
    pub struct VireoUsageGraph {
        pub samples: RefCell<VecDeque<f64>>,
        pub rgb: Cell<(f64, f64, f64)>,
    }

    impl Default for VireoUsageGraph {
        fn default() -> Self {
            VireoUsageGraph {
                samples: RefCell::new(VecDeque::with_capacity(CAPACITY)),
                // GNOME's blue 3 until the owner picks another colour.
                rgb: Cell::new((
                    0x35 as f64 / 255.0,
                    0x84 as f64 / 255.0,
                    0xe4 as f64 / 255.0,
                )),
            }
        }
    }

    #[glib::object_subclass]
    impl ObjectSubclass for VireoUsageGraph {
        const NAME: &'static str = "VireoUsageGraph";
        type Type = super::VireoUsageGraph;
        type ParentType = gtk::Widget;

        fn class_init(klass: &mut Self::Class) {
            klass.set_css_name("usagegraph");
            klass.set_accessible_role(gtk::AccessibleRole::Img);
        }
    }

    impl ObjectImpl for VireoUsageGraph {
        fn constructed(&self) {
            self.parent_constructed();
            self.obj().add_css_class("card");
            self.obj().set_overflow(gtk::Overflow::Hidden);
        }
    }

    impl WidgetImpl for VireoUsageGraph {
        fn measure(&self, orientation: gtk::Orientation, _for_size: i32) -> (i32, i32, i32, i32) {
            match orientation {
                gtk::Orientation::Horizontal => (120, 240, -1, -1),
                _ => (48, 90, -1, -1),
            }
        }

        fn snapshot(&self, snapshot: &gtk::Snapshot) {
            let widget = self.obj();
            let (w, h) = (
                WidgetExt::width(&*widget) as f64,
                WidgetExt::height(&*widget) as f64,
            );
            if w < 2.0 || h < 2.0 {
                return;
            }
            let cr = snapshot.append_cairo(&graphene::Rect::new(0.0, 0.0, w as f32, h as f32));
            let (r, g, b) = self.rgb.get();
            // Guide lines at a quarter, half and three quarters, in the text colour.
            #[allow(deprecated)] // Widget::color() is GTK 4.10; this is the 4.8 way.
            let fg: gdk::RGBA = widget.style_context().color();
            cr.set_source_rgba(fg.red() as f64, fg.green() as f64, fg.blue() as f64, 0.12);
            cr.set_line_width(1.0);
            for q in [0.25, 0.5, 0.75] {
                let y = (h * q).round() + 0.5;
                cr.move_to(0.0, y);
                cr.line_to(w, y);
            }
            let _ = cr.stroke();

            let samples = self.samples.borrow();
            if samples.is_empty() {
                return;
            }
            let step = w / (CAPACITY - 1) as f64;
            // Newest at the right edge; older ones step to the left.
            let points: Vec<(f64, f64)> = samples
                .iter()
                .rev()
                .enumerate()
                .map(|(i, v)| {
                    let v = if v.is_finite() {
                        v.clamp(0.0, 1.0)
                    } else {
                        0.0
                    };
                    (w - i as f64 * step, h - 1.0 - v * (h - 2.0))
                })
                .collect();
            cr.move_to(points[0].0, h);
            for &(x, y) in &points {
                cr.line_to(x, y);
            }
            if let Some(&(x, _)) = points.last() {
                cr.line_to(x, h);
            }
            cr.close_path();
            cr.set_source_rgba(r, g, b, 0.25);
            let _ = cr.fill();
            cr.move_to(points[0].0, points[0].1);
            for &(x, y) in &points[1..] {
                cr.line_to(x, y);
            }
            cr.set_source_rgb(r, g, b);
            cr.set_line_width(2.0);
            let _ = cr.stroke();
        }
    }
}

glib::wrapper! {
    pub struct VireoUsageGraph(ObjectSubclass<imp::VireoUsageGraph>)
        @extends gtk::Widget,
        @implements gtk::Buildable, gtk::ConstraintTarget;
}

impl Default for VireoUsageGraph {
    fn default() -> Self {
        glib::Object::new()
    }
}

impl VireoUsageGraph {
    /// Adds a sample (a fraction of the graph's height) and drops the oldest beyond a minute.
    pub fn push(&self, fraction: f64) {
        {
            let mut samples = self.imp().samples.borrow_mut();
            if samples.len() == CAPACITY {
                samples.pop_front();
            }
            samples.push_back(fraction);
        }
        self.queue_draw();
    }

    /// Forgets every sample (the machine stopped).
    pub fn clear(&self) {
        self.imp().samples.borrow_mut().clear();
        self.queue_draw();
    }

    pub fn len(&self) -> usize {
        self.imp().samples.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The line's colour, 0-255 per channel.
    pub fn set_rgb(&self, r: u8, g: u8, b: u8) {
        let c = |v: u8| v as f64 / 255.0;
        self.imp().rgb.set((c(r), c(g), c(b)));
        self.queue_draw();
    }
}
