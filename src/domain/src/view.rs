//! Small helpers the typed views are made of: read or write an attribute of a child element,
//! a child's text, or a flag element, creating or removing the child at its canonical place.

use crate::tree::{Element, Style};

/// The value of `child@attr`.
pub(crate) fn sub_attr(e: &Element, child: &str, attr: &str) -> Option<String> {
    e.child(child)
        .and_then(|c| c.attr(attr))
        .map(|v| v.into_owned())
}

/// Sets or removes `child@attr`. A child left without attributes and content is removed.
pub(crate) fn set_sub_attr(
    e: &mut Element,
    child: &str,
    attr: &str,
    value: Option<&str>,
    order: &[&str],
    style: &Style,
) {
    match value {
        Some(v) => e.ensure_child(child, order, style).set_attr(attr, v),
        None => {
            let now_empty = match e.child_mut(child) {
                Some(c) => {
                    c.remove_attr(attr);
                    c.attributes().is_empty() && c.nodes().is_empty()
                }
                None => false,
            };
            if now_empty {
                e.remove_child(child, 0);
            }
        }
    }
}

/// The trimmed text of the first `child`.
pub(crate) fn sub_text(e: &Element, child: &str) -> Option<String> {
    e.child(child).map(|c| c.text())
}

/// Sets the text of `child` (creating it), or removes the child.
pub(crate) fn set_sub_text(
    e: &mut Element,
    child: &str,
    value: Option<&str>,
    order: &[&str],
    style: &Style,
) {
    match value {
        Some(v) => e.ensure_child(child, order, style).set_text(v),
        None => {
            e.remove_children_named(child);
        }
    }
}

/// Whether an empty flag element such as `<readonly/>` is present.
pub(crate) fn flag(e: &Element, child: &str) -> bool {
    e.child(child).is_some()
}

pub(crate) fn set_flag(e: &mut Element, child: &str, on: bool, order: &[&str], style: &Style) {
    if on {
        e.ensure_child(child, order, style);
    } else {
        e.remove_children_named(child);
    }
}

/// Parses an unsigned number the way libvirt does (decimal, surrounding blanks allowed).
pub(crate) fn parse_uint<T: std::str::FromStr>(s: &str) -> Option<T> {
    let t = s.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// Parses an unsigned number the way libvirt reads device addresses (C's `strtoul` with base
/// 0): `0x` hexadecimal, a leading `0` octal, else decimal; surrounding blanks allowed.
pub(crate) fn parse_uint_any_base(s: &str) -> Option<u32> {
    let t = s.trim();
    let (digits, radix) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (h, 16)
    } else if t.len() > 1 && t.starts_with('0') {
        (&t[1..], 8)
    } else {
        (t, 10)
    };
    // from_str_radix alone would also take a sign.
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u32::from_str_radix(digits, radix).ok()
}

/// Defines a typed view: a wrapper over `&Element` (read) or `&mut Element` (edit) that also
/// knows the element's path (for errors) and the document's style (for new nodes).
macro_rules! view {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug)]
        pub struct $name<E> {
            el: E,
            style: $crate::tree::Style,
            path: String,
        }

        impl<E: AsRef<$crate::tree::Element>> $name<E> {
            pub(crate) fn wrap(el: E, style: $crate::tree::Style, path: String) -> Self {
                $name { el, style, path }
            }

            /// The underlying element (everything the view does not model is there).
            pub fn element(&self) -> &$crate::tree::Element {
                self.el.as_ref()
            }

            /// Element path for errors and GUI field mapping, e.g. `domain/devices/disk[2]`.
            pub fn path(&self) -> &str {
                &self.path
            }

            #[allow(dead_code)]
            fn e(&self) -> &$crate::tree::Element {
                self.el.as_ref()
            }
        }

        impl<E: AsRef<$crate::tree::Element> + AsMut<$crate::tree::Element>> $name<E> {
            /// The underlying element, for edits the view does not offer.
            pub fn element_mut(&mut self) -> &mut $crate::tree::Element {
                self.el.as_mut()
            }

            #[allow(dead_code)]
            fn em(&mut self) -> (&mut $crate::tree::Element, &$crate::tree::Style) {
                (self.el.as_mut(), &self.style)
            }
        }
    };
}

pub(crate) use view;
