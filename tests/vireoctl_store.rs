//! vireoctl and the definition store, with the real binary in an isolated XDG home, checked
//! against libvirt's own tools (virt-xml-validate, `virsh -c test:///default`).

mod vireoctl_support;

use std::process::Command;
use vireoctl_support::Home;

fn virsh_roundtrip(file: &std::path::Path, name: &str) -> String {
    let out = Command::new("virsh")
        .args([
            "-q",
            "-c",
            "test:///default",
            &format!("define {}; dumpxml --security-info {name}", file.display()),
        ])
        .output()
        .expect("virsh (libvirt-clients) must be installed");
    assert!(
        out.status.success(),
        "virsh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The test driver gives every interface a host-side name (`<target dev='testnetN'/>`), a
    // live-only property; it is the one line libvirt adds to what we write.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim_start().starts_with("<target dev='testnet"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn validate(file: &std::path::Path) {
    let out = Command::new("virt-xml-validate")
        .arg(file)
        .output()
        .expect("virt-xml-validate must be installed");
    assert!(
        out.status.success(),
        "{}: {}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn define_list_dumpxml_undefine() {
    let h = Home::new("st");
    let k = h.file("vmlinuz", b"k");
    let xml = h.ok(&[
        "create",
        "--name",
        "web",
        "--memory",
        "256",
        "--vcpus",
        "2",
        "--boot",
        &format!("kernel={}", k.display()),
        "--print-xml",
    ]);
    let f = h.file("web.xml", xml.as_bytes());
    assert_eq!(
        h.ok(&["define", f.to_str().unwrap()]).trim(),
        format!("Domain 'web' defined from {}", f.display())
    );
    let list = h.ok(&["list", "--all"]);
    assert!(
        list.lines()
            .any(|l| l.contains("web") && l.contains("shut off")),
        "{list}"
    );
    assert!(
        !h.ok(&["list"]).contains("web"),
        "list without --all shows running machines only"
    );
    assert_eq!(h.ok(&["list", "--all", "--name"]), "web\n");
    let json: serde_json::Value =
        serde_json::from_str(&h.ok(&["list", "--all", "--json"])).unwrap();
    assert_eq!(json[0]["name"], "web");
    assert_eq!(json[0]["memory_kib"], 262144);
    assert_eq!(json[0]["vcpus"], 2);
    // The stored document is exactly what was defined (it had a UUID and MACs already).
    let dumped = h.ok(&["dumpxml", "web"]);
    assert_eq!(dumped, xml);
    // By UUID too.
    let uuid = json[0]["uuid"].as_str().unwrap().to_owned();
    assert_eq!(h.ok(&["dumpxml", &uuid]), xml);
    assert_eq!(h.ok(&["domstate", "web"]).trim(), "shut off");
    let info = h.ok(&["dominfo", "web"]);
    assert!(info.contains(&format!("UUID:           {uuid}")), "{info}");

    // Same UUID, another name: refused (exit 4), nothing written.
    let clash = h.file(
        "clash.xml",
        xml.replace("<name>web</name>", "<name>web2</name>")
            .as_bytes(),
    );
    let (code, _, err) = h.run(&["define", clash.to_str().unwrap()]);
    assert_eq!(code, 4);
    assert_eq!(
        err.trim(),
        format!("error: domain 'web' is already defined with uuid {uuid}")
    );
    assert!(!h.machines().join("web2.xml").exists());

    // Invalid XML: exit 4 with line and column.
    let bad = h.file(
        "bad.xml",
        b"<domain type='kvm'>\n  <name>x</name>\n  <memory>1</memory>\n</domian>\n",
    );
    let (code, _, err) = h.run(&["define", bad.to_str().unwrap()]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("line 4"), "{err}");

    // Autostart marks.
    h.ok(&["autostart", "web"]);
    assert!(h
        .ok(&["list", "--all"])
        .lines()
        .any(|l| l.contains("web") && l.contains("yes   ")));
    assert!(h.root.join("c/vireo/autostart/web.xml").is_symlink());
    h.ok(&["autostart", "--disable", "web"]);
    assert!(!h.root.join("c/vireo/autostart/web.xml").exists());

    h.ok(&["undefine", "web"]);
    assert_eq!(h.run(&["dumpxml", "web"]).0, 3);
    assert_eq!(h.run(&["undefine", "web"]).0, 3);
    assert_eq!(h.ok(&["list", "--all", "--name"]), "");
    let (code, _, _) = h.run(&["frobnicate"]);
    assert_eq!(code, 2);
}

#[test]
fn created_xml_is_valid_and_libvirt_gives_it_back_unchanged() {
    let h = Home::new("virsh");
    let k = h.file("vmlinuz", b"k");
    let i = h.file("initrd", b"i");
    let disk = h.root.join("d.qcow2");
    let cases: Vec<Vec<String>> = vec![
        vec![
            "--name".into(),
            "a".into(),
            "--boot".into(),
            format!("kernel={}", k.display()),
        ],
        vec![
            "--name".into(),
            "b".into(),
            "--memory".into(),
            "1024".into(),
            "--vcpus".into(),
            "4".into(),
            "--boot".into(),
            format!(
                "kernel={},initrd={},kernel_args=console=ttyS0 quiet",
                k.display(),
                i.display()
            ),
            "--disk".into(),
            format!("path={},size=1,format=qcow2", disk.display()),
            "--disk".into(),
            format!("path={},device=cdrom", i.display()),
            "--network".into(),
            "user".into(),
            "--graphics".into(),
            "vnc,port=5905,password=pw".into(),
            "--on-reboot".into(),
            "destroy".into(),
            "--on-crash".into(),
            "coredump-restart".into(),
        ],
        vec![
            "--name".into(),
            "c".into(),
            "--boot".into(),
            format!("kernel={}", k.display()),
            "--graphics".into(),
            "none".into(),
        ],
        vec![
            "--name".into(),
            "d".into(),
            "--boot".into(),
            format!("kernel={}", k.display()),
            "--network".into(),
            "user,portforward=2222:22".into(),
            "--graphics".into(),
            "vnc,socket=/tmp/vnc.sock".into(),
        ],
    ];
    for args in cases {
        let name = args[1].clone();
        let mut a: Vec<&str> = vec!["create"];
        a.extend(args.iter().map(String::as_str));
        a.push("--print-xml");
        let xml = h.ok(&a);
        let f = h.file(&format!("{name}.xml"), xml.as_bytes());
        validate(&f);
        assert_eq!(
            virsh_roundtrip(&f, &name),
            xml,
            "libvirt changed the document of {name}"
        );
        // Defined through vireoctl, dumpxml gives the same document, which libvirt keeps as is.
        h.ok(&["define", f.to_str().unwrap()]);
        let dumped = h.ok(&["dumpxml", &name]);
        assert_eq!(dumped, xml);
        let g = h.file(&format!("{name}.dump.xml"), dumped.as_bytes());
        assert_eq!(virsh_roundtrip(&g, &name), dumped);
    }
    assert!(!disk.exists(), "--print-xml must not create disks");
}

#[test]
fn create_makes_disks_and_defines() {
    let h = Home::new("mk");
    let k = h.file("vmlinuz", b"k");
    let (code, out, err) = h.run(&[
        "create",
        "--name",
        "m",
        "--boot",
        &format!("kernel={}", k.display()),
        "--disk",
        "size=1",
        "--autostart",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let img = h.root.join("d/vireo/images/m.qcow2");
    let info = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&img)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(v["format"], "qcow2");
    assert_eq!(v["virtual-size"], 1u64 << 30);
    assert!(h
        .ok(&["dumpxml", "m"])
        .contains(&format!("<source file='{}'/>", img.display())));
    assert!(h.ok(&["dominfo", "m"]).contains("Autostart:      enable"));
    // Unsupported choices are refused with the option named.
    let (code, _, err) = h.run(&[
        "create",
        "--name",
        "n",
        "--boot",
        &format!("kernel={}", k.display()),
        "--network",
        "bridge=br0",
        "--print-xml",
    ]);
    assert_eq!(code, 4, "{err}");
    let (code, _, err) = h.run(&[
        "create",
        "--name",
        "n",
        "--boot",
        "initrd=/x",
        "--print-xml",
    ]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn edit_validates_and_loops_like_virsh() {
    let h = Home::new("ed");
    let k = h.file("vmlinuz", b"k");
    let xml = h.ok(&[
        "create",
        "--name",
        "e",
        "--boot",
        &format!("kernel={}", k.display()),
        "--print-xml",
    ]);
    let f = h.file("e.xml", xml.as_bytes());
    h.ok(&["define", f.to_str().unwrap()]);

    // A scripted editor: changes the memory.
    let ed = h.file(
        "ed-mem.sh",
        b"#!/bin/sh\nsed -i 's/524288/262144/g' \"$1\"\n",
    );
    std::fs::set_permissions(&ed, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = h
        .cmd()
        .args(["edit", "e"])
        .env("EDITOR", &ed)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Domain 'e' XML configuration edited."
    );
    assert!(h
        .ok(&["dumpxml", "e"])
        .contains("<memory unit='KiB'>262144</memory>"));

    // No change.
    let out = h
        .cmd()
        .args(["edit", "e"])
        .env("EDITOR", "true")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Domain 'e' XML configuration not changed."
    );

    // A broken edit, then "n": nothing saved, exit 4.
    let before = h.ok(&["dumpxml", "e"]);
    let bad = h.file(
        "ed-bad.sh",
        b"#!/bin/sh\nsed -i 's/<name>e<\\/name>/<name>e<\\/nam>/' \"$1\"\n",
    );
    std::fs::set_permissions(&bad, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut c = h
        .cmd()
        .args(["edit", "e"])
        .env("EDITOR", &bad)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(c.stdin.as_mut().unwrap(), b"n\n").unwrap();
    let out = c.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 2") && err.contains("Try again?"),
        "{err}"
    );
    assert_eq!(h.ok(&["dumpxml", "e"]), before);

    // A broken edit, "y", then an editor run that repairs it: saved.
    let fix = h.file("ed-fix.sh", b"#!/bin/sh\nif grep -q '</nam>' \"$1\"; then sed -i 's/<\\/nam>/<\\/name>/; s/262144/131072/g' \"$1\"; else sed -i 's/<name>e<\\/name>/<name>e<\\/nam>/' \"$1\"; fi\n");
    std::fs::set_permissions(&fix, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut c = h
        .cmd()
        .args(["edit", "e"])
        .env("EDITOR", &fix)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(c.stdin.as_mut().unwrap(), b"y\n").unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(h
        .ok(&["dumpxml", "e"])
        .contains("<memory unit='KiB'>131072</memory>"));
}

#[test]
fn capabilities_completions_and_man_pages() {
    let h = Home::new("caps");
    let caps = h.file("caps.xml", h.ok(&["capabilities"]).as_bytes());
    validate(&caps);
    let dc = h.file("domcaps.xml", h.ok(&["domcapabilities"]).as_bytes());
    validate(&dc);
    for shell in ["bash", "zsh", "fish"] {
        let s = h.ok(&["completions", shell]);
        assert!(
            s.contains("dumpxml") && s.contains("domstate"),
            "{shell} completion lacks commands"
        );
    }
    let bash = h.file("vireoctl.bash", h.ok(&["completions", "bash"]).as_bytes());
    let out = Command::new("bash").arg("-n").arg(&bash).output().unwrap();
    assert!(out.status.success(), "bash completion does not parse");
    let dir = h.root.join("man");
    h.ok(&["man", "--dir", dir.to_str().unwrap()]);
    let page = std::fs::read_to_string(dir.join("vireoctl.1")).unwrap();
    assert!(
        page.contains(".TH vireoctl") && page.contains("Exit status"),
        "{page}"
    );
    assert!(dir.join("vireoctl-create.1").exists() && dir.join("vireoctl-console.1").exists());
    if Command::new("man").arg("--version").output().is_ok() {
        let out = Command::new("man")
            .arg("-l")
            .arg(dir.join("vireoctl-start.1"))
            .env("MANPAGER", "cat")
            .output()
            .unwrap();
        assert!(out.status.success());
    }
}

/// A definition file that is not UTF-8 (a broken disk, an editor in another encoding) still lets
/// the user see where it is broken, replace it with `define` and remove it with `undefine`.
#[test]
fn a_definition_that_is_not_utf8_can_be_redefined_and_undefined() {
    let h = Home::new("utf8");
    let k = h.file("vmlinuz", b"k");
    let kernel = format!("kernel={}", k.display());
    let create = [
        "create",
        "--name",
        "bad",
        "--graphics",
        "none",
        "--boot",
        &kernel,
    ];
    h.ok(&create);
    let file = h.machines().join("bad.xml");
    let good = std::fs::read(&file).unwrap();
    std::fs::write(&file, b"<domain type='kvm'>\n  <name>bad\xff</name>\n").unwrap();

    let (code, _, err) = h.run(&["dumpxml", "bad"]);
    assert_ne!(code, 0);
    assert!(err.contains("bad.xml:2:12: not UTF-8"), "{err}");

    let again = h.file("again.xml", &good);
    h.ok(&["define", again.to_str().unwrap()]);
    assert_eq!(std::fs::read(&file).unwrap(), good);

    std::fs::write(&file, b"\xfe\xff<domain/>").unwrap();
    h.ok(&["undefine", "bad"]);
    assert!(!file.exists());
    let (code, _, _) = h.run(&["dumpxml", "bad"]);
    assert_ne!(code, 0);
}

/// A machine that asks for more memory than this computer has is refused before its helper
/// starts, with both figures and the override in the message; the override lets it through.
#[test]
fn more_memory_than_the_host_has_is_refused_before_start() {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let host_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    let asked = (host_kib / 1024 + 1024).to_string();
    let h = Home::new("mem");
    let k = h.file("vmlinuz", b"k");
    let kernel = format!("kernel={}", k.display());
    h.ok(&[
        "create",
        "--name",
        "big",
        "--memory",
        &asked,
        "--graphics",
        "none",
        "--boot",
        &kernel,
    ]);
    let (code, _, err) = h.run(&["start", "big"]);
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!("asks for {asked} MiB"))
            && err.contains("VIREO_ALLOW_MEMORY_OVERCOMMIT=1"),
        "{err}"
    );
    assert!(!h.runtime("big").join("state.json").exists());
    let out = h
        .cmd()
        .env("VIREO_ALLOW_MEMORY_OVERCOMMIT", "1")
        .args(["start", "big"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("VIREO_ALLOW_MEMORY_OVERCOMMIT"), "{err}");
}
