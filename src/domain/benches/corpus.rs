//! Parse + write of the whole libvirt 9.0.0 corpus with vireo-domain, against libvirt's
//! `virsh -c test:///<empty node> define` + `dumpxml` on the same files, in the same run.
//! Both sides single-threaded. Run: `cargo bench -p vireo-domain --bench corpus`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use vireo_domain::Domain;

fn main() {
    let tests = match support::fetch() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("corpus unavailable: {e}");
            std::process::exit(1);
        }
    };
    let files = support::load(&tests).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let bytes: usize = files.iter().map(|f| f.text.len()).sum();

    // Ours: best of 5 passes (the first also warms the caches).
    let mut best = Duration::MAX;
    let mut names = Vec::new();
    for pass in 0..5 {
        let t = Instant::now();
        let mut out_bytes = 0usize;
        for f in &files {
            if let Ok(d) = Domain::parse(&f.text) {
                out_bytes += d.to_xml().len();
                if pass == 0 {
                    names.push((f.path.clone(), d.name().unwrap_or_default()));
                }
            }
        }
        std::hint::black_box(out_bytes);
        best = best.min(t.elapsed());
    }

    let work = std::env::temp_dir().join(format!("vireo-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap_or_else(|e| panic!("{}: {e}", work.display()));
    let node = support::empty_node(&work).unwrap_or_else(|e| panic!("{e}"));
    let t = Instant::now();
    let dumps = support::virsh_define_dump(&names, &node).unwrap_or_else(|e| panic!("{e}"));
    let libvirt = t.elapsed();
    let defined = dumps.iter().filter(|d| !d.is_empty()).count();
    let _ = std::fs::remove_dir_all(&work);

    println!(
        "corpus: {} files, {:.1} MiB",
        files.len(),
        bytes as f64 / (1 << 20) as f64
    );
    println!(
        "vireo-domain parse+write: {:>10.2?}  ({:.1} MiB/s, {:.1} µs/file, best of 5)",
        best,
        bytes as f64 / (1 << 20) as f64 / best.as_secs_f64(),
        best.as_secs_f64() * 1e6 / files.len() as f64
    );
    println!(
        "virsh define+dumpxml:     {:>10.2?}  ({} of {} defined, {} files per virsh process)",
        libvirt,
        defined,
        names.len(),
        100
    );
    println!(
        "ratio libvirt / vireo-domain: {:.1}x",
        libvirt.as_secs_f64() / best.as_secs_f64()
    );
}
