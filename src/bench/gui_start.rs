//! Benchmark (issue #8): cold start of the real `vireo` to its first frame, and to the first
//! frame showing the driver's machine list, with 0, 100 and 1,000 defined machines.
//!
//! Each size gets an isolated XDG home whose definitions are written through the driver
//! (`Connection::define_xml`, the path the GUI and vireoctl use). The release `vireo` runs on
//! its own Xvfb and session bus with `VIREO_TRACE_STARTUP=1`, which makes it print
//! `vireo-trace: first-frame PAGE N` and `vireo-trace: machines-frame N` from its frame clock's
//! after-paint signal (the machines frame: the first with the page settled and the machines'
//! cards on screen); times are measured here from the spawn to each line. A "cold" start is
//! a new process; the file cache is warm after the first run (dropping it needs privileges
//! the tests do not assume). The CPU column is the process's CPU time (all threads) and the
//! memory columns its RSS and PSS, just after the machines frame: on a loaded machine the CPU
//! time says more than the wall time. GNOME Boxes and virt-manager are not installed here, so only Vireo's figures
//! are printed. No assertions on times.
//!
//! Run: `cargo bench -p vireo --bench gui_start` (VIREO_BENCH_RUNS=N, default 3 runs each).

#[path = "../../tests/common/mod.rs"]
mod common;
mod definition;
mod support;

use std::time::Duration;

use common::{scratch_dir, Desktop};
use definition::definition;
use support::{cpu_time, memory_kib, Traced};
use vireo_driver::{Connection, Paths};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; a filter argument is accepted and ignored.
    let runs: usize = std::env::var("VIREO_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let desktop = Desktop::start("bench-start");
    println!("vireo cold start to first frame (Xvfb 1280x800, cairo renderer, release build)");
    println!(
        "{:>9} {:>4} {:>15} {:>18} {:>7} {:>10} {:>8} {:>8}",
        "machines",
        "run",
        "first frame ms",
        "machines frame ms",
        "CPU ms",
        "define s",
        "RSS MiB",
        "PSS MiB"
    );
    let mut summary = Vec::new();
    for n in [0usize, 100, 1000] {
        let root = scratch_dir(&format!("bench-start-{n}"));
        let kernel = root.join("vmlinuz");
        std::fs::write(&kernel, b"not booted by the benchmark").unwrap();
        let conn = Connection::with_paths(Paths::under(
            &root.join("c"),
            &root.join("r"),
            &root.join("d"),
            &root.join("k"),
        ));
        let defining = std::time::Instant::now();
        for i in 0..n {
            let name = format!("m{i:04}");
            if let Err(e) = conn.define_xml(&definition(&name, &kernel)) {
                panic!("defining {name}: {e}");
            }
        }
        let define_s = defining.elapsed().as_secs_f64();
        let (mut firsts, mut lists, mut memory) = (Vec::new(), Vec::new(), Vec::new());
        for run in 1..=runs {
            let app = Traced::launch(&desktop, &root, &[("VIREO_TRACE_STARTUP", "1")]);
            let (first, _) = app.wait_line("vireo-trace: first-frame", Duration::from_secs(60));
            let (list, line) =
                app.wait_line("vireo-trace: machines-frame", Duration::from_secs(120));
            let shown: usize = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(usize::MAX);
            assert_eq!(shown, n, "the list frame showed {shown} machines, not {n}");
            let first_ms = (first - app.started).as_secs_f64() * 1000.0;
            let list_ms = (list - app.started).as_secs_f64() * 1000.0;
            let cpu_ms = cpu_time(app.child.id()).as_secs_f64() * 1000.0;
            let (rss, pss) = memory_kib(app.child.id());
            let (rss, pss) = (rss as f64 / 1024.0, pss as f64 / 1024.0);
            println!(
                "{n:>9} {run:>4} {first_ms:>15.0} {list_ms:>18.0} {cpu_ms:>7.0} {:>10} {rss:>8.1} \
                 {pss:>8.1}",
                if run == 1 {
                    format!("{define_s:.1}")
                } else {
                    String::new()
                }
            );
            memory.push((rss, pss));
            firsts.push(first_ms);
            lists.push(list_ms);
            app.stop();
            // The bus name must be free before the next instance starts.
            std::thread::sleep(Duration::from_millis(300));
        }
        let (rss, pss): (Vec<f64>, Vec<f64>) = memory.into_iter().unzip();
        summary.push((n, median(firsts), median(lists), median(rss), median(pss)));
    }
    println!();
    println!("median of {runs} runs:");
    for (n, first, list, rss, pss) in summary {
        println!(
            "  {n:>5} machines: first frame {first:.0} ms, machine list shown {list:.0} ms, \
             RSS {rss:.1} MiB, PSS {pss:.1} MiB"
        );
    }
}
