//! A qcow2 image may name a backing file or an external data file anywhere on the host; the VMM
//! opens only the backing chain the configuration declares. Images are made by qemu-img in a
//! temporary directory whose "sentinel" files stand for the user's own (a private key, a shell
//! profile): inotify proves they are never opened, read or written, and their bytes stay as
//! they were.

mod inotify;

use inotify::Watch;
use std::path::{Path, PathBuf};
use std::process::Command;

use vireo_vmm::virtio::block::image::{
    BackingLayer, DiskFormat, DiskImage, ImageError, ImageOptions,
};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir()
        .join("vireo-qcow2-references")
        .join(format!("{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create test dir");
    d
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs in the images' directory, so that a relative name in a header lands there too.
fn qemu_img(args: &[&str], paths: &[&Path]) {
    let mut c = Command::new("qemu-img");
    if let Some(dir) = paths
        .iter()
        .find(|p| p.is_absolute())
        .and_then(|p| p.parent())
    {
        c.current_dir(dir);
    }
    c.args(args);
    for p in paths {
        c.arg(p);
    }
    run(&mut c);
}

fn qcow2(path: &Path, read_only: bool, backing: Vec<BackingLayer>) -> ImageOptions {
    ImageOptions {
        path: path.to_path_buf(),
        format: DiskFormat::Qcow2,
        read_only,
        shareable: false,
        backing,
    }
}

fn layer(path: &Path, format: DiskFormat) -> BackingLayer {
    BackingLayer {
        path: path.to_path_buf(),
        format,
    }
}

fn open_err(o: &ImageOptions) -> ImageError {
    match DiskImage::open(o) {
        Ok(_) => panic!("{} opened", o.path.display()),
        Err(e) => e,
    }
}

/// A file that stands for one of the user's, with its bytes as they were.
struct Sentinel {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl Sentinel {
    fn new(dir: &Path, name: &str, bytes: &[u8]) -> Sentinel {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        Sentinel {
            path,
            bytes: bytes.to_vec(),
        }
    }

    fn assert_unchanged(&self) {
        assert_eq!(
            std::fs::read(&self.path).unwrap(),
            self.bytes,
            "{} was changed",
            self.path.display()
        );
    }
}

#[test]
fn an_undeclared_backing_file_is_refused_unopened() {
    let dir = tmpdir("backing");
    let key = Sentinel::new(&dir, "id_ed25519", &[0x4b; 1 << 20]);
    let top = dir.join("download.qcow2");
    // -u: qemu-img itself does not open the backing file either.
    qemu_img(
        &["create", "-q", "-f", "qcow2", "-u", "-F", "raw", "-b"],
        &[&key.path, &top, Path::new("1M")],
    );
    // A relative name: the message says where it points.
    let relative = dir.join("relative.qcow2");
    qemu_img(
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-u",
            "-F",
            "qcow2",
            "-b",
            "id_ed25519",
        ],
        &[&relative, Path::new("1M")],
    );
    let before = std::fs::read(&top).unwrap();
    let watch = Watch::new(&[&key.path]);
    let outcomes: Vec<_> = [false, true]
        .into_iter()
        .map(|read_only| DiskImage::open(&qcow2(&top, read_only, Vec::new())).map(|_| ()))
        .collect();
    let relative_outcome = DiskImage::open(&qcow2(&relative, false, Vec::new())).map(|_| ());
    // What the user's file saw comes first: that is the promise.
    assert_eq!(watch.events(), Vec::<String>::new());
    key.assert_unchanged();
    assert_eq!(
        std::fs::read(&top).unwrap(),
        before,
        "the refused image changed"
    );
    let msg = relative_outcome.expect_err("opened").to_string();
    assert!(
        msg.contains(&format!(
            "names the backing file \"id_ed25519\" ({}, format qcow2)",
            key.path.display()
        )),
        "{msg}"
    );
    assert!(msg.contains("<format type='qcow2'/>"), "{msg}");
    for outcome in outcomes {
        let e = outcome.expect_err("opened");
        assert!(matches!(e, ImageError::UndeclaredBacking { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "{msg}");
        assert!(
            msg.starts_with(&format!("disk image {}: ", top.display())),
            "{msg}"
        );
        assert!(
            msg.contains(&format!(
                "names the backing file \"{}\" (format raw)",
                key.path.display()
            )),
            "{msg}"
        );
        assert!(
            msg.contains(&format!(
                "<backingStore type='file'><format type='raw'/><source file='{}'/></backingStore>",
                key.path.display()
            )),
            "{msg}"
        );
    }
}

#[test]
fn an_external_data_file_is_refused_unopened() {
    let dir = tmpdir("datafile");
    let profile = dir.join("bashrc");
    let top = dir.join("download.qcow2");
    // qemu-img creates the data file; the user's bytes are put in afterwards.
    qemu_img(
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            &format!("data_file={},data_file_raw=on", profile.display()),
        ],
        &[&top, Path::new("1M")],
    );
    let profile = Sentinel::new(&dir, "bashrc", b"alias ls='ls --color'\n");
    // The same header, with a relative name and without the raw flag.
    let rel = dir.join("relative.qcow2");
    qemu_img(
        &["create", "-q", "-f", "qcow2", "-o", "data_file=bashrc"],
        &[&rel, Path::new("1M")],
    );
    std::fs::write(&profile.path, &profile.bytes).unwrap();
    let before = std::fs::read(&top).unwrap();
    let watch = Watch::new(&[&profile.path]);
    let named = [profile.path.display().to_string(), "bashrc".into()];
    let mut outcomes = Vec::new();
    for (img, named) in [&top, &rel].into_iter().zip(named.clone()) {
        for read_only in [false, true] {
            let r = DiskImage::open(&qcow2(img, read_only, Vec::new())).map(|_| ());
            outcomes.push((img, named.clone(), r));
        }
    }
    // Declaring a backing chain does not make a data file acceptable.
    let base = dir.join("base.raw");
    std::fs::write(&base, [0u8; 4096]).unwrap();
    let r = DiskImage::open(&qcow2(&top, false, vec![layer(&base, DiskFormat::Raw)]));
    outcomes.push((&top, named[0].clone(), r.map(|_| ())));
    assert_eq!(watch.events(), Vec::<String>::new());
    profile.assert_unchanged();
    // Not even the "raw external data" autoclear bit was cleared in the refused image.
    assert_eq!(
        std::fs::read(&top).unwrap(),
        before,
        "the refused image changed"
    );
    for (img, named, outcome) in outcomes {
        let e = outcome.expect_err("opened");
        assert!(matches!(e, ImageError::ExternalDataFile { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "{msg}");
        assert!(
            msg.starts_with(&format!("disk image {}: ", img.display())),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("asks for the external data file \"{named}\"")),
            "{msg}"
        );
        assert!(msg.contains("qemu-img convert -O qcow2"), "{msg}");
    }
}

#[test]
fn a_declared_chain_is_read_and_only_the_top_is_written() {
    let dir = tmpdir("chain");
    let base = dir.join("base.raw");
    let mid = dir.join("mid.qcow2");
    let top = dir.join("top.qcow2");
    let mut base_bytes = vec![0x42u8; 4 << 20];
    base_bytes[2 << 20..].fill(0x24);
    std::fs::write(&base, &base_bytes).unwrap();
    qemu_img(
        &["create", "-q", "-f", "qcow2", "-F", "raw", "-b"],
        &[&base, &mid],
    );
    run(Command::new("qemu-io")
        .args(["-c", "write -P 0x55 1M 64k"])
        .arg(&mid));
    qemu_img(
        &["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"],
        &[&mid, &top],
    );
    let mid_bytes = std::fs::read(&mid).unwrap();
    let chain = vec![
        layer(&mid, DiskFormat::Qcow2),
        layer(&base, DiskFormat::Raw),
    ];
    let watch = Watch::new(&[&base, &mid]);
    {
        let mut img = DiskImage::open(&qcow2(&top, false, chain.clone())).expect("declared chain");
        let d = &mut img.backend;
        assert_eq!(d.size(), 4 << 20);
        let mut buf = vec![0u8; 4096];
        d.read_at(&mut buf, 0).unwrap();
        assert_eq!(buf, vec![0x42; 4096], "read through both layers");
        d.read_at(&mut buf, 1 << 20).unwrap();
        assert_eq!(buf, vec![0x55; 4096], "the middle layer's data");
        d.read_at(&mut buf, 3 << 20).unwrap();
        assert_eq!(buf, vec![0x24; 4096]);
        d.write_at(&[0x77; 4096], 0).unwrap();
        d.write_at(&[0x78; 4096], 1 << 20).unwrap();
        d.flush().unwrap();
        d.read_at(&mut buf, 0).unwrap();
        assert_eq!(buf, vec![0x77; 4096]);
        // The backing layers are locked shared: another reader may open them, a writer may not.
        let exclusive = ImageOptions {
            format: DiskFormat::Raw,
            ..qcow2(&base, false, Vec::new())
        };
        assert!(matches!(
            DiskImage::open(&exclusive),
            Err(ImageError::Locked { .. })
        ));
        let reader = ImageOptions {
            read_only: true,
            ..exclusive
        };
        DiskImage::open(&reader).expect("a second reader of the base");
    }
    let seen = watch.events();
    assert!(
        !seen.iter().any(|e| e.ends_with(": write")),
        "a backing layer was written: {seen:?}"
    );
    assert_eq!(std::fs::read(&base).unwrap(), base_bytes, "base changed");
    assert_eq!(
        std::fs::read(&mid).unwrap(),
        mid_bytes,
        "middle layer changed"
    );
    run(Command::new("qemu-img").arg("check").arg(&top));
    run(Command::new("qemu-io")
        .args([
            "-r",
            "-c",
            "read -P 0x77 0 4k",
            "-c",
            "read -P 0x42 4k 60k",
            "-c",
            "read -P 0x78 1M 4k",
            "-c",
            "read -P 0x55 1028k 60k",
            "-c",
            "read -P 0x24 3M 4k",
        ])
        .arg(&top));
}

#[test]
fn a_layer_of_the_chain_is_held_to_the_same_rule() {
    let dir = tmpdir("deep");
    let key = Sentinel::new(&dir, "id_rsa", &[0x52; 65536]);
    let mid = dir.join("mid.qcow2");
    let top = dir.join("top.qcow2");
    qemu_img(
        &["create", "-q", "-f", "qcow2", "-u", "-F", "raw", "-b"],
        &[&key.path, &mid, Path::new("1M")],
    );
    qemu_img(
        &["create", "-q", "-f", "qcow2", "-u", "-F", "qcow2", "-b"],
        &[&mid, &top, Path::new("1M")],
    );
    let watch = Watch::new(&[&key.path]);
    let e = open_err(&qcow2(&top, false, vec![layer(&mid, DiskFormat::Qcow2)]));
    let msg = e.to_string();
    assert!(
        matches!(&e, ImageError::Backing { source, .. }
            if matches!(**source, ImageError::UndeclaredBacking { .. })),
        "{e:?}"
    );
    assert!(
        msg.starts_with(&format!(
            "backing file of {}: disk image {}: its qcow2 header names the backing file \"{}\"",
            top.display(),
            mid.display(),
            key.path.display()
        )),
        "{msg}"
    );
    assert_eq!(watch.events(), Vec::<String>::new());
    key.assert_unchanged();
}

#[test]
fn a_declaration_must_match_the_image() {
    let dir = tmpdir("mismatch");
    let plain = dir.join("plain.qcow2");
    qemu_img(&["create", "-q", "-f", "qcow2"], &[&plain, Path::new("1M")]);
    let base = dir.join("base.raw");
    std::fs::write(&base, [0u8; 4096]).unwrap();
    let e = open_err(&qcow2(&plain, false, vec![layer(&base, DiskFormat::Raw)]));
    assert!(matches!(e, ImageError::BackingNotInImage { .. }), "{e:?}");
    assert!(
        e.to_string().contains("header names no backing file"),
        "{e}"
    );
    // A raw image has no header to name a backing file.
    let raw_top = ImageOptions {
        format: DiskFormat::Raw,
        ..qcow2(&base, false, vec![layer(&plain, DiskFormat::Qcow2)])
    };
    assert!(matches!(
        open_err(&raw_top),
        ImageError::RawWithBacking { .. }
    ));
    // Nor does a raw layer in the middle of a chain.
    let top = dir.join("top.qcow2");
    qemu_img(
        &["create", "-q", "-f", "qcow2", "-F", "raw", "-b"],
        &[&base, &top],
    );
    let e = open_err(&qcow2(
        &top,
        false,
        vec![
            layer(&base, DiskFormat::Raw),
            layer(&plain, DiskFormat::Qcow2),
        ],
    ));
    assert!(
        matches!(&e, ImageError::Backing { source, .. }
            if matches!(**source, ImageError::RawWithBacking { .. })),
        "{e:?}"
    );
    // An image without references opens without a declaration.
    DiskImage::open(&qcow2(&plain, false, Vec::new())).expect("self-contained image");
}

#[test]
fn a_header_that_breaks_the_reader_is_refused() {
    let dir = tmpdir("reader");
    let img = dir.join("broken.qcow2");
    qemu_img(&["create", "-q", "-f", "qcow2"], &[&img, Path::new("1M")]);
    // qemu-img writes its feature name table (0x6803f857, 8 entries of 48 bytes) first among the
    // header extensions, at 0x70; one byte more leaves a one-byte entry, on which imago 0.2.6's
    // parser indexes past the end.
    let mut bytes = std::fs::read(&img).unwrap();
    assert_eq!(&bytes[0x70..0x78], &[0x68, 0x03, 0xf8, 0x57, 0, 0, 1, 0x80]);
    bytes[0x74..0x78].copy_from_slice(&385u32.to_be_bytes());
    std::fs::write(&img, &bytes).unwrap();
    for read_only in [true, false] {
        let e = open_err(&qcow2(&img, read_only, Vec::new()));
        assert!(matches!(e, ImageError::Qcow2Reader { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "{msg}");
        assert!(
            msg.starts_with(&format!(
                "cannot open qcow2 image {}: its header made the qcow2 reader fail (",
                img.display()
            )),
            "{msg}"
        );
    }
    assert_eq!(
        std::fs::read(&img).unwrap(),
        bytes,
        "the refused image changed"
    );
}
