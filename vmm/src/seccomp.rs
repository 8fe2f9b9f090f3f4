//! Per-thread seccomp filters (placeholder until the filters land).

/// The kinds of threads the VMM runs, each with its own filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadKind {
    Vcpu,
    Io,
    Main,
}

/// Installs the filter for `kind` on the calling thread.
pub fn apply_current(_kind: ThreadKind) {}
