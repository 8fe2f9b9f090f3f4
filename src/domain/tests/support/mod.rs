//! The libvirt 9.0.0 test corpus: fetching it through apt (cached outside the work tree) and
//! running libvirt's own tools (xmllint with libvirt's RelaxNG schema, virsh with the test
//! driver) over many files per process. Shared by the corpus test and the corpus benchmark.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const CATEGORIES: &[&str] = &[
    "genericxml2xmlindata",
    "qemuxml2argvdata",
    "qemuxml2xmloutdata",
];
pub const DOMAIN_RNG: &str = "/usr/share/libvirt/schemas/domain.rng";

/// One corpus file.
#[derive(Debug, Clone)]
pub struct CorpusFile {
    pub category: &'static str,
    pub path: PathBuf,
    pub text: String,
}

impl CorpusFile {
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join("vireo-test").join("libvirt")
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// Returns libvirt-9.0.0/tests, fetching the source package with a private apt configuration
/// (a deb-src line for bookworm; the system's apt state is not touched) when not cached.
pub fn fetch() -> Result<PathBuf, String> {
    let cache = cache_dir();
    let tests = cache.join("x").join("libvirt-9.0.0").join("tests");
    let marker = cache.join("x").join(".complete");
    if marker.exists() {
        return Ok(tests);
    }
    let apt = cache.join("apt");
    let lists = apt.join("lists");
    let mkdir = |p: &Path| std::fs::create_dir_all(p).map_err(|e| format!("{}: {e}", p.display()));
    mkdir(&lists.join("partial"))?;
    mkdir(&apt.join("etc"))?;
    let sources = apt.join("etc").join("sources.list");
    std::fs::write(
        &sources,
        "deb-src http://deb.debian.org/debian bookworm main\n",
    )
    .map_err(|e| e.to_string())?;
    let opts = |c: &mut Command| {
        c.arg("-q")
            .arg(format!("-o=Dir::Etc::sourcelist={}", sources.display()))
            .arg("-o=Dir::Etc::sourceparts=/nonexistent")
            .arg(format!("-o=Dir::State::lists={}", lists.display()))
            .arg("-o=APT::Sandbox::User=root");
    };
    let src = cache.join("src");
    mkdir(&src)?;
    let tarball = src.join("libvirt_9.0.0.orig.tar.xz");
    if !tarball.exists() {
        let mut update = Command::new("apt-get");
        opts(&mut update);
        run(update.arg("update"))?;
        let mut source = Command::new("apt-get");
        opts(&mut source);
        run(source.current_dir(&src).args([
            "source",
            "--download-only",
            "libvirt=9.0.0-4+deb12u2",
        ]))
        .or_else(|_| {
            let mut s2 = Command::new("apt-get");
            opts(&mut s2);
            run(s2
                .current_dir(&src)
                .args(["source", "--download-only", "libvirt"]))
        })?;
    }
    if !tarball.exists() {
        return Err(format!(
            "{} missing after apt-get source",
            tarball.display()
        ));
    }
    let x = cache.join("x");
    mkdir(&x)?;
    let mut tar = Command::new("tar");
    tar.arg("-xJf")
        .arg(&tarball)
        .arg("-C")
        .arg(&x)
        .arg("--wildcards");
    for c in CATEGORIES {
        tar.arg(format!("libvirt-9.0.0/tests/{c}/*"));
    }
    tar.arg("libvirt-9.0.0/tests/genericxml2xmltest.c");
    run(&mut tar)?;
    std::fs::write(&marker, "").map_err(|e| e.to_string())?;
    Ok(tests)
}

/// All corpus `.xml` files, sorted per category.
pub fn load(tests: &Path) -> Result<Vec<CorpusFile>, String> {
    let mut files = Vec::new();
    for cat in CATEGORIES {
        let dir = tests.join(cat);
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "xml"))
            .collect();
        paths.sort();
        for p in paths {
            let bytes = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            let text = String::from_utf8(bytes).map_err(|e| format!("{}: {e}", p.display()))?;
            files.push(CorpusFile {
                category: cat,
                path: p,
                text,
            });
        }
    }
    Ok(files)
}

pub fn have_tool(name: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Files `xmllint` finds not well-formed.
pub fn xmllint_malformed(paths: &[PathBuf]) -> Result<Vec<bool>, String> {
    let mut result = Vec::with_capacity(paths.len());
    for chunk in paths.chunks(200) {
        let out = Command::new("xmllint")
            .arg("--noout")
            .args(chunk)
            .output()
            .map_err(|e| format!("xmllint: {e}"))?;
        let err = String::from_utf8_lossy(&out.stderr);
        for p in chunk {
            let prefix = format!("{}:", p.display());
            result.push(
                err.lines()
                    .any(|l| l.starts_with(&prefix) && l.contains("error")),
            );
        }
    }
    Ok(result)
}

/// Whether each file validates against libvirt's domain schema (what virt-xml-validate does
/// for a `<domain>`), many files per xmllint process.
pub fn relaxng_valid(paths: &[PathBuf]) -> Result<Vec<bool>, String> {
    let mut result = Vec::with_capacity(paths.len());
    for chunk in paths.chunks(150) {
        let out = Command::new("xmllint")
            .args(["--noout", "--relaxng", DOMAIN_RNG])
            .args(chunk)
            .output()
            .map_err(|e| format!("xmllint: {e}"))?;
        let err = String::from_utf8_lossy(&out.stderr);
        let mut ok: HashMap<&str, bool> = HashMap::new();
        for l in err.lines() {
            if let Some(f) = l.strip_suffix(" validates") {
                ok.insert(f, true);
            } else if let Some(f) = l.strip_suffix(" fails to validate") {
                ok.insert(f, false);
            }
        }
        for p in chunk {
            let key = p.display().to_string();
            result.push(ok.get(key.as_str()).copied().unwrap_or(false));
        }
    }
    Ok(result)
}

fn virsh_quote(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// `virsh -c test:///<empty node> "define f; dumpxml NAME; undefine NAME"` for each (path,
/// name), many per process. Returns the dumpxml output (empty when define failed).
pub fn virsh_define_dump(items: &[(PathBuf, String)], node: &Path) -> Result<Vec<String>, String> {
    let mut result = Vec::with_capacity(items.len());
    for chunk in items.chunks(100) {
        let mut script = String::new();
        for (i, (p, name)) in chunk.iter().enumerate() {
            let n = virsh_quote(name);
            let _ = write!(
                script,
                "echo @@VIREO-{i}@@; define {}; dumpxml {n}; undefine --nvram {n}; ",
                virsh_quote(&p.display().to_string())
            );
        }
        script.push_str("echo @@VIREO-END@@");
        // Not -q: in quiet mode virsh's echo drops the newline the markers need.
        let out = Command::new("virsh")
            .arg("-c")
            .arg(format!("test://{}", node.display()))
            .arg(&script)
            .output()
            .map_err(|e| format!("virsh: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut sections: Vec<String> = vec![String::new(); chunk.len()];
        let mut cur: Option<usize> = None;
        for line in stdout.split_inclusive('\n') {
            let t = line.trim_end();
            if let Some(rest) = t
                .strip_prefix("@@VIREO-")
                .and_then(|r| r.strip_suffix("@@"))
            {
                cur = rest.parse().ok();
                continue;
            }
            if let Some(i) = cur {
                if t.starts_with("Domain ")
                    && (t.ends_with(" defined from") || t.contains(" defined from "))
                {
                    continue;
                }
                if t.starts_with("Domain ") && t.contains(" has been undefined") {
                    continue;
                }
                sections[i].push_str(line);
            }
        }
        if !stdout.contains("@@VIREO-END@@") {
            return Err(format!(
                "virsh did not finish its batch: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        result.extend(sections.into_iter().map(|s| s.trim().to_string()));
    }
    Ok(result)
}

/// The empty custom node for the test driver (no built-in "test" domain to collide with).
pub fn empty_node(dir: &Path) -> Result<PathBuf, String> {
    let p = dir.join("empty-node.xml");
    std::fs::write(&p, "<node>\n</node>\n").map_err(|e| e.to_string())?;
    Ok(p)
}

/// A canonical form for semantic comparison, computed with quick-xml's namespace reader
/// directly (independent of the tree under test): names are (namespace URI, local name),
/// namespace declarations and whitespace-only text are dropped, attributes are sorted,
/// comments and processing instructions are ignored, and the children of `domain` and
/// `devices` are sorted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Canon {
    pub name: (String, String),
    pub attrs: BTreeMap<(String, String), String>,
    pub text: String,
    pub children: Vec<Canon>,
}

pub fn canonical(xml: &str) -> Result<Canon, String> {
    use quick_xml::events::Event;
    use quick_xml::name::ResolveResult;
    use quick_xml::reader::NsReader;

    let xml = xml.strip_prefix('\u{feff}').unwrap_or(xml);
    let mut r = NsReader::from_str(xml);
    r.config_mut().trim_text(false);
    let mut stack: Vec<Canon> = Vec::new();
    let mut root: Option<Canon> = None;
    let ns = |res: ResolveResult<'_>| -> String {
        match res {
            ResolveResult::Bound(n) => String::from_utf8_lossy(n.as_ref()).into_owned(),
            _ => String::new(),
        }
    };
    loop {
        let ev = r.read_resolved_event().map_err(|e| e.to_string())?;
        match ev {
            (res, Event::Start(ref s)) | (res, Event::Empty(ref s)) => {
                let empty = matches!(ev.1, Event::Empty(_));
                let mut c = Canon {
                    name: (
                        ns(res),
                        String::from_utf8_lossy(s.local_name().as_ref()).into_owned(),
                    ),
                    attrs: BTreeMap::new(),
                    text: String::new(),
                    children: Vec::new(),
                };
                for a in s.attributes() {
                    let a = a.map_err(|e| e.to_string())?;
                    let key = a.key;
                    if key.as_ref() == b"xmlns" || key.as_ref().starts_with(b"xmlns:") {
                        continue;
                    }
                    let (res, local) = r.resolver().resolve_attribute(key);
                    let v = a.unescape_value().map_err(|e| e.to_string())?.into_owned();
                    c.attrs.insert(
                        (
                            ns(res),
                            String::from_utf8_lossy(local.as_ref()).into_owned(),
                        ),
                        v,
                    );
                }
                if empty {
                    finish(&mut stack, &mut root, c);
                } else {
                    stack.push(c);
                }
            }
            (_, Event::End(_)) => {
                let c = stack.pop().ok_or("unbalanced end tag")?;
                finish(&mut stack, &mut root, c);
            }
            (_, Event::Text(t)) => {
                if let Some(top) = stack.last_mut() {
                    let v = t.decode().map_err(|e| e.to_string())?;
                    top.text.push_str(&v);
                }
            }
            (_, Event::GeneralRef(g)) => {
                if let Some(top) = stack.last_mut() {
                    let name = String::from_utf8_lossy(&g).into_owned();
                    let v = match name.as_str() {
                        "lt" => "<".to_string(),
                        "gt" => ">".to_string(),
                        "amp" => "&".to_string(),
                        "apos" => "'".to_string(),
                        "quot" => "\"".to_string(),
                        other => match g.resolve_char_ref() {
                            Ok(Some(c)) => c.to_string(),
                            _ => format!("&{other};"),
                        },
                    };
                    top.text.push_str(&v);
                }
            }
            (_, Event::CData(c)) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&c));
                }
            }
            (_, Event::Eof) => break,
            _ => {}
        }
    }
    root.ok_or_else(|| "no root".to_string())
}

fn finish(stack: &mut [Canon], root: &mut Option<Canon>, mut c: Canon) {
    c.text = c.text.trim().to_string();
    if c.name.0.is_empty() && (c.name.1 == "domain" || c.name.1 == "devices") {
        c.children.sort();
    }
    match stack.last_mut() {
        Some(p) => p.children.push(c),
        None => *root = Some(c),
    }
}

/// What libvirt invents when the input leaves it out: a uuid, a genid (`<genid/>`), MACs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Generated {
    pub uuid: bool,
    pub genid: bool,
    pub mac: bool,
}

/// libvirt's dumpxml with the values it invented masked.
pub fn mask_generated(dump: &str, g: Generated) -> String {
    let (mask_uuid, mask_genid, mask_mac) = (g.uuid, g.genid, g.mac);
    dump.lines()
        .map(|l| {
            let t = l.trim_start();
            if mask_uuid && t.starts_with("<uuid>") {
                return "<uuid-masked/>".to_string();
            }
            if mask_genid && t.starts_with("<genid>") {
                return "<genid-masked/>".to_string();
            }
            if mask_mac && t.starts_with("<mac address=") {
                return "<mac-masked/>".to_string();
            }
            l.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}
