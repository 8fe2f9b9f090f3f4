//! How clones and their copies are named (virt-clone's rules, plus Vireo's `NAME-...` files).

use std::path::{Path, PathBuf};

/// virt-clone's name for a clone of `original`: `NAME-clone`, then `NAME-clone1`, `NAME-clone2`,
/// ... as `taken` says; a clone of `NAME-cloneN` is `NAME-clone(N+1)` or later, not
/// `NAME-cloneN-clone`.
pub fn clone_name(original: &str, taken: impl Fn(&str) -> bool) -> String {
    let numbered = original.rfind("-clone").and_then(|i| {
        let digits = &original[i + "-clone".len()..];
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        Some((i, digits.parse::<u64>().unwrap_or(0)))
    });
    let (base, start) = match numbered {
        Some((i, n)) => (format!("{}-clone", &original[..i]), n.saturating_add(1)),
        None => {
            let base = format!("{original}-clone");
            if !taken(&base) {
                return base;
            }
            (base, 1)
        }
    };
    (start..)
        .map(|n| format!("{base}{n}"))
        .find(|c| !taken(c))
        .unwrap_or(base)
}

/// A file name's stem and extension (with its dot); virt-clone takes up to seven characters
/// after the last dot as an extension.
pub(super) fn split_ext(file: &str) -> (&str, &str) {
    match file.rfind('.') {
        Some(i) if i > 0 && file.len() - i - 1 <= 7 => (&file[..i], &file[i..]),
        _ => (file, ""),
    }
}

/// The name of a copy of `path`, in the same directory: the stem becomes the new machine's name
/// when it is the original's name (`a.qcow2` -> `b.qcow2`) or starts with it and a dash
/// (`a-initrd.img` -> `b-initrd.img`), else `STEM-clone` (`disk.raw` -> `disk-clone.raw`).
pub fn derived_path(path: &Path, original: &str, new: &str) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new(""));
    let Some(file) = path.file_name() else {
        return path.to_owned();
    };
    let Some(file) = file.to_str() else {
        let mut s = file.to_owned();
        s.push("-clone");
        return dir.join(s);
    };
    let (stem, ext) = split_ext(file);
    let stem = if stem == original {
        new.to_owned()
    } else if let Some(rest) = stem.strip_prefix(original).filter(|r| r.starts_with('-')) {
        format!("{new}{rest}")
    } else {
        format!("{stem}-clone")
    };
    dir.join(format!("{stem}{ext}"))
}

/// `path`, or the first of `STEM-1.EXT`, `STEM-2.EXT`, ... that `taken` says is free.
pub(super) fn free_path(path: PathBuf, taken: impl Fn(&Path) -> bool) -> PathBuf {
    if !taken(&path) {
        return path;
    }
    let dir = path.parent().unwrap_or(Path::new("")).to_owned();
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (stem, ext) = split_ext(&file);
    (1u64..)
        .map(|n| dir.join(format!("{stem}-{n}{ext}")))
        .find(|p| !taken(p))
        .unwrap_or(path)
}
